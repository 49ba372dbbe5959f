"""moto's server with a SageMaker stand-in: the aws backend end to end without an AWS account.

moto implements S3 fully, and SageMaker's control plane as records only: a training job is
`Completed` the moment it is created and nothing trains, there is no UpdateEndpoint, and
InvokeEndpoint answers a canned body. This module patches moto's server (in its own process) so
that the three calls Pulse's loop needs behave as SageMaker's do:

- **CreateTrainingJob trains.** moto does not run the BlazingText algorithm, so the stand-in reads
  the job's `train` channel from S3, trains fastText with the job's BlazingText hyperparameters
  (BlazingText's supervised mode *is* fastText; its `model.bin` loads in fastText) and writes
  `model.tar.gz` where SageMaker puts it: `<S3OutputPath>/<job>/output/model.tar.gz`. A job whose
  data cannot be trained ends `Failed` with a `FailureReason`. Training runs inside the create call,
  so the job is already over when Pulse first describes it.
- **UpdateEndpoint** exists: the endpoint goes `Updating`, and at the next describe either serves
  the new config (`InService`) or, when a variant's model artifact cannot be loaded, is back on the
  previous config with a `FailureReason`, as SageMaker's automatic rollback leaves it.
- **InvokeEndpoint scores** the BlazingText JSON request (`{"instances": [...], "configuration":
  {"k": 3}}`) with the model the endpoint serves now, and answers `[{"label": [...], "prob": [...]}]`.

Run it: `python -m services.aws.standin --port 5000 --bucket pulse-demo [-- command ...]`; with a
command, it runs that with the environment of `aws_env` and stops when the command ends (`make run-aws`
builds the demo workspace in the bucket and starts the app that way). moto keeps everything in memory:
the workspace lives as long as the stand-in.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from services.model.params import FASTTEXT_THREADS

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/pulse-sagemaker"  # moto accepts any role
_state: dict[str, Any] = {"url": ""}
_models: dict[str, Any] = {}  # ModelDataUrl -> loaded fastText model
_pending: dict[str, tuple[str, str | None]] = {}  # endpoint -> (new config, why it cannot serve)
_lock = threading.Lock()


class StandInError(Exception):
    """What SageMaker would put in FailureReason."""


def _s3() -> Any:
    return boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=_state["url"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 (moto accepts any key; this never reaches AWS)
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _read_prefix(uri: str) -> bytes:
    """Every object under an S3Prefix channel, concatenated (SageMaker copies them all)."""
    bucket, prefix = _split(uri)
    s3 = _s3()
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    if not keys:
        raise StandInError(f"ClientError: no data in channel {uri}")
    return b"".join(s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in sorted(keys))


# BlazingText supervised hyperparameter -> fastText train_supervised argument
_HYPER = {
    "epochs": ("epoch", int),
    "learning_rate": ("lr", float),
    "vector_dim": ("dim", int),
    "word_ngrams": ("wordNgrams", int),
    "buckets": ("bucket", int),
    "min_count": ("minCount", int),
}


def train_job(job: Any) -> None:
    """Train a created job's data as BlazingText would and write its model.tar.gz to S3."""
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
    bucket, key = _split(job.model_artifacts["S3ModelArtifacts"])
    _s3().put_object(Bucket=bucket, Key=key, Body=buf.getvalue())


def _load(model_data_url: str) -> Any:
    """The fastText model of a SageMaker model's artifact (cached); StandInError if unusable."""
    import fasttext

    with _lock:
        if model_data_url in _models:
            return _models[model_data_url]
    bucket, key = _split(model_data_url)
    try:
        blob = _s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:  # any failure to fetch is the container's failure to start
        raise StandInError(f"Failed to download model data from {model_data_url}") from exc
    with tempfile.TemporaryDirectory(prefix="sm-standin-") as tmp:
        try:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
                tar.extract("model.bin", tmp, filter="data")
            model = fasttext.load_model(str(Path(tmp) / "model.bin"))
        except (tarfile.TarError, KeyError, OSError, ValueError, RuntimeError, EOFError) as exc:
            raise StandInError(f"The primary container failed to load the model from {model_data_url}") from exc
    with _lock:
        _models[model_data_url] = model
    return model


def _model_url(backend: Any, config_name: str) -> str:
    config = backend.describe_endpoint_config(config_name)
    model = backend.describe_model(config["ProductionVariants"][0]["ModelName"])
    return str(model.primary_container["ModelDataUrl"])


def _settle(backend: Any, name: str) -> None:
    """Finish a pending endpoint update: serve the new config, or roll back with a reason."""
    from moto.core.utils import utcnow

    with _lock:
        pending = _pending.pop(name, None)
    endpoint = backend.endpoints.get(name)
    if pending is None or endpoint is None:
        return
    config_name, problem = pending
    endpoint.endpoint_status = "InService"
    if problem is None:
        config = backend.describe_endpoint_config(config_name)
        endpoint.endpoint_config_name = config_name
        endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
        endpoint.failure_reason = None
    else:
        endpoint.failure_reason = problem
    endpoint.last_modified_time = utcnow()


def install() -> None:
    """Patch moto's SageMaker and SageMaker runtime responses (this process only)."""
    from moto.core.responses import ActionResult
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sagemaker.utils import arn_formatter
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    create_training_job: Callable[[Any], Any] = SageMakerResponse.create_training_job
    describe_endpoint: Callable[[Any], Any] = SageMakerResponse.describe_endpoint

    def create_training_job_and_train(self: Any) -> Any:
        result = create_training_job(self)
        job = self.sagemaker_backend.training_jobs[self._get_param("TrainingJobName")]
        try:
            train_job(job)
        except StandInError as exc:
            job.training_job_status = job.secondary_status = "Failed"
            job.failure_reason = str(exc)
        return result

    def update_endpoint(self: Any) -> Any:
        from moto.sagemaker.exceptions import ValidationError

        backend = self.sagemaker_backend
        name, config_name = self._get_param("EndpointName"), self._get_param("EndpointConfigName")
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            arn = arn_formatter("endpoint", name, self.current_account, self.region)
            raise ValidationError(message=f"Could not find endpoint '{arn}'.")
        if endpoint.endpoint_status != "InService" or name in _pending:
            raise ValidationError(message=f"Cannot update in-progress endpoint '{endpoint.arn}'.")
        problem: str | None = None
        try:
            _load(_model_url(backend, config_name))
        except StandInError as exc:
            problem = str(exc)
        with _lock:
            _pending[name] = (config_name, problem)
        endpoint.endpoint_status = "Updating"
        return ActionResult({"EndpointArn": endpoint.arn})

    def describe_endpoint_settled(self: Any) -> Any:
        name = self._get_param("EndpointName")
        backend = self.sagemaker_backend
        endpoint = backend.endpoints.get(name)
        if endpoint is not None and name in _pending and endpoint.endpoint_status == "Updating":
            seen = getattr(endpoint, "_standin_seen_updating", False)
            if seen:
                _settle(backend, name)
            else:
                endpoint._standin_seen_updating = True  # show Updating once, as SageMaker does
        if endpoint is not None and name not in _pending:
            endpoint._standin_seen_updating = False
        return describe_endpoint(self)

    def invoke_endpoint(self: Any) -> Any:
        from moto.sagemaker.models import sagemaker_backends

        name = self.path.split("/")[2]  # /endpoints/<name>/invocations
        backend = sagemaker_backends[self.current_account][self.region]
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            return _error(400, "ValidationError", f"Endpoint {name} of account {self.current_account} not found.")
        try:
            model = _load(_model_url(backend, endpoint.endpoint_config_name))
        except StandInError as exc:
            return _error(424, "ModelError", str(exc))
        try:
            request = json.loads(self.body)
            instances = [str(t) for t in request["instances"]]
            k = int(request.get("configuration", {}).get("k", 1))
        except (ValueError, KeyError, TypeError, AttributeError):
            return _error(424, "ModelError", "Received client error (400) from primary: unable to parse input")
        labels, probs = model.predict(instances, k=k) if instances else ([], [])
        out = [{"label": list(ls), "prob": [float(p) for p in ps]} for ls, ps in zip(labels, probs, strict=True)]
        return 200, {"Content-Type": "application/json"}, json.dumps(out)

    SageMakerResponse.create_training_job = create_training_job_and_train  # type: ignore[method-assign]
    SageMakerResponse.update_endpoint = update_endpoint  # type: ignore[attr-defined]
    SageMakerResponse.describe_endpoint = describe_endpoint_settled  # type: ignore[method-assign]
    SageMakerRuntimeResponse.invoke_endpoint = invoke_endpoint  # type: ignore[method-assign]


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], str]:
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code, "status": str(status)}
    return status, headers, json.dumps({"__type": code, "message": message})


def serve(host: str, port: int) -> Any:
    """Start moto with the stand-in on host:port; returns the server (call .stop())."""
    from moto.server import ThreadedMotoServer

    install()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    _state["url"] = f"http://{host}:{port}"
    return server


def aws_env(url: str, bucket: str) -> dict[str, str]:
    """The environment that points Pulse's aws backend at the stand-in."""
    return {
        "PULSE_BACKEND": "aws",
        "PULSE_BUCKET": bucket,
        "PULSE_AWS_ENDPOINT_URL": url,
        "PULSE_AWS_REGION": REGION,
        "PULSE_SAGEMAKER_ROLE_ARN": ROLE_ARN,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }


@contextmanager
def started(port: int, bucket: str, log: Path, *, seconds: float = 60) -> Iterator[str]:
    """The stand-in in a subprocess on 127.0.0.1:`port`, with `bucket` created; yields its URL and
    stops the process on exit. Its output goes to `log`, never to a pipe that nobody reads."""
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "services.aws.standin", "--port", str(port), "--bucket", bucket]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + seconds
        while True:
            try:  # moto answers a bucket listing without signature checks; 404 until the bucket exists
                with urllib.request.urlopen(f"{url}/{bucket}", timeout=2):  # noqa: S310 (loopback)
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the SageMaker stand-in did not start:\n{log.read_text(errors='replace')[-3000:]}"
                    ) from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--bucket", default="pulse-demo", help="the bucket to create and point Pulse at")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="run this with the aws environment, then stop")
    args = parser.parse_args(argv)
    server = serve(args.host, args.port)
    _s3().create_bucket(Bucket=args.bucket)
    print(f"moto with the SageMaker stand-in on {_state['url']}, bucket {args.bucket}", flush=True)
    try:
        command = [c for c in args.command if c != "--"]
        if command:  # e.g. the demo build and the app: they see only the stand-in, never real AWS
            child = subprocess.Popen(command, env={**os.environ, **aws_env(_state["url"], args.bucket)})
            signal.signal(signal.SIGTERM, lambda *_: child.terminate())
            try:
                return child.wait()
            except KeyboardInterrupt:  # the terminal sent SIGINT to the child too
                return child.wait()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while not stop.wait(1.0):
            pass
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
