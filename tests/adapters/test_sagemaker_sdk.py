"""The one thing Pulse takes from the SageMaker SDK (`sagemaker-core`): the BlazingText image URI
of a region, looked up in the SDK's bundled table without any network access."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from services.aws.s3 import S3Store
from services.aws.training import SageMakerTrainer, blazingtext_image
from services.config import Settings, load_settings
from services.lifecycle.trainers import TrainingRequest
from services.model.params import TrainParams

IMAGE = re.compile(r"^\d{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/blazingtext:\d+$")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("offline")
def test_blazingtext_image_is_resolved_offline() -> None:
    from sagemaker.core import image_uris

    uri = image_uris.retrieve("blazingtext", "us-east-1")
    match = IMAGE.match(uri)
    assert match and match.group(1) == "us-east-1", uri
    assert image_uris.retrieve("blazingtext", "eu-west-1") != uri  # one registry per region
    blazingtext_image.cache_clear()
    assert blazingtext_image("us-east-1") == uri


def _settings(tmp_path: Path) -> Settings:
    return load_settings(
        tmp_path / "no-secrets.toml",
        backend="aws",
        bucket="pulse-bucket",
        sagemaker_role_arn="arn:aws:iam::123456789012:role/pulse-sagemaker",
    )


def _trainer(region: str, tmp_path: Path) -> tuple[SageMakerTrainer, Stubber]:
    sm = boto3.client("sagemaker", region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing")
    s3 = boto3.client("s3", region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing")
    store = S3Store(s3, "pulse-bucket", "ws")
    return SageMakerTrainer(sm, s3, store, _settings(tmp_path), sleep=lambda _s: None), Stubber(sm)


REQUEST = TrainingRequest("pulse-sdk-job", "d1", "datasets/d1/train.txt", "datasets/d1/validation.txt", TrainParams())


def test_trainer_starts_the_job_with_the_sdk_image_of_the_client_region(tmp_path: Path) -> None:
    from sagemaker.core import image_uris

    trainer, stubber = _trainer("eu-west-1", tmp_path)
    expected_image = image_uris.retrieve("blazingtext", "eu-west-1")
    members = ("RoleArn", "HyperParameters", "InputDataConfig", "OutputDataConfig", "ResourceConfig")
    stubber.add_response(
        "create_training_job",
        {"TrainingJobArn": "arn:aws:sagemaker:eu-west-1:123456789012:training-job/pulse-sdk-job"},
        {
            "TrainingJobName": "pulse-sdk-job",
            "AlgorithmSpecification": {"TrainingImage": expected_image, "TrainingInputMode": "File"},
            "StoppingCondition": ANY,
            "Tags": ANY,
            **dict.fromkeys(members, ANY),
        },
    )
    stubber.add_client_error("describe_training_job", "AccessDeniedException", "stop here")
    stubber.add_response("stop_training_job", {})
    with stubber:
        outcome = trainer.train(REQUEST, tmp_path)
        stubber.assert_no_pending_responses()  # the create call matched the SDK's image
    assert outcome.status == "Failed"


def test_trainer_fails_cleanly_in_a_region_without_blazingtext(tmp_path: Path) -> None:
    trainer, stubber = _trainer("xx-nowhere-1", tmp_path)
    with stubber:  # nothing queued: no SageMaker call may be made
        outcome = trainer.train(REQUEST, tmp_path)
    assert outcome.status == "Failed"
    assert outcome.failure_reason == "no BlazingText image for region xx-nowhere-1: Unsupported region: xx-nowhere-1"
