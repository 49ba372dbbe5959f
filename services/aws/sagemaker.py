"""The Amazon SageMaker backends: BlazingText training jobs, real-time endpoint deployment, and
scoring through `invoke_endpoint`.

Every class takes its boto3 clients in the constructor (built by `sagemaker_client` in
production, pointed at moto or wrapped in a `Stubber` in tests). `boto3` and the SageMaker SDK
are imported lazily, inside the functions that need them; the SDK (`sagemaker-core`) is used
only to look up the BlazingText image of a region, every API call goes through the clients.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from services.errors import DeployFailed, EndpointError, ModelUnavailable, PulseError
from services.lifecycle.deployment import require_current
from services.lifecycle.registry import ARTIFACT, load_card
from services.lifecycle.trainers import Progress, ShouldStop, TrainingOutcome, TrainingRequest
from services.model.fasttext import check_model_file
from services.model.params import TrainParams
from services.model.prediction import LABELS, PREFIX, UNREADABLE, Prediction, apply_temperature

if TYPE_CHECKING:
    from services.aws.s3 import S3Store
    from services.config import Settings
    from services.store.base import ObjectStore

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]
Clock = Callable[[], float]
Status = Literal["Completed", "Failed", "Stopped"]

# SageMaker resource names (training jobs, models, endpoint configs, endpoints).
MAX_NAME = 63
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_S3_URI = re.compile(r"^s3://([^/]+)/(.+)$")

# Error codes worth another look on the next poll: the client's retry policy already gave up
# on them once, but a training job runs for minutes and one lost answer must not fail it.
_TRANSIENT = {
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalServerError",
    "InternalError",
}

# Rough share of the work done when a training job reaches each secondary status.
_SHARE = {
    "Starting": 0.05,
    "Pending": 0.05,
    "LaunchingMLInstances": 0.1,
    "PreparingTrainingStack": 0.15,
    "Downloading": 0.2,
    "DownloadingTrainingImage": 0.25,
    "Training": 0.4,
    "Uploading": 0.8,
    "Completed": 0.9,
    "Stopping": 0.9,
    "Stopped": 1.0,
    "Failed": 1.0,
    "MaxRuntimeExceeded": 1.0,
    "MaxWaitTimeExceeded": 1.0,
    "Interrupted": 0.5,
    "Restarting": 0.1,
}

_ENDPOINT_BUSY = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}


# --- helpers ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def blazingtext_image(region: str) -> str:
    """The BlazingText training/inference image of `region`, from the SageMaker SDK's table
    (no network call)."""
    from sagemaker.core import image_uris  # type: ignore[import-untyped, unused-ignore]

    uri: str = image_uris.retrieve("blazingtext", region)
    return uri


def blazingtext_hyperparameters(params: TrainParams) -> dict[str, str]:
    """BlazingText supervised ("Text Classification") hyperparameters for `params`, as strings.

    Mapped: epoch → epochs, lr → learning_rate, dim → vector_dim, word_ngrams → word_ngrams,
    bucket → buckets, and min_count=1 (fastText's supervised default; BlazingText's is 5, which
    would drop most words of short check-ins). Not available in supervised mode, so not sent:
    minn/maxn (subwords exist only in Word2Vec mode), seed, loss, thread. early_stopping is left
    off (its default) so a run trains the requested epochs, like the local trainer.
    """
    return {
        "mode": "supervised",
        "epochs": str(params.epoch),
        "learning_rate": str(params.lr),
        "vector_dim": str(params.dim),
        "word_ngrams": str(params.word_ngrams),
        "buckets": str(params.bucket),
        "min_count": "1",
    }


def unsupported_params(params: TrainParams) -> list[str]:
    """The requested settings BlazingText supervised mode cannot honour (for the run log)."""
    dropped = []
    if params.minn or params.maxn:
        dropped.append(f"subwords minn={params.minn}/maxn={params.maxn}")
    if params.seed:
        dropped.append(f"seed={params.seed}")
    return dropped


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _error_message(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", "")).strip()


def _aws_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


def explain(exc: Exception, action: str) -> str:
    """A sentence for a SageMaker control-plane failure: what we tried, what AWS said, what to do.

    Only for control-plane calls (their messages name resources, never message texts)."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return f"cannot reach SageMaker to {action} ({type(exc).__name__}); check the network and credentials"
    code = _error_code(exc)
    message = _error_message(exc)
    said = f": {message}" if message else ""
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return f"access denied when trying to {action}{said}. The app's IAM role needs the SageMaker permission"
    if code == "ResourceLimitExceeded":
        return f"account quota reached when trying to {action}{said}. Request a quota increase or use another type"
    if code in _TRANSIENT:
        return f"SageMaker is throttling or unavailable ({code}) and kept refusing to {action}; try again later"
    if code == "ValidationException":
        return f"SageMaker refused to {action}{said}"
    return f"SageMaker could not {action} ({code or 'error'}){said}"


def _not_found(exc: Exception) -> bool:
    return _error_code(exc) == "ValidationException" and "could not find" in _error_message(exc).lower()


def _already_exists(exc: Exception) -> bool:
    message = _error_message(exc).lower()
    return _error_code(exc) == "ValidationException" and "already exist" in message


def resource_name(*parts: str, suffix: str = "") -> str:
    """A valid SageMaker resource name from `parts` (invalid characters become "-"), cut to 63
    characters; `suffix` (e.g. a timestamp) is kept whole at the end."""
    base = re.sub(r"[^a-zA-Z0-9]+", "-", "-".join(parts)).strip("-")
    room = MAX_NAME - (len(suffix) + 1 if suffix else 0)
    base = base[:room].rstrip("-")
    name = f"{base}-{suffix}" if suffix else base
    if not _NAME.match(name):
        raise ValueError(f"cannot build a SageMaker name from {parts!r}")
    return name


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of an `s3://bucket/key` URI."""
    match = _S3_URI.match(uri)
    if not match:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return match.group(1), match.group(2)


# --- training ------------------------------------------------------------------------------


class SageMakerTrainer:
    """Trains with a SageMaker BlazingText (supervised) training job and brings back `model.bin`.

    The dataset channels are read by SageMaker straight from the store's bucket. The job is
    polled every `poll_seconds`; `sleep` and `clock` are injectable so tests never wait.
    """

    name = "sagemaker-blazingtext"

    def __init__(
        self,
        sm_client: Any,
        s3_client: Any,
        store: S3Store,
        settings: Settings,
        *,
        poll_seconds: float = 15.0,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        grace_seconds: float = 900.0,
        max_poll_errors: int = 5,
    ) -> None:
        self.sm = sm_client
        self.s3 = s3_client
        self.store = store
        self.settings = settings
        self.poll_seconds = poll_seconds
        self.sleep = sleep
        self.clock = clock
        # SageMaker enforces MaxRuntimeInSeconds itself, but not on the time spent waiting for
        # instances or uploading: give it that much before our own clock gives up on the job.
        self.grace_seconds = grace_seconds
        self.max_poll_errors = max_poll_errors

    def s3_uri(self, key: str) -> str:
        """Where a store key lives on S3."""
        return f"s3://{self.store.bucket}/{self.store.prefix}{key}"

    def output_path(self) -> str:
        """Where SageMaker writes `<job>/output/model.tar.gz`."""
        return f"s3://{self.store.bucket}/{self.store.prefix}sagemaker/output/"

    def job_spec(self, request: TrainingRequest, image: str) -> dict[str, Any]:
        """The `create_training_job` arguments for `request`."""

        def channel(name: str, key: str) -> dict[str, Any]:
            # An S3Prefix of the full key: SageMaker copies that object (and any other whose key
            # starts with it, which the store's layout never has) to /opt/ml/input/data/<name>.
            return {
                "ChannelName": name,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": self.s3_uri(key),
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "text/plain",
                "CompressionType": "None",
            }

        return {
            "TrainingJobName": request.job_name,
            "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
            "RoleArn": self.settings.sagemaker_role_arn,
            "HyperParameters": blazingtext_hyperparameters(request.params),
            "InputDataConfig": [
                channel("train", request.train_key),
                channel("validation", request.validation_key),
            ],
            "OutputDataConfig": {"S3OutputPath": self.output_path()},
            "ResourceConfig": {
                "InstanceType": self.settings.sagemaker_training_instance,
                "InstanceCount": 1,
                "VolumeSizeInGB": 10,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": self.settings.sagemaker_training_max_seconds},
            "Tags": [
                {"Key": "app", "Value": "pulse"},
                {"Key": "pulse:dataset", "Value": request.dataset_version},
            ],
        }

    def train(
        self,
        request: TrainingRequest,
        workdir: Path,
        *,
        progress: Progress | None = None,
        should_stop: ShouldStop | None = None,
    ) -> TrainingOutcome:
        """Run a BlazingText training job to its end and download its `model.bin` into `workdir`.

        Never raises for a failed job or a refused AWS call: returns Failed with the reason."""
        started = self.clock()
        lines: list[str] = []
        done = [0.0]  # progress never goes backwards

        def note(share: float, line: str) -> None:
            done[0] = max(done[0], share)
            lines.append(line)
            if progress is not None:
                progress(done[0], line)

        def end(status: Status, reason: str | None = None, model_bin: Path | None = None) -> TrainingOutcome:
            if reason:
                note(1.0, reason)
            seconds = self.clock() - started
            return TrainingOutcome(status, model_bin=model_bin, failure_reason=reason, seconds=seconds, log=lines)

        if request.params.family == "linear":
            return end("Failed", "BlazingText trains fastText models; family 'linear' trains only locally")
        if not self.settings.sagemaker_role_arn:
            return end("Failed", "PULSE_SAGEMAKER_ROLE_ARN is not set: SageMaker needs an execution role")
        if not _NAME.match(request.job_name):
            return end("Failed", f"{request.job_name!r} is not a valid SageMaker training job name")
        region = str(self.sm.meta.region_name or self.settings.aws_region)
        try:
            image = blazingtext_image(region)
        except (ValueError, LookupError) as exc:
            return end("Failed", f"no BlazingText image for region {region}: {str(exc).split('. ')[0]}")
        for dropped in unsupported_params(request.params):
            note(0.0, f"BlazingText supervised mode has no {dropped}; ignored")
        try:
            self.sm.create_training_job(**self.job_spec(request, image))
        except _aws_errors() as exc:
            return end("Failed", explain(exc, f"start training job {request.job_name}"))
        note(0.01, f"started SageMaker training job {request.job_name} ({self.settings.sagemaker_training_instance})")

        deadline = started + self.settings.sagemaker_training_max_seconds + self.grace_seconds
        reported = 0  # SecondaryStatusTransitions already shown
        last_status = ""
        errors = 0
        while True:
            try:
                job = self.sm.describe_training_job(TrainingJobName=request.job_name)
                errors = 0
            except _aws_errors() as exc:
                errors += 1
                transient = _error_code(exc) in _TRANSIENT or not _error_code(exc)
                if not transient or errors >= self.max_poll_errors:
                    reason = explain(exc, f"describe training job {request.job_name}")
                    self._stop_quietly(request.job_name, note)
                    return end("Failed", reason)
                note(_SHARE.get(last_status, 0.0), f"could not read the job status ({_error_code(exc)}); retrying")
            else:
                for step in job.get("SecondaryStatusTransitions", [])[reported:]:
                    last_status = str(step.get("Status", ""))
                    message = step.get("StatusMessage", "")
                    note(_SHARE.get(last_status, 0.0), f"{last_status}: {message}" if message else last_status)
                    reported += 1
                secondary = str(job.get("SecondaryStatus", ""))
                if secondary and secondary != last_status:
                    last_status = secondary
                    note(_SHARE.get(secondary, 0.0), secondary)
                status = job.get("TrainingJobStatus")
                if status == "Completed":
                    return self._download(job, workdir, note, end)
                if status == "Failed":
                    reason = job.get("FailureReason") or "the training job failed without a reason"
                    return end("Failed", f"SageMaker training job failed: {reason}")
                if status == "Stopped" and secondary in ("MaxRuntimeExceeded", "MaxWaitTimeExceeded"):
                    limit = self.settings.sagemaker_training_max_seconds
                    return end("Failed", f"timeout: SageMaker stopped the job at its MaxRuntime of {limit}s")
                if status == "Stopped":
                    return end("Stopped", "the training job was stopped outside Pulse")
            if should_stop is not None and should_stop():
                try:
                    self.sm.stop_training_job(TrainingJobName=request.job_name)
                except _aws_errors() as exc:
                    reason = explain(exc, f"stop training job {request.job_name}")
                    return end("Failed", f"asked to stop, but {reason}; the job may still be running")
                note(1.0, "stop requested; SageMaker is stopping the job")
                return end("Stopped")
            if self.clock() >= deadline:
                limit = self.settings.sagemaker_training_max_seconds
                reason = (
                    f"timeout: the training job did not finish within {limit}s (MaxRuntime) "
                    f"plus {self.grace_seconds:.0f}s of grace; it was stopped"
                )
                self._stop_quietly(request.job_name, note)
                return end("Failed", reason)
            self.sleep(self.poll_seconds)

    def _stop_quietly(self, job_name: str, note: Progress) -> None:
        """Best effort: stop a job we are giving up on, so it is not billed unattended."""
        try:
            self.sm.stop_training_job(TrainingJobName=job_name)
        except _aws_errors() as exc:
            note(1.0, explain(exc, f"stop training job {job_name}"))

    def _download(
        self,
        job: dict[str, Any],
        workdir: Path,
        note: Progress,
        end: Callable[..., TrainingOutcome],  # (status, reason=None, model_bin=None)
    ) -> TrainingOutcome:
        uri = str(job.get("ModelArtifacts", {}).get("S3ModelArtifacts", ""))
        try:
            bucket, key = split_s3_uri(uri)
        except ValueError:
            return end("Failed", "the completed training job reported no model artifact on S3")
        note(0.92, f"downloading {uri}")
        workdir.mkdir(parents=True, exist_ok=True)
        target = workdir / "model.bin"
        with tempfile.TemporaryDirectory(dir=workdir, prefix=".sm-") as tmp:
            archive = Path(tmp) / ARTIFACT
            try:
                body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
                with archive.open("wb") as fh:
                    shutil.copyfileobj(body, fh, 1024 * 1024)
            except _aws_errors() as exc:
                code = _error_code(exc) or type(exc).__name__
                return end("Failed", f"cannot download the model artifact {uri} ({code})")
            try:
                with tarfile.open(archive, mode="r:gz") as tar:
                    member = next((m for m in tar.getmembers() if m.name in ("model.bin", "./model.bin")), None)
                    if member is None:
                        return end("Failed", f"the model artifact {uri} holds no model.bin")
                    tar.extract(member, tmp, filter="data")  # refuses links and paths outside tmp
                found = Path(tmp) / member.name
                check_model_file(found)
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                return end("Failed", f"the model artifact {uri} is corrupt ({type(exc).__name__})")
            except PulseError as exc:
                return end("Failed", f"the model artifact {uri} is unusable: {exc}")
            found.replace(target)
        seconds = job.get("TrainingTimeInSeconds")
        billable = job.get("BillableTimeInSeconds")
        if seconds is not None:
            note(0.98, f"SageMaker trained for {seconds}s (billed {billable if billable is not None else '?'}s)")
        note(1.0, "model.bin downloaded and checked")
        return end("Completed", model_bin=target)


# --- deployment ----------------------------------------------------------------------------


class SageMakerDeployer:
    """Serves a registered version from a SageMaker real-time endpoint (BlazingText container).

    CreateModel (reused if it exists) → CreateEndpointConfig → CreateEndpoint or UpdateEndpoint,
    then waits for InService. A failed update is rolled back to the endpoint's previous config.
    """

    name = "sagemaker"

    def __init__(
        self,
        sm_client: Any,
        store: S3Store,
        settings: Settings,
        *,
        poll_seconds: float = 15.0,
        timeout_seconds: float = 1800,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sm = sm_client
        self.store = store
        self.settings = settings
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.sleep = sleep
        self.clock = clock
        self.now = now
        self.events: list[str] = []  # what the last activate did, rollbacks included

    @property
    def endpoint_name(self) -> str:
        return self.settings.sagemaker_endpoint_name

    def artifact_uri(self, version: str) -> str:
        """The registry artifact of `version` on S3."""
        return f"s3://{self.store.bucket}/{self.store.prefix}models/{version}/{ARTIFACT}"

    def _record(self, line: str) -> None:
        log.info("%s", line)
        self.events.append(line)

    def activate(self, version: str, previous: str | None) -> dict[str, str]:
        """Serve `version` from the endpoint; block until InService. On failure put the previous
        endpoint config back (if there was one) and raise `DeployFailed` with the reason."""
        self.events = []
        prefix = self.settings.sagemaker_name_prefix
        if not self.settings.sagemaker_role_arn:
            raise DeployFailed("PULSE_SAGEMAKER_ROLE_ARN is not set: the SageMaker model needs an execution role")
        try:
            registered = self.store.exists(f"models/{version}/{ARTIFACT}")
        except PulseError as exc:
            raise DeployFailed(f"cannot check the artifact of {version}: {exc}") from exc
        if not registered:
            raise DeployFailed(f"model version {version} has no {ARTIFACT} in the registry")
        try:
            family = load_card(self.store, version).family
        except ModelUnavailable:  # an artifact put there by hand, without a card: let SageMaker judge it
            family = "fasttext"
        except PulseError as exc:
            raise DeployFailed(f"cannot read the model card of {version}: {exc}") from exc
        if family != "fasttext":
            raise DeployFailed(
                f"model version {version} is a {family} model; a BlazingText endpoint serves fastText models "
                "only (train it with SageMaker, or with family 'fasttext')"
            )
        try:
            model_name = resource_name(prefix, version)
            config_name = resource_name(prefix, version, suffix=self.now().strftime("%y%m%d%H%M%S"))
        except ValueError as exc:
            raise DeployFailed(str(exc)) from None
        region = str(self.sm.meta.region_name or self.settings.aws_region)
        try:
            image = blazingtext_image(region)
        except (ValueError, LookupError) as exc:
            raise DeployFailed(f"no BlazingText image for region {region}: {str(exc).split('. ')[0]}") from None

        # Look at the endpoint first, so a busy or broken one leaves nothing half created.
        existing = self._describe()
        previous_config = ""
        if existing is not None:
            status = str(existing.get("EndpointStatus", ""))
            if status in _ENDPOINT_BUSY:
                raise DeployFailed(
                    f"endpoint {self.endpoint_name} is busy ({status}); deploy again when it is InService"
                )
            if status != "InService":
                raise DeployFailed(
                    f"endpoint {self.endpoint_name} is in status {status} and cannot be updated: delete it "
                    "(aws sagemaker delete-endpoint) and deploy again"
                )
            previous_config = str(existing.get("EndpointConfigName", ""))

        self._ensure_model(model_name, image, self.artifact_uri(version), version)
        self._call(
            "create_endpoint_config",
            f"create endpoint config {config_name}",
            EndpointConfigName=config_name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": model_name,
                    "InitialInstanceCount": 1,
                    "InstanceType": self.settings.sagemaker_endpoint_instance,
                    "InitialVariantWeight": 1.0,
                }
            ],
            Tags=self._tags(version),
        )
        self._record(f"created endpoint config {config_name}")
        if existing is None:
            self._call(
                "create_endpoint",
                f"create endpoint {self.endpoint_name}",
                EndpointName=self.endpoint_name,
                EndpointConfigName=config_name,
                Tags=self._tags(version),
            )
            self._record(f"creating endpoint {self.endpoint_name} with {config_name}")
        else:
            self._call(
                "update_endpoint",
                f"update endpoint {self.endpoint_name}",
                EndpointName=self.endpoint_name,
                EndpointConfigName=config_name,
                RetainAllVariantProperties=False,
            )
            self._record(f"updating endpoint {self.endpoint_name} from {previous_config} to {config_name}")

        reason = self._wait(config_name, previous_config)
        if reason is None:
            self._record(f"endpoint {self.endpoint_name} serves {version} ({config_name})")
            return {
                "model_name": model_name,
                "endpoint_config_name": config_name,
                "endpoint_name": self.endpoint_name,
                "previous_endpoint_config": previous_config,
                "previous_version": previous or "",
            }
        self._record(f"deployment of {version} failed: {reason}")
        undone = self._undo(previous_config)
        raise DeployFailed(f"deploying {version} to endpoint {self.endpoint_name} failed: {reason}. {undone}")

    def _tags(self, version: str) -> list[dict[str, str]]:
        return [{"Key": "app", "Value": "pulse"}, {"Key": "pulse:model-version", "Value": version}]

    def _call(self, operation: str, action: str, **kwargs: Any) -> None:
        try:
            getattr(self.sm, operation)(**kwargs)
        except _aws_errors() as exc:
            why = explain(exc, action)
            self._record(why)
            raise DeployFailed(why) from None

    def _ensure_model(self, model_name: str, image: str, model_data: str, version: str) -> None:
        try:
            found = self.sm.describe_model(ModelName=model_name)
        except _aws_errors() as exc:
            if not _not_found(exc):
                raise DeployFailed(explain(exc, f"describe model {model_name}")) from None
        else:
            url = found.get("PrimaryContainer", {}).get("ModelDataUrl")
            if url != model_data:
                raise DeployFailed(f"SageMaker model {model_name} exists but serves {url}, not {model_data}")
            self._record(f"reusing model {model_name}")
            return
        try:
            self.sm.create_model(
                ModelName=model_name,
                PrimaryContainer={"Image": image, "ModelDataUrl": model_data},
                ExecutionRoleArn=self.settings.sagemaker_role_arn,
                Tags=self._tags(version),
            )
        except _aws_errors() as exc:
            if _already_exists(exc):  # created meanwhile by another replica: same name, same version
                self._record(f"reusing model {model_name}")
                return
            raise DeployFailed(explain(exc, f"create model {model_name}")) from None
        self._record(f"created model {model_name} from {model_data}")

    def _describe(self) -> dict[str, Any] | None:
        try:
            answer: dict[str, Any] = self.sm.describe_endpoint(EndpointName=self.endpoint_name)
        except _aws_errors() as exc:
            if _not_found(exc):
                return None
            raise DeployFailed(explain(exc, f"describe endpoint {self.endpoint_name}")) from None
        return answer

    def _wait(self, config_name: str, previous_config: str) -> str | None:
        """None once the endpoint serves `config_name`; else why it does not."""
        deadline = self.clock() + self.timeout_seconds
        moved = False  # seen the endpoint leave InService since our call
        while True:
            try:
                found = self._describe()
            except DeployFailed as exc:
                return str(exc)
            if found is None:
                return f"endpoint {self.endpoint_name} disappeared while deploying"
            status = str(found.get("EndpointStatus", ""))
            serving = found.get("EndpointConfigName")
            failure = found.get("FailureReason")
            moved = moved or status != "InService"
            if status == "InService" and serving == config_name:
                return None
            if status in ("Failed", "UpdateRollbackFailed"):
                return f"endpoint status {status}: {failure or 'no reason given'}"
            if status == "InService" and moved and serving == previous_config:
                # SageMaker rolled the update back on its own and serves the previous config.
                return f"SageMaker rolled the update back: {failure or 'no reason given'}"
            if self.clock() >= deadline:
                return f"endpoint did not become InService within {self.timeout_seconds:.0f}s (status {status})"
            self.sleep(self.poll_seconds)

    def _undo(self, previous_config: str) -> str:
        """Put the previous endpoint config back, or delete an endpoint whose creation failed
        (so the next deployment can create it again); say what happened."""
        try:
            now = self._describe()
        except DeployFailed:
            now = None
        status = now.get("EndpointStatus") if now else None
        if not previous_config:
            if status != "Failed":
                return "There was no previous endpoint configuration to go back to."
            try:
                self.sm.delete_endpoint(EndpointName=self.endpoint_name)
            except _aws_errors() as exc:
                why = explain(exc, f"delete the failed endpoint {self.endpoint_name}")
                self._record(why)
                return f"The failed endpoint is left in place ({why}); delete it before deploying again."
            self._record(f"deleted the failed endpoint {self.endpoint_name}")
            return "The failed endpoint was deleted, so the next deployment creates it again."
        if now is not None and status == "InService" and now.get("EndpointConfigName") == previous_config:
            self._record(f"endpoint still serves the previous config {previous_config}")
            return f"The endpoint still serves the previous configuration {previous_config}."
        try:
            self.sm.update_endpoint(
                EndpointName=self.endpoint_name,
                EndpointConfigName=previous_config,
                RetainAllVariantProperties=False,
            )
        except _aws_errors() as exc:
            why = explain(exc, f"roll endpoint {self.endpoint_name} back to {previous_config}")
            self._record(f"rollback failed: {why}")
            return f"Rolling back failed too ({why}); check the endpoint in the SageMaker console."
        self._record(f"rolling endpoint {self.endpoint_name} back to {previous_config}")
        return f"Rolled the endpoint back to the previous configuration {previous_config}."

    def status(self) -> dict[str, str]:
        """The endpoint as SageMaker sees it: name, status, endpoint config (and failure reason),
        `{"status": "missing"}` if it does not exist, or status "unknown" with a reason if
        SageMaker cannot be asked."""
        try:
            found = self._describe()
        except DeployFailed as exc:
            return {"endpoint_name": self.endpoint_name, "status": "unknown", "reason": str(exc)}
        if found is None:
            return {"status": "missing"}
        out = {
            "endpoint_name": str(found.get("EndpointName", self.endpoint_name)),
            "status": str(found.get("EndpointStatus", "")),
            "endpoint_config_name": str(found.get("EndpointConfigName", "")),
        }
        if found.get("FailureReason"):
            out["failure_reason"] = str(found["FailureReason"])
        return out


# --- scoring -------------------------------------------------------------------------------


class SageMakerEndpoint:
    """Scores prepared texts with the BlazingText model behind a SageMaker real-time endpoint.

    Error messages name the endpoint and what was wrong, never the texts sent (they are the
    participants' messages) nor the service's own message (a container may echo its input).
    """

    def __init__(self, runtime_client: Any, endpoint_name: str, store: ObjectStore, *, batch_size: int = 100) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.runtime = runtime_client
        self.endpoint_name = endpoint_name
        self.store = store
        self.batch_size = batch_size
        self._temperatures: dict[str, float] = {}

    def version(self) -> str:
        """The deployed model version (the deployment record in the store)."""
        return require_current(self.store).version

    def refresh(self) -> None:
        """Nothing to do: the endpoint serves whatever its last update put live."""

    def score(self, prepared: Sequence[str]) -> tuple[str, list[Prediction]]:
        """Predictions for texts already through `model.prepare`, `batch_size` per request; an
        empty text is `UNREADABLE` and is not sent. Confidences get the temperature on the version's
        model card, so they mean the same as the local endpoint's."""
        version = self.version()
        temperature = self._temperature(version)
        out: list[Prediction] = [UNREADABLE] * len(prepared)
        idx = [i for i, text in enumerate(prepared) if text]
        for start in range(0, len(idx), self.batch_size):
            chunk = idx[start : start + self.batch_size]
            for i, prediction in zip(chunk, self._invoke([prepared[i] for i in chunk]), strict=True):
                dist = apply_temperature(prediction.probs, temperature)
                best = max(dist, key=lambda k: dist[k])
                out[i] = Prediction(best, dist[best], dist)
        return version, out

    def _temperature(self, version: str) -> float:
        if version not in self._temperatures:
            try:
                self._temperatures[version] = load_card(self.store, version).temperature
            except ModelUnavailable:
                self._temperatures[version] = 1.0  # a model registered outside Pulse: raw confidences
        return self._temperatures[version]

    def _invoke(self, texts: list[str]) -> list[Prediction]:
        body = json.dumps({"instances": texts, "configuration": {"k": len(LABELS)}})
        try:
            answer = self.runtime.invoke_endpoint(
                EndpointName=self.endpoint_name,
                Body=body.encode("utf-8"),
                ContentType="application/json",
                Accept="application/json",
            )
            raw = answer["Body"].read()
        except _aws_errors() as exc:
            from botocore.exceptions import ClientError

            if isinstance(exc, ClientError):
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                code = _error_code(exc) or "error"
                raise EndpointError(
                    f"endpoint {self.endpoint_name} refused a batch of {len(texts)} texts ({code}, HTTP {status})"
                ) from None
            raise EndpointError(f"cannot reach endpoint {self.endpoint_name} ({type(exc).__name__})") from None
        return self._parse(raw, len(texts))

    def _parse(self, raw: bytes, expected: int) -> list[Prediction]:
        def bad(why: str) -> EndpointError:
            return EndpointError(f"endpoint {self.endpoint_name} answered something that is not a prediction: {why}")

        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise bad(f"not JSON ({len(raw)} bytes)") from None
        if not isinstance(data, list):
            raise bad(f"expected a JSON list, got {type(data).__name__}")
        if len(data) != expected:
            raise bad(f"{len(data)} predictions for {expected} texts")
        out = []
        for n, item in enumerate(data):
            if not isinstance(item, dict):
                raise bad(f"item {n} is not an object")
            labels, probs = item.get("label"), item.get("prob")
            if not isinstance(labels, list) or not isinstance(probs, list) or not labels:
                raise bad(f"item {n} has no 'label' and 'prob' lists")
            if len(labels) != len(probs):
                raise bad(f"item {n} has {len(labels)} labels and {len(probs)} probabilities")
            dist = dict.fromkeys(LABELS, 0.0)
            for label, prob in zip(labels, probs, strict=True):
                if (
                    not isinstance(label, str)
                    or label.removeprefix(PREFIX) not in dist
                    or label[: len(PREFIX)] != PREFIX
                ):
                    raise bad(f"item {n} has a label outside {', '.join(LABELS)}")
                name = label.removeprefix(PREFIX)
                if isinstance(prob, bool) or not isinstance(prob, int | float) or not math.isfinite(prob):
                    raise bad(f"item {n} has a probability that is not a number")
                if not 0.0 <= prob <= 1.0 + 1e-3:
                    raise bad(f"item {n} has a probability outside 0..1")
                dist[name] = min(1.0, float(prob))
            best = max(dist, key=lambda k: dist[k])
            out.append(Prediction(best, dist[best], dist))
        return out
