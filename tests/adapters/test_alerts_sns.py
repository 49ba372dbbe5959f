"""Alert delivery through Amazon SNS, against moto's server: a topic with an SQS queue subscribed,
what arrives (and that no message text does), and the error paths (the alert stays, ingest succeeds)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config

from services.aws.sns import SnsNotifier, make_notifier, sns_subject
from services.checkins.ingest import ingest
from services.checkins.partitions import read_scored
from services.config import load_settings
from services.monitoring.inbox import flag_urgent
from services.store.local import LocalStore
from services.workspace import open_workspace
from tests.conftest import free_port
from tests.unit.monitoring.test_alerts import NOW, KeywordEndpoint, day, upload

SECRET = "zqxprivate5521"
ROWS = [
    ("p1", "Support desk", day(1), f"{SECRET} I want to end it all"),  # crisis language: critical
    ("p2", "Support desk", day(0), "lunch"),
]


def client(service: str, endpoint: str, **config: Any) -> Any:
    import boto3

    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(**config) if config else None,
    )


@pytest.fixture
def topic(moto_endpoint: str, request: pytest.FixtureRequest) -> tuple[str, str]:
    """A fresh topic with a fresh SQS queue subscribed (raw delivery off: the SNS envelope arrives)."""
    name = "pulse-alerts-" + "".join(c for c in request.node.name if c.isalnum())[:40] + f"-{free_port()}"
    sns, sqs = client("sns", moto_endpoint), client("sqs", moto_endpoint)
    arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
    return arn, queue_url


def received(moto_endpoint: str, queue_url: str) -> list[dict[str, Any]]:
    sqs = client("sqs", moto_endpoint)
    out: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return out
        out.extend(json.loads(m["Body"]) for m in batch)
        for m in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def test_each_new_alert_is_published_once_without_message_text(
    store: LocalStore, moto_endpoint: str, topic: tuple[str, str]
) -> None:
    arn, queue_url = topic
    notifier = SnsNotifier(client("sns", moto_endpoint), arn)
    data = upload(ROWS)
    report = ingest(store, KeywordEndpoint(), data, "a.csv", threshold=0.6, now=NOW, notifier=notifier)
    assert report.alerts == 1
    (message,) = received(moto_endpoint, queue_url)
    assert message["TopicArn"] == arn
    assert message["Subject"] == "Pulse critical alert: Crisis language in Support desk"
    body = message["Message"]
    for part in ("crisis_phrases", "severity critical", "Group: Support desk", "Participant: p1", "Alert id: "):
        assert part in body
    assert SECRET not in json.dumps(message) and "end it all" not in json.dumps(message)
    # Ingesting the same file again, or the same check-ins in another file, publishes nothing.
    ingest(store, KeywordEndpoint(), data, "a.csv", threshold=0.6, now=NOW, notifier=notifier)
    ingest(store, KeywordEndpoint(), data + b"\n", "b.csv", threshold=0.6, now=NOW, notifier=notifier)
    assert received(moto_endpoint, queue_url) == []


def test_a_manual_flag_is_published_too(store: LocalStore, moto_endpoint: str, topic: tuple[str, str]) -> None:
    arn, queue_url = topic
    ingest(store, KeywordEndpoint(), upload(ROWS[1:]), "a.csv", threshold=0.6, now=NOW)
    (checkin_id,) = read_scored(store, ["id"])["id"].tolist()
    alert = flag_urgent(store, checkin_id, "ann", notifier=SnsNotifier(client("sns", moto_endpoint), arn))
    (message,) = received(moto_endpoint, queue_url)
    assert alert.id in message["Message"] and "Flagged as urgent" in message["Subject"]


def test_a_missing_topic_is_logged_and_the_ingest_still_succeeds(
    store: LocalStore, moto_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    missing = "arn:aws:sns:us-east-1:123456789012:no-such-topic-here"
    notifier = SnsNotifier(client("sns", moto_endpoint), missing)
    with caplog.at_level(logging.WARNING, logger="services.monitoring.alerts"):
        report = ingest(store, KeywordEndpoint(), upload(ROWS), "a.csv", threshold=0.6, now=NOW, notifier=notifier)
    assert report.alerts == 1 and len(list(store.list("alerts/events/"))) == 1
    (record,) = [r for r in caplog.records if "not published" in r.getMessage()]
    assert "NotFound" in record.getMessage()
    assert SECRET not in caplog.text and "end it all" not in caplog.text


def test_an_unreachable_sns_is_logged_and_the_ingest_still_succeeds(
    store: LocalStore, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    sns = client("sns", dead, retries={"max_attempts": 1}, connect_timeout=1)
    notifier = SnsNotifier(sns, "arn:aws:sns:us-east-1:123456789012:pulse")
    rows = [*ROWS, ("p3", "Night shift", day(0), "suicidal")]
    with caplog.at_level(logging.WARNING, logger="services.monitoring.alerts"):
        report = ingest(store, KeywordEndpoint(), upload(rows), "a.csv", threshold=0.6, now=NOW, notifier=notifier)
    assert report.alerts == 2 and len(list(store.list("alerts/events/"))) == 2
    failures = [r.getMessage() for r in caplog.records if "not published" in r.getMessage()]
    # The first publish waits for the connection to fail; the next is skipped instead of waiting too.
    assert len(failures) == 2 and "EndpointConnectionError" in failures[0] and "unreachable" in failures[1]
    assert SECRET not in caplog.text


def test_the_workspace_builds_the_notifier_from_the_settings(
    bootstrap_store: LocalStore, tmp_path: Path, moto_endpoint: str, topic: tuple[str, str]
) -> None:
    """PULSE_SNS_TOPIC_ARN (and the endpoint/region settings) wire SNS into ingest, with the real model."""
    arn, queue_url = topic
    root = shutil.copytree(bootstrap_store.root, tmp_path / "ws")
    assert open_workspace(load_settings(workspace=root)).notifier is None
    settings = load_settings(workspace=root, aws_endpoint_url=moto_endpoint, sns_topic_arn=arn)
    ws = open_workspace(settings)
    assert isinstance(ws.notifier, SnsNotifier) and make_notifier(settings) is not None
    report = ingest(ws.store, ws.endpoint, upload(ROWS), "a.csv", threshold=0.6, now=NOW, notifier=ws.notifier)
    assert report.alerts >= 1
    subjects = {m["Subject"] for m in received(moto_endpoint, queue_url)}
    assert "Pulse critical alert: Crisis language in Support desk" in subjects


def test_subjects_are_short_ascii_lines() -> None:
    from services.monitoring.alerts import Alert

    alert = Alert("a" * 24, "manual", "critical", "Équipe\nnuit " + "x" * 200, "p", "t", "t", (), "r")
    subject = sns_subject(alert)
    assert subject.isascii() and "\n" not in subject and len(subject) < 100
