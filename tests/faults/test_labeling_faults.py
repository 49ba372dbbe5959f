"""Faults in the middle of labeling on S3 (moto's server, real HTTP). One annotator works through
the queue (claim, submit) as the review page does. A brief fault is retried and nobody notices; a
lasting one makes a click fail with a domain error and saves nothing half-way, and once S3 is back
the annotator's repeated click finishes the work: every item ends with exactly one label."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from services.aws.s3 import S3Store
from services.errors import StoreError
from services.review.items import ReviewItem, waiting_entries
from services.review.labeling import LabelingService
from services.review.labels import DECISIONS, labels_for_item, read_labels
from services.store.base import ObjectStore
from tests.faults.injection import Fault, injected
from tests.unit.review.test_labeling import check_all_labelled_once, make_item, queue

N = 12
WHO = "ann"
Check = Callable[[ObjectStore, ReviewItem | None, StoreError], None]


@pytest.fixture
def s3_store(s3_client: Any, bucket: str) -> S3Store:
    return S3Store(s3_client, bucket, "pulse")


@pytest.fixture
def ids(s3_store: S3Store) -> list[str]:
    return queue(s3_store, [make_item(i) for i in range(N)])


def decision(item_id: str) -> str:
    return DECISIONS[int(item_id[1:]) % len(DECISIONS)]


def label_queue(
    svc: LabelingService, fault: Fault | None = None, *, check: Check | None = None, clicks: int = 4 * N
) -> list[StoreError]:
    """Label until the queue is empty. A click that fails with a domain error is made again once S3
    is back (`fault.end()`), as the annotator would after reading the error; `check` looks at the
    store in between. Returns the errors shown."""
    errors: list[StoreError] = []
    item: ReviewItem | None = None
    for _ in range(clicks):
        try:
            if item is None:
                item = svc.claim_next(WHO)
                if item is None:
                    return errors
            svc.submit(item.id, decision(item.id), WHO)
            item = None
        except StoreError as exc:
            errors.append(exc)
            if fault is not None:
                fault.end()
            if check is not None:
                check(svc.store, item, exc)
    raise AssertionError(f"the queue was not empty after {clicks} clicks")


def assert_done(store: S3Store, ids: list[str]) -> None:
    """Exactly one label per item (the annotator's decision), nothing queued, claimed or quarantined."""
    check_all_labelled_once(store, ids, 0.0)
    assert sorted((lab.item_id, lab.label) for _, lab in read_labels(store)) == [(i, decision(i)) for i in sorted(ids)]
    assert list(store.list("review/quarantine/")) == []


def no_text(errors: list[StoreError]) -> None:
    texts = [make_item(i)["text"] for i in range(N)]
    assert not any(text in str(exc) for exc in errors for text in texts)


TRANSIENT = "retried; one label per item, nothing left queued or claimed"


@pytest.mark.fault(operation="labeling (S3)", fault="{kind}", when="one {operation}, mid-labeling", expected=TRANSIENT)
@pytest.mark.parametrize(
    ("operation", "kind"),
    [("PutObject", k) for k in ("throttle", "500", "reset", "landed")]
    + [("GetObject", k) for k in ("throttle", "500", "reset")],
)
def test_a_brief_fault_is_retried_and_every_item_gets_one_label(
    operation: str, kind: str, s3_store: S3Store, s3_client: Any, ids: list[str]
) -> None:
    svc = LabelingService(s3_store, double_share=0.0)
    # Per item: PUT claim, label, action log; GET item, claim, item. #5 falls on the second item
    # (for PutObject its label, written create-if-absent: after "landed" the retry finds it there).
    with injected(s3_client, operation, Fault(kind, start=5)) as fault:
        errors = label_queue(svc)
    assert fault.failed == 1 and errors == []
    assert_done(s3_store, ids)


def _consistent(store: ObjectStore, item: ReviewItem | None, exc: StoreError) -> None:
    """Nothing half-done: an item has a label exactly when it has left the queue."""
    queued = set(waiting_entries(store))
    labelled = {lab.item_id for _, lab in read_labels(store)}
    assert not queued & labelled
    assert queued | labelled == {make_item(i)["id"] for i in range(N)}


def _label_write_refused(store: ObjectStore, item: ReviewItem | None, exc: StoreError) -> None:
    """The submit that failed saved nothing: no label, the item still queued and still theirs."""
    _consistent(store, item, exc)
    assert item is not None
    assert labels_for_item(store, item.id) == []
    assert json.loads(store.get(f"review/claims/{item.id}.json"))["annotator"] == WHO


def _claim_refused(store: ObjectStore, item: ReviewItem | None, exc: StoreError) -> None:
    """The click that failed was a claim: no item shown, nothing labelled half-way."""
    assert item is None
    _consistent(store, item, exc)


LASTING = {
    # where: (operation, URL part, the first call that fails, what the failed click left)
    "label writes": ("PutObject", "review/labels/", 3, _label_write_refused),
    "claim writes": ("PutObject", "review/claims/", 3, _claim_refused),
    # a claim checks its item's left marker (a one-key listing on S3) before reading it
    "item reads": ("ListObjectsV2", "review%2Fleft%2F", 3, _claim_refused),
}


@pytest.mark.fault(
    operation="labeling (S3)",
    fault="{kind}",
    when="{where} from the 3rd on, until S3 is back",
    expected="the click fails with a StoreError, nothing half-saved; repeated: one label per item",
)
@pytest.mark.parametrize("kind", ["throttle", "500", "reset"])
@pytest.mark.parametrize("where", list(LASTING))
def test_a_lasting_fault_fails_the_click_and_repeating_it_finishes_the_work(
    where: str, kind: str, s3_store: S3Store, s3_client: Any, ids: list[str]
) -> None:
    operation, part, start, check = LASTING[where]
    svc = LabelingService(s3_store, double_share=0.0)
    with injected(s3_client, operation, Fault(kind, start=start, count=None, where=part)) as fault:
        errors = label_queue(svc, fault, check=check)
    assert len(errors) == 1 and fault.failed >= 3  # the client's attempts, and the service's own for a reset
    no_text(errors)
    assert_done(s3_store, ids)


@pytest.mark.fault(
    operation="labeling (S3)",
    fault="connection reset after S3 stored the label, then S3 unreachable",
    when="a label write, until S3 is back",
    expected="the submit fails with a StoreError; repeated: one label per item",
)
def test_a_label_stored_before_the_connection_dropped_is_not_stored_twice(
    s3_store: S3Store, s3_client: Any, ids: list[str]
) -> None:
    svc = LabelingService(s3_store, double_share=0.0)
    outage = Fault("landed", start=3, count=1, where="review/labels/", then="reset")
    with injected(s3_client, "PutObject", outage) as fault:
        errors = label_queue(svc, fault)
    assert len(errors) == 1 and fault.failed >= 2  # the stored write, then the attempts S3 never saw
    no_text(errors)
    assert_done(s3_store, ids)
