"""Training on SageMaker: a training job per run (the dataset's channels in S3), followed to its end
with progress, stopped on request, its `model.tar.gz` fetched into the workdir.

With the Pulse model image (PULSE_SAGEMAKER_MODEL_IMAGE, `services.container`) the job trains the
default pipeline of the local trainer, either family, "auto" picking the better on validation, and
calibrates. Without it the job is BlazingText's supervised mode, which trains fastText only."""

from __future__ import annotations

import functools
import json
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from services.aws.errors import NAME_RULE, TRANSIENT, Clock, Sleep, aws_errors, error_code, explain, split_s3_uri
from services.container.layout import FACTS_FILE
from services.errors import PulseError
from services.lifecycle.registry import ARTIFACT, MODEL_FILES, find_model_file
from services.lifecycle.trainers import TrainingOutcome, TrainingRequest
from services.model.fasttext import check_model_file
from services.model.params import TrainParams
from services.model.pipeline import Progress, ShouldStop

if TYPE_CHECKING:
    from services.aws.s3 import S3Store
    from services.config import Settings


Status = Literal["Completed", "Failed", "Stopped"]


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


def pulse_hyperparameters(params: TrainParams) -> dict[str, str]:
    """The Pulse image's hyperparameters: every TrainParams field, as the strings SageMaker passes
    (`services.container.train.read_params` reads them back)."""
    out = {}
    for name, value in asdict(params).items():
        out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def unsupported_params(params: TrainParams) -> list[str]:
    """The requested settings BlazingText supervised mode cannot honour (for the run log)."""
    dropped = []
    if params.minn or params.maxn:
        dropped.append(f"subwords minn={params.minn}/maxn={params.maxn}")
    if params.seed:
        dropped.append(f"seed={params.seed}")
    return dropped


class SageMakerTrainer:
    """Trains with a SageMaker training job of the Pulse image (when PULSE_SAGEMAKER_MODEL_IMAGE is
    set) or of BlazingText (supervised), and brings back the model file.

    The dataset channels are read by SageMaker straight from the store's bucket. The job is
    polled every `poll_seconds`; `sleep` and `clock` are injectable so tests never wait.
    """

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

    @property
    def name(self) -> str:
        """The trainer a card names: which image trained it."""
        return "sagemaker-pulse" if self.settings.sagemaker_model_image else "sagemaker-blazingtext"

    def s3_uri(self, key: str) -> str:
        """Where a store key lives on S3."""
        return f"s3://{self.store.bucket}/{self.store.prefix}{key}"

    def output_path(self) -> str:
        """Where SageMaker writes `<job>/output/model.tar.gz`."""
        return f"s3://{self.store.bucket}/{self.store.prefix}sagemaker/output/"

    def job_spec(self, request: TrainingRequest, image: str) -> dict[str, Any]:
        """The `create_training_job` arguments for `request` on `image` (the Pulse image or
        BlazingText's, whose hyperparameters differ)."""
        if image == self.settings.sagemaker_model_image:
            hyperparameters = pulse_hyperparameters(request.params)
        else:
            hyperparameters = blazingtext_hyperparameters(request.params)

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
            "HyperParameters": hyperparameters,
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

        pulse_image = self.settings.sagemaker_model_image
        if request.params.family == "linear" and not pulse_image:
            return end(
                "Failed",
                "BlazingText trains fastText models only: set PULSE_SAGEMAKER_MODEL_IMAGE to the Pulse model "
                "image (docs/aws.md) to train the linear family on SageMaker",
            )
        if not self.settings.sagemaker_role_arn:
            return end("Failed", "PULSE_SAGEMAKER_ROLE_ARN is not set: SageMaker needs an execution role")
        if not NAME_RULE.match(request.job_name):
            return end("Failed", f"{request.job_name!r} is not a valid SageMaker training job name")
        if pulse_image:
            image = pulse_image
        else:
            region = str(self.sm.meta.region_name or self.settings.aws_region)
            try:
                image = blazingtext_image(region)
            except (ValueError, LookupError) as exc:
                return end("Failed", f"no BlazingText image for region {region}: {str(exc).split('. ')[0]}")
            for dropped in unsupported_params(request.params):
                note(0.0, f"BlazingText supervised mode has no {dropped}; ignored")
        try:
            self.sm.create_training_job(**self.job_spec(request, image))
        except aws_errors() as exc:
            return end("Failed", explain(exc, f"start training job {request.job_name}"))
        what = "Pulse image" if pulse_image else "BlazingText"
        instance = self.settings.sagemaker_training_instance
        note(0.01, f"started SageMaker training job {request.job_name} ({what}, {instance})")

        deadline = started + self.settings.sagemaker_training_max_seconds + self.grace_seconds
        reported = 0  # SecondaryStatusTransitions already shown
        last_status = ""
        errors = 0
        while True:
            try:
                job = self.sm.describe_training_job(TrainingJobName=request.job_name)
                errors = 0
            except aws_errors() as exc:
                errors += 1
                transient = error_code(exc) in TRANSIENT or not error_code(exc)
                if not transient or errors >= self.max_poll_errors:
                    reason = explain(exc, f"describe training job {request.job_name}")
                    self._stop_quietly(request.job_name, note)
                    return end("Failed", reason)
                note(_SHARE.get(last_status, 0.0), f"could not read the job status ({error_code(exc)}); retrying")
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
                except aws_errors() as exc:
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
        except aws_errors() as exc:
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
        with tempfile.TemporaryDirectory(dir=workdir, prefix=".sm-") as tmp:
            archive = Path(tmp) / ARTIFACT
            try:
                body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
                with archive.open("wb") as fh:
                    shutil.copyfileobj(body, fh, 1024 * 1024)
            except aws_errors() as exc:
                code = error_code(exc) or type(exc).__name__
                return end("Failed", f"cannot download the model artifact {uri} ({code})")
            try:
                found, temperature = _unpack(archive, Path(tmp))
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                return end("Failed", f"the model artifact {uri} is corrupt ({type(exc).__name__})")
            except PulseError as exc:
                return end("Failed", f"the model artifact {uri} is unusable: {exc}")
            if found is None:
                return end("Failed", f"the model artifact {uri} holds no {' or '.join(MODEL_FILES.values())}")
            target = workdir / found.name
            found.replace(target)
        seconds = job.get("TrainingTimeInSeconds")
        billable = job.get("BillableTimeInSeconds")
        if seconds is not None:
            note(0.98, f"SageMaker trained for {seconds}s (billed {billable if billable is not None else '?'}s)")
        note(1.0, f"{target.name} downloaded and checked")
        outcome = end("Completed", model_bin=target)
        outcome.temperature = temperature
        return outcome


def _unpack(archive: Path, folder: Path) -> tuple[Path | None, float | None]:
    """The model file of a training job's `model.tar.gz` (checked when it is fastText's), and the
    calibration temperature the Pulse image fitted (None from BlazingText: Pulse fits one)."""
    wanted = {*MODEL_FILES.values(), FACTS_FILE}
    with tarfile.open(archive, mode="r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name.removeprefix("./") in wanted]
        for member in members:
            tar.extract(member, folder, filter="data")  # refuses links and paths outside folder
    found = find_model_file(folder)
    if found is not None and found.name == MODEL_FILES["fasttext"]:
        check_model_file(found)
    temperature: float | None = None
    if (folder / FACTS_FILE).is_file():
        try:
            value = json.loads((folder / FACTS_FILE).read_text(encoding="utf-8")).get("temperature")
        except (ValueError, UnicodeDecodeError, AttributeError):
            raise PulseError(f"its {FACTS_FILE} is not a JSON object") from None
        if isinstance(value, int | float) and 0 < value < 100:
            temperature = float(value)
    return found, temperature
