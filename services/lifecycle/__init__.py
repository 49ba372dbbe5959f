"""A model's life, from labels to the live endpoint: dataset versions (`datasets`) and what the
labels would add to the next one (`label_summary`), the gold set (`gold`), trainers (`trainers`: the
protocol and the local trainer), training runs (`training`) with their records (`runs`) and
background jobs (`jobs`), the registry of versions (`registry`), comparing versions and the gold-set
gate (`comparison`, `promotion`), deploying (`deployment`) and switching the live model with the
queue re-ranked (`switch`), scoring with the live model (`endpoint`) and which words it leant on
(`explain`), and serving it over HTTP with SageMaker's container contract (`serve`, with the request
format in `invocations` and request batching in `coalescer`).

May import: store, model, access (audit), review (labels, re-ranking after a switch), workspace
(only `serve`'s entry point, which opens one).
"""
