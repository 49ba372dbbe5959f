"""Model artifacts made outside Pulse, read from S3: an `s3://bucket/key` of a `model.tar.gz` (or a
bare fastText `.bin`), or the artifact of a completed SageMaker training job, by the job's name
(`services.cli import-model`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.aws.clients import s3_client, sagemaker_client
from services.aws.errors import aws_errors, error_code, explain, split_s3_uri
from services.errors import ModelUnavailable

if TYPE_CHECKING:
    from services.config import Settings

MAX_ARTIFACT_BYTES = 2 * 1024**3  # a fastText model with 2M buckets at dim 300 is about 2.4 GB: refuse beyond


def training_job_artifact(settings: Settings, job_name: str) -> str:
    """The `model.tar.gz` URI of a completed training job; `ModelUnavailable` when it has none."""
    try:
        job = sagemaker_client(settings).describe_training_job(TrainingJobName=job_name)
    except aws_errors() as exc:
        raise ModelUnavailable(explain(exc, f"describe training job {job_name}")) from None
    status = job.get("TrainingJobStatus")
    if status != "Completed":
        raise ModelUnavailable(f"training job {job_name} is {status}, not Completed: it has no model to import")
    uri = str(job.get("ModelArtifacts", {}).get("S3ModelArtifacts", ""))
    if not uri:
        raise ModelUnavailable(f"training job {job_name} reports no model artifact")
    return uri


def read_s3_artifact(settings: Settings, uri: str) -> bytes:
    """The bytes of `s3://bucket/key`; `ModelUnavailable` naming the object and what AWS said."""
    try:
        bucket, key = split_s3_uri(uri)
    except ValueError as exc:
        raise ModelUnavailable(str(exc)) from None
    client = s3_client(settings)
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        if int(head.get("ContentLength", 0)) > MAX_ARTIFACT_BYTES:
            raise ModelUnavailable(f"{uri} is larger than {MAX_ARTIFACT_BYTES:,} bytes: not a Pulse-sized model")
        body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except aws_errors() as exc:
        code = error_code(exc) or type(exc).__name__
        hint = " (no such object)" if code in ("404", "NoSuchKey", "NoSuchBucket") else ""
        raise ModelUnavailable(f"cannot read {uri}: {code}{hint}") from None
    return body
