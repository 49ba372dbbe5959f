"""Review items: the messages ingest queues for a human (stored per batch, `services.review.batches`,
or one file each in `review/unrecognized/<id>.json` in older workspaces), what the queue knows of
each (an index `Entry`), and what an annotator sees (`ReviewItem`: a pseudonym, never the
participant id). An item that cannot be read is set aside in `review/quarantine/` with the reason,
so one bad item never blocks the queue."""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from services.errors import AlreadyExists, KeyNotFound, StoreError
from services.review import batches
from services.store import keys
from services.store.base import ObjectStore

log = logging.getLogger(__name__)

REQUIRED = ("id", "text", "predicted_label", "confidence", "model_version", "time", "participant", "group")


@dataclass(frozen=True)
class ReviewItem:
    """One message as an annotator sees it: no participant id, a stable pseudonym instead."""

    id: str
    text: str
    predicted_label: str
    confidence: float
    probs: dict[str, float]
    model_version: str
    time: str
    group: str
    batch: str
    queued_at: str
    line: str
    pseudonym: str
    margin: float
    claimed_by: str
    claim_expires_at: float
    copies: int = 1  # queued messages with the same text (after preprocessing): one label for all


def text_key(text: str) -> str:
    """What makes two queued messages one review task: the same text as a reader sees it (Unicode
    compatibility forms, case, spacing and curly quotes aside), hashed; "" for an empty text.

    Not the model's preprocessing: that drops numbers and small words, so "scored 2/10 today" and
    "scored 9/10 today" would become one task."""
    plain = " ".join(unicodedata.normalize("NFKC", text).casefold().translate(_QUOTES).split())
    return hashlib.sha256(plain.encode("utf-8", "surrogatepass")).hexdigest()[:20] if plain else ""


_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


@dataclass(frozen=True)
class Entry:
    """What the in-memory queue knows of an item (one row of an index file)."""

    id: str
    margin: float
    time: str
    group: str
    confidence: float = 0.0
    text_key: str = ""  # see `text_key`; "" in index files written before tasks grouped copies
    part: str = ""  # the batch part holding the item; "" for a one-file item of an older batch


def parse_entry(line: str) -> Entry | None:
    """One line of an index file (`review/index/<batch>.jsonl`), or None for a blank or unreadable one."""
    if not line.strip():
        return None
    try:
        row = json.loads(line)
        return Entry(
            id=str(row["id"]),
            margin=float(row.get("margin", row.get("confidence", 0.0))),
            time=str(row.get("time", "")),
            group=str(row.get("group", "")),
            confidence=float(row.get("confidence", 0.0)),
            text_key=str(row.get("text_key", "")),
            part=str(row.get("part", "")),
        )
    except (ValueError, TypeError, KeyError):
        log.warning("skipping an unreadable review index line")
        return None


def entry_from(raw: dict[str, Any], part: str = "") -> Entry:
    """The index entry of an item: its margin between the two likeliest labels."""
    probs = raw.get("probs") or {}
    top = [*sorted((float(v) for v in probs.values()), reverse=True), 0.0, 0.0]
    margin = top[0] - top[1] if probs else float(raw.get("confidence", 0.0))
    return Entry(
        str(raw["id"]),
        round(margin, 4),
        str(raw.get("time", "")),
        str(raw.get("group", "")),
        float(raw["confidence"]),
        text_key(str(raw.get("text", ""))),
        part,
    )


class _StoredItem(BaseModel):
    """The fields every item file must have (others, such as probs and batch, are optional)."""

    model_config = ConfigDict(extra="allow")

    id: str | int
    text: StrictStr
    predicted_label: Any
    confidence: float
    model_version: Any
    time: Any
    participant: Any
    group: Any


def _problem(body: bytes, item_id: str) -> tuple[dict[str, Any] | None, str]:
    """The item's fields, or None and why they cannot be used."""
    try:
        raw = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"not valid JSON ({getattr(exc, 'msg', exc)})"
    if not isinstance(raw, dict):
        return None, "the file is not a JSON object"
    try:
        _StoredItem.model_validate(raw)
    except ValidationError as exc:
        missing = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "missing"]
        if missing:
            return None, f"old or foreign format: no {', '.join(missing)}"
        first = exc.errors()[0]
        return None, f"{first['loc'][0]}: {first['msg']}"
    if str(raw["id"]) != item_id:
        return None, f"the file names item {raw['id']!r}, not {item_id!r}"
    return raw, ""


def read_item(
    store: ObjectStore, item_id: str, now: float, part: str = "", *, checked: bool = False
) -> dict[str, Any] | None:
    """The item's fields; None when it has left the queue, or was unreadable and is now set aside.
    `part`: the batch part holding it (its index entry says), "" for a one-file item; `checked`:
    the caller has just seen it waiting (`waiting`), so it is not asked again."""
    if part:
        body = batches.item_line(store, item_id, part, checked=checked)
        if body is None:
            return None
    else:
        try:
            body = store.get(keys.review_item_key(item_id))
        except KeyNotFound:
            return None
    raw, reason = _problem(body, item_id)
    if raw is None:
        quarantine(store, item_id, body, reason, now)
    return raw


def waiting_entries(store: ObjectStore) -> dict[str, Entry]:
    """Every item still in the queue, by id, from the index files (the latest line of an id wins,
    as in the queue), the left markers and the one-file items: listings and one read per index."""
    entries: dict[str, Entry] = {}
    for key in store.list(keys.REVIEW_INDEX):
        if not key.endswith(".jsonl"):
            continue
        try:
            body = store.get(key).decode("utf-8", "replace")
        except KeyNotFound:
            continue
        for line in body.splitlines():
            entry = parse_entry(line)
            if entry is not None:
                entries[entry.id] = entry
    left = batches.left_ids(store)
    files = {k.removeprefix(keys.REVIEW_ITEMS).removesuffix(".json") for k in store.list(keys.REVIEW_ITEMS)}
    out = {i: e for i, e in entries.items() if (i not in left if e.part else i in files)}
    for item_id in files - out.keys():  # a one-file item no index names (written by hand, or very old)
        if "/" not in item_id:
            out[item_id] = Entry(item_id, 0.0, "", "")
    return out


def waiting_items(store: ObjectStore) -> list[tuple[dict[str, Any], str]]:
    """Every readable item still in the queue, with the part holding it ("" for a one-file item);
    each part is read once. For whole-queue work (re-ranking), not for a click."""
    waiting = waiting_entries(store)
    out: list[tuple[dict[str, Any], str]] = []
    for part, raw in batches.part_items(store, {e.part for e in waiting.values() if e.part}):
        entry = waiting.get(str(raw.get("id")))
        if entry is not None and entry.part == part:
            out.append((raw, part))
    for item_id, entry in waiting.items():
        if not entry.part:
            try:
                raw = json.loads(store.get(keys.review_item_key(item_id)))
            except (KeyNotFound, json.JSONDecodeError, UnicodeDecodeError):
                continue  # labelled meanwhile, or unreadable (the queue sets it aside)
            if isinstance(raw, dict):
                out.append((raw, ""))
    return out


def waiting(store: ObjectStore, item_id: str, part: str = "") -> bool:
    """Whether the item is still in the queue (one request)."""
    return not batches.has_left(store, item_id) if part else store.exists(keys.review_item_key(item_id))


def quarantine(store: ObjectStore, item_id: str, body: bytes, reason: str, now: float) -> None:
    """Move an unreadable item file aside, with the reason and its bytes (for an admin to fix)."""
    record = {
        "item_id": item_id,
        "reason": reason,
        "quarantined_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="microseconds"),
        "original": body.decode("utf-8", "replace"),
    }
    store.put(f"{keys.REVIEW_QUARANTINE}{item_id}.json", json.dumps(record, ensure_ascii=False).encode())
    batches.leave(store, item_id, "unreadable")
    log.warning("review item %s quarantined: %s", item_id, reason)


def review_item(
    raw: dict[str, Any], entry: Entry, claim: dict[str, Any], pseudonym: str, copies: int = 1
) -> ReviewItem:
    """What the annotator holding `claim` sees of an item file (`copies`: queued messages of the task)."""
    return ReviewItem(
        id=str(raw["id"]),
        text=str(raw["text"]),
        predicted_label=str(raw["predicted_label"]),
        confidence=float(raw["confidence"]),
        probs={str(k): float(v) for k, v in (raw.get("probs") or {}).items()},
        model_version=str(raw["model_version"]),
        time=str(raw["time"]),
        group=str(raw["group"]),
        batch=str(raw.get("batch", "")),
        queued_at=str(raw.get("queued_at", "")),
        line=str(raw.get("line", "")),
        pseudonym=pseudonym,
        margin=entry.margin,
        claimed_by=str(claim["annotator"]),
        claim_expires_at=float(claim["expires_at"]),
        copies=copies,
    )


def requeue(store: ObjectStore, item_id: str, raw: Any, entry: Any, now: float) -> Entry | None:
    """Put an item back in the queue after its label was retracted, if it had left: its left
    marker deleted (a batch item) or its file again (a one-file item), and a one-line index file so
    that the other replicas see it too. The entry it is queued under, or None when there is nothing
    to put back (it never left, or no copy of it was kept)."""
    if not isinstance(raw, dict):
        return None
    part = str(entry.get("part", "")) if isinstance(entry, dict) else ""
    if part:
        if not batches.come_back(store, item_id):
            return None  # it never left
    else:
        try:
            store.put(keys.review_item_key(item_id), json.dumps(raw, ensure_ascii=False).encode(), if_absent=True)
        except AlreadyExists:
            return None  # it never left
    row = entry if isinstance(entry, dict) else asdict(entry_from(raw))
    stamp = keys.file_stamp(datetime.fromtimestamp(now, UTC))
    try:
        store.put(
            f"{keys.REVIEW_INDEX}undo-{stamp}-{item_id}.jsonl", (json.dumps(row, ensure_ascii=False) + "\n").encode()
        )
    except StoreError:
        log.warning("the index line of item %s put back could not be written; other replicas find it later", item_id)
    return parse_entry(json.dumps(row))
