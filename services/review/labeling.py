"""The annotator's queue: claim one unrecognized message at a time, label it, skip it, undo.

Everything lives in the store, so several app replicas (each with its own `LabelingService`)
can serve the same workspace:

    review/unrecognized/<id>.json            an item waiting for a human (written by ingest)
    review/index/<batch>.jsonl               id, confidence, margin, group, time per queued item
    review/claims/<id>.json                  who holds the item, until when (a lease)
    review/takeovers/<id>/<token>.json       create-if-absent marker: who took over an expired lease
    review/labels/<id>/<time>-<who>.json     the labels, append-only (services.labels)
    review/retractions/<id>/...              labels withdrawn by "undo" (services.labels)
    review/skips/<annotator>/<id>.json       items an annotator skipped: they come back to them last
    review/actions/<date>/<annotator>/...    each annotator's submits, skips and undos (undo, stats)
    review/quarantine/<id>.json              item files that could not be read, with the reason

The queue itself is built in memory from the small index files, so a click never lists the
100k items. Exclusivity comes from create-if-absent writes (a local hard link, an S3
`If-None-Match: *` PUT), never from read-then-write.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from services.access import audit
from services.access.users import User
from services.errors import AlreadyExists, KeyNotFound, PulseError, StoreError, StoreUnavailable
from services.model.prediction import prepare
from services.review.labels import DECISIONS, Label, label_key, labels_for_item, read_labels, retract_label
from services.store.base import ObjectStore, workspace_secret

if TYPE_CHECKING:
    from services.lifecycle.endpoint import Endpoint

log = logging.getLogger(__name__)

ITEMS = "review/unrecognized/"
INDEX = "review/index/"
CLAIMS = "review/claims/"
TAKEOVERS = "review/takeovers/"
SKIPS = "review/skips/"
ACTIONS = "review/actions/"
QUARANTINE = "review/quarantine/"

Order = Literal["uncertain", "oldest", "group", "random"]
# "random": a fixed pseudo-random order (by a hash of the item id), for spot checks that estimate
# how the model does on live data without the bias of least-sure-first.
ORDERS = ("uncertain", "oldest", "group", "random")
REVIEWER_ROLES = ("annotator", "admin")
# Under contention (a claim lost to another annotator, or others' claims listed, in the last
# CONTENTION_SECONDS), each replica tries the head of the queue (SPREAD items, more the more people
# label) in its own random order: still the least sure items, but no longer twenty replicas racing
# for the same one.
SPREAD = 32
CONTENTION_SECONDS = 30.0


class NotAllowed(PulseError):
    """The caller's role may not use the review queue."""


REQUIRED = ("id", "text", "predicted_label", "confidence", "model_version", "time", "participant", "group")
SAVE_ATTEMPTS = 3


class ClaimLost(PulseError):
    """The annotator does not hold the item (never claimed, released, or the lease expired)."""


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


@dataclass(frozen=True)
class _Entry:
    """What the in-memory queue knows of an item (one row of an index file)."""

    id: str
    margin: float
    time: str
    group: str
    confidence: float = 0.0


@dataclass
class _Annotator:
    """What this replica remembers about one annotator between clicks."""

    held: str | None = None
    skipped: set[str] = field(default_factory=set)
    labelled: set[str] = field(default_factory=set)  # double-label items they already did
    skips_read_at: float = -1e18
    looked_elsewhere: bool = False  # this replica looked for a claim they hold from another replica


def _who(annotator: str) -> str:
    """The annotator's name as a key segment (the same rule as label file names)."""
    if not annotator or not annotator.strip():
        raise ValueError("annotator must be a non-empty name")
    return "".join(c if c.isalnum() or c in "._@-" else "_" for c in annotator)[:64]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def _dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


PSEUDONYM_KEY = "settings/pseudonym.key"


def workspace_pseudonym_key(store: ObjectStore) -> bytes:
    """The workspace's random pseudonym key, created once (create-if-absent, so every replica ends up
    with the same key). Without the key, a pseudonym cannot be matched to a participant id."""
    return workspace_secret(store, PSEUDONYM_KEY)


def needs_two(item_id: str, double_share: float) -> bool:
    """Whether an item belongs to the double-label share: a hash of its id, so every replica agrees."""
    if double_share <= 0:
        return False
    if double_share >= 1:
        return True
    h = int.from_bytes(hashlib.sha256(f"double:{item_id}".encode()).digest()[:8], "big")
    return h / 2**64 < double_share


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa for (first rater, second rater) pairs; None when there are no pairs."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(1 for a, b in pairs if a == b) / n
    cats = {c for pair in pairs for c in pair}
    expected = sum((sum(1 for a, _ in pairs if a == c) / n) * (sum(1 for _, b in pairs if b == c) / n) for c in cats)
    if expected >= 1.0:
        return 1.0  # both raters used one and the same category throughout: perfect agreement
    return (observed - expected) / (1.0 - expected)


RERANK_PREFIX = "rerank-"  # sorts after every batch index (hex ids), and by time among re-ranks


def rerank_queue(
    store: ObjectStore,
    endpoint: Endpoint,
    *,
    version: str | None = None,
    max_chars: int = 2000,
    now: datetime | None = None,
) -> int:
    """Order the queue by how unsure the live model (`endpoint`) is, not the model that scored each item at
    ingest: after a new model goes live, "least sure first" should mean least sure *now*, or the
    annotators keep labelling what the old model found hard (measured in the learning-loop
    benchmark). Writes one more index file listing every queued item with its new margin; replicas
    read it like a new batch's index, and it overrides the earlier entries. Item files, labels and
    claims are not touched, so annotators at work lose nothing. With `version`, refuses (PulseError,
    nothing written) unless that version did the scoring. Returns the number re-ranked."""
    raws: list[dict[str, Any]] = []
    for key in store.list(ITEMS):
        if not key.endswith(".json") or "/" in key.removeprefix(ITEMS):
            continue
        try:
            raw = json.loads(store.get(key))
        except (KeyNotFound, json.JSONDecodeError):
            continue  # labelled meanwhile, or unreadable (quarantined by the queue itself)
        if isinstance(raw, dict) and isinstance(raw.get("text"), str) and raw.get("id"):
            raws.append(raw)
    if not raws:
        return 0
    endpoint.refresh()
    scored_by, predictions = endpoint.score([prepare(r["text"], max_chars) for r in raws])
    if version is not None and scored_by != version:
        raise PulseError(f"the endpoint still serves {scored_by}, not {version}; re-rank the queue later")
    rows = []
    for raw, prediction in zip(raws, predictions, strict=True):
        top = [*sorted(prediction.probs.values(), reverse=True), 0.0, 0.0]
        rows.append(
            {
                "id": str(raw["id"]),
                "confidence": round(prediction.confidence, 4),
                "margin": round(top[0] - top[1], 4),
                "group": str(raw.get("group", "")),
                "time": str(raw.get("time", "")),
            }
        )
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    body = "\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n"
    store.put(f"{INDEX}{RERANK_PREFIX}{stamp}.jsonl", body.encode())
    return len(rows)


class LabelingService:
    """The review queue for annotators, on any `ObjectStore`. No Streamlit here.

    One instance per app replica (or per thread); instances share nothing but the store.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        lease_seconds: float = 300,
        double_share: float = 0.05,
        clock: Callable[[], float] = time.time,
        pseudonym_key: bytes | None = None,
        refresh_seconds: float = 2.0,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if not 0.0 <= double_share <= 1.0:
            raise ValueError("double_share must be between 0 and 1")
        self.store = store
        self.lease_seconds = float(lease_seconds)
        self.double_share = double_share
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self._key = pseudonym_key or workspace_pseudonym_key(store)
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._indexes_read: set[str] = set()
        self._listed_items = False
        self._index_read_at = -1e18
        self._gone: set[str] = set()
        self._found_gone = 0  # items found gone one request at a time since the queue was last listed
        self._others: dict[str, float] = {}  # item -> when another annotator's lease ends (a hint)
        self._claims_read_at = -1e18
        self._claim_seen: dict[str, float] = {}  # claimed item -> when this replica first saw the claim
        self._listed: dict[str, float] = {}  # item -> until when its listed claim makes it a busy hint
        self._doubtful: set[tuple[str, str]] = set()  # (item, annotator) of submits that failed midway
        self._contended_until = -1e18  # monotonic time until which the head of the queue is shuffled
        self._rng = random.Random()
        self._sorted: dict[tuple[str, str | None], list[str]] = {}
        self._start: dict[tuple[str, str | None], int] = {}
        self._people: dict[str, _Annotator] = {}

    # ----------------------------------------------------------------- public API

    def pseudonym(self, participant: str) -> str:
        """A stable stand-in for a participant id (keyed HMAC): the same person, never their id."""
        digest = hmac.new(self._key, str(participant).encode(), hashlib.sha256).hexdigest()
        return f"p-{digest[:12]}"

    def claim_next(
        self, annotator: str | User, order: Order = "uncertain", group: str | None = None
    ) -> ReviewItem | None:
        """The next item `annotator` may label, claimed for them with a lease; None when nothing is left.

        Given a signed-in `User` (as the review page does), only annotators and admins get items: a
        manager is refused (`NotAllowed`) and the attempt is audited. A plain name is a trusted
        caller (the CLI, benchmarks).

        A claim they already hold comes back (its lease renewed), unless they now ask for another
        group: then it is released for others. Items they skipped come after everything else; items
        they labelled never come back to them.
        """
        if isinstance(annotator, User):
            annotator = self._reviewer(annotator)
        _who(annotator)
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}: use one of {', '.join(ORDERS)}")
        if order == "group" and not group:
            raise ValueError("order 'group' needs a group")
        with self._lock:
            person = self._person(annotator)
            held = self._resume(annotator, person) or self._held_elsewhere(annotator, person)
            if held is not None:
                if order != "group" or held.group == group:
                    return held
                self._release(held.id, annotator)
            self._refresh_index()
            self._refresh_skips(annotator, person)
            self._refresh_claims()
            key = (order, group if order == "group" else None)
            now = self.clock()
            busy: list[str] = []
            relisted = False
            # 1. the queue, skipping what this annotator deferred; 2. their skipped items, in queue order
            for deferred in (False, True):
                for item_id in self._spread(self._walk(key)):
                    if (item_id in person.skipped) != deferred or item_id in person.labelled:
                        continue
                    if self._others.get(item_id, 0.0) > now or self._listed.get(item_id, 0.0) > now:
                        busy.append(item_id)
                        continue
                    item = self._try_claim(item_id, annotator, person)
                    if item is not None:
                        return item
                    if self._others.get(item_id, 0.0) > now:
                        self._contended_until = time.monotonic() + CONTENTION_SECONDS
                        if not relisted:
                            # Someone claimed it since our last look: one listing of the claims now
                            # saves a failed claim on each item the others took meanwhile.
                            relisted = True
                            self._refresh_claims(force=True)
                    if self._found_gone >= self._gone_listing_threshold():
                        self._refresh_gone()
            # Leases seen earlier are only hints: one may have been released since.
            for item_id in busy:
                if item_id in self._gone:
                    continue
                claim = self._read_claim(item_id)
                if claim is None or float(claim.get("expires_at", 0)) <= now or claim.get("annotator") == annotator:
                    self._others.pop(item_id, None)
                    self._listed.pop(item_id, None)
                    item = self._try_claim(item_id, annotator, person)
                    if item is not None:
                        return item
            return None

    def _reviewer(self, user: User) -> str:
        if user.role not in REVIEWER_ROLES:
            audit.try_record(self.store, user.name, user.role, "access_denied", "review queue")
            raise NotAllowed(f"the review queue is for annotators and admins; {user.name} is a {user.role}")
        return user.name

    def submit(self, item_id: str, label: str, annotator: str, *, seconds: float = 0.0) -> Label:
        """Store `annotator`'s label for an item they hold, then let the item leave the queue.

        Order: the label is written (append-only, retried when the store is briefly unavailable)
        before the item file is deleted, and the claim is released last. Raises `ValueError` for a
        label outside the label set and `ClaimLost` (nothing written) when the annotator does not
        hold the item or the lease has expired.
        """
        if label not in DECISIONS:
            raise ValueError(f"unknown label {label!r}: use one of {', '.join(DECISIONS)}")
        _who(annotator)
        with self._lock:
            now = self.clock()
            self._check_holder(item_id, annotator, now)
            raw = self._item_data(item_id)
            if raw is None:
                self._forget(item_id)
                raise ClaimLost(f"item {item_id} is no longer in the review queue; take the next one")
            lab = Label(
                item_id=item_id,
                text=str(raw["text"]),
                label=label,
                annotator=annotator,
                labelled_at=_iso(now),
                model_label=raw.get("predicted_label"),
                model_version=raw.get("model_version"),
                seconds=float(seconds),
                group=str(raw.get("group", "")),
            )
            attempt = (item_id, annotator)
            # A submit that failed here may have stored its label all the same (the write landed, its
            # answer was lost): this one reuses it, or replaces it if the annotator chose differently.
            earlier = self._stored_by(item_id, annotator) if attempt in self._doubtful else []
            self._doubtful.add(attempt)
            same = next(((k, e) for k, e in earlier if e.label == label), None)
            for k, _e in earlier:
                if same is None or k != same[0]:
                    retract_label(self.store, k, by=annotator, reason="replaced by a repeated submit")
            lab, key = (same[1], same[0]) if same else self._save(lab)
            entry = self._entries.get(item_id) or self._entry_from(raw)
            self._log(annotator, "label", item_id, now, label_key=key, item=raw, entry=asdict(entry))
            person = self._person(annotator)
            done = self._finish_if_complete(item_id, [lab])
            if not done:
                person.labelled.add(item_id)
            if item_id in person.skipped:
                self._quietly(self.store.delete, f"{SKIPS}{_who(annotator)}/{item_id}.json")
                person.skipped.discard(item_id)
            # The claim was checked as ours just before the label was written.
            self._release(item_id, annotator, checked=True)
            self._doubtful.discard(attempt)
            return lab

    def skip(self, item_id: str, annotator: str) -> None:
        """Release the claim and remember the skip: the item comes back to this annotator after the rest."""
        _who(annotator)
        with self._lock:
            now = self.clock()
            record = {"item_id": item_id, "annotator": annotator, "skipped_at": _iso(now)}
            self.store.put(f"{SKIPS}{_who(annotator)}/{item_id}.json", _dumps(record))
            person = self._person(annotator)
            person.skipped.add(item_id)
            self._log(annotator, "skip", item_id, now)
            self._release(item_id, annotator)

    def undo(self, annotator: str) -> str | None:
        """Reverse the annotator's last submit or skip (today's, not already undone); the item id, or None.

        A label is retracted (its file stays, see `services.labels.retract_label`), the item goes
        back to the queue if it had left, and it is claimed for the annotator again when free.
        A skip is forgotten and the item claimed again when free.
        """
        _who(annotator)
        with self._lock:
            found = self._last_action(annotator)
            if found is None:
                return None
            action_key, action = found
            now = self.clock()
            item_id = str(action["item_id"])
            person = self._person(annotator)
            if action["kind"] == "label":
                retract_label(self.store, str(action["label_key"]), by=annotator, at=_iso(now))
                person.labelled.discard(item_id)
                self._requeue(item_id, action.get("item"), action.get("entry"), now)
            else:
                self.store.delete(f"{SKIPS}{_who(annotator)}/{item_id}.json")
                person.skipped.discard(item_id)
            self._log(annotator, "undo", item_id, now, undoes=action_key)
            if person.held and person.held != item_id:
                self._release(person.held, annotator)
            self._gone.discard(item_id)
            self._others.pop(item_id, None)
            self._try_claim(item_id, annotator, person)
            return item_id

    def queue_groups(self) -> dict[str, int]:
        """Items waiting per group (this replica's view of the queue), largest first."""
        with self._lock:
            self._refresh_index()
            counts: dict[str, int] = {}
            for item_id, entry in self._entries.items():
                if item_id not in self._gone:
                    counts[entry.group] = counts.get(entry.group, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def stats(self, annotator: str | None = None, *, exact: bool = False) -> dict[str, Any]:
        """Progress figures: items left in the queue, labels today (by `annotator` and in total), claims now.

        `queue_left` is what this replica's queue knows (items labelled on other replicas leave it
        lazily); `exact=True` counts the item files instead (a full listing: not for every click).
        """
        with self._lock:
            self._refresh_index()
            now = self.clock()
            if exact:
                left = sum(1 for key in self.store.list(ITEMS) if key.endswith(".json"))
            else:
                left = len(self._entries) - len(self._gone & self._entries.keys())
            today = datetime.fromtimestamp(now, UTC).date().isoformat()
            per_person: dict[str, int] = {}
            undone: set[str] = set()
            actions: list[tuple[str, str]] = []
            for key in self.store.list(f"{ACTIONS}{today}/"):
                who, _, name = key.removeprefix(f"{ACTIONS}{today}/").rpartition("/")
                if name.endswith("-label.json"):
                    actions.append((who, key))
                elif name.endswith("-undo.json"):
                    undone.add(self._undone_key(key))
            for who, key in actions:
                if key not in undone:
                    per_person[who] = per_person.get(who, 0) + 1
            claimed = 0
            for key in self.store.list(CLAIMS):
                claim = self._read_claim(key.removeprefix(CLAIMS).removesuffix(".json"))
                if claim and float(claim.get("expires_at", 0)) > now:
                    claimed += 1
            out: dict[str, Any] = {
                "queue_left": left,
                "labelled_today": sum(per_person.values()),
                "claimed_now": claimed,
            }
            if annotator is not None:
                out["labelled_today_by_me"] = per_person.get(_who(annotator), 0)
            return out

    def agreement(self) -> tuple[float | None, list[dict[str, Any]]]:
        """Cohen's kappa over items labelled by two different annotators (their first labels), and
        the disagreements to resolve: item id, the labels in order, who gave them. Reads every label."""
        by_item: dict[str, list[Label]] = {}
        for _, lab in read_labels(self.store):
            by_item.setdefault(lab.item_id, []).append(lab)
        pairs: list[tuple[str, str]] = []
        disagreements: list[dict[str, Any]] = []
        for item_id in sorted(by_item):
            firsts: dict[str, Label] = {}
            for lab in sorted(by_item[item_id], key=lambda x: x.labelled_at):
                firsts.setdefault(lab.annotator, lab)
            if len(firsts) < 2:
                continue
            a, b = list(firsts.values())[:2]
            pairs.append((a.label, b.label))
            if len({lab.label for lab in firsts.values()}) > 1:
                disagreements.append(
                    {
                        "item_id": item_id,
                        "text": a.text,
                        "labels": [lab.label for lab in firsts.values()],
                        "annotators": list(firsts),
                    }
                )
        return cohen_kappa(pairs), disagreements

    # ----------------------------------------------------------------- the queue in memory

    def _person(self, annotator: str) -> _Annotator:
        return self._people.setdefault(annotator, _Annotator())

    def _refresh_index(self, *, force: bool = False) -> None:
        """Read index files not seen yet (one listing of `review/index/`); without any index at
        all, list the item files once instead."""
        mono = time.monotonic()
        if not force and mono - self._index_read_at < self.refresh_seconds:
            return
        self._index_read_at = mono
        added = False
        names = [k for k in self.store.list(INDEX) if k.endswith(".jsonl")]
        for key in names:
            if key in self._indexes_read:
                continue
            try:
                body = self.store.get(key).decode("utf-8", "replace")
            except KeyNotFound:
                continue
            self._indexes_read.add(key)
            for line in body.splitlines():
                entry = self._parse_entry(line)
                if entry is not None:
                    self._add(entry)
                    self._gone.discard(entry.id)  # an item put back by an undo comes back here too
                    added = True
        if not names and not self._listed_items:
            self._listed_items = True
            for key in self.store.list(ITEMS):
                item_id = key.removeprefix(ITEMS).removesuffix(".json")
                if "/" in item_id or not key.endswith(".json") or item_id in self._entries:
                    continue
                raw = self._item_data(item_id)
                if raw is not None:
                    self._add(self._entry_from(raw))
                    added = True
        if added:
            self._sorted.clear()
            self._start.clear()

    @staticmethod
    def _parse_entry(line: str) -> _Entry | None:
        if not line.strip():
            return None
        try:
            row = json.loads(line)
            return _Entry(
                id=str(row["id"]),
                margin=float(row.get("margin", row.get("confidence", 0.0))),
                time=str(row.get("time", "")),
                group=str(row.get("group", "")),
                confidence=float(row.get("confidence", 0.0)),
            )
        except (ValueError, TypeError, KeyError):
            log.warning("skipping an unreadable review index line")
            return None

    @staticmethod
    def _entry_from(raw: dict[str, Any]) -> _Entry:
        probs = raw.get("probs") or {}
        top = [*sorted((float(v) for v in probs.values()), reverse=True), 0.0, 0.0]
        margin = top[0] - top[1] if probs else float(raw.get("confidence", 0.0))
        return _Entry(
            str(raw["id"]),
            round(margin, 4),
            str(raw.get("time", "")),
            str(raw.get("group", "")),
            float(raw["confidence"]),
        )

    def _add(self, entry: _Entry) -> None:
        self._entries[entry.id] = entry

    def _walk(self, key: tuple[str, str | None]) -> Iterator[str]:
        """Item ids in queue order, from the first one not known to be gone."""
        order, group = key
        ids = self._sorted.get(key)
        if ids is None:
            entries = self._entries.values()
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
        while start < len(ids) and ids[start] in self._gone:
            start += 1
        self._start[key] = start
        for i in range(start, len(ids)):
            if ids[i] not in self._gone:
                yield ids[i]

    def _spread(self, ids: Iterator[str]) -> Iterator[str]:
        """The queue order; while other annotators compete for its head, its first items (SPREAD,
        plus four per claim listed: a replica behind the others would otherwise trail them item by
        item) in this replica's own shuffled order, so that twenty replicas do not all try the same one."""
        if self._contended_until <= time.monotonic():
            yield from ids
            return
        head = list(itertools.islice(ids, SPREAD + 4 * len(self._listed)))  # wider, the more are labelling
        self._rng.shuffle(head)
        yield from (item_id for item_id in head if item_id not in self._gone)  # gone since it was read
        yield from ids

    def _forget(self, item_id: str) -> None:
        self._gone.add(item_id)
        self._others.pop(item_id, None)

    def _held_elsewhere(self, annotator: str, person: _Annotator) -> ReviewItem | None:
        """The first time this replica serves `annotator`: an unexpired claim of theirs taken on
        another replica (a reload that reached another one), resumed rather than left to block its
        item until the lease ends. Reads each listed claim once (one per item being labelled now);
        what it learns of the others' claims spares the walk failed claims too."""
        if person.looked_elsewhere:
            return None
        person.looked_elsewhere = True
        self._refresh_claims(force=True)
        now = self.clock()
        for item_id in sorted(self._listed):
            claim = self._read_claim(item_id)
            if claim is None or float(claim.get("expires_at", 0)) <= now:
                continue
            if claim.get("annotator") == annotator:
                return self._try_claim(item_id, annotator, person)
            self._others[item_id] = float(claim["expires_at"])
        return None

    def _refresh_claims(self, *, force: bool = False) -> None:
        """One listing of `review/claims/` (a few keys: one per item being labelled): items someone
        holds are passed over without a failed claim each. Only a hint, checked again before the
        queue is declared empty; a claim listed for longer than a lease may be abandoned, so it gets
        no hint and the walk reads it (and takes it over once expired)."""
        mono = time.monotonic()
        if not force and mono - self._claims_read_at < self.refresh_seconds:
            return
        self._claims_read_at = mono
        now = self.clock()
        seen: dict[str, float] = {}
        listed: dict[str, float] = {}
        for key in self.store.list(CLAIMS):
            item_id = key.removeprefix(CLAIMS).removesuffix(".json")
            seen[item_id] = first = self._claim_seen.get(item_id, now)
            if now - first < self.lease_seconds:
                listed[item_id] = now + self.refresh_seconds
        self._claim_seen, self._listed = seen, listed
        if len(listed) > 1:  # others are labelling now: do not all race for the head of the queue
            self._contended_until = max(self._contended_until, mono + CONTENTION_SECONDS)

    def _gone_listing_threshold(self) -> int:
        """Items found gone one by one that make a listing of the queue cheaper (1 request per 1,000
        keys) than going on finding them one request each."""
        return 2 * (len(self._entries) // 1000 + 1)

    def _refresh_gone(self) -> None:
        """List `review/unrecognized/` once and forget every queued item whose file is gone (labelled
        on another replica). Item files are written before the index lines that name them, so an
        entry known here and missing from the listing has left the queue."""
        present = {k.removeprefix(ITEMS).removesuffix(".json") for k in self.store.list(ITEMS)}
        for item_id in self._entries:
            if item_id not in present:
                self._forget(item_id)
        self._found_gone = 0

    def _refresh_skips(self, annotator: str, person: _Annotator) -> None:
        mono = time.monotonic()
        if mono - person.skips_read_at < self.refresh_seconds:
            return
        person.skips_read_at = mono
        prefix = f"{SKIPS}{_who(annotator)}/"
        person.skipped = {k.removeprefix(prefix).removesuffix(".json") for k in self.store.list(prefix)}

    # ----------------------------------------------------------------- claims

    def _claim_key(self, item_id: str) -> str:
        return f"{CLAIMS}{item_id}.json"

    def _read_claim(self, item_id: str) -> dict[str, Any] | None:
        try:
            body = self.store.get(self._claim_key(item_id))
        except KeyNotFound:
            return None
        try:
            claim = json.loads(body)
            if not isinstance(claim, dict):
                raise ValueError("not an object")
            return claim
        except ValueError:
            # An unreadable claim counts as expired; its bytes name it for the takeover marker.
            return {"annotator": "", "token": hashlib.sha256(body).hexdigest()[:32], "expires_at": 0}

    def _new_claim(self, annotator: str, now: float, token: str | None = None) -> dict[str, Any]:
        return {
            "annotator": annotator,
            "token": token or secrets.token_hex(16),
            "claimed_at": now,
            "expires_at": now + self.lease_seconds,
        }

    def _try_claim(self, item_id: str, annotator: str, person: _Annotator) -> ReviewItem | None:
        """Claim one item for `annotator` and return it, or None (taken, gone, done, or theirs already)."""
        now = self.clock()
        if not self.store.exists(f"{ITEMS}{item_id}.json"):
            self._forget(item_id)  # labelled elsewhere (or quarantined)
            self._found_gone += 1
            return None
        claim = self._new_claim(annotator, now)
        try:
            self.store.put(self._claim_key(item_id), _dumps(claim), if_absent=True)
        except AlreadyExists:
            current = self._read_claim(item_id)
            if current is None:
                return None  # released a moment ago: the next pass or click gets it
            expires = float(current.get("expires_at", 0))
            if expires > now and current.get("annotator") == annotator:
                claim = self._new_claim(annotator, now, str(current.get("token")))
                claim["claimed_at"] = current.get("claimed_at", now)
                self.store.put(self._claim_key(item_id), _dumps(claim))  # resume, lease renewed
            elif expires > now:
                self._others[item_id] = expires
                return None
            else:
                # An expired lease: exactly one contender creates the marker for that token and wins.
                marker = f"{TAKEOVERS}{item_id}/{current.get('token', 'none')}.json"
                try:
                    self.store.put(marker, _dumps({"annotator": annotator, "at": now}), if_absent=True)
                except AlreadyExists:
                    self._others[item_id] = now + 1.0
                    return None
                self.store.put(self._claim_key(item_id), _dumps(claim))
        # The claim is ours: now look at the item itself.
        raw = self._item_data(item_id)
        if raw is None:
            self._quietly(self.store.delete, self._claim_key(item_id))
            self._forget(item_id)
            return None
        if item_id not in self._entries:
            self._add(self._entry_from(raw))
            self._sorted.clear()
            self._start.clear()
        labels = labels_for_item(self.store, item_id)
        if self._complete(item_id, [lab for _, lab in labels]):
            # Labelled already, but the item file outlived it (a crash between the two writes).
            self._quietly(self.store.delete, f"{ITEMS}{item_id}.json")
            self._quietly(self.store.delete, self._claim_key(item_id))
            self._forget(item_id)
            return None
        if any(lab.annotator == annotator for _, lab in labels):
            person.labelled.add(item_id)
            self._quietly(self.store.delete, self._claim_key(item_id))
            return None
        self._others.pop(item_id, None)
        person.held = item_id
        return self._review_item(raw, claim)

    def _resume(self, annotator: str, person: _Annotator) -> ReviewItem | None:
        """The item this annotator holds on this replica, lease renewed; None if they hold none."""
        item_id = person.held
        if item_id is None:
            return None
        person.held = None
        claim = self._read_claim(item_id)
        if claim is None or claim.get("annotator") != annotator or float(claim.get("expires_at", 0)) <= self.clock():
            return None
        return self._try_claim(item_id, annotator, person)

    def _check_holder(self, item_id: str, annotator: str, now: float) -> dict[str, Any]:
        claim = self._read_claim(item_id)
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

    def _release(self, item_id: str, annotator: str, *, checked: bool = False) -> None:
        """Delete the claim if it is still this annotator's (never someone else's takeover)."""
        claim = {"annotator": annotator} if checked else self._read_claim(item_id)
        if claim is not None and claim.get("annotator") == annotator:
            self._quietly(self.store.delete, self._claim_key(item_id))
        person = self._person(annotator)
        if person.held == item_id:
            person.held = None

    # ----------------------------------------------------------------- items and labels

    def _item_data(self, item_id: str) -> dict[str, Any] | None:
        """The item's fields; None when the file is gone or was quarantined as unreadable."""
        key = f"{ITEMS}{item_id}.json"
        try:
            body = self.store.get(key)
        except KeyNotFound:
            return None
        try:
            raw = json.loads(body)
            if not isinstance(raw, dict):
                raise ValueError("the file is not a JSON object")
            missing = [name for name in REQUIRED if name not in raw]
            if missing:
                raise ValueError(f"old or foreign format: no {', '.join(missing)}")
            if str(raw["id"]) != item_id:
                raise ValueError(f"the file names item {raw['id']!r}, not {item_id!r}")
            float(raw["confidence"])
            if not isinstance(raw["text"], str):
                raise ValueError("text is not a string")
        except (ValueError, TypeError) as exc:
            reason = str(exc) if not isinstance(exc, json.JSONDecodeError) else f"not valid JSON ({exc.msg})"
            self._quarantine(item_id, body, reason)
            return None
        return raw

    def _quarantine(self, item_id: str, body: bytes, reason: str) -> None:
        record = {
            "item_id": item_id,
            "reason": reason,
            "quarantined_at": _iso(self.clock()),
            "original": body.decode("utf-8", "replace"),
        }
        self.store.put(f"{QUARANTINE}{item_id}.json", _dumps(record))
        self.store.delete(f"{ITEMS}{item_id}.json")
        self._forget(item_id)
        log.warning("review item %s quarantined: %s", item_id, reason)

    def _review_item(self, raw: dict[str, Any], claim: dict[str, Any]) -> ReviewItem:
        entry = self._entries.get(str(raw["id"])) or self._entry_from(raw)
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
            pseudonym=self.pseudonym(str(raw["participant"])),
            margin=entry.margin,
            claimed_by=str(claim["annotator"]),
            claim_expires_at=float(claim["expires_at"]),
        )

    def _stored_by(self, item_id: str, annotator: str) -> list[tuple[str, Label]]:
        """The labels of `annotator` on an item that still count, with their keys."""
        return [(k, lab) for k, lab in labels_for_item(self.store, item_id) if lab.annotator == annotator]

    def _complete(self, item_id: str, labels: list[Label]) -> bool:
        """Whether an item has every label it needs: one, or two from different annotators."""
        people = {lab.annotator for lab in labels}
        return len(people) >= (2 if needs_two(item_id, self.double_share) else 1)

    def _finish_if_complete(self, item_id: str, known: list[Label]) -> bool:
        """Delete the item file once it has every label it needs (`known`: labels just written)."""
        labels = known if self._complete(item_id, known) else [lab for _, lab in labels_for_item(self.store, item_id)]
        if not self._complete(item_id, labels):
            return False
        self._quietly(self.store.delete, f"{ITEMS}{item_id}.json")  # the label is safe: the item may go
        self._forget(item_id)
        return True

    def _save(self, lab: Label) -> tuple[Label, str]:
        """Write the label append-only. A brief outage is retried; a write that landed although its
        answer was lost is recognised (same bytes), and a taken key gets the next microsecond."""
        for attempt in range(SAVE_ATTEMPTS * 2):
            key = label_key(lab)
            body = _dumps(asdict(lab))
            try:
                self.store.put(key, body, if_absent=True)
                return lab, key
            except AlreadyExists:
                try:
                    if self.store.get(key) == body:
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

    def _requeue(self, item_id: str, raw: Any, entry: Any, now: float) -> None:
        """Put an item back in the queue after its label was retracted (if it had left)."""
        if not isinstance(raw, dict):
            return
        try:
            self.store.put(f"{ITEMS}{item_id}.json", _dumps(raw), if_absent=True)
        except AlreadyExists:
            return  # it never left
        row = entry if isinstance(entry, dict) else asdict(self._entry_from(raw))
        # A one-line index file so that the other replicas see the item again.
        stamp = _iso(now).replace(":", "").replace("-", "").replace("+", "p").replace(".", "")
        self._quietly(self.store.put, f"{INDEX}undo-{stamp}-{item_id}.jsonl", _dumps(row) + b"\n")
        parsed = self._parse_entry(json.dumps(row))
        if parsed is not None:
            self._add(parsed)
            self._sorted.clear()
            self._start.clear()
        self._gone.discard(item_id)

    # ----------------------------------------------------------------- the action log (undo, stats)

    def _log(self, annotator: str, kind: str, item_id: str, now: float, **extra: Any) -> None:
        """Append one action to the annotator's log. A failure here loses only the undo of it."""
        day = datetime.fromtimestamp(now, UTC).date().isoformat()
        stamp = f"{int(now * 1_000_000):020d}-{secrets.token_hex(3)}"
        key = f"{ACTIONS}{day}/{_who(annotator)}/{stamp}-{kind}.json"
        record = {"kind": kind, "item_id": item_id, "annotator": annotator, "at": _iso(now), **extra}
        try:
            self.store.put(key, _dumps(record), if_absent=True)
        except StoreError:
            log.warning("could not log the %s of item %s by %s: it cannot be undone", kind, item_id, annotator)

    def _undone_key(self, undo_key: str) -> str:
        try:
            return str(json.loads(self.store.get(undo_key)).get("undoes", ""))
        except (KeyNotFound, ValueError, AttributeError):
            return ""

    def _last_action(self, annotator: str) -> tuple[str, dict[str, Any]] | None:
        """The annotator's latest submit or skip of today (or yesterday) that no undo has reversed."""
        now = self.clock()
        for days_back in (0, 1):
            day = (datetime.fromtimestamp(now, UTC) - timedelta(days=days_back)).date().isoformat()
            keys = sorted(self.store.list(f"{ACTIONS}{day}/{_who(annotator)}/"), reverse=True)
            undone = {self._undone_key(k) for k in keys if k.endswith("-undo.json")}
            for key in keys:
                if key.endswith("-undo.json") or key in undone:
                    continue
                try:
                    action = json.loads(self.store.get(key))
                except (KeyNotFound, ValueError):
                    continue
                if isinstance(action, dict) and action.get("kind") in ("label", "skip"):
                    return key, action
        return None

    @staticmethod
    def _quietly(fn: Callable[..., None], *args: Any) -> None:
        """Clean-up that may fail without harm (a later claim finishes it)."""
        try:
            fn(*args)
        except StoreError as exc:
            log.warning("clean-up step failed (%s); a later claim will finish it", exc)
