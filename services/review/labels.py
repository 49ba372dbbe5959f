"""Human labels: `review/labels/<item id>/<time>-<annotator>.json`, append-only.

A label is never overwritten: a second label on the same item is a new file, kept as a
disagreement. Dataset building decides which one counts (see `resolve`).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from services.errors import AlreadyExists, KeyNotFound, StoreError, StoreUnavailable
from services.model.prediction import LABELS
from services.store import keys
from services.store.base import ObjectStore

PREFIX = keys.REVIEW_LABELS
NOT_SENTIMENT = "unclear"  # "can't tell / not about feelings": kept, never trained on
DECISIONS = (*LABELS, NOT_SENTIMENT)


@dataclass(frozen=True)
class Label:
    """One person's decision about one message."""

    item_id: str
    text: str
    label: str
    annotator: str
    labelled_at: str
    model_label: str | None = None
    model_version: str | None = None
    seconds: float = 0.0
    final: bool = False  # set by a reviewer: wins over later labels
    gold: bool = False  # held out: evaluated on, never trained on
    group: str = ""


def label_key(label: Label) -> str:
    return f"{PREFIX}{label.item_id}/{keys.file_stamp(label.labelled_at)}-{keys.segment(label.annotator)}.json"


def save_label(store: ObjectStore, label: Label) -> str:
    """Append a label (create-if-absent: an existing label file is never replaced)."""
    if label.label not in DECISIONS:
        raise ValueError(f"unknown label {label.label!r}: use one of {', '.join(DECISIONS)}")
    key = label_key(label)
    store.put(key, json.dumps(asdict(label), ensure_ascii=False).encode(), if_absent=True)
    return key


SAVE_ATTEMPTS = 3


def write_label(store: ObjectStore, lab: Label) -> tuple[Label, str]:
    """Write a label append-only, as the review page's submit does: a brief outage is retried, a
    write that landed although its answer was lost is recognised (same bytes), and a key taken by
    another label gets the next microsecond. Returns the label as stored, and its key."""
    for attempt in range(SAVE_ATTEMPTS * 2):
        key = label_key(lab)
        body = json.dumps(asdict(lab), ensure_ascii=False).encode()
        try:
            store.put(key, body, if_absent=True)
            return lab, key
        except AlreadyExists:
            try:
                if store.get(key) == body:
                    return lab, key
            except KeyNotFound:
                pass
            stamp = datetime.fromisoformat(lab.labelled_at) + timedelta(microseconds=1)
            lab = Label(**{**asdict(lab), "labelled_at": stamp.isoformat(timespec="microseconds")})
        except StoreUnavailable:
            if attempt >= SAVE_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise StoreError(f"could not find a free key for the label of item {lab.item_id}")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def read_labels(store: ObjectStore) -> list[tuple[str, Label]]:
    """Every label with its key, oldest key first. Unreadable files are skipped by the caller's report.

    Retracted labels (see `retract_label`) are left out."""
    gone = retracted_keys(store)
    out: list[tuple[str, Label]] = []
    for key in store.list(PREFIX):
        if key.endswith(".json") and key not in gone:
            try:
                out.append((key, Label(**json.loads(store.get(key)))))
            except (ValueError, TypeError):
                continue
    return out


def resolve(labels: list[Label]) -> tuple[Label, bool]:
    """The label that counts for one item, and whether its labels disagree.

    The latest final label wins; without one, the latest label wins.
    """
    ordered = sorted(labels, key=lambda lab: lab.labelled_at)
    finals = [lab for lab in ordered if lab.final]
    chosen = (finals or ordered)[-1]
    return chosen, len({lab.label for lab in labels}) > 1


# Retractions (undo): a label file is never changed or deleted; a separate, append-only record
# at `review/retractions/<item id>/<label file name>` says that it no longer counts.
RETRACTIONS = keys.REVIEW_RETRACTIONS


@dataclass(frozen=True)
class Retraction:
    """One person's withdrawal of one label (an undo). The label file itself stays."""

    label_key: str
    item_id: str
    annotator: str
    retracted_at: str
    reason: str = "undo"


def retraction_key(label_key: str) -> str:
    """Where the retraction of the label stored at `label_key` lives."""
    return RETRACTIONS + label_key.removeprefix(PREFIX)


def retract_label(store: ObjectStore, label_key: str, *, by: str, reason: str = "undo", at: str | None = None) -> str:
    """Record that the label at `label_key` no longer counts (create-if-absent; retracting twice is a no-op)."""
    item_id = label_key.removeprefix(PREFIX).split("/", 1)[0]
    record = Retraction(label_key, item_id, by, at or now_iso(), reason)
    key = retraction_key(label_key)
    with contextlib.suppress(AlreadyExists):
        store.put(key, json.dumps(asdict(record), ensure_ascii=False).encode(), if_absent=True)
    return key


def retracted_keys(store: ObjectStore, item_id: str | None = None) -> set[str]:
    """Label keys that have been retracted (for one item, or everywhere)."""
    prefix = f"{RETRACTIONS}{item_id}/" if item_id else RETRACTIONS
    return {PREFIX + key.removeprefix(RETRACTIONS) for key in store.list(prefix) if key.endswith(".json")}


def labels_for_item(store: ObjectStore, item_id: str) -> list[tuple[str, Label]]:
    """The labels of one item that still count (retracted ones left out), oldest key first."""
    keys = [key for key in store.list(f"{PREFIX}{item_id}/") if key.endswith(".json")]
    gone = retracted_keys(store, item_id) if keys else set()
    out: list[tuple[str, Label]] = []
    for key in keys:
        if key not in gone:
            try:
                out.append((key, Label(**json.loads(store.get(key)))))
            except (ValueError, TypeError):
                continue
    return out
