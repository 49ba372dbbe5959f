"""A model's life, from labels to the live endpoint: dataset versions (`datasets`), trainers
(`trainers`: the protocol and the local trainer), training runs and background jobs (`training`,
`jobs`), the registry of versions (`registry`), comparing versions and the gold-set gate
(`comparison`, `promotion`), deploying (`deployment`), scoring with the live model (`endpoint`) and
serving it over HTTP with SageMaker's container contract (`serve`).

Imports store, model, access (audit) and review (re-ranking after a switch).
"""
