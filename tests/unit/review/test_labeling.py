"""The annotators' queue (services.labeling) on the local store: order, claims and leases, skip,
undo, double labels, bad input, and 20 replicas labelling 1,000 items at once."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.errors import ClaimLost, PulseError, StoreUnavailable
from services.model.prediction import Prediction
from services.review.agreement import cohen_kappa, needs_two
from services.review.batches import write_parts
from services.review.items import text_key, waiting_entries
from services.review.labeling import LabelingService
from services.review.labels import DECISIONS, Label, labels_for_item, read_labels, save_label
from services.review.queue import SPREAD
from services.review.rerank import rerank_queue
from services.store.base import ObjectStore
from services.store.local import LocalStore
from tests.conftest import queued

START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def make_item(
    i: int, *, margin: float | None = None, group: str | None = None, text: str | None = None
) -> dict[str, Any]:
    """One queued item as ingest writes it (probs give the margin)."""
    m = 0.5 * ((i * 37) % 100) / 100 if margin is None else margin
    top = (1.0 + m) / 3 + m / 3  # top - second == m, the rest for the third class
    second = top - m
    probs = {"negative": round(top, 6), "neutral": round(second, 6), "positive": round(max(0.0, 1 - top - second), 6)}
    return {
        "id": f"c{i:06d}",
        "line": f"__label__negative message {i}",
        "text": text if text is not None else f"message number {i}",
        "predicted_label": "negative",
        "confidence": probs["negative"],
        "probs": probs,
        "model_version": "m1",
        "time": (START + timedelta(minutes=i)).isoformat(),
        "participant": f"person-{i % 7}",
        "group": group if group is not None else f"g{i % 3}",
        "batch": "b1",
        "queued_at": START.isoformat(),
    }


LAYOUTS = ("parts", "files")  # batch parts, as ingest writes them now; one file per item, as it used to
LAYOUT = {"now": "parts"}


@pytest.fixture(autouse=True, params=LAYOUTS)
def layout(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs on both ways a queue is stored (both live side by side in a workspace)."""
    LAYOUT["now"] = request.param
    yield request.param
    LAYOUT["now"] = "parts"


def queue(
    store: ObjectStore,
    items: Iterable[dict[str, Any]],
    *,
    batch: str = "b1",
    index: bool = True,
    layout: str | None = None,
) -> list[str]:
    """Queue items like ingest does (batch parts and one index file; or, in the older layout, one
    file per item); the ids in the order given."""
    items = list(items)
    parts = [""] * len(items)
    if (layout or LAYOUT["now"]) == "parts":
        parts = write_parts(store, batch, items)
    else:

        def put(item: dict[str, Any]) -> None:
            store.put(f"review/unrecognized/{item['id']}.json", json.dumps(item, ensure_ascii=False).encode())

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(put, items))
    if index and items:
        rows = []
        for item, part in zip(items, parts, strict=True):
            top = sorted(item["probs"].values(), reverse=True)
            rows.append(
                {
                    "id": item["id"],
                    "confidence": item["confidence"],
                    "margin": round(top[0] - top[1], 4),
                    "group": item["group"],
                    "time": item["time"],
                    "text_key": text_key(item["text"]),
                    "part": part,
                }
            )
        body = "\n".join(json.dumps(r) for r in rows) + "\n"
        store.put(f"review/index/{batch}.jsonl", body.encode())
    return [item["id"] for item in items]


def is_queued(store: ObjectStore, item_id: str) -> bool:
    return item_id in waiting_entries(store)


class Clock:
    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def drain(svc: LabelingService, annotator: str, **kw: Any) -> list[str]:
    """Claim and label everything this annotator can get; the ids in the order served."""
    seen = []
    while (item := svc.claim_next(annotator, **kw)) is not None:
        seen.append(item.id)
        svc.submit(item.id, "neutral", annotator)
    return seen


# ------------------------------------------------------------------------- order


def test_uncertain_order_serves_the_smallest_margin_first(store: LocalStore) -> None:
    margins = [0.30, 0.05, 0.50, 0.01, 0.20]
    ids = queue(store, [make_item(i, margin=m) for i, m in enumerate(margins)])
    served = drain(LabelingService(store, double_share=0), "ann")
    assert served == [ids[i] for i in (3, 1, 4, 0, 2)]


def test_oldest_order_follows_the_checkin_time(store: LocalStore) -> None:
    items = [make_item(i, margin=0.1 * (5 - i)) for i in range(5)]  # newest is least sure
    items.reverse()  # written newest first
    ids = queue(store, items)
    served = drain(LabelingService(store, double_share=0), "ann", order="oldest")
    assert served == sorted(ids)


def test_random_order_is_fixed_and_ignores_margin_and_time(store: LocalStore) -> None:
    ids = queue(store, [make_item(i, margin=0.01 * i) for i in range(30)])
    served = drain(LabelingService(store, double_share=0), "ann", order="random")
    assert sorted(served) == sorted(ids)
    assert served != sorted(ids) and served != ids  # neither by time nor by margin
    assert served == sorted(ids, key=lambda i: hashlib.sha256(i.encode()).digest())  # the same on every replica


def test_group_order_serves_only_that_group(store: LocalStore) -> None:
    queue(store, [make_item(i, group=("north" if i % 2 else "south")) for i in range(6)])
    svc = LabelingService(store, double_share=0)
    served = drain(svc, "ann", order="group", group="north")
    assert served and all(
        json.loads(store.get(f"review/labels/{i}/" + _one(store, i)))["group"] == "north" for i in served
    )
    assert len(served) == 3
    assert svc.claim_next("ann", order="uncertain") is not None  # the south items are still there
    with pytest.raises(ValueError, match="group"):
        svc.claim_next("ann", order="group")


def _one(store: ObjectStore, item_id: str) -> str:
    keys = list(store.list(f"review/labels/{item_id}/"))
    assert len(keys) == 1
    return keys[0].rsplit("/", 1)[-1]


def test_new_index_files_are_picked_up(store: LocalStore) -> None:
    queue(store, [make_item(1, margin=0.4)], batch="b1")
    svc = LabelingService(store, double_share=0, refresh_seconds=0)
    first = svc.claim_next("ann")
    assert first is not None
    svc.submit(first.id, "positive", "ann")
    queue(store, [make_item(2, margin=0.1)], batch="b2")
    nxt = svc.claim_next("ann")
    assert nxt is not None and nxt.id == "c000002"


def test_without_any_index_the_items_are_listed_once(store: LocalStore) -> None:
    ids = queue(store, [make_item(i, margin=0.1 * i) for i in range(3)], index=False, layout="files")
    assert drain(LabelingService(store, double_share=0), "ann") == ids  # batch parts always have an index


def test_empty_queue_gives_none(store: LocalStore) -> None:
    svc = LabelingService(store)
    assert svc.claim_next("ann") is None
    assert svc.stats("ann")["queue_left"] == 0


# ------------------------------------------------------------------------- claims and leases


def test_two_replicas_never_hold_the_same_item(store: LocalStore) -> None:
    queue(store, [make_item(i) for i in range(2)])
    one, two = LabelingService(store), LabelingService(store)
    a = one.claim_next("ann")
    b = two.claim_next("bob")
    assert a is not None and b is not None and a.id != b.id
    assert LabelingService(store).claim_next("cid") is None  # both held
    claims = {json.loads(store.get(k))["annotator"] for k in store.list("review/claims/")}
    assert claims == {"ann", "bob"}


def test_a_held_claim_is_returned_again_with_a_longer_lease(store: LocalStore) -> None:
    queue(store, [make_item(i) for i in range(3)])
    clock = Clock()
    svc = LabelingService(store, clock=clock, lease_seconds=60)
    first = svc.claim_next("ann")
    assert first is not None
    clock.now += 30
    again = svc.claim_next("ann")
    assert again is not None and again.id == first.id
    assert again.claim_expires_at == pytest.approx(clock.now + 60)
    other_replica = LabelingService(store, clock=clock, lease_seconds=60).claim_next("ann")
    assert other_replica is not None and other_replica.id == first.id  # resumed, not a second claim
    assert len(list(store.list("review/claims/"))) == 1


def test_an_expired_lease_returns_the_item_to_the_queue(store: LocalStore) -> None:
    queue(store, [make_item(1)])
    clock = Clock()
    ann = LabelingService(store, clock=clock, lease_seconds=300)
    bob = LabelingService(store, clock=clock, lease_seconds=300)
    item = ann.claim_next("ann")
    assert item is not None
    assert bob.claim_next("bob") is None
    clock.now += 301
    taken = bob.claim_next("bob")
    assert taken is not None and taken.id == item.id and taken.claimed_by == "bob"
    with pytest.raises(ClaimLost, match="does not hold"):
        ann.submit(item.id, "positive", "ann")
    assert read_labels(store) == []
    bob.submit(item.id, "negative", "bob")
    assert [lab.annotator for _, lab in read_labels(store)] == ["bob"]


def test_only_one_contender_takes_over_an_expired_lease(store: LocalStore) -> None:
    queue(store, [make_item(1)])
    clock = Clock()
    assert LabelingService(store, clock=clock).claim_next("ann") is not None
    clock.now += 1000
    replicas = [LabelingService(store, clock=clock) for _ in range(8)]
    barrier = threading.Barrier(8)

    def grab(i: int) -> str | None:
        barrier.wait()
        got = replicas[i].claim_next(f"p{i}")
        return got.id if got else None

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(grab, range(8)))
    assert sum(r is not None for r in results) == 1


def test_a_submit_after_the_lease_expired_is_refused_and_writes_nothing(store: LocalStore) -> None:
    queue(store, [make_item(1)])
    clock = Clock()
    svc = LabelingService(store, clock=clock, lease_seconds=10)
    item = svc.claim_next("ann")
    assert item is not None
    clock.now += 11
    with pytest.raises(ClaimLost, match="expired") as err:
        svc.submit(item.id, "positive", "ann")
    assert isinstance(err.value, PulseError)
    assert list(store.list("review/labels/")) == []
    assert is_queued(store, item.id)
    assert list(store.list("review/actions/")) == []


def test_submitting_an_item_never_claimed_is_refused(store: LocalStore) -> None:
    queue(store, [make_item(1)])
    with pytest.raises(ClaimLost, match="nobody"):
        LabelingService(store).submit("c000001", "positive", "ann")
    assert list(store.list("review/labels/")) == []


# ------------------------------------------------------------------------- skip and undo


def test_a_skipped_item_comes_back_after_all_the_others(store: LocalStore) -> None:
    ids = queue(store, [make_item(i, margin=0.1 * i) for i in range(4)])
    svc = LabelingService(store, double_share=0)
    first = svc.claim_next("ann")
    assert first is not None and first.id == ids[0]
    svc.skip(first.id, "ann")
    assert store.exists(f"review/skips/ann/{ids[0]}.json")
    assert list(store.list("review/claims/")) == []
    # another annotator is not affected by ann's skip
    bob = LabelingService(store, double_share=0).claim_next("bob")
    assert bob is not None and bob.id == ids[0]
    LabelingService(store).skip(bob.id, "bob")
    # a fresh replica knows ann's skip from the store
    assert drain(LabelingService(store, double_share=0), "ann") == [*ids[1:], ids[0]]
    assert not store.exists(f"review/skips/ann/{ids[0]}.json")


def test_undo_of_a_label_retracts_it_and_puts_the_item_back(store: LocalStore) -> None:
    ids = queue(store, [make_item(i, margin=0.1 * i) for i in range(3)])
    svc = LabelingService(store, double_share=0)
    item = svc.claim_next("ann")
    assert item is not None
    svc.submit(item.id, "positive", "ann", seconds=2.5)
    assert not is_queued(store, item.id)
    nxt = svc.claim_next("ann")  # the annotator already sees the next one
    assert nxt is not None and nxt.id == ids[1]
    assert svc.undo("ann") == item.id
    assert is_queued(store, item.id)
    assert read_labels(store) == []  # retracted: the label file stays, but no longer counts
    assert len(list(store.list(f"review/labels/{item.id}/"))) == 1
    claims = {k.rsplit("/", 1)[-1]: json.loads(store.get(k))["annotator"] for k in store.list("review/claims/")}
    assert claims == {f"{item.id}.json": "ann"}  # re-claimed for ann, the next one released
    back = LabelingService(store, double_share=0).claim_next("ann")  # another replica resumes it
    assert back is not None and back.id == item.id
    svc.submit(item.id, "negative", "ann")
    assert [(lab.item_id, lab.label) for _, lab in read_labels(store)] == [(item.id, "negative")]
    assert svc.stats("ann")["labelled_today_by_me"] == 1
    # another replica, built before the undo, sees the re-queued item through the new index file
    assert [k for k in store.list("review/index/") if "undo" in k]


class Counting:
    """A store that counts calls by operation (and create-if-absent puts apart)."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}
        self.keys: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kw: Any) -> Any:
            key = str(args[0]) if args else ""
            tag = f"{name}:{key.split('/')[1] if '/' in key else ''}"
            self.calls[tag] = self.calls.get(tag, 0) + 1
            self.keys.append((name, key))
            return attr(*args, **kw)

        return call


def test_an_item_put_back_by_undo_returns_on_a_replica_that_saw_it_leave(store: LocalStore) -> None:
    ids = queue(store, [make_item(i, margin=0.1 * i) for i in range(3)])
    a, b = LabelingService(store, double_share=0), LabelingService(store, double_share=0, refresh_seconds=0)
    first = a.claim_next("ann")
    assert first is not None and first.id == ids[0]
    a.submit(first.id, "positive", "ann")
    seen = b.claim_next("bob")  # b finds ids[0] gone, serves ids[1]
    assert seen is not None and seen.id == ids[1]
    b.submit(seen.id, "neutral", "bob")
    assert a.undo("ann") == first.id  # back in the queue, claimed again by ann
    a.skip(first.id, "ann")  # ...who passes it on
    again = b.claim_next("bob")
    assert again is not None and again.id == first.id


def test_items_labelled_elsewhere_are_learnt_from_one_listing(store: LocalStore, layout: str) -> None:
    ids = queue(store, [make_item(i, margin=0.001 * i) for i in range(60)])
    counting = Counting(store)
    late = LabelingService(counting, double_share=0, refresh_seconds=0)  # type: ignore[arg-type]
    assert drain(LabelingService(store, double_share=0), "ann")[:40] == ids[:40]  # all labelled elsewhere
    queue(store, [make_item(i, margin=0.5) for i in range(100, 110)], batch="b2")  # after the gone ones
    counting.calls.clear()
    item = late.claim_next("bob")
    assert item is not None and item.id.startswith("c0001")
    # A batch item is known gone by its left marker, a one-file item by its missing file.
    where = "left" if layout == "parts" else "unrecognized"
    assert counting.calls.get(f"exists:{where}", 0) == 2 + 1  # two found gone one by one, a listing, then one
    assert counting.calls.get(f"list:{where}", 0) == 1


def test_claims_of_others_are_passed_over_without_a_failed_claim(store: LocalStore) -> None:
    queue(store, [make_item(i, margin=0.01 * i) for i in range(40)])
    others = [LabelingService(store, double_share=0) for _ in range(5)]
    held = {item.id for n, svc in enumerate(others) if (item := svc.claim_next(f"ann{n}")) is not None}
    assert len(held) == 5
    counting = Counting(store)
    svc = LabelingService(counting, double_share=0, refresh_seconds=60)  # type: ignore[arg-type]
    first = svc.claim_next("bob")  # new here: reads the five claims once (is one of them bob's?)
    assert first is not None and first.id not in held
    claimed = [key for op, key in counting.keys if op == "put" and key.startswith("review/claims/")]
    assert claimed == [f"review/claims/{first.id}.json"]  # no failed claim on the items held
    svc.submit(first.id, "neutral", "bob")
    extra = LabelingService(store, double_share=0).claim_next("cat")  # taken after bob's listing
    assert extra is not None
    counting.keys.clear()
    second = svc.claim_next("bob")
    assert second is not None and second.id not in held | {first.id, extra.id}
    claimed = [key for op, key in counting.keys if op == "put" and key.startswith("review/claims/")]
    assert len(claimed) <= 2 and not [k for k in claimed if any(h in k for h in held)]


def test_a_claim_held_on_another_replica_is_resumed_even_behind_free_items(store: LocalStore) -> None:
    ids = queue(store, [make_item(i, margin=0.3 + 0.01 * i) for i in range(5)])
    mine = LabelingService(store, double_share=0).claim_next("ann")
    assert mine is not None and mine.id == ids[0]
    queue(store, [make_item(i, margin=0.01 * (i - 100)) for i in range(100, 105)], batch="b2")  # less sure
    elsewhere = LabelingService(store, double_share=0).claim_next("ann")  # the page reloaded on replica 2
    assert elsewhere is not None and elsewhere.id == ids[0]
    assert len(list(store.list("review/claims/"))) == 1


def test_under_contention_replicas_spread_over_the_head_of_the_queue(store: LocalStore) -> None:
    queue(store, [make_item(i, margin=0.001 * i) for i in range(200)])
    replicas = [LabelingService(store, double_share=0, refresh_seconds=0) for _ in range(8)]
    for svc in replicas:
        svc.claims.contended_until = time.monotonic() + 60  # as after a claim lost to another annotator
    got = [svc.claim_next(f"ann{n}") for n, svc in enumerate(replicas)]
    ids = [g.id for g in got if g is not None]
    assert len(set(ids)) == 8  # never the same item twice
    assert all(int(i[1:]) < SPREAD + 4 * 8 + 8 for i in ids)  # still from the least sure items of 200


class LabelLandsThenOutage:
    """The first label write is stored but its answer is lost, and the store stays unreachable for
    the retries that follow (the submit fails although its label is saved)."""

    def __init__(self, inner: ObjectStore, failures: int = 3) -> None:
        self.inner, self.failures = inner, failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, body: bytes, **kw: Any) -> None:
        if key.startswith("review/labels/") and self.failures:
            self.failures -= 1
            if self.failures == 2:
                self.inner.put(key, body, **kw)
            raise StoreUnavailable("the store did not answer")
        self.inner.put(key, body, **kw)


@pytest.mark.parametrize("again", ["positive", "negative"])
def test_a_submit_repeated_after_a_lost_answer_stores_one_label(store: LocalStore, again: str) -> None:
    ids = queue(store, [make_item(i) for i in range(2)])
    flaky = LabelLandsThenOutage(store)
    svc = LabelingService(flaky, double_share=0)  # type: ignore[arg-type]
    item = svc.claim_next("ann")
    assert item is not None
    with pytest.raises(StoreUnavailable):
        svc.submit(item.id, "positive", "ann")
    assert len(labels_for_item(store, item.id)) == 1  # stored although the submit failed
    svc.submit(item.id, again, "ann")  # the annotator presses the key again (or another one)
    assert [lab.label for _, lab in labels_for_item(store, item.id)] == [again]
    assert not is_queued(store, item.id)
    assert svc.undo("ann") == item.id  # undo withdraws the label that counts: the item is back
    assert labels_for_item(store, item.id) == [] and is_queued(store, item.id)
    assert set(ids) >= {item.id}


def test_undo_of_a_skip_forgets_it(store: LocalStore) -> None:
    ids = queue(store, [make_item(i, margin=0.1 * i) for i in range(3)])
    svc = LabelingService(store, double_share=0)
    item = svc.claim_next("ann")
    assert item is not None
    svc.skip(item.id, "ann")
    assert svc.undo("ann") == ids[0]
    assert not store.exists(f"review/skips/ann/{ids[0]}.json")
    again = svc.claim_next("ann")
    assert again is not None and again.id == ids[0]
    assert svc.undo("ann") is None  # the skip was the only action, and it is undone


def test_undo_with_nothing_to_undo(store: LocalStore) -> None:
    assert LabelingService(store).undo("ann") is None


def test_undo_walks_back_more_than_one_action(store: LocalStore) -> None:
    ids = queue(store, [make_item(i, margin=0.1 * i) for i in range(3)])
    svc = LabelingService(store, double_share=0)
    drain(svc, "ann")
    assert [svc.undo("ann") for _ in range(4)] == [ids[2], ids[1], ids[0], None]
    assert read_labels(store) == []
    assert sorted(waiting_entries(store)) == sorted(ids)


# ------------------------------------------------------------------------- double labels and agreement


def test_double_share_needs_two_different_annotators(store: LocalStore) -> None:
    queue(store, [make_item(1)])
    ann = LabelingService(store, double_share=1.0)
    item = ann.claim_next("ann")
    assert item is not None
    ann.submit(item.id, "positive", "ann")
    assert is_queued(store, item.id)  # still needs a second label
    assert ann.claim_next("ann") is None
    assert LabelingService(store, double_share=1.0).claim_next("ann") is None  # not on another replica either
    bob = LabelingService(store, double_share=1.0)
    second = bob.claim_next("bob")
    assert second is not None and second.id == item.id
    bob.submit(item.id, "positive", "bob")
    assert not is_queued(store, item.id)
    assert sorted(lab.annotator for _, lab in labels_for_item(store, item.id)) == ["ann", "bob"]


def test_needs_two_is_deterministic_and_near_the_share() -> None:
    ids = [f"c{i:06d}" for i in range(20_000)]
    share = sum(needs_two(i, 0.05) for i in ids) / len(ids)
    assert 0.04 < share < 0.06
    assert [needs_two(i, 0.05) for i in ids[:200]] == [needs_two(i, 0.05) for i in ids[:200]]
    assert not any(needs_two(i, 0.0) for i in ids[:100]) and all(needs_two(i, 1.0) for i in ids[:100])


def test_a_disagreement_is_kept_and_reported(store: LocalStore) -> None:
    queue(store, [make_item(1)])
    for who, label in (("ann", "positive"), ("bob", "negative")):
        svc = LabelingService(store, double_share=1.0)
        item = svc.claim_next(who)
        assert item is not None
        svc.submit(item.id, label, who)
    labels = sorted((lab.annotator, lab.label) for _, lab in read_labels(store))
    assert labels == [("ann", "positive"), ("bob", "negative")]
    kappa, disagreements = LabelingService(store).agreement()
    assert disagreements == [
        {
            "item_id": "c000001",
            "text": "message number 1",
            "labels": ["positive", "negative"],
            "annotators": ["ann", "bob"],
        }
    ]
    assert kappa is not None


def test_kappa_on_a_hand_computed_example(store: LocalStore) -> None:
    # 10 items: both positive 4, both negative 3, ann pos / bob neg 2, ann neg / bob pos 1.
    # p_o = 0.7; ann 6 pos 4 neg, bob 5 pos 5 neg: p_e = .6*.5 + .4*.5 = 0.5; kappa = (.7-.5)/.5 = 0.4
    pairs = [("positive", "positive")] * 4 + [("negative", "negative")] * 3
    pairs += [("positive", "negative")] * 2 + [("negative", "positive")]
    for n, (a, b) in enumerate(pairs):
        for who, label, minute in (("ann", a, 0), ("bob", b, 1)):
            at = (START + timedelta(hours=n, minutes=minute)).isoformat()
            save_label(store, Label(f"i{n}", f"text {n}", label, who, at))
    kappa, disagreements = LabelingService(store).agreement()
    assert kappa == pytest.approx(0.4)
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert sorted(d["item_id"] for d in disagreements) == ["i7", "i8", "i9"]
    assert cohen_kappa([]) is None


def hand_written_kappa(pairs: list[tuple[str, str]]) -> float:
    """The formula `cohen_kappa` used before it called scikit-learn: (p_o - p_e) / (1 - p_e)."""
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    categories = {a for a, _ in pairs} | {b for _, b in pairs}
    expected = sum((sum(a == c for a, _ in pairs) / n) * (sum(b == c for _, b in pairs) / n) for c in categories)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


@pytest.mark.parametrize("seed", range(20))
def test_scikit_learn_kappa_is_the_hand_written_formula(seed: int) -> None:
    import random

    rng = random.Random(seed)
    labels = rng.choice([list(DECISIONS), ["positive", "negative"], ["neutral"]])
    pairs = [(rng.choice(labels), rng.choice(labels)) for _ in range(rng.randint(1, 40))]
    assert cohen_kappa(pairs) == pytest.approx(hand_written_kappa(pairs), abs=1e-12)


# ------------------------------------------------------------------------- bad input


def test_a_label_outside_the_set_is_refused(store: LocalStore) -> None:
    queue(store, [make_item(1)])
    svc = LabelingService(store)
    item = svc.claim_next("ann")
    assert item is not None
    with pytest.raises(ValueError, match="negative, neutral, positive, unclear"):
        svc.submit(item.id, "happy", "ann")
    assert list(store.list("review/labels/")) == []
    assert svc.claim_next("ann") is not None  # still held
    svc.submit(item.id, "unclear", "ann")
    assert [lab.label for _, lab in read_labels(store)] == ["unclear"]


def test_corrupt_and_old_format_items_are_quarantined_and_the_queue_goes_on(store: LocalStore) -> None:
    queue(store, [make_item(i, margin=0.1 * i) for i in range(3)], layout="files")
    store.put("review/unrecognized/c000000.json", b"{not json")
    old = make_item(1)
    del old["predicted_label"], old["participant"]
    store.put("review/unrecognized/c000001.json", json.dumps(old).encode())
    svc = LabelingService(store)
    item = svc.claim_next("ann")
    assert item is not None and item.id == "c000002"
    reasons = {k: json.loads(store.get(k))["reason"] for k in store.list("review/quarantine/")}
    assert "JSON" in reasons["review/quarantine/c000000.json"]
    assert "predicted_label" in reasons["review/quarantine/c000001.json"]
    assert json.loads(store.get("review/quarantine/c000000.json"))["original"] == "{not json"
    assert not store.exists("review/unrecognized/c000000.json")
    assert not store.exists("review/unrecognized/c000001.json")
    assert list(store.list("review/claims/")) == ["review/claims/c000002.json"]


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert('x')</script><b>bold</b> &amp;",
        "# title\n**bold** [link](http://x) `code` | a | b |",
        "long " * 2000,
    ],
)
def test_markup_and_long_texts_are_kept_as_is(store: LocalStore, text: str) -> None:
    queue(store, [make_item(1, text=text)])
    svc = LabelingService(store)
    item = svc.claim_next("ann")
    assert item is not None and item.text == text
    saved = svc.submit(item.id, "neutral", "ann")
    assert saved.text == text
    assert [lab.text for _, lab in read_labels(store)] == [text]


def test_annotator_must_have_a_name(store: LocalStore) -> None:
    with pytest.raises(ValueError, match="annotator"):
        LabelingService(store).claim_next("  ")


# ------------------------------------------------------------------------- privacy, stats


def test_the_pseudonym_is_stable_and_never_the_participant_id(store: LocalStore) -> None:
    queue(store, [make_item(i) for i in range(8)])  # participants person-0 .. person-6
    first = LabelingService(store).claim_next("ann")
    again = LabelingService(store).claim_next("ann")
    assert first is not None and again is not None and first.pseudonym == again.pseudonym
    fields = asdict(first)
    assert "participant" not in fields
    participant = queued(store)[first.id]["participant"]
    assert participant not in repr(first) and participant not in first.pseudonym
    svc = LabelingService(store)
    assert svc.pseudonym("person-1") != svc.pseudonym("person-2")
    assert LabelingService(store, pseudonym_key=b"other").pseudonym("person-1") != svc.pseudonym("person-1")
    assert LabelingService(LocalStore(store.root / "x")).pseudonym("person-1") != svc.pseudonym("person-1")


def test_stats_count_the_queue_todays_labels_and_claims(store: LocalStore) -> None:
    queue(store, [make_item(i) for i in range(5)])
    clock = Clock()
    ann, bob = LabelingService(store, clock=clock, double_share=0), LabelingService(store, clock=clock, double_share=0)
    for _ in range(2):
        item = ann.claim_next("ann")
        assert item is not None
        ann.submit(item.id, "positive", "ann")
    item = bob.claim_next("bob")
    assert item is not None
    bob.submit(item.id, "negative", "bob")
    assert bob.claim_next("bob") is not None
    stats = ann.stats("ann")
    assert stats["labelled_today"] == 3 and stats["labelled_today_by_me"] == 2
    assert stats["claimed_now"] == 1
    assert ann.stats(exact=True)["queue_left"] == 2
    clock.now += 86_400
    assert ann.stats("ann")["labelled_today"] == 0


# ------------------------------------------------------------------------- concurrency


def run_annotators(
    store: ObjectStore, n_threads: int, *, double_share: float, deadline_s: float
) -> list[BaseException]:
    """`n_threads` annotators, each on its own service (a replica), label until the queue is empty."""
    errors: list[BaseException] = []
    labels = ("negative", "neutral", "positive", "unclear")

    def work(n: int) -> None:
        svc = LabelingService(store, double_share=double_share, refresh_seconds=0.5)
        who = f"annotator-{n:02d}"
        end = time.monotonic() + deadline_s
        try:
            while time.monotonic() < end:
                item = svc.claim_next(who)
                if item is None:
                    if not waiting_entries(store):
                        return
                    time.sleep(0.2)
                    continue
                svc.submit(item.id, labels[hash((item.id, who)) % 4], who)
            raise TimeoutError(f"{who} still working after {deadline_s} s")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def check_all_labelled_once(store: ObjectStore, ids: list[str], double_share: float) -> int:
    """Every item has exactly the labels it needs, nothing is left queued or claimed; the double count."""
    by_item: dict[str, list[Label]] = {}
    for _, lab in read_labels(store):
        by_item.setdefault(lab.item_id, []).append(lab)
    assert set(by_item) == set(ids)
    doubles = 0
    for item_id in ids:
        who = [lab.annotator for lab in by_item[item_id]]
        if needs_two(item_id, double_share):
            doubles += 1
            assert len(who) == 2 and len(set(who)) == 2, (item_id, who)
        else:
            assert len(who) == 1, (item_id, who)
    assert waiting_entries(store) == {}
    assert list(store.list("review/claims/")) == []
    return doubles


def test_twenty_replicas_label_a_thousand_items_exactly_once(store: LocalStore) -> None:
    ids = queue(store, [make_item(i) for i in range(1000)])
    errors = run_annotators(store, 20, double_share=0.05, deadline_s=240)
    assert errors == []
    doubles = check_all_labelled_once(store, ids, 0.05)
    assert 20 <= doubles <= 90  # about 5 %
    assert len(read_labels(store)) == 1000 + doubles
    assert LabelingService(store).stats(exact=True)["queue_left"] == 0


def test_asking_for_another_group_releases_the_held_item(store: LocalStore) -> None:
    queue(store, [make_item(i, group=g, margin=0.3) for i, g in enumerate(["Alpha", "Alpha", "Beta"])])
    service = LabelingService(store)
    assert service.queue_groups() == {"Alpha": 2, "Beta": 1}
    first = service.claim_next("ann", "group", "Alpha")
    assert first is not None and first.group == "Alpha"
    again = service.claim_next("ann", "group", "Alpha")
    assert again is not None and again.id == first.id  # the held item comes back
    beta = service.claim_next("ann", "group", "Beta")
    assert beta is not None and beta.group == "Beta"
    other = LabelingService(store).claim_next("bob", "group", "Alpha")
    assert other is not None and other.id == first.id  # released, so someone else can take it


def test_pseudonyms_use_a_random_workspace_key_made_once(store: LocalStore) -> None:
    first, second = LabelingService(store), LabelingService(store)
    assert first.pseudonym("alice") == second.pseudonym("alice") != first.pseudonym("bob")
    key = store.get("settings/pseudonym.key")
    assert len(key) == 32
    # Not derivable from anything public about the workspace: another workspace gets another key.
    other = LocalStore(store.root.parent / "other-ws")
    assert LabelingService(other).pseudonym("alice") != first.pseudonym("alice")
    # A configured key wins over the stored one.
    assert LabelingService(store, pseudonym_key=b"k" * 32).pseudonym("alice") != first.pseudonym("alice")


# ------------------------------------------------------------------------- re-rank


class _Scorer:
    """An endpoint that is surest about texts with more words (and names its version)."""

    def __init__(self, version: str = "v2") -> None:
        self.served = version
        self.refreshed = 0

    def refresh(self) -> None:
        self.refreshed += 1

    def preprocessing(self) -> str:
        return "pulse-v2"

    def score(self, prepared: list[str]) -> tuple[str, list[Prediction]]:
        out = []
        for text in prepared:
            sure = min(0.98, 0.34 + 0.1 * len(text.split()))
            rest = (1 - sure) / 2
            out.append(Prediction("positive", sure, {"negative": rest, "neutral": rest, "positive": sure}))
        return self.served, out


def test_rerank_orders_the_queue_by_the_live_model(store: LocalStore) -> None:
    items = [make_item(i, margin=0.01 * i) for i in range(4)]  # the ingest model: item 0 least sure
    for i, item in enumerate(items):
        item["text"] = " ".join(["word"] * (i + 1) * 2)  # the new model is least sure of the fewest words
    items.reverse()
    ids = queue(store, items)
    scorer = _Scorer()
    assert rerank_queue(store, scorer, version="v2") == 4 and scorer.refreshed == 1
    served = drain(LabelingService(store, double_share=0), "ann")
    # fewest words = least sure now, whatever the margins written at ingest
    assert served == [item["id"] for item in sorted(items, key=lambda it: len(it["text"]))]
    assert sorted(served) == sorted(ids)


def test_rerank_is_read_by_a_replica_that_already_built_its_queue(store: LocalStore) -> None:
    items = [make_item(i, margin=0.01 * i) for i in range(4)]
    for i, item in enumerate(items):
        item["text"] = " ".join(["word"] * (4 - i))  # the new model is least sure of the last one
    queue(store, items)
    clock = Clock()
    svc = LabelingService(store, double_share=0, clock=clock, refresh_seconds=0)
    first = svc.claim_next("ann")
    assert first is not None and first.id == items[0]["id"]  # ingest order
    svc.skip(first.id, "ann")
    rerank_queue(store, _Scorer())
    nxt = svc.claim_next("ann")
    assert nxt is not None and nxt.id == items[-1]["id"]


def test_rerank_refuses_when_the_endpoint_still_serves_another_version(store: LocalStore) -> None:
    queue(store, [make_item(0)])
    before = sorted(store.list("review/index/"))
    with pytest.raises(PulseError, match="still serves v1"):
        rerank_queue(store, _Scorer("v1"), version="v2")
    assert sorted(store.list("review/index/")) == before  # nothing written


def test_rerank_of_an_empty_queue_writes_nothing(store: LocalStore) -> None:
    assert rerank_queue(store, _Scorer()) == 0
    assert not list(store.list("review/index/"))


def test_a_signed_in_manager_gets_no_review_items_and_the_attempt_is_audited(store: LocalStore) -> None:
    from services.access.audit import read_events
    from services.access.users import User
    from services.errors import NotAllowed

    queue(store, [make_item(0)])
    svc = LabelingService(store, double_share=0)
    with pytest.raises(NotAllowed, match="annotators and admins"):
        svc.claim_next(User("meg", "manager", ("g0",)))
    assert [(e.actor, e.target) for e in read_events(store, actions=["access_denied"])] == [("meg", "review queue")]
    item = svc.claim_next(User("ann", "annotator"))
    assert item is not None and list(store.list("review/claims/"))


# ------------------------------------------------------------------------- one task per text


def test_copies_of_one_text_are_one_task_labelled_once(store: LocalStore) -> None:
    same = "Long shift,   no break again."
    items = [make_item(i, margin=0.01 * i, text=same if i < 4 else None) for i in range(6)]
    items[2]["text"] = "long shift, no break AGAIN."  # the same text as a reader sees it
    queue(store, items)
    svc = LabelingService(store, double_share=0)
    assert svc.stats("ann")["queue_left"] == 3  # tasks: the repeated text once, two others
    item = svc.claim_next("ann")
    assert item is not None and item.id == "c000000" and item.copies == 4
    svc.submit(item.id, "negative", "ann")
    for i in range(4):
        assert [lab.label for _, lab in labels_for_item(store, f"c{i:06d}")] == ["negative"]
        assert not is_queued(store, f"c{i:06d}")
    assert svc.stats("ann")["labelled_today_by_me"] == 1 and svc.stats("ann")["queue_left"] == 2
    nxt = svc.claim_next("ann")
    assert nxt is not None and nxt.id == "c000004" and nxt.copies == 1
    # Undo takes back the label of every copy and puts them all back in the queue.
    assert svc.undo("ann") == "c000000"
    for i in range(4):
        assert labels_for_item(store, f"c{i:06d}") == []
        assert is_queued(store, f"c{i:06d}")
    again = LabelingService(store, double_share=0)  # another replica sees them back too
    assert again.stats()["queue_left"] == 3


def test_a_copy_someone_else_holds_is_left_to_them(store: LocalStore) -> None:
    same = "Quiet night, slept a bit on the break."
    queue(store, [make_item(i, margin=0.01 * i, text=same if i < 3 else None) for i in range(4)])
    one, two = LabelingService(store, double_share=0), LabelingService(store, double_share=0)
    held = one.claim_next("ann")
    assert held is not None and held.id == "c000000"
    other = two.claim_next("bob")  # another replica: the repeated text is ann's task now
    assert other is not None and other.id == "c000003"
    bob_copy = two.claims.take("c000002", "bob")  # bob holds one copy all the same
    assert bob_copy is not None
    one.claims.refresh(force=True)
    one.submit(held.id, "neutral", "ann")
    assert [lab.annotator for _, lab in labels_for_item(store, "c000001")] == ["ann"]
    assert labels_for_item(store, "c000002") == []  # bob's to label
    assert is_queued(store, "c000002")


def test_numbers_keep_texts_apart(store: LocalStore) -> None:
    queue(store, [make_item(0, text="Scored 2/10 on the quiz."), make_item(1, text="Scored 9/10 on the quiz.")])
    svc = LabelingService(store, double_share=0)
    item = svc.claim_next("ann")
    assert item is not None and item.copies == 1 and svc.stats()["queue_left"] == 2
