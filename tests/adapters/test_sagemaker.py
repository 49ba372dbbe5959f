"""The SageMaker adapters (`services/aws/training.py`, `deploy.py`, `endpoint.py`): training, deployment and scoring.

Two ways of answering the boto3 calls, both real boto3 clients:
- moto in server mode over HTTP (`moto_endpoint`) for what moto implements: create/describe
  training job, create_model, create_endpoint_config, create/describe/delete endpoint and
  invoke_endpoint (answers queued through `/moto-api/static/sagemaker/endpoint-results`);
- `botocore.stub.Stubber` for what moto lacks or cannot be made to do: update_endpoint,
  stop_training_job, jobs and endpoints that end Failed, throttling, access denied.
`sleep` and `clock` are injected, so no test waits in real time.
"""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
import traceback
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import ANY, Stubber

from services.aws.deploy import SageMakerDeployer
from services.aws.endpoint import SageMakerEndpoint
from services.aws.errors import resource_name
from services.aws.s3 import S3Store
from services.aws.training import SageMakerTrainer, blazingtext_hyperparameters, blazingtext_image
from services.config import Settings, load_settings
from services.errors import DeployFailed, EndpointError, ModelUnavailable
from services.lifecycle.deployment import CURRENT
from services.lifecycle.trainers import TrainingRequest
from services.model.fasttext import SentimentModel, fasttext_line, train
from services.model.params import TrainParams
from services.model.prediction import LABELS, UNREADABLE, apply_temperature
from services.store import keys
from services.store.local import LocalStore
from tests.conftest import free_port
from tests.conftest import tar_gz as pack

PREFIX = "pulse/ws"
ROLE = "arn:aws:iam::123456789012:role/pulse-sagemaker"
REGION = "us-east-1"
NOW = datetime(2026, 11, 23, 18, 30, 0, tzinfo=UTC)
STAMP = "261123183000"  # NOW as the endpoint config suffix
SECRET = "my-diary-says-i-feel-awful-about-bob"  # a message text that must never leak

CORPUS = [
    ("positive", "I love this team, what a great and happy day"),
    ("positive", "great work everyone, really happy and proud"),
    ("positive", "feeling good, thanks for the support today"),
    ("negative", "terrible day, I feel sad and tired of everything"),
    ("negative", "awful meeting, angry and stressed about the deadline"),
    ("negative", "bad news again, I am upset and exhausted"),
    ("neutral", "the meeting moved to room four at noon"),
    ("neutral", "submitted the report, next review is on monday"),
    ("neutral", "working from the office tomorrow as usual"),
]


# --- helpers -------------------------------------------------------------------------------


class FakeTime:
    """An injected clock and sleep: sleeping moves the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client(service: str, endpoint_url: str | None = None, region: str = REGION) -> Any:
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=2, read_timeout=10),
    )


def unique(stem: str) -> str:
    """moto's server lives for the whole session: every test names its resources afresh."""
    return f"{stem}-{uuid.uuid4().hex[:10]}"


def calls(sm_client: Any, operation: str) -> list[dict[str, Any]]:
    """Record the parameters of every `operation` call the client makes (over real HTTP)."""
    seen: list[dict[str, Any]] = []
    service = sm_client.meta.service_model.service_id.hyphenize()
    sm_client.meta.events.register(
        f"provide-client-params.{service}.{operation}", lambda params, **_: seen.append(params)
    )
    return seen


def training_job(
    status: str, secondary: str, *, reason: str | None = None, steps: list[str] | None = None
) -> dict[str, Any]:
    """A DescribeTrainingJob answer (all the members the API model requires)."""
    answer: dict[str, Any] = {
        "TrainingJobName": "job",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/job",
        "ModelArtifacts": {"S3ModelArtifacts": ""},
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "CreationTime": NOW,
        "SecondaryStatusTransitions": [
            {"Status": s, "StartTime": NOW, "StatusMessage": f"{s} message"} for s in (steps or [])
        ],
    }
    if reason:
        answer["FailureReason"] = reason
    return answer


def endpoint(status: str, config: str, *, reason: str | None = None, name: str = "ep") -> dict[str, Any]:
    """A DescribeEndpoint answer."""
    answer: dict[str, Any] = {
        "EndpointName": name,
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name}",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": NOW,
        "LastModifiedTime": NOW,
    }
    if reason:
        answer["FailureReason"] = reason
    return answer


def not_found(stubber: Stubber, operation: str, what: str) -> None:
    stubber.add_client_error(operation, "ValidationException", f"Could not find {what} 'arn:aws:sagemaker:...'.")


ARN = {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/job"}
MODEL_ARN = {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m"}
CONFIG_ARN = {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/c"}
ENDPOINT_ARN = {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep"}


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_tar(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real fastText model on a tiny corpus, packed as `services.registry.register` packs it
    (and as BlazingText writes model.tar.gz)."""
    model = train([fasttext_line(label, text) for label, text in CORPUS] * 4, TrainParams(epoch=5, dim=10, bucket=5000))
    path = tmp_path_factory.mktemp("model") / "model.bin"
    model.save(path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(path, arcname="model.bin")
    return buf.getvalue()


@pytest.fixture
def settings(bucket: str, tmp_path: Path) -> Settings:
    return load_settings(
        tmp_path / "no-secrets.toml",
        backend="aws",
        bucket=bucket,
        prefix=PREFIX,
        sagemaker_role_arn=ROLE,
        sagemaker_training_max_seconds=60,
        sagemaker_endpoint_name=unique("ep"),
    )


@pytest.fixture
def store(s3_client: Any, bucket: str) -> S3Store:
    return S3Store(s3_client, bucket, PREFIX)


@pytest.fixture
def sm(moto_endpoint: str) -> Any:
    return client("sagemaker", moto_endpoint)


@pytest.fixture
def runtime(moto_endpoint: str) -> Any:
    return client("sagemaker-runtime", moto_endpoint)


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    """A sagemaker client whose every call is answered by the Stubber (none reaches a server)."""
    sm_client = client("sagemaker")
    with Stubber(sm_client) as stubber:
        yield sm_client, stubber


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def request_(store: S3Store) -> TrainingRequest:
    store.put("datasets/d1/train.txt", b"__label__positive great day\n__label__negative awful day\n")
    store.put("datasets/d1/validation.txt", b"__label__neutral the meeting is at noon\n")
    return TrainingRequest(
        unique("pulse-job"), "d1", "datasets/d1/train.txt", "datasets/d1/validation.txt", TrainParams()
    )


def trainer(sm_client: Any, s3: Any, store: S3Store, settings: Settings, ft: FakeTime, **kw: Any) -> SageMakerTrainer:
    return SageMakerTrainer(sm_client, s3, store, settings, poll_seconds=15.0, sleep=ft.sleep, clock=ft.clock, **kw)


def artifact_key(job_name: str) -> str:
    """Where moto says the job wrote its model (it does not run the algorithm: we put it there)."""
    return f"{PREFIX}/sagemaker/output/{job_name}/output/model.tar.gz"


# --- hyperparameters and names --------------------------------------------------------------


def test_hyperparameters_are_blazingtext_supervised_names_as_strings() -> None:
    hp = blazingtext_hyperparameters(TrainParams(epoch=12, lr=0.25, dim=64, word_ngrams=3, bucket=123_456))
    assert hp == {
        "mode": "supervised",
        "epochs": "12",
        "learning_rate": "0.25",
        "vector_dim": "64",
        "word_ngrams": "3",
        "buckets": "123456",
        "min_count": "1",
    }
    assert all(isinstance(v, str) for v in hp.values())


def test_resource_names_are_valid_and_cut_to_63_characters() -> None:
    assert resource_name("pulse", "m20261123-183000-1a2b") == "pulse-m20261123-183000-1a2b"
    long = resource_name("pulse", "v" * 80, suffix=STAMP)
    assert len(long) == 63 and long.endswith(f"-{STAMP}")
    assert resource_name("pulse", "a_b.c") == "pulse-a-b-c"


# --- trainer: moto -----------------------------------------------------------------------------


def test_train_completes_and_downloads_a_checked_model(
    sm: Any,
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    model_tar: bytes,
    tmp_path: Path,
    fake_time: FakeTime,
) -> None:
    # moto reports the job Completed at once but does not run BlazingText: the artifact it
    # names is put there by the test, a real fastText model packed like the registry does.
    s3_client.put_object(Bucket=settings.bucket, Key=artifact_key(request_.job_name), Body=model_tar)
    seen: list[tuple[float, str]] = []
    outcome = trainer(sm, s3_client, store, settings, fake_time).train(
        request_, tmp_path / "job", progress=lambda share, line: seen.append((share, line))
    )

    assert outcome.status == "Completed", outcome.failure_reason
    assert outcome.model_bin == tmp_path / "job" / "model.bin"
    model = SentimentModel.load(outcome.model_bin)
    assert set(model.labels) == set(LABELS)
    assert model.predict(["what a great happy day"])[0].label in LABELS
    assert fake_time.sleeps == []  # Completed on the first poll
    lines = [line for _, line in seen]
    assert any(line.startswith("Starting") for line in lines) and "Completed" in lines
    shares = [share for share, _ in seen]
    assert shares == sorted(shares) and shares[-1] == 1.0
    assert outcome.log == lines

    job = sm.describe_training_job(TrainingJobName=request_.job_name)
    assert job["AlgorithmSpecification"]["TrainingImage"] == blazingtext_image(REGION)
    assert job["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert job["RoleArn"] == ROLE
    assert job["HyperParameters"] == blazingtext_hyperparameters(request_.params)
    channels = {c["ChannelName"]: c for c in job["InputDataConfig"]}
    assert set(channels) == {"train", "validation"}
    train_source = channels["train"]["DataSource"]["S3DataSource"]
    assert train_source["S3Uri"] == f"s3://{settings.bucket}/{PREFIX}/datasets/d1/train.txt"
    assert train_source["S3DataDistributionType"] == "FullyReplicated"
    assert channels["validation"]["DataSource"]["S3DataSource"]["S3Uri"].endswith("/datasets/d1/validation.txt")
    assert channels["train"]["ContentType"] == "text/plain"
    assert job["OutputDataConfig"]["S3OutputPath"] == f"s3://{settings.bucket}/{PREFIX}/sagemaker/output/"
    assert job["ResourceConfig"] == {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10}
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 60
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]}
    assert tags == {"app": "pulse", "pulse:dataset": "d1"}


def test_train_notes_the_fasttext_options_blazingtext_lacks(
    sm: Any,
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    model_tar: bytes,
    tmp_path: Path,
    fake_time: FakeTime,
) -> None:
    from dataclasses import replace

    req = replace(request_, params=TrainParams(minn=2, maxn=4, seed=7))
    s3_client.put_object(Bucket=settings.bucket, Key=artifact_key(req.job_name), Body=model_tar)
    outcome = trainer(sm, s3_client, store, settings, fake_time).train(req, tmp_path)
    assert outcome.status == "Completed"
    assert any("subwords minn=2/maxn=4" in line and "ignored" in line for line in outcome.log)
    assert any("seed=7" in line for line in outcome.log)
    sent = sm.describe_training_job(TrainingJobName=req.job_name)["HyperParameters"]
    assert not {"minn", "maxn", "seed", "min_char", "max_char", "subwords"} & set(sent)


def test_train_fails_when_the_artifact_is_missing(
    sm: Any,
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    tmp_path: Path,
    fake_time: FakeTime,
) -> None:
    outcome = trainer(sm, s3_client, store, settings, fake_time).train(request_, tmp_path)
    assert outcome.status == "Failed"
    assert "cannot download the model artifact" in (outcome.failure_reason or "")
    assert "NoSuchKey" in (outcome.failure_reason or "")
    assert not (tmp_path / "model.bin").exists()


@pytest.mark.parametrize(
    ("what", "blob", "expected"),
    [
        ("not gzip at all", b"this is not a tarball", "corrupt"),
        ("truncated gzip", "TRUNCATED", "corrupt"),
        ("no model.bin inside", pack({"model.vec": b"0 0\n"}), "holds no model.bin"),
        ("garbage model.bin", pack({"model.bin": b"\x00" * 200}), "unusable"),
        ("model.bin outside the folder", pack({"../model.bin": b"x"}), "holds no model.bin"),
    ],
)
def test_train_refuses_a_corrupt_model_tar(
    sm: Any,
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    model_tar: bytes,
    tmp_path: Path,
    fake_time: FakeTime,
    what: str,
    blob: bytes | str,
    expected: str,
) -> None:
    body = model_tar[: len(model_tar) // 2] if blob == "TRUNCATED" else blob
    s3_client.put_object(Bucket=settings.bucket, Key=artifact_key(request_.job_name), Body=body)
    outcome = trainer(sm, s3_client, store, settings, fake_time).train(request_, tmp_path)
    assert outcome.status == "Failed", what
    assert expected in (outcome.failure_reason or ""), outcome.failure_reason
    assert outcome.model_bin is None
    assert not (tmp_path / "model.bin").exists()


def test_train_refuses_a_model_bin_that_links_outside_the_archive(
    sm: Any,
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    model_tar: bytes,
    tmp_path: Path,
    fake_time: FakeTime,
) -> None:
    # The link points at a perfectly good model elsewhere on disk: only the tar filter stops it.
    elsewhere = tmp_path / "elsewhere"
    with tarfile.open(fileobj=io.BytesIO(model_tar), mode="r:gz") as tar:
        tar.extractall(elsewhere, filter="data")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        link = tarfile.TarInfo("model.bin")
        link.type = tarfile.SYMTYPE
        link.linkname = str(elsewhere / "model.bin")
        tar.addfile(link)
    s3_client.put_object(Bucket=settings.bucket, Key=artifact_key(request_.job_name), Body=buf.getvalue())
    outcome = trainer(sm, s3_client, store, settings, fake_time).train(request_, tmp_path / "job")
    assert outcome.status == "Failed"
    assert "corrupt (AbsoluteLinkError)" in (outcome.failure_reason or "")
    assert not (tmp_path / "job" / "model.bin").exists()


# --- trainer: Stubber ------------------------------------------------------------------------


def test_train_without_a_role_fails_before_calling_aws(
    stubbed: tuple[Any, Stubber],
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    tmp_path: Path,
    fake_time: FakeTime,
) -> None:
    sm_client, _ = stubbed  # no responses queued: any call would raise
    no_role = settings.model_copy(update={"sagemaker_role_arn": ""})
    outcome = trainer(sm_client, s3_client, store, no_role, fake_time).train(request_, tmp_path)
    assert outcome.status == "Failed"
    assert "PULSE_SAGEMAKER_ROLE_ARN" in (outcome.failure_reason or "")


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("AccessDeniedException", 400, "access denied when trying to start training job"),
        ("ValidationException", 400, "SageMaker refused to start training job"),
        ("ResourceLimitExceeded", 400, "account quota reached"),
        ("ThrottlingException", 400, "throttling"),
        ("InternalFailure", 500, "try again later"),
    ],
)
def test_train_create_errors_become_failed(
    stubbed: tuple[Any, Stubber],
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    tmp_path: Path,
    fake_time: FakeTime,
    code: str,
    status: int,
    expected: str,
) -> None:
    sm_client, stubber = stubbed
    stubber.add_client_error("create_training_job", code, "the service said no", http_status_code=status)
    outcome = trainer(sm_client, s3_client, store, settings, fake_time).train(request_, tmp_path)
    assert outcome.status == "Failed"
    assert expected in (outcome.failure_reason or "")
    stubber.assert_no_pending_responses()


def test_train_failed_job_surfaces_the_failure_reason(
    stubbed: tuple[Any, Stubber],
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    tmp_path: Path,
    fake_time: FakeTime,
) -> None:
    sm_client, stubber = stubbed
    members = ("AlgorithmSpecification", "RoleArn", "HyperParameters", "InputDataConfig", "OutputDataConfig")
    members += ("ResourceConfig", "StoppingCondition", "Tags")
    stubber.add_response(
        "create_training_job", ARN, {"TrainingJobName": request_.job_name, **dict.fromkeys(members, ANY)}
    )
    stubber.add_response(
        "describe_training_job", training_job("InProgress", "Training", steps=["Starting", "Training"])
    )
    reason = "ClientError: No training data found in the train channel"
    stubber.add_response(
        "describe_training_job",
        training_job("Failed", "Failed", reason=reason, steps=["Starting", "Training", "Failed"]),
    )
    seen: list[str] = []
    outcome = trainer(sm_client, s3_client, store, settings, fake_time).train(
        request_, tmp_path, progress=lambda _s, line: seen.append(line)
    )
    assert outcome.status == "Failed"
    assert reason in (outcome.failure_reason or "")
    assert fake_time.sleeps == [15.0]
    assert seen[1:4] == ["Starting: Starting message", "Training: Training message", "Failed: Failed message"]
    stubber.assert_no_pending_responses()


def test_train_should_stop_stops_the_job(
    stubbed: tuple[Any, Stubber],
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    tmp_path: Path,
    fake_time: FakeTime,
) -> None:
    sm_client, stubber = stubbed
    stubber.add_response("create_training_job", ARN)
    stubber.add_response("describe_training_job", training_job("InProgress", "Starting"))
    stubber.add_response("describe_training_job", training_job("InProgress", "Training"))
    stubber.add_response("stop_training_job", {}, {"TrainingJobName": request_.job_name})
    asked = iter([False, True])
    outcome = trainer(sm_client, s3_client, store, settings, fake_time).train(
        request_, tmp_path, should_stop=lambda: next(asked)
    )
    assert outcome.status == "Stopped"
    assert outcome.model_bin is None
    assert fake_time.sleeps == [15.0]
    stubber.assert_no_pending_responses()


def test_train_stop_refused_is_failed_and_says_the_job_may_still_run(
    stubbed: tuple[Any, Stubber],
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    tmp_path: Path,
    fake_time: FakeTime,
) -> None:
    sm_client, stubber = stubbed
    stubber.add_response("create_training_job", ARN)
    stubber.add_response("describe_training_job", training_job("InProgress", "Training"))
    stubber.add_client_error("stop_training_job", "AccessDeniedException", "not allowed: sagemaker:StopTrainingJob")
    outcome = trainer(sm_client, s3_client, store, settings, fake_time).train(
        request_, tmp_path, should_stop=lambda: True
    )
    assert outcome.status == "Failed"
    assert "access denied" in (outcome.failure_reason or "")
    assert "may still be running" in (outcome.failure_reason or "")
    stubber.assert_no_pending_responses()


def test_train_gives_up_after_max_runtime_plus_grace_and_stops_the_job(
    stubbed: tuple[Any, Stubber],
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    tmp_path: Path,
    fake_time: FakeTime,
) -> None:
    sm_client, stubber = stubbed
    stubber.add_response("create_training_job", ARN)
    # MaxRuntime 60s + grace 30s, polled every 15s: describes at t = 0, 15, ..., 90.
    for _ in range(7):
        stubber.add_response("describe_training_job", training_job("InProgress", "Training"))
    stubber.add_response("stop_training_job", {}, {"TrainingJobName": request_.job_name})
    outcome = trainer(sm_client, s3_client, store, settings, fake_time, grace_seconds=30).train(request_, tmp_path)
    assert outcome.status == "Failed"
    assert (outcome.failure_reason or "").startswith("timeout")
    assert "60s" in (outcome.failure_reason or "")
    assert fake_time.now == 90.0
    assert outcome.seconds == 90.0
    stubber.assert_no_pending_responses()


def test_train_job_stopped_by_sagemaker_at_max_runtime_is_a_timeout(
    stubbed: tuple[Any, Stubber],
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    tmp_path: Path,
    fake_time: FakeTime,
) -> None:
    sm_client, stubber = stubbed
    stubber.add_response("create_training_job", ARN)
    stubber.add_response("describe_training_job", training_job("Stopped", "MaxRuntimeExceeded"))
    outcome = trainer(sm_client, s3_client, store, settings, fake_time).train(request_, tmp_path)
    assert outcome.status == "Failed"
    assert "timeout" in (outcome.failure_reason or "")


def test_train_job_stopped_elsewhere_is_stopped(
    stubbed: tuple[Any, Stubber],
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    tmp_path: Path,
    fake_time: FakeTime,
) -> None:
    sm_client, stubber = stubbed
    stubber.add_response("create_training_job", ARN)
    stubber.add_response("describe_training_job", training_job("Stopped", "Stopped"))
    outcome = trainer(sm_client, s3_client, store, settings, fake_time).train(request_, tmp_path)
    assert outcome.status == "Stopped"


def test_train_survives_a_throttled_poll(
    stubbed: tuple[Any, Stubber],
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    tmp_path: Path,
    fake_time: FakeTime,
) -> None:
    sm_client, stubber = stubbed
    stubber.add_response("create_training_job", ARN)
    stubber.add_client_error("describe_training_job", "ThrottlingException", "Rate exceeded")
    stubber.add_response("describe_training_job", training_job("Failed", "Failed", reason="AlgorithmError: bad label"))
    outcome = trainer(sm_client, s3_client, store, settings, fake_time).train(request_, tmp_path)
    assert outcome.failure_reason == "SageMaker training job failed: AlgorithmError: bad label"
    assert any("ThrottlingException" in line and "retrying" in line for line in outcome.log)
    assert fake_time.sleeps == [15.0]
    stubber.assert_no_pending_responses()


def test_train_throttling_that_never_ends_is_failed_and_the_job_stopped(
    stubbed: tuple[Any, Stubber],
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    tmp_path: Path,
    fake_time: FakeTime,
) -> None:
    sm_client, stubber = stubbed
    stubber.add_response("create_training_job", ARN)
    for _ in range(3):
        stubber.add_client_error("describe_training_job", "ThrottlingException", "Rate exceeded")
    stubber.add_response("stop_training_job", {})
    outcome = trainer(sm_client, s3_client, store, settings, fake_time, max_poll_errors=3).train(request_, tmp_path)
    assert outcome.status == "Failed"
    assert "throttling" in (outcome.failure_reason or "")
    stubber.assert_no_pending_responses()


def test_train_describe_access_denied_fails_at_once(
    stubbed: tuple[Any, Stubber],
    s3_client: Any,
    store: S3Store,
    settings: Settings,
    request_: TrainingRequest,
    tmp_path: Path,
    fake_time: FakeTime,
) -> None:
    sm_client, stubber = stubbed
    stubber.add_response("create_training_job", ARN)
    stubber.add_client_error("describe_training_job", "AccessDeniedException", "no sagemaker:DescribeTrainingJob")
    stubber.add_client_error("stop_training_job", "AccessDeniedException", "no sagemaker:StopTrainingJob")
    outcome = trainer(sm_client, s3_client, store, settings, fake_time).train(request_, tmp_path)
    assert outcome.status == "Failed"
    assert "access denied when trying to describe training job" in (outcome.failure_reason or "")
    assert fake_time.sleeps == []
    stubber.assert_no_pending_responses()


# --- deployer: moto ----------------------------------------------------------------------------


def deployer(sm_client: Any, store: S3Store, settings: Settings, ft: FakeTime, **kw: Any) -> SageMakerDeployer:
    return SageMakerDeployer(
        sm_client, store, settings, poll_seconds=15.0, sleep=ft.sleep, clock=ft.clock, now=lambda: NOW, **kw
    )


@pytest.fixture
def version(store: S3Store, model_tar: bytes) -> str:
    v = unique("m20261123-183000")
    store.put(f"models/{v}/model.tar.gz", model_tar)
    return v


def test_activate_creates_model_config_and_endpoint(
    sm: Any, store: S3Store, settings: Settings, version: str, fake_time: FakeTime
) -> None:
    dep = deployer(sm, store, settings, fake_time)
    assert dep.status() == {"status": "missing"}
    details = dep.activate(version, None)

    model_name = f"pulse-{version}"
    config_name = f"pulse-{version}-{STAMP}"
    assert details == {
        "model_name": model_name,
        "endpoint_config_name": config_name,
        "endpoint_name": settings.sagemaker_endpoint_name,
        "previous_endpoint_config": "",
        "previous_version": "",
    }
    model = sm.describe_model(ModelName=model_name)
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{settings.bucket}/{PREFIX}/models/{version}/model.tar.gz"
    assert model["PrimaryContainer"]["Image"] == blazingtext_image(REGION)
    assert model["ExecutionRoleArn"] == ROLE
    config = sm.describe_endpoint_config(EndpointConfigName=config_name)
    (variant,) = config["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["ModelName"] == model_name
    assert variant["InstanceType"] == "ml.t2.medium"
    assert variant["InitialInstanceCount"] == 1
    assert dep.status() == {
        "endpoint_name": settings.sagemaker_endpoint_name,
        "status": "InService",
        "endpoint_config_name": config_name,
    }
    assert fake_time.sleeps == []  # moto: InService at once


def test_activate_reuses_an_existing_model(
    sm: Any, store: S3Store, settings: Settings, version: str, fake_time: FakeTime
) -> None:
    dep = deployer(sm, store, settings, fake_time)
    sm.create_model(
        ModelName=f"pulse-{version}",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": blazingtext_image(REGION), "ModelDataUrl": dep.artifact_uri(version)},
    )
    created = calls(sm, "CreateModel")
    dep.activate(version, None)
    assert created == []  # moto would silently overwrite: the adapter must not even try
    assert f"reusing model pulse-{version}" in dep.events


def test_activate_refuses_a_model_name_that_serves_another_artifact(
    sm: Any, store: S3Store, settings: Settings, version: str, fake_time: FakeTime
) -> None:
    sm.create_model(
        ModelName=f"pulse-{version}",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "x", "ModelDataUrl": "s3://b/other"},
    )
    with pytest.raises(DeployFailed, match="exists but serves s3://b/other"):
        deployer(sm, store, settings, fake_time).activate(version, None)


def test_activate_refuses_an_unregistered_version_before_calling_sagemaker(
    stubbed: tuple[Any, Stubber], store: S3Store, settings: Settings, fake_time: FakeTime
) -> None:
    sm_client, _ = stubbed  # nothing queued
    with pytest.raises(DeployFailed, match=r"has no model\.tar\.gz in the registry"):
        deployer(sm_client, store, settings, fake_time).activate("m-nope", None)


# --- deployer: Stubber ---------------------------------------------------------------------------


def queue_up_to_update(stubber: Stubber, name: str, version: str, old: str, dep: SageMakerDeployer) -> str:
    """describe (InService on `old`) → describe_model (missing) → create_model → create_endpoint_config."""
    config = f"pulse-{version}-{STAMP}"
    stubber.add_response("describe_endpoint", endpoint("InService", old, name=name), {"EndpointName": name})
    not_found(stubber, "describe_model", "model")
    stubber.add_response(
        "create_model",
        MODEL_ARN,
        {
            "ModelName": f"pulse-{version}",
            "PrimaryContainer": {"Image": blazingtext_image(REGION), "ModelDataUrl": dep.artifact_uri(version)},
            "ExecutionRoleArn": ROLE,
            "Tags": ANY,
        },
    )
    stubber.add_response(
        "create_endpoint_config", CONFIG_ARN, {"EndpointConfigName": config, "ProductionVariants": ANY, "Tags": ANY}
    )
    stubber.add_response("describe_endpoint_config", endpoint_config(old), {"EndpointConfigName": old})
    return config


def endpoint_config(name: str, *, serverless: bool = False) -> dict[str, Any]:
    variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": "m"}
    if serverless:
        variant["ServerlessConfig"] = {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    else:
        variant.update(InstanceType="ml.t2.medium", InitialInstanceCount=1)
    return {
        "EndpointConfigName": name,
        "EndpointConfigArn": CONFIG_ARN["EndpointConfigArn"],
        "ProductionVariants": [variant],
        "CreationTime": NOW,
    }


def test_a_serverless_endpoint_is_created_with_the_memory_and_concurrency_of_the_settings(
    sm: Any, store: S3Store, settings: Settings, version: str, fake_time: FakeTime
) -> None:
    serverless = settings.model_copy(update={"sagemaker_serverless_memory_mb": 2048})
    dep = deployer(sm, store, serverless, fake_time)
    details = dep.activate(version, None)
    (variant,) = sm.describe_endpoint_config(EndpointConfigName=details["endpoint_config_name"])["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert "InstanceType" not in variant
    assert any("serverless, 2048 MB, 5 at once" in line for line in dep.events)


def test_a_real_time_endpoint_is_not_updated_into_a_serverless_one(
    stubbed: tuple[Any, Stubber], store: S3Store, settings: Settings, version: str, fake_time: FakeTime
) -> None:
    """SageMaker refuses that update; Pulse says what to do instead, before it calls UpdateEndpoint."""
    sm_client, stubber = stubbed
    name = settings.sagemaker_endpoint_name
    serverless = settings.model_copy(update={"sagemaker_serverless_memory_mb": 1024})
    dep = deployer(sm_client, store, serverless, fake_time)
    queue_up_to_update(stubber, name, version, "pulse-old-cfg", dep)
    with pytest.raises(DeployFailed, match="is real-time and the settings ask for serverless") as raised:
        dep.activate(version, "m-old")
    assert "Health & costs page" in str(raised.value)
    stubber.assert_no_pending_responses()  # no update_endpoint was queued, none was called


def test_activate_updates_an_existing_endpoint(
    stubbed: tuple[Any, Stubber], store: S3Store, settings: Settings, version: str, fake_time: FakeTime
) -> None:
    sm_client, stubber = stubbed
    name = settings.sagemaker_endpoint_name
    dep = deployer(sm_client, store, settings, fake_time)
    config = queue_up_to_update(stubber, name, version, "pulse-old-cfg", dep)
    stubber.add_response(
        "update_endpoint",
        ENDPOINT_ARN,
        {"EndpointName": name, "EndpointConfigName": config, "RetainAllVariantProperties": False},
    )
    stubber.add_response("describe_endpoint", endpoint("Updating", "pulse-old-cfg", name=name))
    stubber.add_response("describe_endpoint", endpoint("InService", config, name=name))

    details = dep.activate(version, "m-old")
    assert details["endpoint_config_name"] == config
    assert details["previous_endpoint_config"] == "pulse-old-cfg"
    assert details["previous_version"] == "m-old"
    assert fake_time.sleeps == [15.0]
    stubber.assert_no_pending_responses()


def test_failed_update_rolls_back_to_the_previous_config(
    stubbed: tuple[Any, Stubber], store: S3Store, settings: Settings, version: str, fake_time: FakeTime
) -> None:
    sm_client, stubber = stubbed
    name = settings.sagemaker_endpoint_name
    dep = deployer(sm_client, store, settings, fake_time)
    config = queue_up_to_update(stubber, name, version, "pulse-old-cfg", dep)
    stubber.add_response(
        "update_endpoint",
        ENDPOINT_ARN,
        {"EndpointName": name, "EndpointConfigName": config, "RetainAllVariantProperties": False},
    )
    stubber.add_response("describe_endpoint", endpoint("Updating", "pulse-old-cfg", name=name))
    reason = "The primary container for production variant AllTraffic did not pass the ping health check."
    stubber.add_response("describe_endpoint", endpoint("Failed", config, reason=reason, name=name))
    stubber.add_response("describe_endpoint", endpoint("Failed", config, reason=reason, name=name))
    stubber.add_response(  # the rollback
        "update_endpoint",
        ENDPOINT_ARN,
        {"EndpointName": name, "EndpointConfigName": "pulse-old-cfg", "RetainAllVariantProperties": False},
    )

    with pytest.raises(DeployFailed) as info:
        dep.activate(version, "m-old")
    assert reason in str(info.value)
    assert "Rolled the endpoint back to the previous configuration pulse-old-cfg" in str(info.value)
    assert f"rolling endpoint {name} back to pulse-old-cfg" in dep.events
    stubber.assert_no_pending_responses()


def test_update_rolled_back_by_sagemaker_is_reported_without_a_second_update(
    stubbed: tuple[Any, Stubber], store: S3Store, settings: Settings, version: str, fake_time: FakeTime
) -> None:
    sm_client, stubber = stubbed
    name = settings.sagemaker_endpoint_name
    dep = deployer(sm_client, store, settings, fake_time)
    config = queue_up_to_update(stubber, name, version, "pulse-old-cfg", dep)
    stubber.add_response(
        "update_endpoint",
        ENDPOINT_ARN,
        {"EndpointName": name, "EndpointConfigName": config, "RetainAllVariantProperties": False},
    )
    stubber.add_response("describe_endpoint", endpoint("Updating", "pulse-old-cfg", name=name))
    back = endpoint("InService", "pulse-old-cfg", reason="CannotStartContainerError", name=name)
    stubber.add_response("describe_endpoint", back)
    stubber.add_response("describe_endpoint", back)  # looked at again before undoing anything
    with pytest.raises(DeployFailed, match="rolled the update back: CannotStartContainerError") as info:
        dep.activate(version, "m-old")
    assert "still serves the previous configuration pulse-old-cfg" in str(info.value)
    stubber.assert_no_pending_responses()  # no update_endpoint back was queued, none was made


def test_rollback_that_fails_too_is_said(
    stubbed: tuple[Any, Stubber], store: S3Store, settings: Settings, version: str, fake_time: FakeTime
) -> None:
    sm_client, stubber = stubbed
    name = settings.sagemaker_endpoint_name
    dep = deployer(sm_client, store, settings, fake_time, timeout_seconds=60)
    queue_up_to_update(stubber, name, version, "pulse-old-cfg", dep)
    stubber.add_response("update_endpoint", ENDPOINT_ARN)
    for _ in range(5):  # t = 0, 15, 30, 45, 60: still updating at the deadline
        stubber.add_response("describe_endpoint", endpoint("Updating", "pulse-old-cfg", name=name))
    stubber.add_response("describe_endpoint", endpoint("Updating", "pulse-old-cfg", name=name))
    stubber.add_client_error("update_endpoint", "ValidationException", "Cannot update in-progress endpoint")
    with pytest.raises(DeployFailed) as info:
        dep.activate(version, "m-old")
    message = str(info.value)
    assert "did not become InService within 60s" in message
    assert "Rolling back failed too" in message and "Cannot update in-progress endpoint" in message
    assert fake_time.now == 60.0
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("delete_works", [True, False])
def test_failed_creation_deletes_the_failed_endpoint(
    stubbed: tuple[Any, Stubber],
    store: S3Store,
    settings: Settings,
    version: str,
    fake_time: FakeTime,
    delete_works: bool,
) -> None:
    sm_client, stubber = stubbed
    name = settings.sagemaker_endpoint_name
    config = f"pulse-{version}-{STAMP}"
    not_found(stubber, "describe_endpoint", "endpoint")
    not_found(stubber, "describe_model", "model")
    stubber.add_response("create_model", MODEL_ARN)
    stubber.add_response("create_endpoint_config", CONFIG_ARN)
    stubber.add_response(
        "create_endpoint", ENDPOINT_ARN, {"EndpointName": name, "EndpointConfigName": config, "Tags": ANY}
    )
    stubber.add_response("describe_endpoint", endpoint("Creating", config, name=name))
    failed = endpoint("Failed", config, reason="Image cannot be pulled", name=name)
    stubber.add_response("describe_endpoint", failed)
    stubber.add_response("describe_endpoint", failed)
    if delete_works:
        stubber.add_response("delete_endpoint", {}, {"EndpointName": name})
    else:
        stubber.add_client_error("delete_endpoint", "AccessDeniedException", "no sagemaker:DeleteEndpoint")
    with pytest.raises(DeployFailed, match="Image cannot be pulled") as info:
        deployer(sm_client, store, settings, fake_time).activate(version, None)
    expected = "failed endpoint was deleted" if delete_works else "failed endpoint is left in place"
    assert expected in str(info.value)
    stubber.assert_no_pending_responses()


def test_create_model_that_appeared_meanwhile_is_reused(
    stubbed: tuple[Any, Stubber], store: S3Store, settings: Settings, version: str, fake_time: FakeTime
) -> None:
    sm_client, stubber = stubbed
    name = settings.sagemaker_endpoint_name
    not_found(stubber, "describe_endpoint", "endpoint")
    not_found(stubber, "describe_model", "model")
    stubber.add_client_error("create_model", "ValidationException", 'Cannot create already existing model "arn:..."')
    stubber.add_response("create_endpoint_config", CONFIG_ARN)
    stubber.add_response("create_endpoint", ENDPOINT_ARN)
    stubber.add_response("describe_endpoint", endpoint("InService", f"pulse-{version}-{STAMP}", name=name))
    dep = deployer(sm_client, store, settings, fake_time)
    assert dep.activate(version, None)["model_name"] == f"pulse-{version}"
    assert f"reusing model pulse-{version}" in dep.events
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("failing", "code", "expected"),
    [
        ("describe_endpoint", "AccessDeniedException", "access denied when trying to describe endpoint"),
        ("describe_model", "ThrottlingException", "throttling"),
        ("create_model", "AccessDeniedException", "access denied when trying to create model"),
        ("create_endpoint_config", "ResourceLimitExceeded", "account quota reached"),
        ("create_endpoint", "ResourceLimitExceeded", "account quota reached"),
        ("describe_endpoint_config", "AccessDeniedException", "access denied when trying to describe endpoint config"),
        ("update_endpoint", "ThrottlingException", "throttling"),
    ],
)
def test_activate_call_errors_become_deploy_failed(
    stubbed: tuple[Any, Stubber],
    store: S3Store,
    settings: Settings,
    version: str,
    fake_time: FakeTime,
    failing: str,
    code: str,
    expected: str,
) -> None:
    sm_client, stubber = stubbed
    name = settings.sagemaker_endpoint_name
    existing = failing in ("update_endpoint", "describe_endpoint_config")
    steps: list[tuple[str, dict[str, Any]]] = [
        ("describe_endpoint", endpoint("InService", "pulse-old-cfg", name=name) if existing else {}),
        ("describe_model", {}),
        ("create_model", MODEL_ARN),
        ("create_endpoint_config", CONFIG_ARN),
        *([("describe_endpoint_config", endpoint_config("pulse-old-cfg"))] if existing else []),
        ("update_endpoint" if existing else "create_endpoint", ENDPOINT_ARN),
    ]
    for operation, answer in steps:
        if operation == failing:
            stubber.add_client_error(operation, code, "refused for a reason AWS gives")
            break
        if answer:
            stubber.add_response(operation, answer)
        else:
            not_found(stubber, operation, "thing")
    with pytest.raises(DeployFailed, match=expected):
        deployer(sm_client, store, settings, fake_time).activate(version, None)
    stubber.assert_no_pending_responses()  # and nothing after the failing call


def test_activate_refuses_a_busy_endpoint_and_creates_nothing(
    stubbed: tuple[Any, Stubber], store: S3Store, settings: Settings, version: str, fake_time: FakeTime
) -> None:
    sm_client, stubber = stubbed
    stubber.add_response("describe_endpoint", endpoint("Updating", "cfg", name=settings.sagemaker_endpoint_name))
    with pytest.raises(DeployFailed, match=r"busy \(Updating\)"):
        deployer(sm_client, store, settings, fake_time).activate(version, None)
    stubber.assert_no_pending_responses()


def test_status_reports_a_failed_endpoint_and_an_unreachable_service(
    stubbed: tuple[Any, Stubber], store: S3Store, settings: Settings, fake_time: FakeTime
) -> None:
    sm_client, stubber = stubbed
    name = settings.sagemaker_endpoint_name
    stubber.add_response("describe_endpoint", endpoint("Failed", "cfg", reason="boom", name=name))
    stubber.add_client_error("describe_endpoint", "ThrottlingException", "Rate exceeded")
    dep = deployer(sm_client, store, settings, fake_time)
    assert dep.status() == {
        "endpoint_name": name,
        "status": "Failed",
        "endpoint_config_name": "cfg",
        "failure_reason": "boom",
    }
    unknown = dep.status()
    assert unknown["status"] == "unknown" and "throttling" in unknown["reason"]


# --- endpoint -----------------------------------------------------------------------------------


def queue_results(moto_endpoint: str, *bodies: Any) -> None:
    """Queue invoke_endpoint answers in moto (its documented test API).

    moto's server ignores the endpoint name (it reaches the backend as None) and replays the
    answer it gave to an identical request body, so every test sends texts of its own."""
    results = [{"Body": b if isinstance(b, str) else json.dumps(b), "ContentType": "application/json"} for b in bodies]
    req = urllib.request.Request(  # noqa: S310 (a local moto server)
        f"{moto_endpoint}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps({"results": results}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req) as answer:  # noqa: S310 (a local moto server)
        assert answer.status == 201


def answer(*labels: str) -> list[dict[str, Any]]:
    """A BlazingText answer, one item per label given (that label most likely)."""
    out = []
    for label in labels:
        others = [x for x in LABELS if x != label]
        out.append({"label": [f"__label__{label}", *(f"__label__{x}" for x in others)], "prob": [0.7, 0.2, 0.1]})
    return out


class CountingStore(LocalStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gets = 0

    def get(self, key: str) -> bytes:
        self.gets += 1
        return super().get(key)


@pytest.fixture
def deployed(tmp_path: Path) -> CountingStore:
    s = CountingStore(tmp_path / "ws")
    s.put(CURRENT, json.dumps({"version": "m1", "deployed_at": "t", "deployed_by": "me", "reason": "r"}).encode())
    card = {"version": "m1", "created_at": "t", "created_by": "me", "dataset": "d", "temperature": 1.0}
    s.put("models/m1/card.json", json.dumps(card).encode())
    s.gets = 0
    return s


def test_score_against_moto(runtime: Any, moto_endpoint: str, deployed: CountingStore) -> None:
    sent = calls(runtime, "InvokeEndpoint")
    queue_results(moto_endpoint, answer("positive", "negative"))
    ep = SageMakerEndpoint(runtime, unique("ep"), deployed)
    great, awful = unique("great day"), unique("awful day")
    version, preds = ep.score([great, "", awful])
    assert version == "m1"
    assert [p.label for p in preds] == ["positive", "neutral", "negative"]
    assert preds[1] is UNREADABLE
    assert preds[0].confidence == 0.7
    assert preds[0].probs == {"positive": 0.7, "negative": 0.2, "neutral": 0.1}
    (call,) = sent
    assert json.loads(call["Body"]) == {"instances": [great, awful], "configuration": {"k": 3}}
    assert call["ContentType"] == "application/json" and call["Accept"] == "application/json"
    assert deployed.gets == 2  # the version once per call, its model card once per version
    queue_results(moto_endpoint, answer("positive"))
    ep.score([unique("fine")])
    assert deployed.gets == 3


def test_score_applies_the_model_cards_temperature(runtime: Any, moto_endpoint: str, deployed: CountingStore) -> None:
    """Confidences from SageMaker are calibrated like the local endpoint's (temperature on the card)."""
    card = json.loads(deployed.get("models/m1/card.json"))
    deployed.put("models/m1/card.json", json.dumps({**card, "temperature": 2.0}).encode())
    queue_results(moto_endpoint, answer("positive"))
    _, (pred,) = SageMakerEndpoint(runtime, unique("ep"), deployed).score([unique("a good day")])
    expected = apply_temperature({"positive": 0.7, "negative": 0.2, "neutral": 0.1}, 2.0)
    assert pred.label == "positive"
    assert pred.confidence == pytest.approx(expected["positive"]) and pred.confidence < 0.7


def test_score_batches_250_texts_into_3_calls(runtime: Any, moto_endpoint: str, deployed: CountingStore) -> None:
    sent = calls(runtime, "InvokeEndpoint")
    queue_results(moto_endpoint, answer(*["positive"] * 100), answer(*["negative"] * 100), answer(*["neutral"] * 50))
    run = uuid.uuid4().hex
    texts = [f"text number {i} {run}" for i in range(250)]
    _, preds = SageMakerEndpoint(runtime, unique("ep"), deployed).score(texts)
    assert [len(json.loads(c["Body"])["instances"]) for c in sent] == [100, 100, 50]
    assert [p.label for p in preds] == ["positive"] * 100 + ["negative"] * 100 + ["neutral"] * 50
    assert json.loads(sent[2]["Body"])["instances"][-1] == f"text number 249 {run}"
    assert deployed.gets == 2


def test_score_sends_nothing_for_empty_texts(deployed: CountingStore) -> None:
    runtime_client = client("sagemaker-runtime")
    with Stubber(runtime_client) as stubber:  # nothing queued: a call would raise
        version, preds = SageMakerEndpoint(runtime_client, "ep", deployed).score(["", ""])
        stubber.assert_no_pending_responses()
    assert version == "m1" and preds == [UNREADABLE, UNREADABLE]


def test_score_without_a_deployment_is_model_unavailable(runtime: Any, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable):
        SageMakerEndpoint(runtime, "ep", LocalStore(tmp_path)).score(["hello"])


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (f"<html>{SECRET}</html>", "not JSON"),
        ({"predictions": [SECRET]}, "expected a JSON list"),
        (answer("positive", "positive"), "2 predictions for 1 texts"),
        ([SECRET], "item 0 is not an object"),
        ([{"label": ["__label__positive"]}], "no 'label' and 'prob' lists"),
        ([{"label": ["__label__positive", "__label__neutral"], "prob": [0.9]}], "1 probabilities"),
        ([{"label": [f"__label__{SECRET}"], "prob": [0.9]}], "label outside"),
        ([{"label": ["positive"], "prob": [0.9]}], "label outside"),
        ([{"label": ["__label__positive"], "prob": [SECRET]}], "not a number"),
        ([{"label": ["__label__positive"], "prob": [True]}], "not a number"),
        ('[{"label": ["__label__positive"], "prob": [NaN]}]', "not a number"),
        ([{"label": ["__label__positive"], "prob": [7.5]}], "outside 0..1"),
    ],
)
def test_malformed_answers_are_endpoint_errors_without_the_texts(
    runtime: Any, moto_endpoint: str, deployed: CountingStore, body: Any, why: str
) -> None:
    queue_results(moto_endpoint, body)
    name = unique("ep")
    with pytest.raises(EndpointError) as info:
        SageMakerEndpoint(runtime, name, deployed).score([unique(SECRET)])
    assert why in str(info.value)
    assert name in str(info.value)
    assert SECRET not in "".join(traceback.format_exception(info.value))


@pytest.mark.parametrize(
    ("code", "status"),
    [("ModelError", 424), ("ValidationError", 400), ("ThrottlingException", 400), ("ServiceUnavailable", 503)],
)
def test_invoke_errors_are_endpoint_errors_without_the_texts(deployed: CountingStore, code: str, status: int) -> None:
    runtime_client = client("sagemaker-runtime")
    with Stubber(runtime_client) as stubber:
        stubber.add_client_error(
            "invoke_endpoint", code, f"Received client error (400) from primary: {SECRET}", http_status_code=status
        )
        with pytest.raises(EndpointError) as info:
            SageMakerEndpoint(runtime_client, "pulse-ep", deployed).score([SECRET])
    message = str(info.value)
    assert code in message and "pulse-ep" in message
    assert SECRET not in "".join(traceback.format_exception(info.value))


def test_unreachable_endpoint_is_an_endpoint_error(deployed: CountingStore) -> None:
    nowhere = boto3.client(
        "sagemaker-runtime",
        region_name=REGION,
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(EndpointError, match="cannot reach endpoint pulse-ep"):
        SageMakerEndpoint(nowhere, "pulse-ep", deployed).score(["hello"])


# --- the linear family stays local ------------------------------------------------------------


def test_a_linear_model_is_not_sent_to_a_blazingtext_endpoint(
    stubbed: tuple[Any, Stubber], store: S3Store, settings: Settings, fake_time: FakeTime
) -> None:
    """Refused before any AWS call (the Stubber has nothing queued: a call would fail the test)."""
    from services.lifecycle.registry import ModelCard, register
    from services.model.linear import train_linear

    model = train_linear(["great day", "awful day", "lovely", "terrible"], ["positive", "negative"] * 2)
    register(store, model, ModelCard(version="m-linear", created_at="now", created_by="t", dataset="d"))
    sm_client, stubber = stubbed
    with pytest.raises(DeployFailed, match="linear model; a BlazingText endpoint serves fastText models only"):
        deployer(sm_client, store, settings, fake_time).activate("m-linear", None)
    stubber.assert_no_pending_responses()


def test_sagemaker_refuses_to_train_the_linear_family(
    stubbed: tuple[Any, Stubber], store: S3Store, settings: Settings, fake_time: FakeTime, request_: TrainingRequest
) -> None:
    sm_client, _ = stubbed
    linear = dataclasses.replace(request_, params=TrainParams(family="linear"))
    outcome = trainer(sm_client, None, store, settings, fake_time).train(linear, Path("/nonexistent"))
    assert outcome.status == "Failed" and "set PULSE_SAGEMAKER_MODEL_IMAGE" in (outcome.failure_reason or "")


# --- Batch Transform: Stubber ----------------------------------------------------------------


def test_a_transform_job_past_its_time_is_stopped_and_its_files_deleted(
    stubbed: tuple[Any, Stubber], store: S3Store, settings: Settings, fake_time: FakeTime
) -> None:
    """moto's transform jobs end at once: the Stubber gives one that never does."""
    from services.aws.transform import BatchTransform

    sm_client, stubber = stubbed
    stubber.add_response("create_transform_job", {"TransformJobArn": "arn:aws:sagemaker:us-east-1:1:transform-job/t"})
    running = {
        "TransformJobName": "t",
        "TransformJobArn": "arn:aws:sagemaker:us-east-1:1:transform-job/t",
        "TransformJobStatus": "InProgress",
        "ModelName": "m",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/k"}}},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "CreationTime": NOW,
    }
    for _ in range(3):
        stubber.add_response("describe_transform_job", running)
    stubber.add_response("stop_transform_job", {})
    transform = BatchTransform(
        sm_client, store, settings, poll_seconds=30, timeout_seconds=60, sleep=fake_time.sleep, clock=fake_time.clock
    )
    with pytest.raises(EndpointError, match="did not finish within 60s; stopped"):
        transform.score([SECRET, "ok"], "m", lambda item, n: item)
    stubber.assert_no_pending_responses()
    assert not list(store.list(keys.SAGEMAKER_TRANSFORM))  # the texts are not left in the bucket


def test_the_transform_job_spec_joins_answers_to_ids_and_keeps_no_text(store: S3Store, settings: Settings) -> None:
    from services.aws.transform import BatchTransform

    spec = BatchTransform(None, store, settings).job_spec("pulse-score-1", "pulse-m1")
    assert spec["ModelName"] == "pulse-m1" and spec["BatchStrategy"] == "MultiRecord"
    assert spec["TransformInput"]["ContentType"] == spec["TransformOutput"]["Accept"] == "application/jsonlines"
    assert spec["TransformInput"]["SplitType"] == "Line" and spec["TransformOutput"]["AssembleWith"] == "Line"
    assert spec["DataProcessing"] == {
        "InputFilter": "$",
        "JoinSource": "Input",
        "OutputFilter": "$['id','SageMakerOutput']",
    }
    assert spec["MaxPayloadInMB"] <= 6
