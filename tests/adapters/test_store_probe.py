"""The store proves it refuses a conditional create of an existing key before a workspace opens on
it (`services/aws/probe.py`): moto does, a store that drops `If-None-Match` (as s3rver, older MinIO
and Ceph RGW do) is refused with a message that says what to do, unless single-writer mode is set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.aws import clients
from services.aws.probe import check_conditional_writes
from services.aws.s3 import S3Store
from services.cli import main as cli
from services.config import load_settings
from services.errors import StoreUnsafe
from services.store import keys
from services.workspace import open_workspace


class IgnoresConditions:
    """An S3 client whose PutObject drops `If-None-Match`, as a store without conditional writes does."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_object(self, **kwargs: Any) -> Any:
        kwargs.pop("IfNoneMatch", None)
        return self.inner.put_object(**kwargs)


def test_moto_refuses_the_second_create_and_the_probe_leaves_nothing(s3_client: Any, bucket: str) -> None:
    store = S3Store(s3_client, bucket, "ws")
    check_conditional_writes(store)
    assert not list(store.list(keys.STORE_PROBES))


def test_a_store_that_ignores_conditional_writes_is_refused_with_what_to_do(s3_client: Any, bucket: str) -> None:
    store = S3Store(IgnoresConditions(s3_client), bucket, "ws")
    with pytest.raises(StoreUnsafe) as refused:
        check_conditional_writes(store)
    message = str(refused.value)
    assert store.describe() in message
    assert "If-None-Match" in message and "AWS S3" in message and "PULSE_STORE_SINGLE_WRITER=true" in message
    assert not list(store.list(keys.STORE_PROBES))


def aws_settings(tmp_path: Path, moto_endpoint: str, bucket: str, **overrides: Any) -> Any:
    return load_settings(
        tmp_path / "no-secrets.toml",
        backend="aws",
        bucket=bucket,
        prefix="probe",
        aws_endpoint_url=moto_endpoint,
        **overrides,
    )


def test_neither_the_app_nor_the_cli_opens_a_workspace_on_such_a_store(
    s3_client: Any,
    bucket: str,
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = clients.s3_client
    monkeypatch.setattr(clients, "s3_client", lambda settings: IgnoresConditions(real(settings)))
    with pytest.raises(StoreUnsafe, match="does not honour conditional writes"):
        open_workspace(aws_settings(tmp_path, moto_endpoint, bucket))
    for name, value in {"PULSE_BACKEND": "aws", "PULSE_BUCKET": bucket, "PULSE_PREFIX": "probe-cli"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PULSE_AWS_ENDPOINT_URL", moto_endpoint)
    assert cli(["bootstrap"]) == 2
    assert "does not honour conditional writes" in capsys.readouterr().err


def test_single_writer_mode_opens_it_and_says_the_risk(
    s3_client: Any, bucket: str, moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = clients.s3_client
    monkeypatch.setattr(clients, "s3_client", lambda settings: IgnoresConditions(real(settings)))
    ws = open_workspace(aws_settings(tmp_path, moto_endpoint, bucket, store_single_writer=True))
    assert ws.settings.store_single_writer
