"""Check-ins from upload to dashboard: reading uploads (`records`: bytes to rows; `times`: when a
check-in was made; `upload`: fields and ids checked), ingesting them (`ingest`: score, store, queue
for review, raise alerts; `lock`: one ingest at a time decides what is new), files landing in an
inbox (`intake`), the scored check-ins in date-partitioned Parquet (`partitions`, `aggregate`), what
managers see (`trends`, `overview`) and CSV downloads (`exports`).

May import: store, model, access, review (queue items), lifecycle (the endpoint), monitoring
(alerts raised at ingest).
"""
