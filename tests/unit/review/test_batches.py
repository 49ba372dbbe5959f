"""Review items stored per ingest batch: a bounded number of writes per batch, items that leave
through a marker, unreadable lines set aside, a participant's items taken out of the parts, and the
older one-file items beside them in one queue."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.access.erasure import DeletionReport, delete_review_items
from services.checkins.overview import queue_size
from services.review import batches
from services.review.items import waiting_entries
from services.review.labeling import LabelingService
from services.review.labels import read_labels
from services.store.local import LocalStore
from tests.unit.review.test_labeling import drain, make_item, queue


class Puts:
    """A store that counts its writes by the folder they go to."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner
        self.puts: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes, **kw: Any) -> None:
        folder = "/".join(key.split("/")[:2])
        self.puts[folder] = self.puts.get(folder, 0) + 1
        self.inner.put(key, data, **kw)


def test_a_batch_costs_one_write_per_part_whatever_its_size(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batches, "PART_ITEMS", 4)
    counted = Puts(store)
    ids = queue(counted, [make_item(i) for i in range(10)], layout="parts")  # type: ignore[arg-type]
    assert counted.puts == {"review/batches": 3, "review/index": 1}
    assert sorted(store.list("review/batches/")) == [f"review/batches/b1-000{n}.jsonl" for n in range(3)]
    assert list(store.list("review/unrecognized/")) == []
    assert sorted(waiting_entries(store)) == sorted(ids)
    assert sorted(drain(LabelingService(store, double_share=0), "ann")) == sorted(ids)
    assert waiting_entries(store) == {} and sorted(batches.left_ids(store)) == sorted(ids)


def test_one_file_items_and_batch_items_are_one_queue(store: LocalStore) -> None:
    old = queue(store, [make_item(i, margin=0.2) for i in range(3)], batch="old", layout="files")
    new = queue(store, [make_item(i, margin=0.1) for i in range(3, 6)], batch="new", layout="parts")
    assert queue_size(store) == 6
    served = drain(LabelingService(store, double_share=0), "ann")
    assert served == [*new, *old]  # least sure first, whichever way they are stored
    assert {lab.item_id for _, lab in read_labels(store)} == {*old, *new}
    assert queue_size(store) == 0 and list(store.list("review/unrecognized/")) == []


def test_an_unreadable_line_is_set_aside_and_the_queue_goes_on(store: LocalStore) -> None:
    ids = queue(store, [make_item(i, margin=0.1 * i) for i in range(3)], layout="parts")
    key = "review/batches/b1-0000.jsonl"
    lines = store.get(key).decode().splitlines()
    broken = json.loads(lines[0])
    del broken["text"]
    store.put(key, ("\n".join([json.dumps(broken), *lines[1:]]) + "\n").encode())
    item = LabelingService(store).claim_next("ann")
    assert item is not None and item.id == ids[1]
    reason = json.loads(store.get(f"review/quarantine/{ids[0]}.json"))["reason"]
    assert "text" in reason
    assert ids[0] in batches.left_ids(store) and ids[0] not in waiting_entries(store)


def test_an_item_labelled_before_a_rerun_of_its_batch_stays_labelled(store: LocalStore) -> None:
    items = [make_item(i, margin=0.1 * i) for i in range(3)]
    ids = queue(store, items, layout="parts")
    svc = LabelingService(store, double_share=0)
    first = svc.claim_next("ann")
    assert first is not None
    svc.submit(first.id, "positive", "ann")
    queue(store, items, layout="parts")  # an interrupted ingest of the same batch, run again
    assert sorted(waiting_entries(store)) == sorted(set(ids) - {first.id})
    assert first.id not in drain(LabelingService(store, double_share=0), "bob")


def test_erasing_a_participant_takes_their_lines_out_of_the_parts(store: LocalStore) -> None:
    items = [make_item(i) for i in range(14)]  # participants person-0 .. person-6, two items each
    queue(store, items, layout="parts")
    svc = LabelingService(store, double_share=0)
    held = svc.claim_next("ann")  # a replica that has read (and cached) the part
    assert held is not None
    report = DeletionReport(pseudonym="x")
    gone = delete_review_items(store, "person-3", report)
    assert gone == {"c000003", "c000010"} and report.review_items == 2
    assert "person-3" not in store.get("review/batches/b1-0000.jsonl").decode()
    served = drain(svc, "ann")
    assert not gone & set(served) and len(served) + 2 == len(items)


def test_an_undone_label_brings_a_batch_item_back(store: LocalStore) -> None:
    ids = queue(store, [make_item(i, margin=0.1 * i) for i in range(2)], layout="parts")
    svc = LabelingService(store, double_share=0)
    item = svc.claim_next("ann")
    assert item is not None and item.id == ids[0]
    svc.submit(item.id, "negative", "ann")
    assert ids[0] in batches.left_ids(store)
    assert svc.undo("ann") == ids[0]
    assert ids[0] not in batches.left_ids(store) and ids[0] in waiting_entries(store)
    back = LabelingService(store, double_share=0).claim_next("ann")
    assert back is not None and back.id == ids[0]
