"""The S3 inbox of the intake watcher on moto's server over HTTP: objects under a prefix ingested once,
a new or changed object picked up on the next pass, its failures as domain errors, and
`ingest --watch s3://bucket/prefix/` from the command line with PULSE_AWS_ENDPOINT_URL at moto."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from services.aws.inbox import S3Inbox
from services.checkins.ingest import batch_id
from services.checkins.intake import DONE, FAILED, Intake, intake_status
from services.checkins.partitions import read_scored
from services.config import load_settings
from services.errors import InboxError
from services.lifecycle.endpoint import LocalEndpoint
from services.store.local import LocalStore
from tests.conftest import ROOT, free_port

HEADER = "participant,group,time,text\n"


def rows(day: int, n: int = 3) -> bytes:
    lines = [f"p{i},team-a,2025-07-{day:02d}T{9 + i:02d}:00:00Z,day {day} check-in {i} all good" for i in range(n)]
    return (HEADER + "\n".join(lines) + "\n").encode()


@pytest.fixture
def intake(ws: LocalStore, s3_client: Any, bucket: str, tmp_path: Path) -> Intake:
    settings = load_settings(secrets_file=ROOT / "no-such-secrets.toml", workspace=ws.root)
    endpoint = LocalEndpoint(ws, tmp_path / "model-cache")
    return Intake(ws, endpoint, S3Inbox(s3_client, bucket, "drop/inbox/"), settings=settings)


def test_objects_under_the_prefix_are_ingested_once(intake: Intake, s3_client: Any, bucket: str) -> None:
    a, b = rows(1), rows(2, 2)
    s3_client.put_object(Bucket=bucket, Key="drop/inbox/a.csv", Body=a)
    s3_client.put_object(Bucket=bucket, Key="drop/inbox/2026/b.csv", Body=b)
    s3_client.put_object(Bucket=bucket, Key="drop/inbox/.staging/c.csv", Body=rows(3))  # hidden: left alone
    s3_client.put_object(Bucket=bucket, Key="drop/inbox/folder/", Body=b"")  # a console "folder"
    s3_client.put_object(Bucket=bucket, Key="drop/other/d.csv", Body=rows(4))  # outside the prefix
    handled = intake.run_once()
    assert sorted((h.name, h.state) for h in handled) == [("2026/b.csv", DONE), ("a.csv", DONE)]
    assert {h.name: h.report.batch for h in handled if h.report} == {"a.csv": batch_id(a), "2026/b.csv": batch_id(b)}
    assert len(read_scored(intake.store)) == 5
    assert intake.run_once() == []
    table = intake_status(intake.store)
    assert set(table["state"]) == {DONE} and set(table["inbox"]) == {f"s3://{bucket}/drop/inbox/"}
    assert s3_client.list_objects_v2(Bucket=bucket)["KeyCount"] == 5  # marked, not moved


def test_a_new_or_changed_object_is_picked_up_on_the_next_pass(intake: Intake, s3_client: Any, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="drop/inbox/a.csv", Body=rows(1))
    assert [h.name for h in intake.run_once()] == ["a.csv"]
    s3_client.put_object(Bucket=bucket, Key="drop/inbox/b.csv", Body=rows(2))
    assert [h.name for h in intake.run_once()] == ["b.csv"]
    s3_client.put_object(Bucket=bucket, Key="drop/inbox/a.csv", Body=rows(1, 5))  # a new ETag
    (again,) = intake.run_once()
    assert again.name == "a.csv" and again.report is not None
    assert (again.report.accepted, again.report.already_present) == (2, 3)
    s3_client.put_object(Bucket=bucket, Key="drop/inbox/bad.csv", Body=b"who;what\nx;y\n")
    (bad,) = intake.run_once()
    assert bad.state == FAILED and "missing required column(s)" in bad.reason
    assert intake.run_once() == []
    assert len(read_scored(intake.store)) == 8


def test_the_listing_gives_etag_size_and_time(s3_client: Any, bucket: str) -> None:
    put = s3_client.put_object(Bucket=bucket, Key="in/x.csv", Body=b"12345")
    (found,) = S3Inbox(s3_client, bucket, "/in/").files()
    assert (found.name, found.version, found.size) == ("x.csv", put["ETag"].strip('"'), 5)
    assert found.modified.utcoffset() is not None
    assert S3Inbox(s3_client, bucket, "/in/").read("x.csv") == b"12345"
    assert S3Inbox(s3_client, bucket).describe() == f"s3://{bucket}/"


def test_s3_failures_are_inbox_errors(s3_client: Any, bucket: str) -> None:
    with pytest.raises(InboxError, match="the inbox bucket 'no-such-bucket-q7' does not exist"):
        S3Inbox(s3_client, "no-such-bucket-q7", "in/").files()
    with pytest.raises(InboxError, match=r"'gone\.csv' is no longer in the inbox"):
        S3Inbox(s3_client, bucket, "in/").read("gone.csv")


def test_access_denied_and_an_unreachable_s3_are_inbox_errors() -> None:
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    inbox = S3Inbox(client, "pulse-inbox", "in/")
    with Stubber(client) as stub:
        stub.add_client_error("list_objects_v2", service_error_code="AccessDenied", http_status_code=403)
        stub.add_client_error("get_object", service_error_code="InternalError", http_status_code=500)
        with pytest.raises(InboxError, match=r"access denied to the inbox s3://pulse-inbox/in/: .* s3:ListBucket"):
            inbox.files()
        with pytest.raises(InboxError, match=r"S3 refused reading 'a\.csv' in the inbox s3://pulse-inbox/in/: "):
            inbox.read("a.csv")
    closed = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=2),
    )
    with pytest.raises(InboxError, match="cannot reach S3 for the inbox"):
        S3Inbox(closed, "pulse-inbox").files()


def test_cli_watches_an_s3_prefix(
    ws: LocalStore, s3_client: Any, bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    s3_client.put_object(Bucket=bucket, Key="inbox/a.csv", Body=rows(1))
    s3_client.put_object(Bucket=bucket, Key="inbox/b.csv", Body=rows(2))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PULSE_AWS_ENDPOINT_URL": moto_endpoint}
    command = [sys.executable, "-m", "services.cli", "ingest", "--watch", f"s3://{bucket}/inbox/", "--once"]
    command += ["--workspace", str(ws.root)]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)

    first = run()
    assert first.returncode == 0, first.stderr
    assert sorted(line.split(":")[0] for line in first.stdout.splitlines()) == ["a.csv", "b.csv"]
    assert all("3 rows = 3 accepted" in line for line in first.stdout.splitlines())
    again = run()
    assert (again.returncode, again.stdout) == (0, "")
    assert len(read_scored(ws)) == 6
