"""The annotator's queue: claim one unrecognized message at a time, label it, skip it, undo.

Everything lives in the store, so several app replicas (each with its own `LabelingService`) can
serve the same workspace. The service composes the parts, one job each:

    review/batches/, review/left/       items waiting for a human, per ingest batch (`batches`)
    review/unrecognized/<id>.json       items of older batches, one file each (`items`)
    (this replica)                      the walk of the queue and the claim of one item (`picking`)
    review/index/<batch>.jsonl          the queue's index, held in memory (`queue`)
    review/claims/<id>.json             who holds an item, until when (`claims`, a lease)
    review/labels/<id>/...              the labels, append-only; retractions by undo (`labels`)
    review/actions/, review/skips/      each annotator's labels, skips and undos (`actions`)
    review/quarantine/<id>.json         item files that could not be read, with the reason

Exclusivity comes from create-if-absent writes (a local hard link, an S3 `If-None-Match: *` PUT),
never from read-then-write. The order of writes makes every crash safe: a label is written before
its item file is deleted, and the claim is released last.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Literal

from services.access import policy, pseudonyms
from services.access.users import User
from services.errors import ClaimLost
from services.review import actions
from services.review.agreement import agreement
from services.review.items import ReviewItem, entry_from, requeue, waiting_entries
from services.review.labels import DECISIONS, Label, labels_for_item, retract_label, write_label
from services.review.picking import Picker, quietly
from services.store.base import ObjectStore

log = logging.getLogger(__name__)

Order = Literal["uncertain", "oldest", "group", "random"]
# "random": a fixed pseudo-random order (by a hash of the item id), for spot checks that estimate
# how the model does on live data without the bias of least-sure-first.
ORDERS = ("uncertain", "oldest", "group", "random")
# Copies of one text labelled by one click; more come back as one task (a click stays quick on S3).
COPIES_PER_LABEL = 100


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
        self.clock = clock
        self._key = pseudonyms.pseudonym_key(store, pseudonym_key)
        self._lock = threading.RLock()
        self._pick = Picker(
            store,
            lease_seconds=float(lease_seconds),
            double_share=double_share,
            clock=clock,
            refresh_seconds=refresh_seconds,
            pseudonym=self.pseudonym,
        )
        self.queue = self._pick.queue
        self.claims = self._pick.claims
        self._doubtful: set[tuple[str, str]] = set()  # (item, annotator) of submits that failed midway

    # ----------------------------------------------------------------- public API

    def pseudonym(self, participant: str) -> str:
        """A stable stand-in for a participant id (`services.access.pseudonyms`), never their id."""
        return pseudonyms.pseudonym(self._key, participant)

    def claim_next(
        self, annotator: str | User, order: Order = "uncertain", group: str | None = None
    ) -> ReviewItem | None:
        """The next item `annotator` may label, claimed for them with a lease; None when nothing is left.

        Given a signed-in `User` (as the review page does), only annotators and admins get items: a
        manager is refused (`NotAllowed`) and the attempt is audited. A plain name is a trusted
        caller (the CLI, benchmarks). A claim they already hold comes back (its lease renewed),
        unless they now ask for another group: then it is released for others. Items they skipped
        come after everything else; items they labelled never come back to them.
        """
        if isinstance(annotator, User):
            policy.require(annotator, "review", self.store, target="review queue")
            annotator = annotator.name
        actions.who(annotator)
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}: use one of {', '.join(ORDERS)}")
        if order == "group" and not group:
            raise ValueError("order 'group' needs a group")
        with self._lock:
            return self._pick.next(annotator, (order, group if order == "group" else None))

    def submit(self, item_id: str, label: str, annotator: str, *, seconds: float = 0.0) -> Label:
        """Store `annotator`'s label for an item they hold, then let the item leave the queue.

        Order: the label is written (append-only, retried when the store is briefly unavailable)
        before the item file is deleted, and the claim is released last. Raises `ValueError` for a
        label outside the label set and `ClaimLost` (nothing written) when the annotator does not
        hold the item or the lease has expired.
        """
        if label not in DECISIONS:
            raise ValueError(f"unknown label {label!r}: use one of {', '.join(DECISIONS)}")
        actions.who(annotator)
        with self._lock:
            now = self.clock()
            self.claims.hold(item_id, annotator)
            raw = self._pick.item(item_id)  # None: gone, and forgotten by this replica's queue
            if raw is None:
                raise ClaimLost(f"item {item_id} is no longer in the review queue; take the next one")
            lab = _label_of(raw, item_id, label, annotator, now, seconds=float(seconds))
            attempt = (item_id, annotator)
            # A submit that failed here may have stored its label all the same (the write landed, its
            # answer was lost): this one reuses it, or replaces it if the annotator chose differently.
            earlier = self._stored_by(item_id, annotator) if attempt in self._doubtful else []
            self._doubtful.add(attempt)
            same = next(((k, e) for k, e in earlier if e.label == label), None)
            for k, _e in earlier:
                if same is None or k != same[0]:
                    retract_label(self.store, k, by=annotator, reason="replaced by a repeated submit")
            lab, key = (same[1], same[0]) if same else write_label(self.store, lab)
            entry = self.queue.entries.get(item_id) or entry_from(raw)
            copies = self._label_copies(item_id, entry.text_key, label, annotator, now)
            actions.record(
                self.store,
                annotator,
                "label",
                item_id,
                now,
                label_key=key,
                item=raw,
                entry=asdict(entry),
                copies=copies,
            )
            person = self._pick.person(annotator)
            if not self._pick.finish_if_complete(item_id, [lab]):
                person.labelled.add(item_id)
            if item_id in person.skipped:
                quietly(self.store.delete, actions.skip_key(annotator, item_id))
                person.skipped.discard(item_id)
            self._pick.release(item_id, annotator, checked=True)  # checked as ours just before the label
            self._doubtful.discard(attempt)
            return lab

    def _label_copies(self, item_id: str, text: str, label: str, annotator: str, now: float) -> list[dict[str, Any]]:
        """The same label for the other queued copies of the item's text that nobody else holds (at
        most COPIES_PER_LABEL; the rest come back as one task). Each copy is claimed, labelled and
        released like the item itself; what undo needs to put them back is returned."""
        done: list[dict[str, Any]] = []
        person = self._pick.person(annotator)
        for other in self.queue.copies(item_id)[:COPIES_PER_LABEL]:
            if self.claims.busy(other) or self.claims.take(other, annotator) is None:
                continue
            raw = self._pick.item(other)
            entry = self.queue.entries.get(other)
            stored = labels_for_item(self.store, other) if raw is not None else []
            if (
                raw is None
                or entry is None
                or entry.text_key != text
                or any(e.annotator == annotator for _, e in stored)
            ):
                self._pick.release(other, annotator)
                continue
            lab, key = write_label(self.store, _label_of(raw, other, label, annotator, now))
            if not self._pick.finish_if_complete(other, [lab, *(e for _, e in stored)]):
                person.labelled.add(other)
            self._pick.release(other, annotator, checked=True)
            done.append({"item_id": other, "label_key": key, "item": raw, "entry": asdict(entry)})
        return done

    def skip(self, item_id: str, annotator: str) -> None:
        """Release the claim and remember the skip: the item comes back to this annotator after the rest."""
        actions.who(annotator)
        with self._lock:
            now = self.clock()
            body = {"item_id": item_id, "annotator": annotator, "skipped_at": actions.iso(now)}
            self.store.put(actions.skip_key(annotator, item_id), actions.dumps(body))
            self._pick.person(annotator).skipped.add(item_id)
            actions.record(self.store, annotator, "skip", item_id, now)
            self._pick.release(item_id, annotator)

    def undo(self, annotator: str) -> str | None:
        """Reverse the annotator's last submit or skip (today's, not already undone); the item id, or None.

        A label is retracted (its file stays, see `services.review.labels.retract_label`), the item
        goes back to the queue if it had left, and it is claimed for the annotator again when free.
        A skip is forgotten and the item claimed again when free.
        """
        actions.who(annotator)
        with self._lock:
            now = self.clock()
            found = actions.last_action(self.store, annotator, now)
            if found is None:
                return None
            action_key, action = found
            item_id = str(action["item_id"])
            person = self._pick.person(annotator)
            if action["kind"] == "label":
                copies = action.get("copies") or []
                undone = [{"item_id": item_id, **action}, *(c for c in copies if isinstance(c, dict))]
                for each in undone:  # the item, and the copies its label was applied to
                    retract_label(self.store, str(each["label_key"]), by=annotator, at=actions.iso(now))
                    person.labelled.discard(str(each["item_id"]))
                    entry = requeue(self.store, str(each["item_id"]), each.get("item"), each.get("entry"), now)
                    if entry is not None:
                        self.queue.add(entry)
                    self.queue.gone.discard(str(each["item_id"]))
            else:
                self.store.delete(actions.skip_key(annotator, item_id))
                person.skipped.discard(item_id)
            actions.record(self.store, annotator, "undo", item_id, now, undoes=action_key)
            if person.held and person.held != item_id:
                self._pick.release(person.held, annotator)
            self.queue.gone.discard(item_id)
            self.claims.others.pop(item_id, None)
            self._pick.try_claim(item_id, annotator, person)
            return item_id

    def queue_groups(self) -> dict[str, int]:
        """Items waiting per group (this replica's view of the queue), largest first."""
        with self._lock:
            self.queue.refresh()
            return self.queue.groups()

    def stats(self, annotator: str | None = None, *, exact: bool = False) -> dict[str, Any]:
        """Progress figures: items left in the queue, labels today (by `annotator` and in total), claims now.

        `queue_left` is what this replica's queue knows (items labelled on other replicas leave it
        lazily); `exact=True` counts what the store holds instead (listings: not for every click).
        """
        with self._lock:
            self.queue.refresh()
            left = len(waiting_entries(self.store)) if exact else self.queue.left()
            per_person = actions.labelled_today(self.store, self.clock())
            out: dict[str, Any] = {
                "queue_left": left,
                "labelled_today": sum(per_person.values()),
                "claimed_now": self.claims.active(),
            }
            if annotator is not None:
                out["labelled_today_by_me"] = per_person.get(actions.who(annotator), 0)
            return out

    def agreement(self) -> tuple[float | None, list[dict[str, Any]]]:
        """Cohen's kappa over items labelled by two annotators, and the disagreements to resolve
        (`services.review.agreement`)."""
        return agreement(self.store)

    # ----------------------------------------------------------------- labels that complete an item

    def _stored_by(self, item_id: str, annotator: str) -> list[tuple[str, Label]]:
        """The labels of `annotator` on an item that still count, with their keys."""
        return [(k, lab) for k, lab in labels_for_item(self.store, item_id) if lab.annotator == annotator]


def _label_of(raw: dict[str, Any], item_id: str, label: str, annotator: str, now: float, seconds: float = 0.0) -> Label:
    """The label record of one queued item file, as a submit (or a copy of its text) stores it."""
    return Label(
        item_id=item_id,
        text=str(raw["text"]),
        label=label,
        annotator=annotator,
        labelled_at=actions.iso(now),
        model_label=raw.get("predicted_label"),
        model_version=raw.get("model_version"),
        seconds=seconds,
        group=str(raw.get("group", "")),
    )
