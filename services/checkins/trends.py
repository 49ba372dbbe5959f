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

Speed (issue 5: 1M check-ins, cold load < 2 s, rerun after a filter change < 100 ms): one DuckDB
pass over a `pyarrow.dataset` of the partitions builds a compact daily aggregate per (group,
participant, day) — counts per label and the sentiment sum — into an in-memory DuckDB table sorted
by group and day. It is rebuilt only when the partition listing (paths, sizes, modification times)
changes, so a new ingest invalidates it (a listing is reused for `LISTING_SECONDS`, so one page
rerun lists once). Filter changes are answered from that table. Only the timeline and the export
read check-in rows, and only the partitions of the days they need. Human labels are looked up fresh
for the check-ins a timeline shows. On S3, pyarrow's own S3 client reads the objects (DuckDB's
httpfs would need a download); it finds credentials through the standard AWS chain.

Scope: every query takes the signed-in `User`. Admins see every group; managers only their own
(a request for another group gets nothing and is logged, without any message text); other roles
are refused.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from services.access import audit
from services.access.users import User
from services.aws.s3 import S3Store
from services.checkins.partitions import PREFIX, SCHEMA
from services.errors import AuthError, StoreError
from services.review.labels import labels_for_item, resolve
from services.store.base import ObjectStore
from services.store.local import LocalStore

log = logging.getLogger(__name__)

Granularity = Literal["day", "week"]
ROLLING = {"day": 7, "week": 4}  # periods in the rolling average
HEATMAP_PARTICIPANTS = 50  # the heatmap shows the participants with the lowest mean sentiment
TIMELINE_ROWS = 200
LISTING_SECONDS = 2.0  # a partition listing is reused this long (one rerun makes several calls)
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

_PARTITION = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/[^/]+\.parquet$")
_DATASET_SCHEMA = SCHEMA.append(pa.field("date", pa.date32()))
_HIVE = ds.partitioning(pa.schema([("date", pa.date32())]), flavor="hive")
_TABLES = """
create table daily ("group" varchar, participant varchar, day date,
                    n integer, negative integer, neutral integer, positive integer, sentiment double);
create table group_daily ("group" varchar, day date,
                          n integer, negative integer, neutral integer, positive integer, sentiment double);
create table people ("group" varchar, participant varchar, n integer, first date, last date);
"""
# Aggregate first, then sort in a second statement: sorted by group and day, a query for a few
# groups skips most of the table (DuckDB's min/max per row group); one statement doing both was
# slower than the two.
_AGGREGATE = """
create temp table unsorted as
select "group", participant, date as day, count(*)::integer as n,
       count(*) filter (where label = 'negative')::integer as negative,
       count(*) filter (where label = 'neutral')::integer as neutral,
       count(*) filter (where label = 'positive')::integer as positive,
       sum(p_positive - p_negative)::double as sentiment
from checkins
where date is not null and "group" is not null and participant is not null
group by all;
insert into daily select * from unsorted order by "group", day;
drop table unsorted;
insert into group_daily
select "group", day, sum(n), sum(negative), sum(neutral), sum(positive), sum(sentiment)
from daily group by all order by "group", day;
insert into people
select "group", participant, sum(n), min(day), max(day) from daily group by all order by all;
"""


# --- who may see what -------------------------------------------------------------------------


def _scope(user: User, groups: Sequence[str] | None) -> list[str] | None:
    """The groups a query may read: None means every group (an admin who named none).

    Managers get the asked groups that are theirs; asking for others is logged (names only, never
    message text). Other roles are refused with `AuthError`."""
    if user.role == "admin":
        return None if groups is None else list(dict.fromkeys(groups))
    if user.role != "manager":
        log.warning("trends refused: user %r with role %r", user.name, user.role)
        raise AuthError(f"trends are for managers and admins; {user.name} is signed in as {user.role}")
    asked = list(user.groups) if groups is None else list(dict.fromkeys(groups))
    outside = [g for g in asked if not user.can_see_group(g)]
    if outside:
        log.warning(
            "trends: manager %r asked for %d group(s) outside their scope: %r", user.name, len(outside), outside
        )
    return [g for g in asked if user.can_see_group(g)]


# --- the partitions and the cache -------------------------------------------------------------


@dataclass(frozen=True)
class _Listing:
    filesystem: Any  # pyarrow.fs.FileSystem
    base: str
    files: tuple[tuple[str, date], ...]  # path, day
    fingerprint: str


@dataclass(frozen=True)
class _Snapshot:
    listing: _Listing
    db: duckdb.DuckDBPyConnection  # tables daily, group_daily, people
    groups: tuple[str, ...]  # every group with check-ins: an admin's scope
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False)


def _source(store: ObjectStore) -> tuple[Any, str]:
    """The pyarrow filesystem and base path of the check-in partitions of a store."""
    if isinstance(store, LocalStore):
        return pafs.LocalFileSystem(), (store.root / PREFIX.rstrip("/")).as_posix()
    if isinstance(store, S3Store):
        return _s3_filesystem(store.client), f"{store.bucket}/{store.prefix}{PREFIX.rstrip('/')}"
    raise TypeError(f"trends read a local folder or an S3 bucket, not {store.describe()}")


def _s3_filesystem(client: Any) -> Any:
    """pyarrow's own S3 client, pointed where the boto3 client points (credentials: the default chain)."""
    return _s3_at(str(client.meta.region_name or "us-east-1"), str(client.meta.endpoint_url))


@functools.cache
def _s3_at(region: str, endpoint: str) -> Any:
    url = urlsplit(endpoint)
    if (url.hostname or "").endswith(".amazonaws.com"):
        return pafs.S3FileSystem(region=region)
    return pafs.S3FileSystem(region=region, endpoint_override=url.netloc, scheme=url.scheme or "https")


def _store_key(store: ObjectStore) -> str:
    if isinstance(store, S3Store):
        return f"{store.describe()} via {store.client.meta.endpoint_url}"
    return store.describe()


_READ_ERRORS = (OSError, pa.ArrowException, duckdb.Error)


def _unreadable(exc: Exception) -> StoreError:
    return StoreError(f"the scored check-ins could not be read ({type(exc).__name__}: {str(exc)[:300]})")


def _list(store: ObjectStore) -> _Listing:
    filesystem, base = _source(store)
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except _READ_ERRORS as exc:
        raise _unreadable(exc) from exc
    files: list[tuple[str, date]] = []
    digest = hashlib.sha256()
    for info in sorted(infos, key=lambda i: i.path):
        match = _PARTITION.search(info.path[len(base) :])
        if info.type == pafs.FileType.File and match and not info.base_name.startswith("."):
            files.append((info.path, date.fromisoformat(match.group(1))))
            digest.update(f"{info.path}\t{info.size}\t{info.mtime_ns}\n".encode())
    return _Listing(filesystem, base, tuple(files), digest.hexdigest())


def _dataset(listing: _Listing, days: set[date] | None = None) -> Any:
    paths = [path for path, day in listing.files if days is None or day in days]
    return ds.dataset(
        paths,
        schema=_DATASET_SCHEMA,
        filesystem=listing.filesystem,
        format="parquet",
        partitioning=_HIVE,
        partition_base_dir=listing.base,
    )


def _build(listing: _Listing) -> _Snapshot:
    db = duckdb.connect()
    db.execute(_TABLES)
    if listing.files:
        try:
            db.register("checkins", _dataset(listing))
            db.execute(_AGGREGATE)
        except _READ_ERRORS as exc:
            raise _unreadable(exc) from exc
        db.unregister("checkins")
    groups = tuple(str(g) for (g,) in db.execute('select distinct "group" from people order by 1').fetchall())
    return _Snapshot(listing, db, groups)


T = TypeVar("T")


class TrendsCache:
    """Per store: the latest partition listing (reused for `LISTING_SECONDS`), the aggregate built
    from it, and recent query results keyed on its fingerprint. Thread-safe and bounded."""

    def __init__(self, stores: int = 4, results: int = 256) -> None:
        self._lock = threading.Lock()
        self._stores = stores
        self._max_results = results
        self._listings: dict[str, tuple[float, _Listing]] = {}
        self._snapshots: OrderedDict[str, _Snapshot] = OrderedDict()
        self._building: dict[str, threading.Lock] = {}
        self._results: OrderedDict[Hashable, Any] = OrderedDict()

    def clear(self) -> None:
        with self._lock:
            self._listings.clear()
            self._snapshots.clear()
            self._results.clear()

    def listing(self, store: ObjectStore) -> _Listing:
        key = _store_key(store)
        with self._lock:
            seen = self._listings.get(key)
        if seen is not None and time.monotonic() - seen[0] < LISTING_SECONDS:
            return seen[1]
        fresh = _list(store)
        with self._lock:
            self._listings[key] = (time.monotonic(), fresh)
        return fresh

    def snapshot(self, store: ObjectStore) -> _Snapshot:
        key = _store_key(store)
        listing = self.listing(store)
        with self._lock:
            snap = self._snapshots.get(key)
            building = self._building.setdefault(key, threading.Lock())
        if snap is not None and snap.listing.fingerprint == listing.fingerprint:
            return self._touch(key, snap)
        with building:  # one build per store at a time; the others wait and reuse it
            with self._lock:
                snap = self._snapshots.get(key)
            if snap is None or snap.listing.fingerprint != listing.fingerprint:
                started = time.perf_counter()
                snap = _build(listing)
                log.info(
                    "trends: aggregated %d partitions in %.2f s", len(listing.files), time.perf_counter() - started
                )
        return self._touch(key, snap)

    def _touch(self, key: str, snap: _Snapshot) -> _Snapshot:
        with self._lock:
            self._snapshots[key] = snap
            self._snapshots.move_to_end(key)
            while len(self._snapshots) > self._stores:
                old, _ = self._snapshots.popitem(last=False)
                self._listings.pop(old, None)
                self._building.pop(old, None)
        return snap

    def remember(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            self._results[key] = value
            while len(self._results) > self._max_results:
                self._results.popitem(last=False)
        return value


CACHE = TrendsCache()


def clear_cache() -> None:
    """Forget every listing, aggregate and result (tests; an admin after fixing files by hand)."""
    CACHE.clear()


def _query(snap: _Snapshot, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    with snap.lock:
        cursor = snap.db.cursor()  # its own connection: safe to use from this thread only
    try:
        return cursor.execute(sql, params).df()
    finally:
        cursor.close()


def _cached(store: ObjectStore, snap: _Snapshot, name: str, args: Hashable, compute: Callable[[], T]) -> T:
    return CACHE.remember((_store_key(store), snap.listing.fingerprint, name, args), compute)


def _open(store: ObjectStore, user: User, groups: Sequence[str] | None) -> tuple[_Snapshot, list[str]]:
    """The store's aggregate and the groups the query may read (every query binds them as `$scope`)."""
    try:
        scope = _scope(user, groups)
    except AuthError:
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
    return [str(g) for g in _query(snap, _GROUPS, {"scope": scope})["group"]]


def participants(store: ObjectStore, user: User, groups: Sequence[str]) -> list[str]:
    """The participants with check-ins in `groups` (those the user may see), sorted."""
    snap, scope = _open(store, user, groups)
    return [str(p) for p in _query(snap, _PARTICIPANTS, {"scope": scope})["participant"]]


def date_range(store: ObjectStore, user: User, groups: Sequence[str] | None = None) -> tuple[date, date] | None:
    """The first and last day with check-ins in `groups` (default: all the user may see), or None."""
    snap, scope = _open(store, user, groups)
    return _known(snap, scope)


def _known(snap: _Snapshot, scope: list[str]) -> tuple[date, date] | None:
    row = _query(snap, _RANGE, {"scope": scope}).iloc[0]
    if pd.isna(row["first"]) or pd.isna(row["last"]):
        return None
    return pd.Timestamp(row["first"]).date(), pd.Timestamp(row["last"]).date()


# --- aggregates -------------------------------------------------------------------------------


def _bounds(
    snap: _Snapshot, scope: list[str], start: date | None, end: date | None, granularity: str
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
    frame = _cached(store, snap, "series", key, lambda: _query(snap, _SERIES, params))
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
        ranked = _query(snap, _RANKED, {**params, "limit": limit})
        shown = [str(p) for p in ranked["participant"]]
        cells = _query(snap, _CELLS, {**params, "shown": shown, "weekly": granularity == "week"})
        return Heatmap(cells, shown, int(ranked["total"].iloc[0]) if len(ranked) else 0)

    found = _cached(store, snap, "heatmap", (group, bounds, granularity, limit), compute)
    return Heatmap(found.cells.copy(), list(found.participants), found.total)


# --- check-in rows ----------------------------------------------------------------------------


def _rows(
    snap: _Snapshot,
    scope: list[str],
    people: list[str],
    bounds: tuple[date, date],
    limit: int | None,
    columns: list[str],
) -> pd.DataFrame:
    """Check-in rows of the scope (and `people`, if any) in the range, newest first, at most `limit`.
    The aggregate says which days hold them, so no other partition is opened, and the group,
    participant and date filter is pushed down to the Parquet reader."""
    counts = _query(snap, _DAYS, {"scope": scope, "people": people, "start": bounds[0], "end": bounds[1]})
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
        table = _dataset(snap.listing, days).to_table(columns=columns, filter=test)
    except _READ_ERRORS as exc:
        raise _unreadable(exc) from exc
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
    rows = _cached(store, snap, "timeline", key, lambda: _rows(snap, scope, [participant], bounds, limit, columns))
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
