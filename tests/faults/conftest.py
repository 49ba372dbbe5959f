"""The fault matrix for the README's results page, written from the outcomes of this run's tests
(artifacts/results/faults.json), not by hand.

Each fault test declares its row with a marker. `{name}` in a field is the test's parameter of
that name; a `kind` parameter reads as the fault it stands for (see `FAULTS`):

    @pytest.mark.fault(operation="ingest (S3)", fault="{kind}", when="from PutObject #{start}",
                       expected="stopped with a StoreError; re-run: state identical to a clean run")

The outcome cell is `expected` when the test passed, and says so when it failed, did not run, or
is a known failure (a strict xfail, with its reason). Every test here must declare its row. The file
is written only when the whole of tests/faults ran (no file or test left out), so running one test
while working on it never leaves a partial matrix behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.benchmarks.results import write_result
from tests.conftest import ROOT, free_port

FAULTS = {
    "throttle": "throttling (503 SlowDown)",
    "500": "server error (500 InternalError)",
    "reset": "connection reset",
    "landed": "connection reset after S3 handled the request",
}
FIELDS = ("operation", "fault", "when", "expected")
HERE = Path(__file__).resolve().parent
_ROWS: dict[str, list[str]] = {}
_DESELECTED: list[str] = []

TITLE = (
    "Faults injected mid-operation: S3 errors (moto's server, botocore before-send hooks), a disappearing "
    "bucket, a killed ingest or watcher process, hostile input, a failed SageMaker endpoint update"
)
NOTES = [
    "Ingest: the state compared with one fault-free run is every scored row (all columns), review item (but its "
    "queue time), review index line, alert (but when it was raised), batch record (but when it finished), "
    "quarantined row and kept upload, as ids and digests.",
    "S3 faults answer in place of moto's server, or drop the connection before or after S3 handled the "
    "request, inside the store's boto3 client, so its real retry policy sees them (standard mode, 3 attempts "
    "in these tests; backoff from 1 s for throttling, 50 ms otherwise). A lasting fault lasts until the test "
    "brings S3 back; then the user's retry (the re-run, the repeated click) is made.",
    "Labeling: one annotator works through 12 queued items as the review page does; at the end every item has "
    "exactly one label (the annotator's) and nothing is left queued, claimed or quarantined.",
    "Dataset build: compared with a clean build of the same labels (train/validation hashes, counts, sources, "
    "conflicts, dropped rows, label keys); a version without its manifest is not listed, so training and the "
    "admin pages never use it.",
    "Killed ingest: `python -m services.cli ingest` on 2,000 airline check-ins, SIGKILLed once the stage named "
    "has begun (before its batch record), then run again to the end.",
    "Hostile input: the real ingest on a copy of the bootstrap workspace; each case is one file (or two), and "
    "every report is checked to add up (rows = accepted + rejected + already present).",
    "Intake watcher: `services.cli ingest --watch` processes on a local inbox folder; 'a clean run' is one "
    "watcher alone on the same files.",
    "Endpoint update: moto's server with the SageMaker stand-in (services/aws/standin.py), whose "
    "UpdateEndpoint rolls back when the new model artifact cannot be loaded, as SageMaker does.",
    '"FAILS, known": a product bug these tests found, kept as a strict xfail test until it is fixed.',
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fault(operation, fault, when, expected): this test's row in the README's fault matrix"
    )


def _here(item: pytest.Item) -> bool:
    return Path(str(item.fspath)).parent == HERE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items if _here(item) and item.get_closest_marker("fault") is None]
    if unmarked:
        raise pytest.UsageError(f"fault tests without a @pytest.mark.fault row: {', '.join(unmarked)}")


def pytest_deselected(items: list[pytest.Item]) -> None:
    _DESELECTED.extend(item.nodeid for item in items if _here(item))


def _cell(template: str, params: dict[str, Any]) -> str:
    shown = {k: FAULTS.get(str(v), v) if k == "kind" else v for k, v in params.items()}
    return template.format(**shown)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("fault")
    if marker is None or not (report.when == "call" or (report.when == "setup" and not report.passed)):
        return
    params = item.callspec.params if hasattr(item, "callspec") else {}
    missing = [f for f in FIELDS if f not in marker.kwargs]
    if missing:
        raise pytest.UsageError(f"{item.nodeid}: the fault marker needs {', '.join(missing)}")
    operation, fault, when, expected = (_cell(str(marker.kwargs[f]), params) for f in FIELDS)
    if hasattr(report, "wasxfail"):  # a known failure, marked xfail with the reason
        result = f"FAILS, known: {report.wasxfail}"
    elif report.passed:
        result = expected
    elif report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        result = f"not run: {reason.removeprefix('Skipped: ')}"
    else:
        result = f"FAILED ({'setup' if report.when == 'setup' else 'test'})"
    _ROWS[item.nodeid] = [operation, fault, when, result]


def _whole_directory_ran(session: pytest.Session) -> bool:
    """Every test file collected, no test deselected, and every test reported (none left by -x)."""
    mine = [item for item in session.items if _here(item)]
    files = {Path(str(item.fspath)).name for item in mine}
    every_row = all(item.nodeid in _ROWS for item in mine)
    return not _DESELECTED and every_row and files == {p.name for p in HERE.glob("test_*.py")}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _ROWS:
        return
    if not _whole_directory_ran(session):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("fault matrix not written: only part of tests/faults ran")
        return
    write_result("faults", TITLE, ["operation", "fault", "when", "outcome"], sorted(_ROWS.values()), NOTES)


# --- moto's server with the SageMaker stand-in, in a subprocess ------------------------------


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a CLI subprocess: this one without any PULSE_* or AWS_* setting of the
    shell (tests never reach AWS), plus `extra`."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "AWS_"))}
    return {**keep, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", **extra}


class StandIn:
    """moto + the SageMaker stand-in in a subprocess; a demo workspace built in `bucket` by the CLI."""

    def __init__(self, url: str, bucket: str, env: dict[str, str]) -> None:
        self.url, self.bucket, self.env = url, bucket, env

    def settings(self, **overrides: Any) -> Any:
        from services.aws.standin import MODEL_IMAGE, REGION, ROLE_ARN
        from services.config import load_settings

        given = {
            "backend": "aws",
            "bucket": self.bucket,
            "aws_endpoint_url": self.url,
            "aws_region": REGION,
            "sagemaker_role_arn": ROLE_ARN,
            "sagemaker_model_image": MODEL_IMAGE,
            **overrides,
        }
        return load_settings(secrets_file=HERE / "no-secrets.toml", **given)

    def seed(self, bucket: str, prefix: str = "") -> Any:
        """A workspace in `bucket`/`prefix` whose live model is the one the endpoint serves (the
        demo's deployment record and model registry, copied); the S3Store on it."""
        from botocore.exceptions import ClientError

        from services.aws.s3 import S3Store

        client = self.client()
        try:
            client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise
        demo, store = S3Store(client, self.bucket), S3Store(client, bucket, prefix)
        for key in [*demo.list("deployments/"), *demo.list("models/")]:
            store.put(key, demo.get(key))
        return store

    def client(self, service: str = "s3") -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "max_attempts": 3}),
        )


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    """moto's server patched by services/aws/standin.py in its own process, with the demo
    workspace built in its bucket by `python -m services.cli demo` (bootstrap model trained by a
    training job and served by the endpoint; 90 days of check-ins scored through it)."""
    from services.aws.standin import aws_env, started

    bucket = "pulse-faults"
    log = tmp_path_factory.mktemp("standin") / "standin.log"
    with started(free_port(), bucket, log) as url:
        env = aws_env(url, bucket)
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", "demo"],
            cwd=ROOT,
            env=child_env(env),
            capture_output=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the demo build failed (exit {done.returncode}):\n{done.stderr.decode()[-3000:]}")
        yield StandIn(url, bucket, env)
