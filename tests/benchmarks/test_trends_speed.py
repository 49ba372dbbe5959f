"""The trends page's service on 1M scored check-ins (3,000 participants, 20 groups, a year of daily
partitions in a local store), against a naive baseline measured in the same run: read every
partition with `read_scored`, group in pandas, no cache.

Issue 5's targets: cold load < 2 s, rerun after a filter change < 100 ms. Figures and ratios are
printed; the assertions are about behaviour (the same numbers as the baseline), not timings."""

from __future__ import annotations

import io
import os
import statistics
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.access.users import User
from services.checkins import aggregate, trends
from services.checkins.partitions import SCHEMA, partition_key, read_scored
from services.store.local import LocalStore
from tests.unit.checkins.test_trends import expected_series

N = 1_000_000
PARTICIPANTS = 3_000
GROUPS = 20
DAYS = 365
FIRST = date(2025, 1, 1)
TEXTS = np.array(["good day", "tired and stressed", "ok I guess", "great team lunch", "not great", "meh"])
MANAGER = User("bench-manager", "manager", ("group-00", "group-01"))
RERUNS = 9


def _generate(store: LocalStore) -> None:
    """1M check-ins written as one Parquet file per day, vectorised with numpy."""
    rng = np.random.default_rng(0)
    who = rng.integers(0, PARTICIPANTS, N)
    day = np.sort(rng.integers(0, DAYS, N))
    seconds = day.astype("int64") * 86_400 + rng.integers(0, 86_400, N)
    mood = (who % 7 - 3) / 6  # some people are gloomier than others
    probs = rng.dirichlet([1.0, 1.0, 1.0], N)
    probs[:, 2] += np.clip(mood, 0, None)
    probs[:, 0] += np.clip(-mood, 0, None)
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    names = np.array([f"person-{i:04d}" for i in range(PARTICIPANTS)])
    groups = np.array([f"group-{i:02d}" for i in range(GROUPS)])
    labels = np.array(["negative", "neutral", "positive"])
    start = np.datetime64(FIRST.isoformat(), "us")
    table = pa.table(
        {
            "id": pa.array(np.arange(N)).cast(pa.string()),
            "participant": names[who],
            "group": groups[who % GROUPS],
            "time": pa.array(start + seconds.astype("timedelta64[s]"), pa.timestamp("us", tz="UTC")),
            "text": TEXTS[rng.integers(0, len(TEXTS), N)],
            "label": labels[probs.argmax(axis=1)],
            "confidence": probs.max(axis=1),
            "p_negative": probs[:, 0],
            "p_neutral": probs[:, 1],
            "p_positive": probs[:, 2],
            "model_version": np.full(N, "bench-v1"),
            "batch": np.full(N, "bench"),
            "extra": np.full(N, "{}"),
        },
        schema=SCHEMA,
    )
    bounds = np.searchsorted(day, np.arange(DAYS + 1))
    for d in range(DAYS):
        buf = io.BytesIO()
        pq.write_table(table.slice(bounds[d], bounds[d + 1] - bounds[d]), buf, compression="zstd")
        store.put(partition_key((FIRST + timedelta(days=d)).isoformat(), "bench"), buf.getvalue())


def _page_rerun(store: LocalStore, groups: list[str], start: date, end: date, grain: str) -> pd.DataFrame:
    """What one rerun of the trends page asks the service for."""
    trends.visible_groups(store, MANAGER)
    trends.participants(store, MANAGER, groups)
    trends.date_range(store, MANAGER, groups)
    frame = trends.series(store, MANAGER, groups, start=start, end=end, granularity=grain)  # type: ignore[arg-type]
    trends.heatmap(store, MANAGER, groups[0], start=start, end=end, granularity=grain)  # type: ignore[arg-type]
    trends.participants(store, MANAGER, [groups[0]])
    return frame


def _naive(store: LocalStore, groups: list[str], start: date, end: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The baseline: every partition read, grouped in pandas, nothing kept."""
    frame = read_scored(store, ["participant", "group", "time", "label", "p_negative", "p_positive"], groups=groups)
    series = expected_series(frame, groups, start, end)
    one = frame[frame["group"] == groups[0]]
    day = one["time"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    one = one[(day >= pd.Timestamp(start)) & (day <= pd.Timestamp(end))].assign(
        s=lambda f: f["p_positive"].astype(float) - f["p_negative"].astype(float), day=day
    )
    lowest = one.groupby("participant")["s"].mean().nsmallest(trends.HEATMAP_PARTICIPANTS).index
    cells = one[one["participant"].isin(lowest)].groupby(["participant", "day"])["s"].mean().reset_index()
    return series, cells


def test_trends_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path / "ws")
    t0 = time.perf_counter()
    _generate(store)
    generated = time.perf_counter() - t0
    # The first call of every rerun lists the partitions again (as after a pause between clicks);
    # the calls within one rerun share that listing, as on the page.
    monkeypatch.setattr(aggregate, "LISTING_SECONDS", 0.5)
    groups = list(MANAGER.groups)
    end = FIRST + timedelta(days=DAYS - 1)
    start = end - timedelta(days=89)

    colds = []
    for _ in range(3):
        aggregate.clear_cache()
        t0 = time.perf_counter()
        cold_series = trends.series(store, MANAGER, start=start, end=end)
        trends.heatmap(store, MANAGER, groups[0], start=start, end=end)
        colds.append(time.perf_counter() - t0)

    warm: list[float] = []
    changes = [(groups, start - timedelta(days=7 * i), end, "day" if i % 2 else "week") for i in range(1, RERUNS)]
    changes.append(([groups[1]], start, end, "day"))
    for chosen, a, b, grain in changes:  # every rerun asks something new: no result is reused
        time.sleep(0.6)
        t0 = time.perf_counter()
        _page_rerun(store, chosen, a, b, grain)
        warm.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    line = trends.timeline(store, MANAGER, "person-0000", groups)
    timeline_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    export = trends.export_rows(store, MANAGER, [groups[0]], start=end - timedelta(days=29), end=end)
    export_s = time.perf_counter() - t0

    naive = []
    for _ in range(2):
        t0 = time.perf_counter()
        naive_series, _cells = _naive(store, groups, start, end)
        naive.append(time.perf_counter() - t0)

    # Behaviour: the same numbers as the baseline, the manager's groups only, the caps hold.
    pd.testing.assert_frame_equal(
        cold_series.assign(period=pd.to_datetime(cold_series["period"]).astype("datetime64[ns]")),
        naive_series.assign(period=naive_series["period"].astype("datetime64[ns]")),
        check_dtype=False,
        atol=1e-6,
    )
    assert len(line) == trends.TIMELINE_ROWS and line["time"].is_monotonic_decreasing
    assert set(export["group"]) == {groups[0]}

    cold, rerun, base = statistics.median(colds), statistics.median(warm), statistics.median(naive)
    lines = [
        f"trends benchmark: {N:,} check-ins, {PARTICIPANTS:,} participants, {GROUPS} groups, {DAYS} daily partitions",
        f"  generated and written in {generated:.1f} s; the manager's 2 groups have "
        f"{cold_series['count'].sum():,} check-ins in the 90 days shown",
        f"  cold load (listing + aggregate + series + heatmap)  first {colds[0]:.2f} s, median of 3 {cold:.2f} s",
        f"  rerun after a filter change ({len(warm)} reruns, 6 calls each)  "
        f"median {rerun * 1000:.0f} ms, max {max(warm) * 1000:.0f} ms",
        f"  drill-down timeline ({len(line)} rows)  {timeline_s * 1000:.0f} ms",
        f"  export of one group, 30 days ({len(export):,} rows)  {export_s * 1000:.0f} ms",
        f"  naive baseline (read_scored + pandas, no cache)  median of 2 {base:.2f} s per load or rerun",
        f"  ratios: naive / cold {base / cold:.1f}x, naive / rerun {base / rerun:.0f}x",
        f"  ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end)",
    ]
    print("\n" + "\n".join(lines))
