"""Human labels: `review/labels/<item id>/<time>-<annotator>.json`, append-only.

A label is never overwritten: a second label on the same item is a new file, kept as a
disagreement. Dataset building decides which one counts (see `resolve`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from services.model import LABELS
from services.storage import ObjectStore

PREFIX = "review/labels/"
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
    stamp = label.labelled_at.replace(":", "").replace("-", "").replace("+", "p").replace(".", "")
    who = "".join(c if c.isalnum() or c in "._@-" else "_" for c in label.annotator)[:64]
    return f"{PREFIX}{label.item_id}/{stamp}-{who}.json"


def save_label(store: ObjectStore, label: Label) -> str:
    """Append a label (create-if-absent: an existing label file is never replaced)."""
    if label.label not in DECISIONS:
        raise ValueError(f"unknown label {label.label!r}: use one of {', '.join(DECISIONS)}")
    key = label_key(label)
    store.put(key, json.dumps(asdict(label), ensure_ascii=False).encode(), if_absent=True)
    return key


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def read_labels(store: ObjectStore) -> list[tuple[str, Label]]:
    """Every label with its key, oldest key first. Unreadable files are skipped by the caller's report."""
    out: list[tuple[str, Label]] = []
    for key in store.list(PREFIX):
        if key.endswith(".json"):
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
