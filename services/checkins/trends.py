"""Trends for managers: how the check-ins of their groups and participants feel over time.

Definitions (what the page shows):
- **mean sentiment** of some check-ins is the mean of `p_positive - p_negative`, from -1 (all surely
  negative) through 0 to +1 (all surely positive). It uses the model's probabilities, so an unsure
  check-in counts less than a confident one.
- **shares** are the fractions of check-ins the model labelled negative / neutral / positive.
- **rolling** is the mean sentiment of every check-in in the period and the 6 days (daily) or 3
  weeks (weekly) before it — 7 or 4 periods, weighted by check-ins, looking back past the start of
  the range when there is data there.
- Days are UTC days (the `date=` partition of the store); weeks are ISO weeks, Monday to Sunday,
  and a weekly range is widened to whole weeks.

Queries are answered from the daily aggregate of `services.checkins.aggregate`; only timelines
and exports read check-in rows. Human labels are looked up fresh for the check-ins a timeline shows.

Scope: every query takes the signed-in `User`. Admins see every group; managers only their own
(a request for another group gets nothing and is logged, without any message text); other roles
are refused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from services.access import audit, policy
from services.access.users import User
from services.checkins.aggregate import CACHE, READ_ERRORS, Snapshot, cached, dataset, query, unreadable
from services.checkins.partitions import SCHEMA
from services.errors import NotAllowed
from services.review.labels import labels_for_item, resolve
from services.store.base import ObjectStore

log = logging.getLogger(__name__)

Granularity = Literal["day", "week"]
ROLLING = {"day": 7, "week": 4}  # periods in the rolling average
HEATMAP_PARTICIPANTS = 50  # the heatmap shows the participants with the lowest mean sentiment
TIMELINE_ROWS = 200
SERIES_COLUMNS = ["period", "count", "negative", "neutral", "positive", "mean", "rolling"]
TIMELINE_COLUMNS = ["time", "group", "text", "label", "confidence", "model_version", "human_label", "relabelled"]
EXPORT_COLUMNS = [
    "time",
    "group",
    "participant",
    "label",
    "confidence",
    "p_negative",
    "p_neutral",
    "p_positive",
    "model_version",
]


# --- the groups a query may read: services.access.policy.group_scope ---------------------------------


def _open(store: ObjectStore, user: User, groups: Sequence[str] | None) -> tuple[Snapshot, list[str]]:
    """The store's aggregate and the groups the query may read (every query binds them as `$scope`)."""
    try:
        scope = policy.group_scope(user, groups)
    except NotAllowed:
        audit.try_record(store, user.name, user.role, "access_denied", "trends")
        raise
    if user.role == "manager" and groups is not None and len(set(groups) - set(scope or ())):
        outside = len(set(groups) - set(scope or ()))
        audit.try_record(store, user.name, user.role, "access_denied", "trends", {"groups_outside_scope": outside})
    snap = CACHE.snapshot(store)
    return snap, list(snap.groups) if scope is None else scope


# Every query is a constant: values, groups and names are bound parameters, never SQL text.
_GROUPS = 'select distinct "group" from people where "group" = any($scope) order by 1'
_PARTICIPANTS = 'select distinct participant from people where "group" = any($scope) order by 1'
_RANGE = 'select min(first) as first, max(last) as last from people where "group" = any($scope)'
_SERIES = """
with periods as (
    select unnest(generate_series($first, $end, to_days($step)))::date as period
), source as (
    select day, n, negative, neutral, positive, sentiment from group_daily
    where len($people) = 0 and "group" = any($scope) and day between $first and $end
    union all
    select day, n, negative, neutral, positive, sentiment from daily
    where len($people) > 0 and "group" = any($scope) and participant = any($people) and day between $first and $end
), agg as (
    select case when $weekly then date_trunc('week', day)::date else day end as period,
           sum(n) as n, sum(negative) as neg, sum(neutral) as neu,
           sum(positive) as pos, sum(sentiment) as s
    from source group by 1
), dense as (
    select p.period, coalesce(a.n, 0) as n, coalesce(a.neg, 0) as neg, coalesce(a.neu, 0) as neu,
           coalesce(a.pos, 0) as pos, coalesce(a.s, 0) as s
    from periods p left join agg a using (period)
)
select period, n as count, neg / nullif(n, 0) as negative, neu / nullif(n, 0) as neutral,
       pos / nullif(n, 0) as positive, s / nullif(n, 0) as mean,
       sum(s) over w / nullif(sum(n) over w, 0) as rolling
from dense
window w as (order by period rows between $back preceding and current row)
qualify period >= $start
order by period
"""
_RANKED = """
select participant, sum(sentiment) / sum(n) as mean, sum(n) as n, count(*) over () as total
from daily where "group" = any($scope) and day between $start and $end
group by participant order by mean, n desc, participant limit $limit
"""
_CELLS = """
select participant, case when $weekly then date_trunc('week', day)::date else day end as period,
       sum(sentiment) / sum(n) as mean, sum(n)::bigint as count
from daily where "group" = any($scope) and day between $start and $end and participant = any($shown)
group by 1, 2 order by 1, 2
"""
_DAYS = """
select day, sum(n) as n from daily
where "group" = any($scope) and (len($people) = 0 or participant = any($people)) and day between $start and $end
group by day order by day desc
"""


# --- filter options ---------------------------------------------------------------------------


def visible_groups(store: ObjectStore, user: User) -> list[str]:
    """The groups with check-ins that the user may see, sorted."""
    snap, scope = _open(store, user, None)
    return [str(g) for g in query(snap, _GROUPS, {"scope": scope})["group"]]


def participants(store: ObjectStore, user: User, groups: Sequence[str]) -> list[str]:
    """The participants with check-ins in `groups` (those the user may see), sorted."""
    snap, scope = _open(store, user, groups)
    return [str(p) for p in query(snap, _PARTICIPANTS, {"scope": scope})["participant"]]


def date_range(store: ObjectStore, user: User, groups: Sequence[str] | None = None) -> tuple[date, date] | None:
    """The first and last day with check-ins in `groups` (default: all the user may see), or None."""
    snap, scope = _open(store, user, groups)
    return _known(snap, scope)


def _known(snap: Snapshot, scope: list[str]) -> tuple[date, date] | None:
    row = query(snap, _RANGE, {"scope": scope}).iloc[0]
    if pd.isna(row["first"]) or pd.isna(row["last"]):
        return None
    return pd.Timestamp(row["first"]).date(), pd.Timestamp(row["last"]).date()


# --- aggregates -------------------------------------------------------------------------------


def _bounds(
    snap: Snapshot, scope: list[str], start: date | None, end: date | None, granularity: str
) -> tuple[date, date] | None:
    """The range asked for (default: the scope's data), widened to whole weeks when weekly.
    None when the scope has no data and no range was given."""
    if granularity not in ROLLING:
        raise ValueError(f"granularity must be 'day' or 'week', not {granularity!r}")
    if start is None or end is None:
        known = _known(snap, scope)
        if known is None:
            return None
        start, end = start or known[0], end or known[1]
    if start > end:
        raise ValueError(f"the range starts ({start}) after it ends ({end})")
    if granularity == "week":
        start, end = start - timedelta(days=start.weekday()), end + timedelta(days=6 - end.weekday())
    return start, end


def series(
    store: ObjectStore,
    user: User,
    groups: Sequence[str] | None = None,
    *,
    participants: Sequence[str] = (),
    start: date | None = None,
    end: date | None = None,
    granularity: Granularity = "day",
) -> pd.DataFrame:
    """Per day or week of the range: `count` of check-ins, `negative`/`neutral`/`positive` shares,
    `mean` sentiment and its `rolling` average (see the module docstring). Every period of the range
    has a row; periods without check-ins have count 0 and no shares or mean. Empty when the user may
    see none of the groups. `participants` (optional) narrows to those people."""
    snap, scope = _open(store, user, groups)
    bounds = _bounds(snap, scope, start, end, granularity)
    if not scope or bounds is None:
        return pd.DataFrame(columns=SERIES_COLUMNS)
    people = list(dict.fromkeys(participants))
    back = ROLLING[granularity] - 1
    step = 1 if granularity == "day" else 7
    params = {
        "scope": scope,
        "people": people,
        "first": bounds[0] - timedelta(days=back * step),  # the rolling average looks back past the start
        "start": bounds[0],
        "end": bounds[1],
        "step": step,
        "back": back,
        "weekly": granularity == "week",
    }
    key = (tuple(scope), tuple(people), bounds, granularity)
    frame = cached(store, snap, "series", key, lambda: query(snap, _SERIES, params))
    return frame.astype({"count": "int64"})[SERIES_COLUMNS]  # a copy: the cached frame stays as it is


@dataclass(frozen=True)
class Heatmap:
    """Mean sentiment per participant and period for one group, for the participants shown."""

    cells: pd.DataFrame  # participant, period, mean, count
    participants: list[str]  # the ones shown, lowest mean sentiment over the range first
    total: int  # participants of the group with check-ins in the range


def heatmap(
    store: ObjectStore,
    user: User,
    group: str,
    *,
    start: date | None = None,
    end: date | None = None,
    granularity: Granularity = "day",
    limit: int = HEATMAP_PARTICIPANTS,
) -> Heatmap:
    """Participants x periods of one group. With more than `limit` participants, shows the `limit`
    with the lowest mean sentiment over the range (ties: more check-ins first) — who may need
    attention."""
    snap, scope = _open(store, user, [group])
    bounds = _bounds(snap, scope, start, end, granularity)
    if not scope or bounds is None:
        return Heatmap(pd.DataFrame(columns=["participant", "period", "mean", "count"]), [], 0)
    params: dict[str, Any] = {"scope": scope, "start": bounds[0], "end": bounds[1]}

    def compute() -> Heatmap:
        ranked = query(snap, _RANKED, {**params, "limit": limit})
        shown = [str(p) for p in ranked["participant"]]
        cells = query(snap, _CELLS, {**params, "shown": shown, "weekly": granularity == "week"})
        return Heatmap(cells, shown, int(ranked["total"].iloc[0]) if len(ranked) else 0)

    found = cached(store, snap, "heatmap", (group, bounds, granularity, limit), compute)
    return Heatmap(found.cells.copy(), list(found.participants), found.total)


# --- check-in rows ----------------------------------------------------------------------------


def _rows(
    snap: Snapshot,
    scope: list[str],
    people: list[str],
    bounds: tuple[date, date],
    limit: int | None,
    columns: list[str],
) -> pd.DataFrame:
    """Check-in rows of the scope (and `people`, if any) in the range, newest first, at most `limit`.
    The aggregate says which days hold them, so no other partition is opened, and the group,
    participant and date filter is pushed down to the Parquet reader."""
    counts = query(snap, _DAYS, {"scope": scope, "people": people, "start": bounds[0], "end": bounds[1]})
    if limit is not None:  # the newest days that hold `limit` rows
        counts = counts.iloc[: int((counts["n"].cumsum() < limit).sum()) + 1]
    days = {pd.Timestamp(d).date() for d in counts["day"]}
    if not days:
        return SCHEMA.empty_table().select(columns).to_pandas()
    test = (ds.field("date") >= pa.scalar(bounds[0], pa.date32())) & (
        ds.field("date") <= pa.scalar(bounds[1], pa.date32())
    )
    test &= ds.field("group").isin(pa.array(scope, pa.string()))
    if people:
        test &= ds.field("participant").isin(pa.array(people, pa.string()))
    try:
        table = dataset(snap.listing, days).to_table(columns=columns, filter=test)
    except READ_ERRORS as exc:
        raise unreadable(exc) from exc
    table = table.sort_by([("time", "descending"), ("id", "ascending")])
    return (table if limit is None else table.slice(0, limit)).to_pandas()


def _human_labels(store: ObjectStore, ids: list[str]) -> dict[str, str]:
    """The label that counts (services.labels.resolve) for each check-in a human labelled.
    A review item's id is its check-in's id (services.ingest)."""

    def one(item_id: str) -> tuple[str, str | None]:
        found = [lab for _, lab in labels_for_item(store, item_id)]
        return item_id, resolve(found)[0].label if found else None

    with ThreadPoolExecutor(max_workers=8) as pool:  # one listing per id: waits on I/O on S3
        return {i: lab for i, lab in pool.map(one, ids) if lab is not None}


def timeline(
    store: ObjectStore,
    user: User,
    participant: str,
    groups: Sequence[str] | None = None,
    *,
    start: date | None = None,
    end: date | None = None,
    limit: int = TIMELINE_ROWS,
) -> pd.DataFrame:
    """One participant's check-ins in the range, newest first, at most `limit`: time, group, text,
    the model's label, confidence and version, the human label that counts (if any) and
    `relabelled` (a human label that differs from the model's)."""
    snap, scope = _open(store, user, groups)
    bounds = _bounds(snap, scope, start, end, "day")
    if not scope or bounds is None:
        return pd.DataFrame(columns=TIMELINE_COLUMNS)
    columns = ["id", "time", "group", "text", "label", "confidence", "model_version"]
    key = (tuple(scope), participant, bounds, limit)
    rows = cached(store, snap, "timeline", key, lambda: _rows(snap, scope, [participant], bounds, limit, columns))
    frame = rows.copy()
    human = _human_labels(store, frame["id"].tolist())  # fresh: labels change without new check-ins
    frame["human_label"] = pd.Series([human.get(i) for i in frame["id"]], index=frame.index, dtype=object)
    frame["relabelled"] = frame["human_label"].notna() & (frame["human_label"] != frame["label"])
    return frame[TIMELINE_COLUMNS]


def export_rows(
    store: ObjectStore,
    user: User,
    groups: Sequence[str] | None = None,
    *,
    participants: Sequence[str] = (),
    start: date | None = None,
    end: date | None = None,
    include_text: bool = False,
    managers_may_export_text: bool = False,
) -> pd.DataFrame:
    """The check-ins behind the current filters, oldest first, for a CSV export. The message text
    is added when asked for and allowed: admins may, managers only with the `export_text` setting
    (`managers_may_export_text`); otherwise the export has ids, times and scores only."""
    snap, scope = _open(store, user, groups)
    bounds = _bounds(snap, scope, start, end, "day")
    with_text = include_text and may_export_text(user, managers_may_export_text)
    columns = [*EXPORT_COLUMNS, *(["text"] if with_text else [])]
    if not scope or bounds is None:
        return pd.DataFrame(columns=columns)
    frame = _rows(snap, scope, list(dict.fromkeys(participants)), bounds, None, [*columns, "id"])
    return frame.iloc[::-1][columns].reset_index(drop=True)


def may_export_text(user: User, managers_may_export_text: bool) -> bool:
    """Whether `user` may export message text: admins yes, managers when the setting allows it."""
    return user.role == "admin" or (user.role == "manager" and managers_may_export_text)
