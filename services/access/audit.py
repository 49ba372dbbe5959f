"""The audit log: who did what, when, from which role.

One small JSON object per event, written once and never changed, so concurrent writers (several
app replicas, the CLI) never overwrite each other:

    audit/<YYYY-MM-DD>/<stamp>-<random>.json   {"at", "actor", "role", "action", "target", "details"}

Events name people, versions, groups and counts; never message text (check-in text is sensitive
and the audit log is kept longer than anything else). `details` values are checked to be short
scalars so a careless caller cannot smuggle a message in.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime

import pandas as pd

from services.errors import KeyNotFound, PulseError, StoreError
from services.store import keys
from services.store.base import ObjectStore

log = logging.getLogger(__name__)

PREFIX = keys.AUDIT
ACTIONS = (
    "sign_in",
    "sign_in_refused",
    "sign_in_locked",
    "sign_in_unlocked",
    "label",
    "flag_urgent",
    "dataset_built",
    "training_started",
    "training_cancelled",
    "promotion",
    "promotion_refused",
    "rollback",
    "endpoint_moved",
    "threshold_changed",
    "alert_rules_changed",
    "participant_deleted",
    "access_denied",
)
MAX_DETAIL_CHARS = 200
Detail = str | int | float | bool | None


@dataclass(frozen=True)
class AuditEvent:
    at: str
    actor: str
    role: str
    action: str
    target: str = ""
    details: dict[str, Detail] = field(default_factory=dict)


def _check_details(details: Mapping[str, object]) -> dict[str, Detail]:
    clean: dict[str, Detail] = {}
    for key, value in details.items():
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ValueError(f"audit detail {key!r} must be a scalar, not {type(value).__name__}")
        if isinstance(value, str) and len(value) > MAX_DETAIL_CHARS:
            raise ValueError(f"audit detail {key!r} is longer than {MAX_DETAIL_CHARS} characters")
        clean[str(key)] = value
    return clean


def record(
    store: ObjectStore,
    actor: str,
    role: str,
    action: str,
    target: str = "",
    details: Mapping[str, object] | None = None,
    *,
    now: datetime | None = None,
) -> AuditEvent:
    """Append one event. A store failure is logged and re-raised: an action that must be audited
    should not silently go unrecorded."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    when = (now or datetime.now(UTC)).astimezone(UTC)
    event = AuditEvent(
        at=when.isoformat(timespec="microseconds"),
        actor=actor,
        role=role,
        action=action,
        target=target[:MAX_DETAIL_CHARS],
        details=_check_details(details or {}),
    )
    stamp = when.strftime("%Y%m%dT%H%M%S%fZ")
    key = f"{PREFIX}{when.date().isoformat()}/{stamp}-{secrets.token_hex(4)}.json"
    try:
        store.put(key, json.dumps(asdict(event), sort_keys=True).encode(), if_absent=True)
    except StoreError:
        log.error("could not write audit event %s by %s", action, actor)
        raise
    return event


def _days(store: ObjectStore) -> list[str]:
    return sorted({key[len(PREFIX) :].split("/", 1)[0] for key in store.list(PREFIX)}, reverse=True)


def read_events(
    store: ObjectStore,
    *,
    since: date | None = None,
    until: date | None = None,
    actions: Iterable[str] | None = None,
    actor: str | None = None,
    limit: int = 1000,
) -> list[AuditEvent]:
    """Events newest first, filtered by day range, action and actor; at most `limit`."""
    wanted = set(actions) if actions else None
    events: list[AuditEvent] = []
    for day in _days(store):
        if (since and day < since.isoformat()) or (until and day > until.isoformat()):
            continue
        for key in sorted(store.list(f"{PREFIX}{day}/"), reverse=True):
            try:
                raw = json.loads(store.get(key))
                event = AuditEvent(**raw)
            except (KeyNotFound, json.JSONDecodeError, TypeError):
                log.warning("skipping unreadable audit event %s", key)
                continue
            if (wanted and event.action not in wanted) or (actor and event.actor != actor):
                continue
            events.append(event)
            if len(events) >= limit:
                return events
    return events


def try_record(
    store: ObjectStore,
    actor: str,
    role: str,
    action: str,
    target: str = "",
    details: Mapping[str, object] | None = None,
) -> None:
    """Record an event where failing to audit must not undo what already happened (e.g. a
    sign-in): the failure is logged, without details."""
    try:
        record(store, actor, role, action, target, details)
    except PulseError:
        log.error("audit event %s by %s was not recorded", action, actor)


def events_frame(events: Iterable[AuditEvent]) -> pd.DataFrame:
    """Events as the audit page shows and exports them: one row each, details in words."""
    shown = list(events)
    return pd.DataFrame(
        {
            "when (UTC)": [e.at[:19].replace("T", " ") for e in shown],
            "who": [e.actor for e in shown],
            "role": [e.role or "—" for e in shown],
            "action": [e.action.replace("_", " ") for e in shown],
            "target": [e.target for e in shown],
            "details": [", ".join(f"{k}: {v}" for k, v in e.details.items()) for e in shown],
        }
    )


def rows_per_split(counts: Mapping[str, Mapping[str, int]]) -> dict[str, object]:
    """A dataset manifest's counts (split -> label -> rows) as audit details: rows per split."""
    return {f"{split}_rows": sum(per_label.values()) for split, per_label in counts.items()}


def label_events(store: ObjectStore, *, since: date | None = None, until: date | None = None) -> list[AuditEvent]:
    """Labels as audit events, read from the labels themselves (each label is already an append-only
    record of who decided what and when: writing it twice would slow the keyboard path for nothing).
    Retracted (undone) labels are not shown. Newest first; no message text."""
    from services.review.labels import read_labels

    out = []
    for _, lab in read_labels(store):
        day = lab.labelled_at[:10]
        if (since and day < since.isoformat()) or (until and day > until.isoformat()):
            continue
        details: dict[str, str | int | float | bool | None] = {
            "label": lab.label,
            "group": lab.group[:MAX_DETAIL_CHARS],
        }
        if lab.gold:
            details["gold"] = True
        out.append(AuditEvent(lab.labelled_at, lab.annotator, "", "label", lab.item_id, details))
    return sorted(out, key=lambda e: e.at, reverse=True)
