"""Claims: at most one annotator holds a review item at a time, for a lease.

    review/claims/<id>.json                  who holds the item, until when
    review/takeovers/<id>/<token>            created if absent: who took over an expired lease

A claim is the store's one lease implementation (`services.store.lease`): a create-if-absent write,
and an expired claim taken over by exactly one contender through a marker per token. Besides the
claims themselves, a replica keeps hints (whose claims it has seen, until when) so its walk of the
queue passes over items others hold without a failed write each; hints are checked again before
the queue is declared empty.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from services.errors import ClaimLost, KeyNotFound, LeaseContested, LeaseHeld
from services.store import keys, lease
from services.store.base import ObjectStore

# Under contention (a claim lost to another annotator, or others' claims listed, in the last
# CONTENTION_SECONDS), replicas walk the head of the queue in their own shuffled order.
CONTENTION_SECONDS = 30.0


def claim_key(item_id: str) -> str:
    return f"{keys.REVIEW_CLAIMS}{item_id}.json"


def alive(claim: dict[str, Any] | None, now: float) -> bool:
    """Whether a claim (as read, or None) still holds at `now`."""
    return claim is not None and float(claim.get("expires_at", 0)) > now


def read_claim(store: ObjectStore, key: str) -> dict[str, Any] | None:
    """The claim at `key`, or None. An unreadable claim counts as expired; its bytes name it for
    the takeover marker."""
    try:
        body = store.get(key)
    except KeyNotFound:
        return None
    try:
        claim = json.loads(body)
        if not isinstance(claim, dict):
            raise ValueError("not an object")
        return claim
    except ValueError:
        return {"annotator": "", "token": hashlib.sha256(body).hexdigest()[:32], "expires_at": 0}


class Claims:
    """The claims of one replica's annotators, and its hints about everyone else's."""

    def __init__(self, store: ObjectStore, *, lease_seconds: float, clock: Callable[[], float], refresh_seconds: float):
        self.store = store
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self.others: dict[str, float] = {}  # item -> when another annotator's lease ends (a hint)
        self.listed: dict[str, float] = {}  # item -> until when its listed claim makes it a busy hint
        self.contended_until = -1e18  # monotonic time until which the head of the queue is shuffled
        self._seen: dict[str, float] = {}  # claimed item -> when this replica first saw the claim
        self._read_at = -1e18

    def read(self, item_id: str) -> dict[str, Any] | None:
        return read_claim(self.store, claim_key(item_id))

    def _new(self, annotator: str, now: float, token: str | None = None) -> dict[str, Any]:
        return {
            "annotator": annotator,
            "token": token or secrets.token_hex(16),
            "claimed_at": now,
            "expires_at": now + self.lease_seconds,
        }

    def take(self, item_id: str, annotator: str) -> dict[str, Any] | None:
        """Claim the item for `annotator` (a claim they hold already is renewed; an expired one is
        taken over); None when someone else holds it or won the takeover."""
        now = self.clock()
        claim = self._new(annotator, now)
        try:
            lease.acquire(
                self.store,
                claim_key(item_id),
                lambda: json.dumps(claim, ensure_ascii=False).encode(),
                takeovers=f"{keys.REVIEW_TAKEOVERS}{item_id}/",
                alive=lambda held: alive(held, now),
                busy=LeaseHeld,
                contested=LeaseContested(),
                churning=LeaseContested(),
                read=read_claim,
            )
        except LeaseHeld as found:
            if found.held.get("annotator") != annotator:
                self.others[item_id] = float(found.held.get("expires_at", 0))
                return None
            claim = self._new(annotator, now, str(found.held.get("token")))  # theirs: resume it, lease renewed
            claim["claimed_at"] = found.held.get("claimed_at", now)
            self.store.put(claim_key(item_id), json.dumps(claim, ensure_ascii=False).encode())
        except LeaseContested:
            self.others[item_id] = now + 1.0
            return None
        self.others.pop(item_id, None)
        return claim

    def hold(self, item_id: str, annotator: str) -> dict[str, Any]:
        """The annotator's live claim on the item; `ClaimLost` (nothing to save) when it is not."""
        now = self.clock()
        claim = self.read(item_id)
        if claim is None or claim.get("annotator") != annotator:
            holder = "nobody" if claim is None else "another annotator"
            raise ClaimLost(
                f"{annotator} does not hold item {item_id} (it is held by {holder}); nothing was saved. "
                "Take the next item."
            )
        expires = float(claim.get("expires_at", 0))
        if expires <= now:
            raise ClaimLost(
                f"the claim of {annotator} on item {item_id} expired {now - expires:.0f} s ago "
                f"(leases last {self.lease_seconds:.0f} s); nothing was saved. Take the next item."
            )
        return claim

    def holds(self, item_id: str, annotator: str) -> bool:
        claim = self.read(item_id)
        return alive(claim, self.clock()) and claim is not None and claim.get("annotator") == annotator

    def release(self, item_id: str, annotator: str, *, checked: bool = False) -> None:
        """Delete the claim if it is still this annotator's (never someone else's takeover)."""
        claim = {"annotator": annotator} if checked else self.read(item_id)
        if claim is not None and claim.get("annotator") == annotator:
            self.store.delete(claim_key(item_id))

    def busy(self, item_id: str) -> bool:
        """A hint that someone else holds the item now."""
        now = self.clock()
        return self.others.get(item_id, 0.0) > now or self.listed.get(item_id, 0.0) > now

    def forget_hint(self, item_id: str) -> None:
        self.others.pop(item_id, None)
        self.listed.pop(item_id, None)

    def contend(self) -> None:
        self.contended_until = time.monotonic() + CONTENTION_SECONDS

    def contended(self) -> bool:
        return self.contended_until > time.monotonic()

    def refresh(self, *, force: bool = False) -> None:
        """One listing of `review/claims/` (a few keys: one per item being labelled): items someone
        holds are passed over without a failed claim each. A claim listed for longer than a lease
        may be abandoned, so it gets no hint and the walk reads it (and takes it over once expired)."""
        mono = time.monotonic()
        if not force and mono - self._read_at < self.refresh_seconds:
            return
        self._read_at = mono
        now = self.clock()
        seen: dict[str, float] = {}
        listed: dict[str, float] = {}
        for key in self.store.list(keys.REVIEW_CLAIMS):
            item_id = key.removeprefix(keys.REVIEW_CLAIMS).removesuffix(".json")
            seen[item_id] = first = self._seen.get(item_id, now)
            if now - first < self.lease_seconds:
                listed[item_id] = now + self.refresh_seconds
        self._seen, self.listed = seen, listed
        if len(listed) > 1:  # others are labelling now: do not all race for the head of the queue
            self.contended_until = max(self.contended_until, mono + CONTENTION_SECONDS)

    def active(self) -> int:
        """Claims alive now (a listing and one read per claim: for progress figures, not every click)."""
        now = self.clock()
        count = 0
        for key in self.store.list(keys.REVIEW_CLAIMS):
            claim = read_claim(self.store, key)
            if alive(claim, now):
                count += 1
        return count
