"""Bulk scoring as a SageMaker Batch Transform job: a large upload scored by the live version's
SageMaker model in one job, instead of thousands of endpoint calls.

The texts go to S3 as jsonlines, one `{"id": n, "source": text, "k": 3}` per line; the job reads
them in `MultiRecord` batches up to 6 MB (the container's `SAGEMAKER_MAX_PAYLOAD_IN_MB`), and
joins each answer to its input record (`DataProcessing.JoinSource: Input`), keeping only the id
and the answer (`OutputFilter`), so results are joined back by id, whatever order or batching the
job used, and the output holds no text. Input and output are deleted once read. A job that fails,
is stopped or runs past `timeout_seconds` is an `EndpointError` with SageMaker's reason: the
ingest then stores nothing, as when the endpoint fails.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from services.aws.errors import Clock, Sleep, aws_errors, explain, resource_name
from services.errors import EndpointError, PulseError
from services.model.prediction import LABELS, Prediction
from services.store import keys

if TYPE_CHECKING:
    from services.aws.s3 import S3Store
    from services.config import Settings

JSONLINES = "application/jsonlines"
INPUT = "input/records.jsonl"
OUTPUT = "output/records.jsonl.out"  # Batch Transform names an output after its input, plus .out


class BatchTransform:
    """Scores prepared texts with a transform job of a SageMaker model (blocking until it ends)."""

    def __init__(
        self,
        sm_client: Any,
        store: S3Store,
        settings: Settings,
        *,
        poll_seconds: float = 10.0,
        timeout_seconds: float = 3600.0,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.sm = sm_client
        self.store = store
        self.settings = settings
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.sleep = sleep
        self.clock = clock

    def uri(self, key: str) -> str:
        return f"s3://{self.store.bucket}/{self.store.prefix}{key}"

    def job_spec(self, job: str, model_name: str) -> dict[str, Any]:
        """The `create_transform_job` arguments."""
        return {
            "TransformJobName": job,
            "ModelName": model_name,
            "BatchStrategy": "MultiRecord",
            "MaxPayloadInMB": 6,
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": self.uri(keys.transform_key(job, INPUT))}
                },
                "ContentType": JSONLINES,
                "SplitType": "Line",
                "CompressionType": "None",
            },
            "TransformOutput": {
                "S3OutputPath": self.uri(keys.transform_key(job, "output/")),
                "Accept": JSONLINES,
                "AssembleWith": "Line",
            },
            "TransformResources": {"InstanceType": self.settings.sagemaker_transform_instance, "InstanceCount": 1},
            "DataProcessing": {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$['id','SageMakerOutput']"},
            "Tags": [{"Key": "app", "Value": "pulse"}],
        }

    def score(
        self, prepared: Sequence[str], model_name: str, parse: Callable[[Any, int], Prediction]
    ) -> list[Prediction]:
        """One prediction per text (in order), each answer read by `parse(item, n)`."""
        job = resource_name(self.settings.sagemaker_name_prefix, "score", suffix=secrets.token_hex(6))
        records = b"".join(
            json.dumps({"id": n, "source": text, "k": len(LABELS)}).encode() + b"\n" for n, text in enumerate(prepared)
        )
        try:
            self.store.put(keys.transform_key(job, INPUT), records)
            try:
                self.sm.create_transform_job(**self.job_spec(job, model_name))
            except aws_errors() as exc:
                raise EndpointError(explain(exc, f"start transform job {job}")) from None
            self._wait(job)
            try:
                output = self.store.get(keys.transform_key(job, OUTPUT))
            except PulseError as exc:
                raise EndpointError(f"transform job {job} completed without its output ({exc})") from None
            return _joined(output, len(prepared), parse, job)
        finally:
            for name in (INPUT, OUTPUT):  # the texts, and what was said of them, are not left behind
                with contextlib.suppress(PulseError):
                    self.store.delete(keys.transform_key(job, name))

    def _wait(self, job: str) -> None:
        deadline = self.clock() + self.timeout_seconds
        while True:
            try:
                found = self.sm.describe_transform_job(TransformJobName=job)
            except aws_errors() as exc:
                raise EndpointError(explain(exc, f"describe transform job {job}")) from None
            status = found.get("TransformJobStatus")
            if status == "Completed":
                return
            if status in ("Failed", "Stopped"):
                reason = found.get("FailureReason") or "no reason given"
                raise EndpointError(f"transform job {job} {status.lower()}: {reason}")
            if self.clock() >= deadline:
                with contextlib.suppress(*aws_errors()):
                    self.sm.stop_transform_job(TransformJobName=job)
                raise EndpointError(f"transform job {job} did not finish within {self.timeout_seconds:.0f}s; stopped")
            self.sleep(self.poll_seconds)


def _joined(output: bytes, expected: int, parse: Callable[[Any, int], Prediction], job: str) -> list[Prediction]:
    """The predictions of a joined output, by id; every id once."""
    found: dict[int, Prediction] = {}
    for line in output.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            n = record["id"]
            answer = record["SageMakerOutput"]
        except (ValueError, KeyError, TypeError):
            raise EndpointError(f"transform job {job} wrote a line that is not an id and an answer") from None
        if not isinstance(n, int) or not 0 <= n < expected or n in found:
            raise EndpointError(f"transform job {job} answered an unknown or repeated id")
        found[n] = parse(answer, n)
    if len(found) != expected:
        raise EndpointError(f"transform job {job} answered {len(found):,} of {expected:,} texts")
    return [found[n] for n in range(expected)]
