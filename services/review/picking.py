"""Picking the next review item for an annotator: walk the queue in their order, claim one item.

One `Picker` per replica remembers, per annotator, the item they hold here and what they skipped
or already labelled, so a walk passes over those without a read. An item is handed out only once
its claim (`services.review.claims`) is ours and the item is read back: an item labelled already
(it outlived the label in a crash) is cleaned up on the way instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.errors import StoreError
from services.review import actions, batches
from services.review.agreement import needs_two
from services.review.claims import Claims, alive, claim_key
from services.review.items import Entry, ReviewItem, entry_from, read_item, review_item, waiting
from services.review.labels import Label, labels_for_item
from services.review.queue import OrderKey, Queue
from services.store.base import ObjectStore

log = logging.getLogger(__name__)


@dataclass
class _Annotator:
    """What this replica remembers about one annotator between clicks."""

    held: str | None = None
    skipped: set[str] = field(default_factory=set)
    labelled: set[str] = field(default_factory=set)  # double-label items they already did
    skips_read_at: float = -1e18
    looked_elsewhere: bool = False  # this replica looked for a claim they hold from another replica


def quietly(fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """Clean-up that may fail without harm (a later claim finishes it)."""
    try:
        fn(*args, **kwargs)
    except StoreError as exc:
        log.warning("clean-up step failed (%s); a later claim will finish it", exc)


class Picker:
    """This replica's queue and claims, and what it remembers of each annotator."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        lease_seconds: float,
        double_share: float,
        clock: Callable[[], float],
        refresh_seconds: float,
        pseudonym: Callable[[str], str],
    ) -> None:
        self.store = store
        self.double_share = double_share
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self.pseudonym = pseudonym
        self.queue = Queue(store, self.item, refresh_seconds=refresh_seconds)
        self.claims = Claims(store, lease_seconds=lease_seconds, clock=clock, refresh_seconds=refresh_seconds)
        self.people: dict[str, _Annotator] = {}

    def next(self, annotator: str, key: OrderKey) -> ReviewItem | None:
        """The item `annotator` holds (renewed) if it fits `key`, else the first free one in `key`'s order."""
        person = self.person(annotator)
        held = self.resume(annotator, person) or self.held_elsewhere(annotator, person)
        if held is not None:
            if key[1] is None or held.group == key[1]:
                return held
            self.release(held.id, annotator)
        self.queue.refresh()
        self.refresh_skips(annotator, person)
        self.claims.refresh()
        return self.walk(key, annotator, person)

    def walk(self, key: OrderKey, annotator: str, person: _Annotator) -> ReviewItem | None:
        busy: list[str] = []
        relisted = False
        # 1. the queue, skipping what this annotator deferred; 2. their skipped items, in queue order
        for deferred in (False, True):
            ids = self.queue.walk(key)
            for item_id in self.queue.spread(
                ids, contended=self.claims.contended(), others_labelling=len(self.claims.listed)
            ):
                if (item_id in person.skipped) != deferred or item_id in person.labelled:
                    continue
                if self.claims.busy(item_id) or any(self.claims.busy(c) for c in self.queue.copies(item_id)):
                    busy.append(item_id)  # it, or a copy of its text, is someone else's task now
                    continue
                item = self.try_claim(item_id, annotator, person)
                if item is not None:
                    return item
                if self.claims.busy(item_id):
                    self.claims.contend()
                    if not relisted:
                        # Someone claimed it since our last look: one listing of the claims now
                        # saves a failed claim on each item the others took meanwhile.
                        relisted = True
                        self.claims.refresh(force=True)
                if self.queue.listing_is_cheaper():
                    self.queue.refresh_gone()
        # Leases seen earlier are only hints: one may have been released since.
        now = self.clock()
        for item_id in busy:
            if item_id in self.queue.gone:
                continue
            claim = self.claims.read(item_id)
            if not alive(claim, now) or (claim is not None and claim.get("annotator") == annotator):
                self.claims.forget_hint(item_id)
                item = self.try_claim(item_id, annotator, person)
                if item is not None:
                    return item
        return None

    def person(self, annotator: str) -> _Annotator:
        return self.people.setdefault(annotator, _Annotator())

    def item(self, item_id: str, *, checked: bool = False) -> dict[str, Any] | None:
        raw = read_item(self.store, item_id, self.clock(), self.part(item_id), checked=checked)
        if raw is None:
            self.forget(item_id)
        return raw

    def part(self, item_id: str) -> str:
        """The batch part holding the item, as its index entry says ("" for a one-file item)."""
        entry = self.queue.entries.get(item_id)
        if entry is None:  # a claim seen before this replica read the index files
            self.queue.refresh()
            entry = self.queue.entries.get(item_id)
        return entry.part if entry is not None else ""

    def forget(self, item_id: str) -> None:
        self.queue.forget(item_id)
        self.claims.others.pop(item_id, None)

    def try_claim(self, item_id: str, annotator: str, person: _Annotator) -> ReviewItem | None:
        """Claim one item for `annotator` and return it, or None (taken, gone, done, or theirs already)."""
        if not waiting(self.store, item_id, self.part(item_id)):
            self.forget(item_id)  # labelled elsewhere (or quarantined)
            self.queue.found_gone += 1
            return None
        claim = self.claims.take(item_id, annotator)
        if claim is None:
            return None
        raw = self.item(item_id, checked=True)  # the claim is ours: now look at the item itself
        if raw is None:
            quietly(self.store.delete, claim_key(item_id))
            return None
        if item_id not in self.queue.entries:
            self.queue.add(entry_from(raw))
        labels = labels_for_item(self.store, item_id)
        if self.complete(item_id, [lab for _, lab in labels]):
            # Labelled already, but the item file outlived it (a crash between the two writes).
            quietly(batches.leave, self.store, item_id, "labelled")
            quietly(self.store.delete, claim_key(item_id))
            self.forget(item_id)
            return None
        if any(lab.annotator == annotator for _, lab in labels):
            person.labelled.add(item_id)
            quietly(self.store.delete, claim_key(item_id))
            return None
        person.held = item_id
        entry: Entry = self.queue.entries.get(item_id) or entry_from(raw)
        copies = 1 + len(self.queue.copies(item_id))
        return review_item(raw, entry, claim, self.pseudonym(str(raw["participant"])), copies)

    def resume(self, annotator: str, person: _Annotator) -> ReviewItem | None:
        """The item this annotator holds on this replica, lease renewed; None if they hold none."""
        item_id, person.held = person.held, None
        if item_id is None or not self.claims.holds(item_id, annotator):
            return None
        return self.try_claim(item_id, annotator, person)

    def held_elsewhere(self, annotator: str, person: _Annotator) -> ReviewItem | None:
        """The first time this replica serves `annotator`: an unexpired claim of theirs taken on
        another replica (a reload that reached another one), resumed rather than left to block its
        item until the lease ends. What it learns of the others' claims spares the walk failed claims."""
        if person.looked_elsewhere:
            return None
        person.looked_elsewhere = True
        self.claims.refresh(force=True)
        now = self.clock()
        for item_id in sorted(self.claims.listed):
            claim = self.claims.read(item_id)
            if claim is None or not alive(claim, now):
                continue
            if claim.get("annotator") == annotator:
                return self.try_claim(item_id, annotator, person)
            self.claims.others[item_id] = float(claim["expires_at"])
        return None

    def release(self, item_id: str, annotator: str, *, checked: bool = False) -> None:
        quietly(self.claims.release, item_id, annotator, checked=checked)
        person = self.person(annotator)
        if person.held == item_id:
            person.held = None

    def refresh_skips(self, annotator: str, person: _Annotator) -> None:
        mono = time.monotonic()
        if mono - person.skips_read_at >= self.refresh_seconds:
            person.skips_read_at = mono
            person.skipped = actions.skipped(self.store, annotator)

    def complete(self, item_id: str, labels: list[Label]) -> bool:
        """Whether an item has every label it needs: one, or two from different annotators."""
        people = {lab.annotator for lab in labels}
        return len(people) >= (2 if needs_two(item_id, self.double_share) else 1)

    def finish_if_complete(self, item_id: str, known: list[Label]) -> bool:
        """Delete the item file once it has every label it needs (`known`: labels just written)."""
        labels = known if self.complete(item_id, known) else [lab for _, lab in labels_for_item(self.store, item_id)]
        if not self.complete(item_id, labels):
            return False
        quietly(batches.leave, self.store, item_id, "labelled")  # the label is safe: the item may go
        self.forget(item_id)
        return True
