"""A create-if-absent write whose answer was lost after S3 stored it, on S3 (moto's server, real
HTTP). botocore sends it again and the retry is refused 412 by the object the first attempt
stored; the store reads it back, finds its own bytes and reports the write as done, so the review
page's claim and submit go on as if nothing happened, and nothing is reported as a conflict."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Any

import pytest

from services.aws.s3 import S3Store
from services.errors import AlreadyExists
from services.review.labeling import LabelingService
from tests.faults.injection import Fault, injected
from tests.faults.test_labeling_faults import N, assert_done, label_queue
from tests.unit.review.test_labeling import make_item, queue


class ConflictsSeen(S3Store):
    """The S3 store, noting each create-if-absent write it reports as taken (`AlreadyExists`)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        super().__init__(client, bucket, prefix)
        self.conflicts: list[str] = []

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        try:
            super().put(key, data, if_absent=if_absent)
        except AlreadyExists:
            self.conflicts.append(key)
            raise


@pytest.mark.fault(
    operation="labeling (S3)",
    fault="answer lost after S3 stored a conditional write (If-None-Match), retried and refused 412",
    when="the claim, the label and the action-log write of one item",
    expected="read back: the same bytes, so the claim and submit succeed; one label per item, no conflict reported",
)
def test_a_conditional_write_that_landed_is_not_reported_as_a_conflict(
    s3_client: Any, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = ConflictsSeen(s3_client, bucket, "pulse")
    ids = queue(store, [make_item(i) for i in range(N)])
    svc = LabelingService(store, double_share=0.0)
    # The first claim, label and action-log entry: all three are written create-if-absent.
    faults = [Fault("landed", where=f"review/{part}/") for part in ("claims", "labels", "actions")]
    with ExitStack() as stack, caplog.at_level(logging.WARNING):
        for fault in faults:
            stack.enter_context(injected(s3_client, "PutObject", fault))
        errors = label_queue(svc)
    assert [fault.failed for fault in faults] == [1, 1, 1]
    assert errors == []
    assert store.conflicts == []  # before the fix: the claim, the label and the action-log entry
    # Pulse's own warnings (e.g. "could not log the label … it cannot be undone"); a library's
    # (urllib3 discarding a pooled connection under load) say nothing about the write.
    assert not [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("services")
    ]
    assert_done(store, ids)
