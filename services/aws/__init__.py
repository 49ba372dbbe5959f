"""Everything that talks to AWS, and the only modules that import boto3, botocore or sagemaker
(lazily, so the local backend never loads them): the boto3 clients (`clients`), the S3 store
(`s3`), an intake inbox on S3 (`inbox`), SageMaker training jobs (`training`), endpoint
deployment (`deploy`) and scoring (`endpoint`) with what they share (`errors`: reading AWS errors,
resource names), SNS alerts (`sns`), and a local stand-in of SageMaker on moto's server for
development and tests (`standin`, with what its containers do in `standin_images`; never in
production).

May import: store, model, lifecycle, monitoring (it implements their protocols), container (the
Pulse image's layout, whose training job it runs); nothing outside
`services.workspace` and `services.cli` builds these.
"""
