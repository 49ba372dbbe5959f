"""The boto3 clients Pulse uses, all made by one factory from the settings: region, endpoint URL
(for S3-compatible test servers such as moto), and the standard retry policy (backoff on
throttling, 5xx answers and dropped connections)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.config import Settings

# service -> (attempts, read timeout in seconds)
RETRIES = {"s3": (6, 30), "sagemaker": (6, 60), "sagemaker-runtime": (6, 60), "sns": (3, 10)}


def aws_client(settings: Settings, service: str) -> Any:
    """A boto3 client of `service` for the settings' region and endpoint."""
    import boto3
    from botocore.config import Config

    attempts, read_timeout = RETRIES.get(service, (6, 60))
    config = Config(
        retries={"mode": "standard", "max_attempts": attempts}, connect_timeout=5, read_timeout=read_timeout
    )
    return boto3.client(
        service, region_name=settings.aws_region, endpoint_url=settings.endpoint_url(service) or None, config=config
    )


def s3_client(settings: Settings) -> Any:
    return aws_client(settings, "s3")


def sagemaker_client(settings: Settings, service: str = "sagemaker") -> Any:
    """The `sagemaker` (or `sagemaker-runtime`) client."""
    return aws_client(settings, service)


def sns_client(settings: Settings) -> Any:
    return aws_client(settings, "sns")
