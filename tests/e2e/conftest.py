"""A real Streamlit server on 127.0.0.1 and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.store.base import ObjectStore
from tests.conftest import ROOT, free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts" / "e2e"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """When a browser test fails, the page as it was goes to artifacts/e2e/failed-<test>.png and the
    app's status messages into the report (a wait that timed out says little on its own)."""
    report: pytest.TestReport = yield
    page = getattr(item, "funcargs", {}).get("page") if report.when == "call" and report.failed else None
    if page is not None:
        try:
            path = shot(page, f"failed-{item.name}")
            messages = page.locator("[data-testid=stAlert], [data-testid=stException]").all_inner_texts()
        except Exception as exc:  # the browser itself may be what failed
            report.sections.append(("page at failure", f"no screenshot: {exc}"))
        else:
            report.sections.append(("page at failure", f"{path}\nits messages: {messages}"))
    return report


def start_app(workspace: Path, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """`streamlit run app.py` on a free port of 127.0.0.1. Its output goes to a file beside the
    workspace (`streamlit-<port>.log`), never to a pipe that nobody reads and that would block the
    server once full."""
    port = free_port()
    env = {**os.environ, "PULSE_WORKSPACE": str(workspace), **(extra_env or {})}
    log = workspace.parent / f"streamlit-{port}.log"
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    command += ["--server.headless", "true"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:  # noqa: S310 (loopback)
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    proc.wait(timeout=10)
    raise RuntimeError(f"streamlit did not start within 60 s:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def app_url(workspace_copy: Path) -> Iterator[str]:
    proc, url = start_app(workspace_copy)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@dataclass(frozen=True)
class AwsApp:
    """The app on the aws backend: S3 and SageMaker are moto's server with the SageMaker stand-in."""

    url: str
    aws_url: str
    store: ObjectStore


@contextmanager
def app_on_moto(tmp_path: Path, bucket: str, env_for: Callable[[str], dict[str, str]]) -> Iterator[AwsApp]:
    """moto's server with the SageMaker stand-in in a subprocess, the demo workspace built in
    `bucket` by the CLI with the environment `env_for(url)` gives, then the app started on it."""
    from services.aws.standin import started
    from services.config import load_settings
    from services.workspace import make_store

    with started(free_port(), bucket, tmp_path / "standin.log") as aws_url:
        env = env_for(aws_url)
        subprocess.run(
            [sys.executable, "-m", "services.cli", "demo"],
            cwd=ROOT,
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            timeout=300,
        )
        app, url = start_app(tmp_path / "unused-local-workspace", env)
        try:
            store = make_store(load_settings(store="s3", bucket=bucket, s3_endpoint_url=aws_url))
            yield AwsApp(url, aws_url, store)
        finally:
            app.terminate()
            app.wait(timeout=10)


@pytest.fixture
def aws_app(tmp_path: Path) -> Iterator[AwsApp]:
    """The aws backend on the stand-in, the demo built in its bucket (bootstrap model deployed to the
    endpoint through CreateModel/CreateEndpointConfig/CreateEndpoint, 90 days of check-ins scored by
    InvokeEndpoint), then the app against it, as `make run-aws` runs it."""
    from services.aws.standin import aws_env

    with app_on_moto(tmp_path, "pulse-e2e", lambda url: aws_env(url, "pulse-e2e")) as app:
        yield app


@pytest.fixture
def s3_app(tmp_path: Path) -> Iterator[AwsApp]:
    """The S3 store with the models in the app's process (PULSE_STORE=s3, PULSE_MODELS=local), as
    several replicas on one bucket run it (moto's SageMaker is never called)."""
    from services.aws.standin import REGION

    def env_for(url: str) -> dict[str, str]:
        return {
            "PULSE_STORE": "s3",
            "PULSE_MODELS": "local",
            "PULSE_BUCKET": "pulse-e2e-s3",
            "PULSE_S3_ENDPOINT_URL": url,
            "PULSE_AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }

    with app_on_moto(tmp_path, "pulse-e2e-s3", env_for) as app:
        yield app


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make test installs it when run as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    ctx.close()


def shot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def settled(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until the app's script run has finished. A click or key that lands while a run is still
    drawing the page reaches the widgets of the run before (a person who waits would not see it).

    The app root's script state is what Streamlit's own browser tests wait on: the "running" status
    widget is drawn only after a delay, so a short run can be half drawn while it is still hidden."""
    page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for()
    page.locator("[data-testid=stStatusWidget]").wait_for(state="hidden")
