"""Where Pulse keeps everything: the `ObjectStore` protocol (`base`), the local folder (`local`),
every key and prefix of the layout (`keys`), and locks held in the store (`lease`).

May import: nothing but `services.errors` and `services.config`. The S3 store is
`services.aws.s3`: it needs boto3, which only `services.aws` imports.
"""
