"""Watching people and the model: alert rules, validated (`rules`), alerts raised at ingest
(`alerts`) and the inbox that acknowledges and resolves them (`inbox`); model health and drift
(`health`), the review threshold in force and its overrides (`threshold`), what scoring costs (`costs`).

May import: store, model, access, lifecycle (the live model), checkins (scored partitions).
"""
