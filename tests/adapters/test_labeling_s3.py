"""The labeling queue on S3 (moto's server, real HTTP): concurrent replicas, and an S3 outage
in the middle of a submit."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from services.aws.s3 import S3Store
from services.errors import StoreError
from services.review.items import waiting_entries
from services.review.labeling import LabelingService
from services.review.labels import read_labels
from tests.unit.review.test_labeling import check_all_labelled_once, make_item, queue, run_annotators


@pytest.fixture
def s3_store(s3_client: Any, bucket: str) -> S3Store:
    return S3Store(s3_client, bucket, "pulse")


def test_ten_replicas_label_two_hundred_items_exactly_once_on_s3(s3_store: S3Store) -> None:
    ids = queue(s3_store, [make_item(i) for i in range(200)])
    errors = run_annotators(s3_store, 10, double_share=0.05, deadline_s=300)
    assert errors == []
    doubles = check_all_labelled_once(s3_store, ids, 0.05)
    assert len(read_labels(s3_store)) == 200 + doubles


class Outage:
    """A botocore `before-send` handler that fails PutObject of label files `fail` times (or always)."""

    def __init__(self, fail: int | None) -> None:
        self.fail = fail
        self.calls = 0

    def __call__(self, request: Any, **kwargs: Any) -> None:
        if "review/labels/" not in request.url:
            return
        self.calls += 1
        if self.fail is None or self.calls <= self.fail:
            raise EndpointConnectionError(endpoint_url=request.url)


def test_s3_down_during_submit_loses_nothing(s3_store: S3Store, s3_client: Any) -> None:
    queue(s3_store, [make_item(1)])
    svc = LabelingService(s3_store)
    item = svc.claim_next("ann")
    assert item is not None
    outage = Outage(fail=None)
    s3_client.meta.events.register("before-send.s3.PutObject", outage)
    try:
        with pytest.raises(StoreError):
            svc.submit(item.id, "positive", "ann")
    finally:
        s3_client.meta.events.unregister("before-send.s3.PutObject", outage)
    assert outage.calls >= 2  # retried before giving up
    # The annotator is told; nothing half-done: no label, the item still queued and still theirs.
    assert read_labels(s3_store) == []
    assert item.id in waiting_entries(s3_store)
    assert json.loads(s3_store.get(f"review/claims/{item.id}.json"))["annotator"] == "ann"
    # S3 is back: the same submit goes through.
    svc.submit(item.id, "positive", "ann")
    assert [(lab.item_id, lab.label) for _, lab in read_labels(s3_store)] == [(item.id, "positive")]
    assert item.id not in waiting_entries(s3_store)
    assert list(s3_store.list("review/claims/")) == []


def test_a_brief_s3_outage_during_submit_is_retried(s3_store: S3Store, s3_client: Any) -> None:
    queue(s3_store, [make_item(1)])
    svc = LabelingService(s3_store)
    item = svc.claim_next("ann")
    assert item is not None
    outage = Outage(fail=4)  # more than botocore's own 3 attempts: the service retries too
    s3_client.meta.events.register("before-send.s3.PutObject", outage)
    try:
        saved = svc.submit(item.id, "negative", "ann")
    finally:
        s3_client.meta.events.unregister("before-send.s3.PutObject", outage)
    assert outage.calls == 5
    assert [lab for _, lab in read_labels(s3_store)] == [saved]
    assert item.id not in waiting_entries(s3_store)
