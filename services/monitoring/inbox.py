"""What managers do with alerts: list the ones of their groups (newest and most urgent first, with
their status), open one with the check-ins behind it, acknowledge and resolve it with a note; and an
annotator's flag that raises a critical alert for a message."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from services.access import audit
from services.access.users import User
from services.checkins.partitions import read_scored
from services.errors import AlertNotFound, AlreadyExists, InvalidKey, InvalidNote, KeyNotFound, NotAllowed
from services.monitoring.alerts import (
    ALERT_ID,
    SEVERITIES,
    SEVERITY,
    STATUSES,
    Alert,
    Notifier,
    StatusChange,
    alert_id,
    decode_alert,
    encode_alert,
    event_key,
    iso_utc,
)
from services.monitoring.rules import stamp
from services.store import keys
from services.store.base import ObjectStore

if TYPE_CHECKING:
    from services.review.items import ReviewItem

log = logging.getLogger(__name__)


MAX_NOTE = 1000


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _find_checkin(store: ObjectStore, checkin_id: str, day: str | None) -> dict[str, Any] | None:
    """participant, group and time of one check-in: from its day's partitions when the day is known,
    else from the review item, else from every partition."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns = ["id", "participant", "group", "time"]
    if day and _DAY.match(day):
        for key in store.list(f"{keys.CHECKINS}date={day}/"):
            if key.endswith(".parquet"):
                table = pq.read_table(io.BytesIO(store.get(key)), columns=columns)
                hits = table.filter(pc.equal(table.column("id"), checkin_id)).to_pylist()
                if hits:
                    return dict(hits[0])
    try:
        item = json.loads(store.get(keys.review_item_key(checkin_id)))
        return {"id": checkin_id, "participant": item["participant"], "group": item["group"], "time": item["time"]}
    except (KeyNotFound, InvalidKey, ValueError, KeyError, TypeError):
        pass
    frame = read_scored(store, columns)
    hits = frame[frame["id"] == checkin_id]
    return hits.iloc[0].to_dict() if len(hits) else None


def _check_note(note: str, *, required: bool = False) -> str:
    note = note.strip()
    if required and not note:
        raise InvalidNote("write a note saying what was done before resolving the alert")
    if len(note) > MAX_NOTE:
        raise InvalidNote(f"the note is longer than {MAX_NOTE} characters")
    return note


def flag_urgent(
    store: ObjectStore,
    item: ReviewItem | str,
    by: str,
    note: str = "",
    *,
    notifier: Notifier | None = None,
    clock: Callable[[], datetime] | None = None,
    role: str = "",
) -> Alert:
    """An annotator's "flag as urgent" on a review item (or a check-in id): a critical alert for the
    managers of its group. Flagging the same check-in again returns the alert already raised."""
    checkin_id = item if isinstance(item, str) else item.id
    day = None if isinstance(item, str) else item.time[:10]
    row = _find_checkin(store, checkin_id, day) if checkin_id else None
    if row is None:
        raise AlertNotFound("that check-in is not in the workspace; it may have been removed")
    note = _check_note(note)
    group, participant = str(row["group"]), str(row["participant"])
    alert = Alert(
        id=alert_id("manual", group, participant, checkin_id),
        rule="manual",
        severity=SEVERITY["manual"],
        group=group,
        participant=participant,
        created_at=stamp(clock),
        at=iso_utc(pd.Timestamp(row["time"])),
        checkin_ids=(checkin_id,),
        reason=f"flagged as urgent by {by}",
        by=by,
        note=note,
    )
    try:
        store.put(event_key(alert.id), encode_alert(alert), if_absent=True)
    except AlreadyExists:
        return decode_alert(store.get(event_key(alert.id)))
    log.info("alert %s raised: a check-in flagged as urgent by %s", alert.id, by)
    audit.try_record(store, by, role, "flag_urgent", alert.id, {"group": group})
    if notifier is not None:
        notifier.publish(alert)
    return alert


def _refuse(user: User, action: str, alert_id: str = "", store: ObjectStore | None = None) -> NotAllowed:
    log.warning("refused: %s (%s) may not %s %s", user.name, user.role, action, alert_id or "alerts")
    if store is not None:
        audit.try_record(store, user.name, user.role, "access_denied", alert_id or "alerts", {"action": action})
    if user.role == "manager":
        return NotAllowed("this alert belongs to a group you do not look after")
    return NotAllowed("only managers and admins can see and act on alerts")


def _readable(user: User, store: ObjectStore) -> None:
    if user.role not in ("manager", "admin"):
        raise _refuse(user, "list", store=store)


def _read_many(store: ObjectStore, keys: list[str]) -> list[tuple[str, bytes]]:
    # Each read is a file or an S3 GET, both waiting on I/O.
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(zip(keys, pool.map(store.get, keys), strict=True))


def _statuses(store: ObjectStore, prefix: str) -> dict[str, list[StatusChange]]:
    found = [k for k in store.list(prefix) if k.endswith(".json")]
    out: dict[str, list[StatusChange]] = {}
    for key, body in _read_many(store, found):
        try:
            change = StatusChange(**json.loads(body))
        except (ValueError, TypeError):
            log.warning("status file %s cannot be read; skipped", key)
            continue
        out.setdefault(change.alert_id, []).append(change)
    return out


def _with_status(alert: Alert, changes: list[StatusChange]) -> Alert:
    ordered = tuple(sorted(changes, key=lambda c: c.at))
    return replace(alert, status=ordered[-1].status if ordered else "open", history=ordered)


def inbox_order(alerts: Iterable[Alert]) -> list[Alert]:
    """Open first, then acknowledged, then resolved; the most severe first; the newest first."""
    newest_first = sorted(alerts, key=lambda a: (a.at, a.id), reverse=True)
    return sorted(newest_first, key=lambda a: (STATUSES.index(a.status), SEVERITIES.index(a.severity)))


def list_alerts(store: ObjectStore, user: User, status: str | None = None) -> list[Alert]:
    """The alerts `user` may see, in inbox order: admins every group, managers their groups.
    Annotators are refused (`NotAllowed`, and the attempt is logged). `status` keeps only one status."""
    _readable(user, store)
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    found = [k for k in store.list(keys.ALERT_EVENTS) if k.endswith(".json")]
    alerts = []
    for key, body in _read_many(store, found):
        try:
            alert = decode_alert(body)
        except (ValueError, TypeError):
            log.warning("alert file %s cannot be read; skipped", key)
            continue
        if user.can_see_group(alert.group):
            alerts.append(alert)
    changes = _statuses(store, keys.ALERT_STATUS)
    shown = [_with_status(a, changes.get(a.id, [])) for a in alerts]
    return inbox_order(a for a in shown if status is None or a.status == status)


def get_alert(store: ObjectStore, alert_id: str, user: User) -> Alert:
    """One alert with its status history, if `user` may see it."""
    _readable(user, store)
    if not ALERT_ID.match(alert_id):
        raise AlertNotFound("no alert with that id")
    try:
        alert = decode_alert(store.get(event_key(alert_id)))
    except KeyNotFound:
        raise AlertNotFound("no alert with that id") from None
    if not user.can_see_group(alert.group):
        raise _refuse(user, "see alert", alert_id, store)
    return _with_status(alert, _statuses(store, f"{keys.ALERT_STATUS}{alert_id}/").get(alert_id, []))


def _change(
    store: ObjectStore, alert_id: str, user: User, status: str, note: str, clock: Callable[[], datetime] | None
) -> Alert:
    alert = get_alert(store, alert_id, user)
    note = _check_note(note, required=status == "resolved")
    for attempt in range(3):
        change = StatusChange(alert.id, status, user.name, stamp(clock if attempt == 0 else None), note)
        who = keys.segment(user.name, default="unknown")
        key = f"{keys.ALERT_STATUS}{alert.id}/{keys.file_stamp(change.at)}-{who}.json"
        try:
            store.put(key, json.dumps(asdict(change), ensure_ascii=False).encode(), if_absent=True)
            break
        except AlreadyExists:  # two changes by one person in the same microsecond: take a new stamp
            if attempt == 2:
                raise
    log.info("alert %s %s by %s", alert.id, status, user.name)
    return get_alert(store, alert.id, user)


def acknowledge(
    store: ObjectStore, alert_id: str, user: User, note: str = "", *, clock: Callable[[], datetime] | None = None
) -> Alert:
    """Record that `user` has seen the alert and is on it. Managers only for their groups."""
    return _change(store, alert_id, user, "acknowledged", note, clock)


def resolve(
    store: ObjectStore, alert_id: str, user: User, note: str, *, clock: Callable[[], datetime] | None = None
) -> Alert:
    """Close the alert with a note saying what was done. Managers only for their groups."""
    return _change(store, alert_id, user, "resolved", note, clock)


def alert_checkins(store: ObjectStore, alert_id: str, user: User) -> pd.DataFrame:
    """The check-ins that triggered an alert (time, label, confidence, text), oldest first, for a
    user allowed to see its group. The text is for display as plain text only."""
    alert = get_alert(store, alert_id, user)
    columns = ["id", "time", "label", "confidence", "text"]
    frame = read_scored(store, columns, groups=[alert.group])
    frame = frame[frame["id"].isin(alert.checkin_ids)].sort_values(["time", "id"])
    return frame.reset_index(drop=True)
