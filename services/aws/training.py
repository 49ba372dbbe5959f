"""Training on SageMaker: a BlazingText supervised training job per run (the dataset's channels in S3),
followed to its end with progress, stopped on request, its `model.tar.gz` fetched into the workdir.
BlazingText trains fastText only; the linear family trains locally."""

from __future__ import annotations

import functools
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from services.aws.errors import NAME_RULE, TRANSIENT, Clock, Sleep, aws_errors, error_code, explain, split_s3_uri
from services.errors import PulseError
from services.lifecycle.registry import ARTIFACT
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


def unsupported_params(params: TrainParams) -> list[str]:
    """The requested settings BlazingText supervised mode cannot honour (for the run log)."""
    dropped = []
    if params.minn or params.maxn:
        dropped.append(f"subwords minn={params.minn}/maxn={params.maxn}")
    if params.seed:
        dropped.append(f"seed={params.seed}")
    return dropped


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
        if not NAME_RULE.match(request.job_name):
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
        except aws_errors() as exc:
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
        target = workdir / "model.bin"
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
