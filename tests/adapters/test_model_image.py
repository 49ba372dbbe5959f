"""The aws backend with the Pulse model image (PULSE_SAGEMAKER_MODEL_IMAGE), against moto's server with
the SageMaker stand-in (`services/aws/standin.py`, in its own process), which runs the image's own
`train` entry point for a training job and its serving code for an endpoint: a training job of
either family, a job that cannot train, a linear model deployed and scored with the same answers
as the local endpoint, and jsonlines through `invoke_endpoint`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from botocore.config import Config

from services.aws.deploy import SageMakerDeployer
from services.aws.endpoint import SageMakerEndpoint
from services.aws.endpoint_choice import EndpointMover
from services.aws.errors import resource_name
from services.aws.s3 import S3Store
from services.aws.standin import MODEL_IMAGE, REGION, ROLE_ARN, aws_env, started
from services.aws.training import SageMakerTrainer
from services.aws.transform import BatchTransform
from services.checkins.ingest import ingest
from services.config import Settings, load_settings
from services.errors import EndpointError, PulseError
from services.lifecycle.deployment import record_deployment, require_current
from services.lifecycle.registry import (
    ModelCard,
    fetch_model,
    list_versions,
    load_card,
    load_model_file,
    new_version,
    register,
)
from services.lifecycle.switch import move_endpoint
from services.lifecycle.trainers import TrainingRequest
from services.model.corpus import split_corpus
from services.model.fasttext import fasttext_line
from services.model.params import TrainParams
from services.model.prediction import prepare
from services.store import keys
from services.workspace import Workspace
from tests.benchmarks.datasets import airline_checkins
from tests.conftest import free_port

BUCKET = "pulse-image"
PREFIX = "ws"
TEXTS = [
    "Slept maybe three hours, dreading the review tomorrow.",
    "Worked on the quarterly report most of the day.",
    "Not stressed at all today, which is a nice change.",
    "Fine.",
]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with started(free_port(), BUCKET, tmp_path_factory.mktemp("standin") / "standin.log") as running:
        yield running


def client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(
        tmp_path_factory.mktemp("s") / "no-secrets.toml",
        backend="aws",
        bucket=BUCKET,
        prefix=PREFIX,
        sagemaker_role_arn=ROLE_ARN,
        sagemaker_model_image=MODEL_IMAGE,
        sagemaker_endpoint_name="pulse-image-test",
    )


@pytest.fixture(scope="module")
def store(url: str) -> S3Store:
    s3 = S3Store(client("s3", url), BUCKET, PREFIX)
    lines = [fasttext_line(r.label, r.text) for r in split_corpus().train]
    s3.put("datasets/d1/train.txt", ("\n".join(lines[:3000]) + "\n").encode())
    s3.put("datasets/d1/validation.txt", ("\n".join(lines[3000:3800]) + "\n").encode())
    s3.put("datasets/empty/train.txt", b"\n")
    s3.put("datasets/empty/validation.txt", b"\n")
    return s3


def trainer(url: str, store: S3Store, settings: Settings) -> SageMakerTrainer:
    return SageMakerTrainer(client("sagemaker", url), client("s3", url), store, settings, poll_seconds=0.0)


def request(dataset: str, family: str, name: str) -> TrainingRequest:
    return TrainingRequest(
        name, dataset, f"datasets/{dataset}/train.txt", f"datasets/{dataset}/validation.txt", TrainParams(family=family)
    )


@pytest.mark.parametrize(("family", "file"), [("linear", "linear.npz"), ("auto", None)])
def test_a_training_job_of_the_image_trains_the_local_pipeline(
    url: str, store: S3Store, settings: Settings, tmp_path: Path, family: str, file: str | None
) -> None:
    sagemaker = trainer(url, store, settings)
    outcome = sagemaker.train(request("d1", family, f"pulse-image-{family}"), tmp_path)
    assert outcome.status == "Completed", outcome.failure_reason
    assert outcome.model_bin is not None and outcome.model_bin.parent == tmp_path
    assert file is None or outcome.model_bin.name == file
    assert outcome.temperature is not None and outcome.temperature > 0  # fitted inside the job
    assert sagemaker.name == "sagemaker-pulse"
    assert any("Pulse image" in line for line in outcome.log)
    spec = client("sagemaker", url).describe_training_job(TrainingJobName=f"pulse-image-{family}")
    assert spec["AlgorithmSpecification"]["TrainingImage"] == MODEL_IMAGE
    assert spec["HyperParameters"]["family"] == family


def test_a_job_the_image_cannot_train_fails_with_the_images_reason(
    url: str, store: S3Store, settings: Settings, tmp_path: Path
) -> None:
    outcome = trainer(url, store, settings).train(request("empty", "auto", "pulse-image-empty"), tmp_path)
    assert outcome.status == "Failed"
    assert "AlgorithmError: the train channel holds no line" in (outcome.failure_reason or "")


@pytest.fixture(scope="module")
def live(url: str, store: S3Store, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A linear model trained by a job of the image, registered and live on the endpoint."""
    job = tmp_path_factory.mktemp("job")
    outcome = trainer(url, store, settings).train(request("d1", "linear", "pulse-image-serve"), job)
    assert outcome.model_bin is not None
    model = load_model_file(outcome.model_bin).with_temperature(outcome.temperature or 1.0)
    version = new_version()
    card = ModelCard(version, "2026-12-04T00:00:00+00:00", "test", "d1", temperature=model.temperature)
    register(store, model, card)
    details = SageMakerDeployer(client("sagemaker", url), store, settings, poll_seconds=0.0).activate(version, None)
    record_deployment(store, version, by="test", reason="test", extra=details)
    described = client("sagemaker", url).describe_model(ModelName=details["model_name"])
    assert described["PrimaryContainer"]["Image"] == MODEL_IMAGE
    return version


def test_a_linear_model_served_by_the_image_scores_as_the_local_endpoint(
    url: str, store: S3Store, settings: Settings, tmp_path: Path, live: str
) -> None:
    version = live

    remote = SageMakerEndpoint(client("sagemaker-runtime", url), settings.sagemaker_endpoint_name, store)
    prepared = [prepare(t) for t in TEXTS]
    served_version, served = remote.score(prepared)
    local = fetch_model(store, version, tmp_path / "cache").predict_prepared(prepared)
    assert served_version == version
    assert [p.label for p in served] == [p.label for p in local]
    for got, want in zip(served, local, strict=True):
        assert got.probs == pytest.approx(want.probs, abs=1e-9)

    lines = b"".join(json.dumps({"source": t, "k": 3}).encode() + b"\n" for t in prepared)
    answer = client("sagemaker-runtime", url).invoke_endpoint(
        EndpointName=settings.sagemaker_endpoint_name,
        Body=lines,
        ContentType="application/jsonlines",
        Accept="application/jsonlines",
    )
    assert answer["ContentType"].startswith("application/jsonlines")
    rows = [json.loads(line) for line in answer["Body"].read().decode().splitlines()]
    assert [row["label"][0].removeprefix("__label__") for row in rows] == [p.label for p in local]


def test_import_model_takes_a_training_jobs_artifact_and_an_s3_object(
    url: str, store: S3Store, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`import-model --training-job NAME` and `import-model s3://...` on the aws backend."""
    from services.cli import main as cli

    done = trainer(url, store, settings).train(request("d1", "linear", "pulse-image-import"), tmp_path / "job")
    assert done.status == "Completed"
    for name, value in {**aws_env(url, BUCKET), "PULSE_PREFIX": PREFIX}.items():
        monkeypatch.setenv(name, value)
    before = set(list_versions(store))
    assert cli(["import-model", "--training-job", "pulse-image-import", "--by", "t"]) == 0
    (imported,) = set(list_versions(store)) - before
    card = load_card(store, imported)
    assert card.family == "linear" and card.trainer == "imported"
    assert card.dataset.startswith("imported: s3://pulse-image/ws/sagemaker/output/pulse-image-import/")
    assert cli(["import-model", f"s3://{BUCKET}/{PREFIX}/sagemaker/output/pulse-image-import/output/model.tar.gz"]) == 0
    assert cli(["import-model", f"s3://{BUCKET}/nothing/here.tar.gz"]) == 2
    assert cli(["import-model", "--training-job", "no-such-job"]) == 2


def transforming(url: str, store: S3Store, settings: Settings, bulk_rows: int) -> SageMakerEndpoint:
    transform = BatchTransform(client("sagemaker", url), store, settings, poll_seconds=0.0)
    return SageMakerEndpoint(
        client("sagemaker-runtime", url),
        settings.sagemaker_endpoint_name,
        store,
        transform=transform,
        bulk_rows=bulk_rows,
    )


def test_a_large_batch_is_scored_by_a_transform_job_joined_back_by_id(
    url: str, store: S3Store, settings: Settings, live: str
) -> None:
    lines = [fasttext_line(r.label, r.text).partition(" ")[2] for r in split_corpus().gold[:300]]
    prepared = ["", *lines, ""]  # empty texts are not sent, as with the endpoint
    sm = client("sagemaker", url)
    before = len(sm.list_transform_jobs()["TransformJobSummaries"])
    version, bulk = transforming(url, store, settings, bulk_rows=100).score(prepared)
    jobs = sm.list_transform_jobs()["TransformJobSummaries"]
    assert version == live and len(jobs) == before + 1
    spec = sm.describe_transform_job(TransformJobName=jobs[0]["TransformJobName"])
    assert spec["TransformInput"]["ContentType"] == "application/jsonlines"
    assert spec["DataProcessing"]["JoinSource"] == "Input"
    _, direct = SageMakerEndpoint(client("sagemaker-runtime", url), settings.sagemaker_endpoint_name, store).score(
        prepared
    )
    assert [p.label for p in bulk] == [p.label for p in direct]
    for got, want in zip(bulk, direct, strict=True):
        assert got.probs == pytest.approx(want.probs, abs=1e-9)
    assert not list(store.list(keys.SAGEMAKER_TRANSFORM))  # no text, nor any answer, left in the bucket


def test_an_upload_above_the_size_setting_is_ingested_through_one_transform_job(
    url: str, store: S3Store, settings: Settings, live: str
) -> None:
    frame = pd.DataFrame(airline_checkins(400, seed=3))
    endpoint = transforming(url, store, settings, bulk_rows=300)
    sm = client("sagemaker", url)
    before = len(sm.list_transform_jobs()["TransformJobSummaries"])
    report = ingest(store, endpoint, frame.to_csv(index=False).encode(), "bulk.csv", threshold=0.6)
    assert report.accepted + report.already_present == 400 and report.model_version == live
    assert len(sm.list_transform_jobs()["TransformJobSummaries"]) == before + 1


def test_a_transform_job_that_fails_is_an_endpoint_error_with_its_reason(
    url: str, store: S3Store, settings: Settings, live: str
) -> None:
    transform = BatchTransform(client("sagemaker", url), store, settings, poll_seconds=0.0)
    with pytest.raises(EndpointError, match=r"transform job \S+ failed: ClientError: the model container answered"):
        transform.score(["a" * 30_000], resource_name(settings.sagemaker_name_prefix, live), lambda item, n: item)
    assert not list(store.list(keys.SAGEMAKER_TRANSFORM))


def test_the_live_model_moves_to_a_serverless_endpoint_and_back(
    url: str, store: S3Store, settings: Settings, live: str
) -> None:
    """What the Health & costs page's button does: SageMaker cannot update one kind into the other."""
    sm = client("sagemaker", url)
    remote = SageMakerEndpoint(client("sagemaker-runtime", url), settings.sagemaker_endpoint_name, store)
    ws = Workspace(
        settings,
        store,
        remote,
        trainer(url, store, settings),
        SageMakerDeployer(sm, store, settings, poll_seconds=0.0),
        None,
        EndpointMover(sm, store, settings),
    )
    before = require_current(store)
    _, expected = remote.score([prepare(t) for t in TEXTS])

    dep, retired = move_endpoint(ws, serverless_memory_mb=2048, by="admin")
    moved = f"{settings.sagemaker_endpoint_name}-serverless"
    assert dep.version == live and dep.previous == before.previous  # a rollback still goes where it went
    assert dep.details["endpoint_name"] == moved and "deleted" in retired
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=moved)["EndpointConfigName"]
    )
    assert config["ProductionVariants"][0]["ServerlessConfig"]["MemorySizeInMB"] == 2048
    assert settings.sagemaker_endpoint_name not in {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]}
    _, served = remote.score([prepare(t) for t in TEXTS])  # through the serverless endpoint now
    assert [p.probs for p in served] == [pytest.approx(p.probs, abs=1e-9) for p in expected]

    with pytest.raises(PulseError, match="serverless already"):
        move_endpoint(ws, serverless_memory_mb=1024, by="admin")
    dep, _ = move_endpoint(ws, serverless_memory_mb=0, by="admin")
    assert dep.details["endpoint_name"] == settings.sagemaker_endpoint_name
    assert {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]} == {settings.sagemaker_endpoint_name}
