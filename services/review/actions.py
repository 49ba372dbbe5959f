"""What each annotator did, kept in the store so any replica can undo it and count it:

    review/actions/<date>/<annotator>/<microseconds>-<random>-<kind>.json   a label, skip or undo
    review/skips/<annotator>/<id>.json                                        items they skipped

An action record of a label holds the item file and its index entry, so an undo can put the item
back in the queue after it left. A failed write of an action loses only its undo, never the label.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from services.errors import KeyNotFound, StoreError
from services.store import keys
from services.store.base import ObjectStore

log = logging.getLogger(__name__)


def who(annotator: str) -> str:
    """The annotator's name as a key segment (the same rule as label file names)."""
    if not annotator or not annotator.strip():
        raise ValueError("annotator must be a non-empty name")
    return keys.segment(annotator)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def record(store: ObjectStore, annotator: str, kind: str, item_id: str, now: float, **extra: Any) -> None:
    """Append one action to the annotator's log. A failure here loses only the undo of it."""
    day = datetime.fromtimestamp(now, UTC).date().isoformat()
    stamp = f"{int(now * 1_000_000):020d}-{secrets.token_hex(3)}"
    key = f"{keys.REVIEW_ACTIONS}{day}/{who(annotator)}/{stamp}-{kind}.json"
    body = {"kind": kind, "item_id": item_id, "annotator": annotator, "at": iso(now), **extra}
    try:
        store.put(key, dumps(body), if_absent=True)
    except StoreError:
        log.warning("could not log the %s of item %s by %s: it cannot be undone", kind, item_id, annotator)


def _undone_key(store: ObjectStore, undo_key: str) -> str:
    try:
        return str(json.loads(store.get(undo_key)).get("undoes", ""))
    except (KeyNotFound, ValueError, AttributeError):
        return ""


def last_action(store: ObjectStore, annotator: str, now: float) -> tuple[str, dict[str, Any]] | None:
    """The annotator's latest submit or skip of today (or yesterday) that no undo has reversed."""
    for days_back in (0, 1):
        day = (datetime.fromtimestamp(now, UTC) - timedelta(days=days_back)).date().isoformat()
        found = sorted(store.list(f"{keys.REVIEW_ACTIONS}{day}/{who(annotator)}/"), reverse=True)
        undone = {_undone_key(store, k) for k in found if k.endswith("-undo.json")}
        for key in found:
            if key.endswith("-undo.json") or key in undone:
                continue
            try:
                action = json.loads(store.get(key))
            except (KeyNotFound, ValueError):
                continue
            if isinstance(action, dict) and action.get("kind") in ("label", "skip"):
                return key, action
    return None


def labelled_today(store: ObjectStore, now: float) -> dict[str, int]:
    """Labels given today (UTC) that still count, per annotator (their key segment)."""
    today = datetime.fromtimestamp(now, UTC).date().isoformat()
    prefix = f"{keys.REVIEW_ACTIONS}{today}/"
    per_person: dict[str, int] = {}
    undone: set[str] = set()
    labels: list[tuple[str, str]] = []
    for key in store.list(prefix):
        person, _, name = key.removeprefix(prefix).rpartition("/")
        if name.endswith("-label.json"):
            labels.append((person, key))
        elif name.endswith("-undo.json"):
            undone.add(_undone_key(store, key))
    for person, key in labels:
        if key not in undone:
            per_person[person] = per_person.get(person, 0) + 1
    return per_person


def skip_key(annotator: str, item_id: str) -> str:
    return f"{keys.REVIEW_SKIPS}{who(annotator)}/{item_id}.json"


def skipped(store: ObjectStore, annotator: str) -> set[str]:
    """The items `annotator` skipped (they come back to them after everything else)."""
    prefix = f"{keys.REVIEW_SKIPS}{who(annotator)}/"
    return {k.removeprefix(prefix).removesuffix(".json") for k in store.list(prefix)}
