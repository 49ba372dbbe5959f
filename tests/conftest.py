"""Fixtures shared by every test layer."""

from __future__ import annotations

import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.store.local import LocalStore

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach AWS: fake credentials, a fixed region, and no PULSE_* from the shell."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    import os

    for name in list(os.environ):
        if name.startswith("PULSE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "ws")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto in server mode on 127.0.0.1 (real HTTP, not in-process patching)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_client(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    return moto_s3_client(moto_endpoint)


def moto_s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    """A boto3 S3 client of moto's server at `endpoint` (standard retries, 3 attempts)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


@pytest.fixture
def bucket(s3_client, request: pytest.FixtureRequest) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty bucket per test (a random suffix: a free port number can come back, and
    moto answers a second create of one's own bucket with success, its keys still there)."""
    name = "pulse-" + "".join(c for c in request.node.name.lower() if c.isalnum())[:40] + f"-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def bootstrap_store(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    """A workspace with the bootstrap model trained and deployed (once per test session)."""
    from services.lifecycle.training import train_bootstrap

    s = LocalStore(tmp_path_factory.mktemp("bootstrap"))
    train_bootstrap(s, by="tests")
    return s


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Unpacked model artifacts, shared by the tests that do not test the cache itself."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture
def ws(bootstrap_store: LocalStore, tmp_path: Path) -> LocalStore:
    """A private copy of the bootstrap workspace (a module may define its own `ws`)."""
    target = tmp_path / "ws"
    shutil.copytree(bootstrap_store.root, target)
    return LocalStore(target)


@pytest.fixture
def endpoint(ws: LocalStore, model_cache: Path) -> Any:
    """The live model of `ws`, scored in process."""
    from services.lifecycle.endpoint import LocalEndpoint

    return LocalEndpoint(ws, model_cache)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full demo workspace (bootstrap model + 90 days of check-ins), built once per session."""
    from services.config import load_settings
    from services.demo import build_demo
    from services.workspace import open_workspace

    root = tmp_path_factory.mktemp("demo")
    ws = open_workspace(load_settings(workspace=root))
    build_demo(ws.store, ws.endpoint, threshold=ws.settings.review_threshold)
    return root


@pytest.fixture
def workspace_copy(demo_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the demo workspace that a test may change."""
    import shutil

    target = tmp_path / "demo"
    shutil.copytree(demo_dir, target)
    return target


def queued(store: Any) -> dict[str, dict[str, Any]]:
    """The review items still waiting in a workspace, by id (batch parts and one-file items)."""
    from services.review.items import waiting_items

    return {str(raw["id"]): raw for raw, _ in waiting_items(store)}


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A model.tar.gz (or any gzipped tarball) holding `files` (name -> bytes), names as given."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
