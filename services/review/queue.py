"""The review queue as one replica holds it in memory, built from the small index files that ingest
and re-ranking write (`review/index/*.jsonl`), so a click never lists the 100k item files.

Orders: least sure first (by the margin between the two likeliest labels), oldest first, least sure
within one group, and a fixed pseudo-random order (a hash of the id) for spot checks. Items known
to be gone (labelled here or on another replica) are skipped; under contention the head of the
queue is walked in this replica's own shuffled order, so twenty replicas do not all race for the
same item.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from services.errors import KeyNotFound
from services.review import batches
from services.review.items import Entry, entry_from, parse_entry
from services.store import keys
from services.store.base import ObjectStore

# Under contention each replica tries the head of the queue (SPREAD items, more the more people
# label) in its own random order: still the least sure items, but no longer all racing for one.
SPREAD = 32

OrderKey = tuple[str, str | None]  # (order, group)


class Queue:
    """Queued items by id, what is known gone, and the orders built from them (cached per order)."""

    def __init__(
        self,
        store: ObjectStore,
        read_item: Callable[[str], dict[str, Any] | None],
        *,
        refresh_seconds: float = 2.0,
    ) -> None:
        self.store = store
        self.read_item = read_item  # an item file's fields, or None (gone, or quarantined)
        self.refresh_seconds = refresh_seconds
        self.entries: dict[str, Entry] = {}
        self.gone: set[str] = set()
        self.found_gone = 0  # items found gone one request at a time since the queue was last listed
        self._indexes_read: set[str] = set()
        self._listed_items = False
        self._read_at = -1e18
        self._sorted: dict[OrderKey, list[str]] = {}
        self._start: dict[OrderKey, int] = {}
        self._by_text: dict[str, list[str]] | None = None  # text key -> queued ids (built on demand)
        self._rng = random.Random()

    def refresh(self, *, force: bool = False) -> None:
        """Read index files not seen yet (one listing of `review/index/`); without any index at
        all, list the item files once instead."""
        mono = time.monotonic()
        if not force and mono - self._read_at < self.refresh_seconds:
            return
        self._read_at = mono
        added = False
        names = [k for k in self.store.list(keys.REVIEW_INDEX) if k.endswith(".jsonl")]
        for key in names:
            if key in self._indexes_read:
                continue
            try:
                body = self.store.get(key).decode("utf-8", "replace")
            except KeyNotFound:
                continue
            self._indexes_read.add(key)
            for line in body.splitlines():
                entry = parse_entry(line)
                if entry is not None:
                    self.entries[entry.id] = entry
                    self.gone.discard(entry.id)  # an item put back by an undo comes back here too
                    added = True
        if not names and not self._listed_items:
            self._listed_items = True
            for key in self.store.list(keys.REVIEW_ITEMS):
                item_id = key.removeprefix(keys.REVIEW_ITEMS).removesuffix(".json")
                if "/" in item_id or not key.endswith(".json") or item_id in self.entries:
                    continue
                raw = self.read_item(item_id)
                if raw is not None:
                    self.entries[item_id] = entry_from(raw)
                    added = True
        if added:
            self._reorder()

    def add(self, entry: Entry) -> None:
        """An item this replica learnt of outside the index (claimed, or put back by an undo)."""
        self.entries[entry.id] = entry
        self.gone.discard(entry.id)
        self._reorder()

    def _reorder(self) -> None:
        self._sorted.clear()
        self._start.clear()
        self._by_text = None

    def _texts(self) -> dict[str, list[str]]:
        if self._by_text is None:
            by_text: dict[str, list[str]] = {}
            for entry in self.entries.values():
                if entry.text_key:
                    by_text.setdefault(entry.text_key, []).append(entry.id)
            self._by_text = {k: ids for k, ids in by_text.items() if len(ids) > 1}
        return self._by_text

    def copies(self, item_id: str) -> list[str]:
        """The other queued items with the same text as `item_id` (one review task with it)."""
        entry = self.entries.get(item_id)
        if entry is None or not entry.text_key:
            return []
        return [i for i in self._texts().get(entry.text_key, ()) if i != item_id and i not in self.gone]

    def walk(self, key: OrderKey) -> Iterator[str]:
        """Item ids in queue order, from the first one not known to be gone."""
        order, group = key
        ids = self._sorted.get(key)
        if ids is None:
            entries = self.entries.values()
            if order == "oldest":
                ids = [e.id for e in sorted(entries, key=lambda e: (e.time, e.margin, e.id))]
            elif order == "random":
                ids = [e.id for e in sorted(entries, key=lambda e: hashlib.sha256(e.id.encode()).digest())]
            else:
                chosen = [e for e in entries if group is None or e.group == group]
                ids = [e.id for e in sorted(chosen, key=lambda e: (e.margin, e.time, e.id))]
            self._sorted[key] = ids
            self._start[key] = 0
        start = self._start.get(key, 0)
        while start < len(ids) and ids[start] in self.gone:
            start += 1
        self._start[key] = start
        for i in range(start, len(ids)):
            if ids[i] not in self.gone:
                yield ids[i]

    def spread(self, ids: Iterator[str], *, contended: bool, others_labelling: int) -> Iterator[str]:
        """The queue order; while others compete for its head, its first items (SPREAD, plus four per
        claim listed: a replica behind the others would otherwise trail them item by item) in this
        replica's own shuffled order."""
        if not contended:
            yield from ids
            return
        head = list(itertools.islice(ids, SPREAD + 4 * others_labelling))
        self._rng.shuffle(head)
        yield from (item_id for item_id in head if item_id not in self.gone)  # gone since it was read
        yield from ids

    def forget(self, item_id: str) -> None:
        self.gone.add(item_id)

    def listing_is_cheaper(self) -> bool:
        """Whether the items found gone one by one make a listing of the queue cheaper (1 request per
        1,000 keys) than going on finding them one request each."""
        return self.found_gone >= 2 * (len(self.entries) // 1000 + 1)

    def refresh_gone(self) -> None:
        """Forget every queued item that left the queue on another replica: a batch item whose
        left marker is listed, a one-file item whose file is not (item files are written before
        the index lines that name them, so an entry known here and missing has left)."""
        left = batches.left_ids(self.store)
        files = any(not e.part for e in self.entries.values())
        present = (
            {k.removeprefix(keys.REVIEW_ITEMS).removesuffix(".json") for k in self.store.list(keys.REVIEW_ITEMS)}
            if files
            else set()
        )
        for item_id, entry in self.entries.items():
            gone = item_id in left if entry.part else item_id not in present
            if gone:
                self.forget(item_id)
        self.found_gone = 0

    def groups(self) -> dict[str, int]:
        """Tasks waiting per group (this replica's view), largest first."""
        counts: dict[str, int] = {}
        seen: set[tuple[str, str]] = set()
        for item_id, entry in self.entries.items():
            if item_id in self.gone:
                continue
            if entry.text_key:
                if (entry.group, entry.text_key) in seen:
                    continue
                seen.add((entry.group, entry.text_key))
            counts[entry.group] = counts.get(entry.group, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def left(self) -> int:
        """Review tasks left: queued items, the copies of one text counted once."""
        items = len(self.entries) - len(self.gone & self.entries.keys())
        extra = sum(max(sum(i not in self.gone for i in ids) - 1, 0) for ids in self._texts().values())
        return items - extra
