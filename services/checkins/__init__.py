"""Check-ins from upload to dashboard: reading uploads (`upload`), ingesting them (`ingest`: score,
store, queue for review, raise alerts), the scored check-ins in date-partitioned Parquet
(`partitions`), what managers see (`trends`, `overview`) and CSV downloads (`exports`).

May import: store, model, access, review (queue items), lifecycle (the endpoint), monitoring
(alerts raised at ingest).
"""
