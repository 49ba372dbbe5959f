"""Pulse's domain: everything but the Streamlit pages. No module here imports `streamlit`.

The rooms, each a package with its own docstring:

    store/       where everything lives: the ObjectStore protocol, the local folder, store keys, leases
    aws/         the only importers of boto3/sagemaker: S3, SageMaker training/deploy/endpoint, SNS
    model/       text preprocessing and the two model families (fastText, linear), calibration, metrics
    lifecycle/   datasets -> training runs -> registry -> gate -> deployment -> endpoint -> serve
    checkins/    uploads read and ingested, scored check-ins in Parquet partitions, trends, exports
    review/      the review queue: items, claims, labels, undo, agreement, re-ranking
    monitoring/  alerts and their rules, model health and drift, the review threshold, costs
    access/      users and sign-in, who may see what (policy), the audit log, deleting a participant
    cli/         `python -m services.cli ...`

Beside them: `config` (the validated Settings), `errors` (every error Pulse reports),
`workspace` (the one factory that picks the adapters the settings ask for) and `demo`.
"""
