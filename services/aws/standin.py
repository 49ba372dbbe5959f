"""moto's server with a SageMaker stand-in: the aws backend end to end without an AWS account.

moto implements S3 fully, and SageMaker's control plane as records only: a training job is
`Completed` the moment it is created and nothing trains, there is no UpdateEndpoint, and
InvokeEndpoint answers a canned body. This module patches moto's server (in its own process) so
that the three calls Pulse's loop needs behave as SageMaker's do:

- **CreateTrainingJob trains.** A job of the Pulse model image runs the image's own `train` entry
  point (`python -m services.container train`, in a subprocess) on a temporary folder laid out as
  SageMaker lays out `/opt/ml`: the job's hyperparameters file, its channels copied from S3; the
  model folder is packed as `model.tar.gz`, and `output/failure` becomes the `FailureReason`. moto
  does not run BlazingText either, so for a BlazingText job the stand-in reads the `train` channel
  and trains fastText with the job's BlazingText hyperparameters (BlazingText's supervised mode *is*
  fastText; its `model.bin` loads in fastText). Either way `model.tar.gz` lands where SageMaker puts
  it, `<S3OutputPath>/<job>/output/model.tar.gz`, and a job whose data cannot be trained ends
  `Failed` with a `FailureReason`. Training runs inside the create call, so the job is already over
  when Pulse first describes it.
- **UpdateEndpoint** exists: the endpoint goes `Updating`, and at the next describe either serves
  the new config (`InService`) or, when a variant's model artifact cannot be loaded, is back on the
  previous config with a `FailureReason`, as SageMaker's automatic rollback leaves it.
- **InvokeEndpoint scores** with the model the endpoint serves now, through the Pulse image's
  serving code (`services.container.serve.FolderEndpoint` and the request and answer formats of
  `services.lifecycle.invocations`): BlazingText's JSON (`{"instances": [...], "configuration":
  {"k": 3}}` answered by `[{"label": [...], "prob": [...]}]`) or jsonlines. A BlazingText endpoint
  serves `model.bin` only, as BlazingText does.

Run it: `python -m services.aws.standin --port 5000 --bucket pulse-demo [-- command ...]`; with a
command, it runs that with the environment of `aws_env` and stops when the command ends (`make run-aws`
builds the demo workspace in the bucket and starts the app that way). moto keeps everything in memory:
the workspace lives as long as the stand-in.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from services.aws.standin_images import (
    MODEL_IMAGE,
    REGION,
    REPO,
    STATE,
    StandInError,
    error_answer,
    invoke,
    load_model,
    model_url,
    run_transform,
    s3_client,
    train_job,
)

ROLE_ARN = "arn:aws:iam::123456789012:role/pulse-sagemaker"  # moto accepts any role
_pending: dict[str, tuple[str, str | None]] = {}  # endpoint -> (new config, why it cannot serve)
_lock = threading.Lock()


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
            load_model(*model_url(backend, config_name))
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
            return error_answer(400, "ValidationError", f"Endpoint {name} of account {self.current_account} not found.")
        try:
            model = load_model(*model_url(backend, endpoint.endpoint_config_name))
        except StandInError as exc:
            return error_answer(424, "ModelError", str(exc))
        return invoke(model, self.body, self.headers)

    create_transform_job: Callable[[Any], Any] = SageMakerResponse.create_transform_job

    def create_transform_job_and_run(self: Any) -> Any:
        result = create_transform_job(self)
        job = self.sagemaker_backend.transform_jobs[self._get_param("TransformJobName")]
        try:
            run_transform(self.sagemaker_backend, job)
        except StandInError as exc:
            job.transform_job_status = "Failed"
            job.failure_reason = str(exc)
        return result

    SageMakerResponse.create_training_job = create_training_job_and_train  # type: ignore[method-assign]
    SageMakerResponse.create_transform_job = create_transform_job_and_run  # type: ignore[method-assign]
    SageMakerResponse.update_endpoint = update_endpoint  # type: ignore[attr-defined]
    SageMakerResponse.describe_endpoint = describe_endpoint_settled  # type: ignore[method-assign]
    SageMakerRuntimeResponse.invoke_endpoint = invoke_endpoint  # type: ignore[method-assign]


def serve(host: str, port: int) -> Any:
    """Start moto with the stand-in on host:port; returns the server (call .stop())."""
    from moto.server import ThreadedMotoServer

    install()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    STATE["url"] = f"http://{host}:{port}"
    return server


def aws_env(url: str, bucket: str) -> dict[str, str]:
    """The environment that points Pulse's aws backend at the stand-in."""
    return {
        "PULSE_BACKEND": "aws",
        "PULSE_BUCKET": bucket,
        "PULSE_AWS_ENDPOINT_URL": url,
        "PULSE_AWS_REGION": REGION,
        "PULSE_SAGEMAKER_ROLE_ARN": ROLE_ARN,
        "PULSE_SAGEMAKER_MODEL_IMAGE": MODEL_IMAGE,
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
        proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=out)
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
    s3_client().create_bucket(Bucket=args.bucket)
    print(f"moto with the SageMaker stand-in on {STATE['url']}, bucket {args.bucket}", flush=True)
    try:
        command = [c for c in args.command if c != "--"]
        if command:  # e.g. the demo build and the app: they see only the stand-in, never real AWS
            child = subprocess.Popen(command, env={**os.environ, **aws_env(STATE["url"], args.bucket)})
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
