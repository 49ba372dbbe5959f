"""Review items stored per ingest batch: `review/batches/<batch>-<part>.jsonl`, up to `PART_ITEMS`
items a file, so queueing 100k items costs a few dozen writes instead of 100k. An item leaves the
queue (labelled, set aside as unreadable, erased) through a marker, `review/left/<id>.json`; an
undo deletes the marker. Index lines name the part that holds their item.

Workspaces from before this layout hold one file per item in `review/unrecognized/`; those are read
and leave the queue as they always did (the file is deleted), and both kinds live side by side.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from services.errors import KeyNotFound
from services.store import keys
from services.store.base import ObjectStore

PART_ITEMS = 5_000
CACHED_PARTS = 8  # parts kept in memory per process (a part of 5,000 items is a few MB)

_cache: OrderedDict[tuple[str, str], dict[str, str]] = OrderedDict()
_cache_lock = threading.Lock()


def part_key(part: str) -> str:
    return f"{keys.REVIEW_BATCHES}{part}.jsonl"


def left_key(item_id: str) -> str:
    return f"{keys.REVIEW_LEFT}{item_id}.json"


def write_parts(store: ObjectStore, batch: str, items: list[dict[str, Any]]) -> list[str]:
    """Write a batch's items, `PART_ITEMS` to a file (keys fixed by the batch, so a re-run of an
    interrupted ingest rewrites the same files); the part of each item, in order."""
    parts: list[str] = []
    for n, start in enumerate(range(0, len(items), PART_ITEMS)):
        part = f"{batch}-{n:04d}"
        chunk = items[start : start + PART_ITEMS]
        body = "\n".join(json.dumps(item, ensure_ascii=False) for item in chunk) + "\n"
        store.put(part_key(part), body.encode())
        with _cache_lock:
            _cache.pop(_where(store, part), None)
        parts.extend([part] * len(chunk))
    return parts


def _where(store: ObjectStore, part: str) -> tuple[str, str]:
    """A part as the cache knows it: the store (and the server, for S3) and the part's name."""
    client = getattr(store, "client", None)
    server = str(client.meta.endpoint_url) if client is not None else ""
    return f"{store.describe()} {server}", part


def _lines(store: ObjectStore, part: str) -> dict[str, str]:
    """A part's item lines by id (cached: parts are written once, and erasure rewrites them only
    after marking the erased items as left, which every read checks first)."""
    where = _where(store, part)
    with _cache_lock:
        if where in _cache:
            _cache.move_to_end(where)
            return _cache[where]
    try:
        body = store.get(part_key(part)).decode("utf-8", "replace")
    except KeyNotFound:
        return {}
    lines: dict[str, str] = {}
    for line in body.splitlines():
        try:
            item_id = json.loads(line).get("id")
        except (ValueError, AttributeError):
            continue  # an unreadable line is no item
        if item_id is not None:
            lines[str(item_id)] = line
    with _cache_lock:
        _cache[where] = lines
        while len(_cache) > CACHED_PARTS:
            _cache.popitem(last=False)
    return lines


def item_line(store: ObjectStore, item_id: str, part: str, *, checked: bool = False) -> bytes | None:
    """The stored item of a part, as bytes; None when it has left the queue (`checked`: the
    caller has just looked) or is not there."""
    if not checked and store.exists(left_key(item_id)):
        return None
    line = _lines(store, part).get(item_id)
    return None if line is None else line.encode()


def has_left(store: ObjectStore, item_id: str) -> bool:
    return store.exists(left_key(item_id))


def leave(store: ObjectStore, item_id: str, why: str) -> None:
    """The item leaves the queue: its marker (the same bytes whenever it is written, so a repeated
    or resumed step leaves the same store), and the one-file item of older batches deleted."""
    store.put(left_key(item_id), json.dumps({"id": item_id, "why": why}).encode())
    store.delete(keys.review_item_key(item_id))


def come_back(store: ObjectStore, item_id: str) -> bool:
    """An item that had left comes back (an undo): False when it never left."""
    if not store.exists(left_key(item_id)):
        return False
    store.delete(left_key(item_id))
    return True


def left_ids(store: ObjectStore) -> set[str]:
    return {k.removeprefix(keys.REVIEW_LEFT).removesuffix(".json") for k in store.list(keys.REVIEW_LEFT)}


def part_items(store: ObjectStore, parts: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(part, item) of every readable item in these parts, each part read once."""
    for part in sorted(set(parts)):
        for line in _lines(store, part).values():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                yield part, item


def all_parts(store: ObjectStore) -> list[str]:
    return [
        k.removeprefix(keys.REVIEW_BATCHES).removesuffix(".jsonl")
        for k in store.list(keys.REVIEW_BATCHES)
        if k.endswith(".jsonl")
    ]


def rewrite_without(store: ObjectStore, part: str, drop: set[str]) -> int:
    """Rewrite a part without the items in `drop` (deleting it when none is left); how many went.
    The dropped items must already be marked as left (see `_lines`)."""
    lines = _lines(store, part)
    kept = [line for item_id, line in lines.items() if item_id not in drop]
    gone = len(lines) - len(kept)
    if not gone:
        return 0
    if kept:
        store.put(part_key(part), ("\n".join(kept) + "\n").encode())
    else:
        store.delete(part_key(part))
    with _cache_lock:
        _cache.pop(_where(store, part), None)
    return gone
