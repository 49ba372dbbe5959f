"""The daily aggregate that trends are answered from. One DuckDB pass over a `pyarrow.dataset` of the
check-in partitions builds counts per label and the sentiment sum per (group, participant, day) into
an in-memory table sorted by group and day; it is rebuilt only when the partition listing (paths,
sizes, modification times) changes, and a listing is reused for `LISTING_SECONDS` so one page run
lists once. Filter changes are answered from that table; only timelines and exports read check-in
rows, and only of the days they need. The store says where pyarrow reads its objects
(`ObjectStore.arrow_files`): a local folder, or S3 through pyarrow's own client (DuckDB's httpfs
would need a download)."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from services.checkins.partitions import PREFIX, SCHEMA
from services.errors import StoreError
from services.store.base import ObjectStore

log = logging.getLogger(__name__)


LISTING_SECONDS = 2.0  # a partition listing is reused this long (one rerun makes several calls)


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


@dataclass(frozen=True)
class Listing:
    filesystem: Any  # pyarrow.fs.FileSystem
    base: str
    files: tuple[tuple[str, date], ...]  # path, day
    fingerprint: str


@dataclass(frozen=True)
class Snapshot:
    listing: Listing
    db: duckdb.DuckDBPyConnection  # tables daily, group_daily, people
    groups: tuple[str, ...]  # every group with check-ins: an admin's scope
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False)


READ_ERRORS = (OSError, pa.ArrowException, duckdb.Error)


def unreadable(exc: Exception) -> StoreError:
    return StoreError(f"the scored check-ins could not be read ({type(exc).__name__}: {str(exc)[:300]})")


def list_partitions(store: ObjectStore) -> Listing:
    where = store.arrow_files(PREFIX)
    filesystem, base = where.filesystem, where.base
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except READ_ERRORS as exc:
        raise unreadable(exc) from exc
    files: list[tuple[str, date]] = []
    digest = hashlib.sha256()
    for info in sorted(infos, key=lambda i: i.path):
        match = _PARTITION.search(info.path[len(base) :])
        if info.type == pafs.FileType.File and match and not info.base_name.startswith("."):
            files.append((info.path, date.fromisoformat(match.group(1))))
            digest.update(f"{info.path}\t{info.size}\t{info.mtime_ns}\n".encode())
    return Listing(filesystem, base, tuple(files), digest.hexdigest())


def dataset(listing: Listing, days: set[date] | None = None) -> Any:
    paths = [path for path, day in listing.files if days is None or day in days]
    return ds.dataset(
        paths,
        schema=_DATASET_SCHEMA,
        filesystem=listing.filesystem,
        format="parquet",
        partitioning=_HIVE,
        partition_base_dir=listing.base,
    )


def build(listing: Listing) -> Snapshot:
    db = duckdb.connect()
    db.execute(_TABLES)
    if listing.files:
        try:
            db.register("checkins", dataset(listing))
            db.execute(_AGGREGATE)
        except READ_ERRORS as exc:
            raise unreadable(exc) from exc
        db.unregister("checkins")
    groups = tuple(str(g) for (g,) in db.execute('select distinct "group" from people order by 1').fetchall())
    return Snapshot(listing, db, groups)


T = TypeVar("T")


class TrendsCache:
    """Per store: the latest partition listing (reused for `LISTING_SECONDS`), the aggregate built
    from it, and recent query results keyed on its fingerprint. Thread-safe and bounded."""

    def __init__(self, stores: int = 4, results: int = 256) -> None:
        self._lock = threading.Lock()
        self._stores = stores
        self._max_results = results
        self._listings: dict[str, tuple[float, Listing]] = {}
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self._building: dict[str, threading.Lock] = {}
        self._results: OrderedDict[Hashable, Any] = OrderedDict()

    def clear(self) -> None:
        with self._lock:
            self._listings.clear()
            self._snapshots.clear()
            self._results.clear()

    def listing(self, store: ObjectStore) -> Listing:
        key = store.arrow_files(PREFIX).identity
        with self._lock:
            seen = self._listings.get(key)
        if seen is not None and time.monotonic() - seen[0] < LISTING_SECONDS:
            return seen[1]
        fresh = list_partitions(store)
        with self._lock:
            self._listings[key] = (time.monotonic(), fresh)
        return fresh

    def snapshot(self, store: ObjectStore) -> Snapshot:
        key = store.arrow_files(PREFIX).identity
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
                snap = build(listing)
                log.info(
                    "trends: aggregated %d partitions in %.2f s", len(listing.files), time.perf_counter() - started
                )
        return self._touch(key, snap)

    def _touch(self, key: str, snap: Snapshot) -> Snapshot:
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


def query(snap: Snapshot, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    with snap.lock:
        cursor = snap.db.cursor()  # its own connection: safe to use from this thread only
    try:
        return cursor.execute(sql, params).df()
    finally:
        cursor.close()


def cached(store: ObjectStore, snap: Snapshot, name: str, args: Hashable, compute: Callable[[], T]) -> T:
    return CACHE.remember((store.arrow_files(PREFIX).identity, snap.listing.fingerprint, name, args), compute)
