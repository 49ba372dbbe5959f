"""What the stand-in's containers do (`services.aws.standin` patches moto to call this): train a
training job as its image would, and load and invoke the model an endpoint serves.

- A job of the Pulse model image runs the image's own `train` entry point (`python -m
  services.container train`, in a subprocess) on a temporary folder laid out as SageMaker lays out
  `/opt/ml`; its model folder is packed as `model.tar.gz`, its `output/failure` is the reason.
- A BlazingText job is trained with fastText (BlazingText's supervised mode *is* fastText).
- An endpoint's model is unpacked as SageMaker unpacks it into `/opt/ml/model` and served by the
  Pulse image's serving code (`FolderEndpoint`, `services.lifecycle.invocations`); a BlazingText
  model must be a `model.bin`.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from services.model.params import FASTTEXT_THREADS

if TYPE_CHECKING:
    from services.container.serve import FolderEndpoint

REGION = "us-east-1"
REPO = Path(__file__).resolve().parents[2]
STATE: dict[str, Any] = {"url": ""}  # moto's URL, set when the stand-in starts
# The Pulse model image in this stand-in (any image that is not BlazingText's is taken for it: the
# stand-in knows the two images only).
MODEL_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/pulse-model:latest"
_models: dict[str, FolderEndpoint] = {}  # ModelDataUrl -> the model it serves
_lock = threading.Lock()


class StandInError(Exception):
    """What SageMaker would put in FailureReason."""


def s3_client() -> Any:
    return boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=STATE["url"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 (moto accepts any key; this never reaches AWS)
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _keys_under(uri: str, what: str) -> tuple[str, list[str]]:
    """The bucket and the keys of every object under an S3Prefix URI, in order; StandInError
    naming `what` when there is none."""
    bucket, prefix = _split(uri)
    keys = [
        o["Key"]
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    if not keys:
        raise StandInError(f"ClientError: no {what} under {uri}")
    return bucket, sorted(keys)


def _read_prefix(uri: str) -> bytes:
    """Every object under an S3Prefix channel, concatenated (SageMaker copies them all)."""
    bucket, keys = _keys_under(uri, "data in the channel")
    s3 = s3_client()
    return b"".join(s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys)


# BlazingText supervised hyperparameter -> fastText train_supervised argument
_HYPER = {
    "epochs": ("epoch", int),
    "learning_rate": ("lr", float),
    "vector_dim": ("dim", int),
    "word_ngrams": ("wordNgrams", int),
    "buckets": ("bucket", int),
    "min_count": ("minCount", int),
}


def _is_blazingtext(image: str) -> bool:
    return "blazingtext" in image


def train_job(job: Any) -> None:
    """Train a created job's data as its image would and write its model.tar.gz to S3."""
    image = str((job.algorithm_specification or {}).get("TrainingImage", ""))
    blob = _train_blazingtext(job) if _is_blazingtext(image) else _train_pulse_image(job)
    bucket, key = _split(job.model_artifacts["S3ModelArtifacts"])
    s3_client().put_object(Bucket=bucket, Key=key, Body=blob)


def _train_pulse_image(job: Any) -> bytes:
    """Run the Pulse image's `train` entry point on the job, in a folder laid out as /opt/ml."""
    from services.container.layout import Layout

    with tempfile.TemporaryDirectory(prefix="sm-standin-") as tmp:
        layout = Layout(Path(tmp))
        layout.hyperparameters.parent.mkdir(parents=True)
        layout.hyperparameters.write_text(json.dumps(job.hyper_parameters or {}), encoding="utf-8")
        for channel in job.input_data_config:
            folder = layout.channel(channel["ChannelName"])
            folder.mkdir(parents=True)
            (folder / "data").write_bytes(_read_prefix(channel["DataSource"]["S3DataSource"]["S3Uri"]))
        limit = int((job.stopping_condition or {}).get("MaxRuntimeInSeconds", 3600))
        command = [sys.executable, "-m", "services.container", "train", "--root", tmp]
        try:
            done = subprocess.run(command, cwd=REPO, capture_output=True, timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            raise StandInError(f"MaxRuntimeExceeded: training ran past {limit}s") from None
        for line in done.stdout.decode("utf-8", "replace").splitlines():
            logging.getLogger(__name__).info("training job %s: %s", job.training_job_name, line)
        if done.returncode != 0:
            reason = layout.failure.read_text(encoding="utf-8") if layout.failure.exists() else ""
            raise StandInError(f"AlgorithmError: {reason or f'the train entry point exited {done.returncode}'}")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for path in sorted(layout.model_dir.iterdir()):
                tar.add(str(path), arcname=path.name)
        return buf.getvalue()


def _train_blazingtext(job: Any) -> bytes:
    """Train a BlazingText job's data with fastText (what BlazingText's supervised mode is)."""
    import fasttext

    hyper = job.hyper_parameters or {}
    if hyper.get("mode") != "supervised":
        raise StandInError("ClientError: the stand-in trains BlazingText in supervised mode only")
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job.input_data_config}
    if "train" not in channels:
        raise StandInError("ClientError: no train channel")
    args: dict[str, Any] = {}
    for name, value in hyper.items():
        if name in _HYPER:
            arg, cast = _HYPER[name]
            try:
                args[arg] = cast(value)
            except ValueError:
                raise StandInError(f"ClientError: hyperparameter {name}={value!r} is not valid") from None
    with tempfile.TemporaryDirectory(prefix="sm-standin-") as tmp:
        data = Path(tmp) / "train.txt"
        data.write_bytes(_read_prefix(channels["train"]))
        try:
            # Ten threads, as services.model trains: fastText initialises its input matrix in ten
            # blocks, one per thread, so with one thread nine tenths of it kept whatever the heap
            # held, and in a busy server process that was now and then a NaN (a failed job).
            model = fasttext.train_supervised(input=str(data), verbose=0, thread=FASTTEXT_THREADS, **args)
        except (RuntimeError, ValueError) as exc:  # e.g. "Encountered NaN." at a high learning rate
            raise StandInError(f"AlgorithmError: training failed: {exc}") from None
        model.save_model(str(Path(tmp) / "model.bin"))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(str(Path(tmp) / "model.bin"), arcname="model.bin")
    return buf.getvalue()


def load_model(model_data_url: str, image: str) -> FolderEndpoint:
    """What a SageMaker model's container serves (cached): its artifact unpacked as SageMaker
    unpacks it into /opt/ml/model, loaded by the Pulse image's serving code; StandInError if the
    container could not start. BlazingText's loads `model.bin` only."""
    from services.container.serve import FolderEndpoint

    with _lock:
        if model_data_url in _models:
            return _models[model_data_url]
    bucket, key = _split(model_data_url)
    try:
        blob = s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:  # any failure to fetch is the container's failure to start
        raise StandInError(f"Failed to download model data from {model_data_url}") from exc
    failed = f"The primary container failed to load the model from {model_data_url}"
    with tempfile.TemporaryDirectory(prefix="sm-standin-") as tmp:
        try:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
                names = ["model.bin"] if _is_blazingtext(image) else [m.name for m in tar.getmembers() if m.isfile()]
                for name in names:
                    tar.extract(name, tmp, filter="data")
        except (tarfile.TarError, KeyError, OSError, EOFError) as exc:
            raise StandInError(failed) from exc
        endpoint = FolderEndpoint(Path(tmp))  # loads the model now: the folder may go
    if endpoint.problem:
        raise StandInError(failed)
    with _lock:
        _models[model_data_url] = endpoint
    return endpoint


def model_url(backend: Any, config_name: str) -> tuple[str, str]:
    """The artifact and image of an endpoint config's model."""
    config = backend.describe_endpoint_config(config_name)
    return model_url_of(backend, config["ProductionVariants"][0]["ModelName"])


def invoke(model: FolderEndpoint, body: Any, headers: Any) -> tuple[int, dict[str, str], bytes | str]:
    """What the container answers `/invocations`, as SageMaker's runtime passes it on: the answer,
    or its refusal as a 424 ModelError carrying the container's status and message."""
    from services.lifecycle.invocations import ApiError, answer_type, parse_request, render

    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body or b"")
    try:
        request = parse_request(raw, headers.get("Content-Type"))
    except ApiError as exc:
        original = json.dumps({"error": exc.message})
        message = f'Received client error ({exc.status_code}) from primary with message "{original}".'
        return error_answer(424, "ModelError", message)
    media = answer_type(headers.get("Accept"), request.media)
    _version, predictions = model.score(request.instances)
    return 200, {"Content-Type": media}, render(predictions, request, media)


def error_answer(status: int, code: str, message: str) -> tuple[int, dict[str, str], str]:
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code, "status": str(status)}
    return status, headers, json.dumps({"__type": code, "message": message})


def run_transform(backend: Any, job: Any) -> None:
    """Run a created transform job as Batch Transform runs the model's container: each input object
    split into lines, sent in MultiRecord batches up to MaxPayloadInMB to `/invocations`, the
    answers joined to their input records (JoinSource Input), filtered (OutputFilter: `$` or
    `$['key',...]`), written to `<S3OutputPath>/<object name>.out`."""
    url, image = model_url_of(backend, job.model_name)
    model = load_model(url, image)
    bucket, keys = _keys_under(job.transform_input["DataSource"]["S3DataSource"]["S3Uri"], "input")
    s3 = s3_client()
    processing = job.data_processing or {}
    limit = int(job.max_payload_in_mb or 6) * 1024 * 1024
    headers = {
        "Content-Type": job.transform_input.get("ContentType", ""),
        "Accept": job.transform_output.get("Accept", ""),
    }
    out_bucket, out_prefix = _split(job.transform_output["S3OutputPath"])
    for key in keys:
        records = [line for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().split(b"\n") if line.strip()]
        lines: list[bytes] = []
        for batch in _batches(records, limit):
            status, _headers, answer = invoke(model, b"\n".join(batch) + b"\n", headers)
            if status != 200:
                raise StandInError(f"ClientError: the model container answered {status} to a batch of {len(batch)}")
            answers = (answer.encode() if isinstance(answer, str) else answer).splitlines()
            if len(answers) != len(batch):
                raise StandInError("AlgorithmError: the container answered another number of lines than it was sent")
            lines.extend(_join(record, reply, processing) for record, reply in zip(batch, answers, strict=True))
        name = key.rsplit("/", 1)[-1]
        s3.put_object(Bucket=out_bucket, Key=f"{out_prefix.rstrip('/')}/{name}.out", Body=b"\n".join(lines) + b"\n")


def model_url_of(backend: Any, model_name: str) -> tuple[str, str]:
    """The artifact and image of a SageMaker model."""
    model = backend.describe_model(model_name)
    return str(model.primary_container["ModelDataUrl"]), str(model.primary_container.get("Image", ""))


def _batches(records: list[bytes], limit: int) -> list[list[bytes]]:
    out: list[list[bytes]] = [[]]
    size = 0
    for record in records:
        if out[-1] and size + len(record) + 1 > limit:
            out.append([])
            size = 0
        out[-1].append(record)
        size += len(record) + 1
    return [batch for batch in out if batch]


def _join(record: bytes, reply: bytes, processing: dict[str, Any]) -> bytes:
    if processing.get("JoinSource") != "Input":
        return reply
    joined = {**json.loads(record), "SageMakerOutput": json.loads(reply)}
    wanted = processing.get("OutputFilter", "$")
    if wanted != "$":
        if not (wanted.startswith("$[") and wanted.endswith("]")):
            raise StandInError(f"ClientError: the stand-in reads OutputFilter $ or $['key',...] only, not {wanted}")
        names = [n.strip().strip("'\"") for n in wanted[2:-1].split(",")]
        joined = {n: joined[n] for n in names if n in joined}
    return json.dumps(joined, separators=(",", ":")).encode()
