"""Alerts: who needs attention now.

The rules run on every ingest, over the freshly scored check-ins and the history they need; an
annotator can also flag a check-in as urgent. Everything lives in the store:

    alerts/rules.json                            the rules (the defaults below when absent)
    alerts/rules-history/<stamp>-<who>.json      each saved version of the rules
    alerts/events/<alert id>.json                one alert, written once (create-if-absent), never changed
    alerts/status/<alert id>/<stamp>-<who>.json  acknowledgements and resolutions, append-only; the latest wins

An alert id is a hash of (rule, group, participant, the triggering check-in or the week of the
window), so evaluating the same check-ins twice, or ingesting a file again, adds nothing.

"Now" for the window rules is the latest check-in time among the fresh check-ins, not the wall
clock, so re-ingesting old data gives the same alerts. Sentiment for `baseline_drop` is the
model's expected score, p_positive - p_negative, from -1 (surely negative) to +1 (surely positive):
an unsure prediction counts for less than a sure one.

Message text is sensitive: it never goes into an alert, a log line or an error message. The inbox
looks the triggering check-ins up in the scored partitions, for users allowed to see their group.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Protocol

import pandas as pd

from services.checkins.partitions import read_scored
from services.errors import AlreadyExists
from services.monitoring.crisis import find_crisis
from services.monitoring.rules import (
    BaselineDrop,
    ConsecutiveNegative,
    GroupNegativeShare,
    Rules,
    load_rules,
    stamp,
)
from services.store import keys
from services.store.base import ObjectStore

log = logging.getLogger(__name__)


WINDOW = timedelta(days=7)  # "the last 7 days" of the window rules
BASELINE = timedelta(days=28)  # a participant's own baseline: the 28 days before that window
WEEK_ZERO = pd.Timestamp("1970-01-05", tz="UTC")  # a Monday: window alerts are keyed by the week they end in

SEVERITIES = ("critical", "warning", "info")  # most urgent first
STATUSES = ("open", "acknowledged", "resolved")
RULE_TITLES = {
    "crisis_phrases": "Crisis language",
    "manual": "Flagged as urgent",
    "consecutive_negative": "Negative streak",
    "baseline_drop": "Drop below own baseline",
    "group_negative_share": "Group mostly negative",
}
SEVERITY = {
    "crisis_phrases": "critical",
    "manual": "critical",
    "consecutive_negative": "warning",
    "baseline_drop": "warning",
    "group_negative_share": "info",
}
MAX_IDS = 200  # check-in ids kept on one alert (a group window can hold thousands)
ALERT_ID = re.compile(r"^[0-9a-f]{24}$")


# ------------------------------------------------------------------------------------------ alerts


@dataclass(frozen=True)
class StatusChange:
    """Someone acknowledged or resolved an alert. Stored as its own object; the latest wins."""

    alert_id: str
    status: str  # "acknowledged" or "resolved"
    by: str
    at: str
    note: str = ""


@dataclass(frozen=True)
class Alert:
    """Someone (or a group) who needs attention. Never holds message text."""

    id: str
    rule: str
    severity: str  # critical, warning or info
    group: str
    participant: str | None  # None for group rules
    created_at: str  # when the alert was raised
    at: str  # time of the latest triggering check-in (or the end of the window)
    checkin_ids: tuple[str, ...]
    reason: str  # short, human-readable, without message text
    by: str = "rules"  # "rules", or the annotator who flagged it
    note: str = ""  # the annotator's note on a manual flag
    status: str = "open"  # derived from the status changes, not stored with the event
    history: tuple[StatusChange, ...] = ()

    @property
    def title(self) -> str:
        return RULE_TITLES.get(self.rule, self.rule)


def alert_id(rule: str, group: str, participant: str | None, key: str) -> str:
    """The deterministic id of an alert: the same trigger always gives the same id."""
    raw = "\x1f".join((rule, group, participant or "", key))
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def event_key(alert_id: str) -> str:
    return f"{keys.ALERT_EVENTS}{alert_id}.json"


def iso_utc(ts: pd.Timestamp) -> str:
    return str(pd.Timestamp(ts).tz_convert("UTC").isoformat())


def encode_alert(alert: Alert) -> bytes:
    data = asdict(alert)
    data.pop("status")
    data.pop("history")
    data["checkin_ids"] = list(alert.checkin_ids)
    return json.dumps(data, ensure_ascii=False, indent=1).encode()


def decode_alert(body: bytes) -> Alert:
    raw = json.loads(body)
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    names = {f.name for f in fields(Alert)} - {"status", "history"}
    values = {k: v for k, v in raw.items() if k in names}
    values["checkin_ids"] = tuple(str(i) for i in values.get("checkin_ids", ()))
    return Alert(**values)


# ------------------------------------------------------------------------------------- evaluation

HISTORY_COLUMNS = ["id", "participant", "group", "time", "label", "p_negative", "p_positive"]


def _history(store: ObjectStore, fresh: pd.DataFrame) -> pd.DataFrame:
    """The fresh check-ins and the stored ones of the same participants and groups, in time order."""
    history = read_scored(store, HISTORY_COLUMNS, groups=sorted(fresh["group"].unique()))
    parts = [p for p in (history, fresh[HISTORY_COLUMNS]) if not p.empty]
    frame = pd.concat(parts, ignore_index=True).drop_duplicates("id", keep="last")
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame.sort_values(["time", "id"], kind="stable").reset_index(drop=True)


def _person_rows(frame: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    """The rows of the participants (of a group) that have fresh check-ins."""
    people = pd.MultiIndex.from_frame(fresh[["group", "participant"]].drop_duplicates())
    return frame[pd.MultiIndex.from_frame(frame[["group", "participant"]]).isin(people)]


def _week_key(now: pd.Timestamp) -> str:
    start = WEEK_ZERO + timedelta(days=7 * ((now - WEEK_ZERO).days // 7))
    return f"week-{start:%Y-%m-%d}"


def _newest_ids(rows: pd.DataFrame) -> tuple[str, ...]:
    return tuple(str(i) for i in rows["id"].tolist()[-MAX_IDS:])


def _crisis_alerts(fresh: pd.DataFrame, phrases: Sequence[str], created_at: str) -> list[Alert]:
    findings = find_crisis([str(text) for text in fresh["text"]], phrases)
    rows = fresh[["id", "participant", "group", "time"]].itertuples(index=False)
    return [
        Alert(
            id=alert_id("crisis_phrases", row.group, row.participant, str(row.id)),
            rule="crisis_phrases",
            severity=SEVERITY["crisis_phrases"] if finding.critical else "warning",
            group=str(row.group),
            participant=str(row.participant),
            created_at=created_at,
            at=iso_utc(row.time),
            checkin_ids=(str(row.id),),
            reason=finding.reason,
        )
        for row, finding in zip(rows, findings, strict=True)
        if finding is not None
    ]


def _streak_alerts(
    people: pd.DataFrame, fresh_ids: set[str], rule: ConsecutiveNegative, now: pd.Timestamp, created_at: str
) -> list[Alert]:
    """Runs of `rule.count`+ negatives that hold a fresh check-in and whose last check-in is within
    the last 7 days (a backfill does not raise streaks that ended long ago). A streak is keyed by its
    first check-in, so one that grows later raises nothing new. Vectorised: a workspace can hold
    tens of thousands of participants."""
    rows = people.sort_values(["group", "participant", "time", "id"], kind="stable").reset_index(drop=True)
    negative = rows["label"].eq("negative")
    same_person = rows["group"].eq(rows["group"].shift()) & rows["participant"].eq(rows["participant"].shift())
    rows = rows.assign(
        run=(~(same_person & negative.eq(negative.shift()))).cumsum(),
        fresh=rows["id"].astype(str).isin(fresh_ids),
    )[negative]
    runs = rows.groupby("run").agg(n=("id", "size"), last=("time", "max"), fresh=("fresh", "any"))
    wanted = runs[(runs["n"] >= rule.count) & (runs["last"] > now - WINDOW) & runs["fresh"]].index
    out = []
    for _, run in rows[rows["run"].isin(wanted)].groupby("run", sort=True):
        ids = [str(i) for i in run["id"]]
        first, last = run["time"].iloc[0], run["time"].iloc[-1]
        group, participant = str(run["group"].iloc[0]), str(run["participant"].iloc[0])
        out.append(
            Alert(
                id=alert_id("consecutive_negative", group, participant, ids[0]),
                rule="consecutive_negative",
                severity=SEVERITY["consecutive_negative"],
                group=group,
                participant=participant,
                created_at=created_at,
                at=iso_utc(last),
                checkin_ids=tuple(ids[-MAX_IDS:]),
                reason=f"{len(ids)} negative check-ins in a row ({first:%Y-%m-%d} to {last:%Y-%m-%d})",
            )
        )
    return out


def _baseline_alerts(people: pd.DataFrame, rule: BaselineDrop, now: pd.Timestamp, created_at: str) -> list[Alert]:
    window_start, base_start = now - WINDOW, now - WINDOW - BASELINE
    rows = people[(people["time"] > base_start) & (people["time"] <= now)]
    rows = rows.assign(
        score=rows["p_positive"].astype(float) - rows["p_negative"].astype(float),
        recent=rows["time"] > window_start,
    )
    stats = rows.groupby(["group", "participant", "recent"])["score"].agg(["size", "mean"]).unstack("recent")
    if True not in stats["size"].columns or False not in stats["size"].columns:
        return []  # nobody has check-ins in both windows
    n_recent, n_base = stats["size"][True].fillna(0), stats["size"][False].fillna(0)
    mean_recent, mean_base = stats["mean"][True], stats["mean"][False]
    hit = (n_recent >= rule.min_checkins) & (n_base >= rule.min_checkins) & (mean_base - mean_recent > rule.drop)
    out = []
    for group, participant in stats.index[hit.to_numpy()]:
        recent = rows[rows["recent"] & rows["group"].eq(group) & rows["participant"].eq(participant)]
        key = (group, participant)
        out.append(
            Alert(
                id=alert_id("baseline_drop", group, participant, _week_key(now)),
                rule="baseline_drop",
                severity=SEVERITY["baseline_drop"],
                group=str(group),
                participant=str(participant),
                created_at=created_at,
                at=iso_utc(recent["time"].max()),
                checkin_ids=_newest_ids(recent),
                reason=f"mean mood {mean_recent[key]:+.2f} over the 7 days to {now:%Y-%m-%d} "
                f"({int(n_recent[key])} check-ins), down from {mean_base[key]:+.2f} over the 28 days before "
                f"({int(n_base[key])} check-ins); scale -1 to +1",
            )
        )
    return out


def _group_alerts(
    frame: pd.DataFrame, groups: Iterable[str], rule: GroupNegativeShare, now: pd.Timestamp, created_at: str
) -> list[Alert]:
    window = frame[(frame["time"] > now - WINDOW) & (frame["time"] <= now) & frame["group"].isin(list(groups))]
    out = []
    for group, rows in window.groupby("group", sort=True):
        negative = rows[rows["label"] == "negative"]
        share = len(negative) / len(rows)
        if len(rows) >= rule.min_checkins and share > rule.share:
            out.append(
                Alert(
                    id=alert_id("group_negative_share", group, None, _week_key(now)),
                    rule="group_negative_share",
                    severity=SEVERITY["group_negative_share"],
                    group=str(group),
                    participant=None,
                    created_at=created_at,
                    at=iso_utc(rows["time"].max()),
                    checkin_ids=_newest_ids(negative),
                    reason=f"{share:.0%} of {len(rows)} check-ins in the 7 days to {now:%Y-%m-%d} were negative "
                    f"(threshold {rule.share:.0%})",
                )
            )
    return out


def evaluate_alerts(
    store: ObjectStore,
    fresh: pd.DataFrame,
    *,
    rules: Rules | None = None,
    notifier: Notifier | None = None,
    clock: Callable[[], datetime] | None = None,
) -> list[Alert]:
    """Raise the alerts that freshly scored check-ins (columns of `services.scored.SCHEMA`) call for,
    store the new ones and publish each once through `notifier`. Returns the new alerts only: an
    alert already stored (same rule, subject and trigger) is not raised again.

    Reads the history it needs: the stored check-ins of the fresh rows' groups."""
    if fresh.empty:
        return []
    rules = rules if rules is not None else load_rules(store)
    created_at = stamp(clock)
    fresh = fresh.assign(time=pd.to_datetime(fresh["time"], utc=True))
    now = fresh["time"].max()
    found: list[Alert] = []
    if rules.crisis_phrases.enabled:
        found += _crisis_alerts(fresh, rules.crisis_phrases.phrases, created_at)
    window_rules = (rules.consecutive_negative, rules.baseline_drop, rules.group_negative_share)
    if any(r.enabled for r in window_rules):
        frame = _history(store, fresh)
        people = _person_rows(frame, fresh)
        if rules.consecutive_negative.enabled:
            fresh_ids = {str(i) for i in fresh["id"]}
            found += _streak_alerts(people, fresh_ids, rules.consecutive_negative, now, created_at)
        if rules.baseline_drop.enabled:
            found += _baseline_alerts(people, rules.baseline_drop, now, created_at)
        if rules.group_negative_share.enabled:
            found += _group_alerts(frame, fresh["group"].unique(), rules.group_negative_share, now, created_at)
    return _store_new(store, found, notifier)


def _store_new(store: ObjectStore, alerts: list[Alert], notifier: Notifier | None) -> list[Alert]:
    new = []
    for alert in alerts:
        try:
            store.put(event_key(alert.id), encode_alert(alert), if_absent=True)
        except AlreadyExists:
            continue  # raised before: by an earlier ingest or evaluation
        new.append(alert)
        if notifier is not None:
            notifier.publish(alert)
    if new:
        counts = Counter(a.rule for a in new)
        log.info("%d new alerts: %s", len(new), ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return new


# ------------------------------------------------------------------------------ delivery (SNS)


class Notifier(Protocol):
    """Delivers a new alert somewhere outside Pulse. Returns False (and logs) when it could not; never raises."""

    def publish(self, alert: Alert) -> bool: ...
