"""Trends: aggregates checked against pandas by hand, group scoping, the cache, odd names and dates."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from services.access.users import User
from services.checkins import aggregate, trends
from services.checkins.exports import csv_bytes
from services.checkins.partitions import SCHEMA, partition_key, partitions
from services.errors import AuthError
from services.review.labels import Label, retract_label, save_label
from services.store.base import ObjectStore
from services.store.local import LocalStore

ADMIN = User("ada", "admin")
LABELS = np.array(["negative", "neutral", "positive"])


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every call sees the files as they are now (the page reuses a listing for 2 s)."""
    monkeypatch.setattr(aggregate, "LISTING_SECONDS", 0.0)
    aggregate.clear_cache()
    yield
    aggregate.clear_cache()


def checkin(participant: str, group: str, time: str | datetime, label: str = "neutral", **extra: object) -> dict:  # type: ignore[type-arg]
    """One scored check-in row; probabilities follow the label unless given."""
    probs = {"negative": (0.8, 0.15, 0.05), "neutral": (0.1, 0.8, 0.1), "positive": (0.05, 0.15, 0.8)}[label]
    ts = pd.Timestamp(time)
    row = {
        "id": f"{participant}|{ts.isoformat()}",
        "participant": participant,
        "group": group,
        "time": ts if ts.tzinfo else ts.tz_localize("UTC"),
        "text": f"message of {participant}",
        "label": label,
        "confidence": max(probs),
        "p_negative": probs[0],
        "p_neutral": probs[1],
        "p_positive": probs[2],
        "model_version": "v1",
        "batch": "b1",
        "extra": "{}",
    }
    row.update(extra)
    return row


def write(store: ObjectStore, rows: list[dict] | pd.DataFrame, batch: str = "b1") -> pd.DataFrame:  # type: ignore[type-arg]
    """Write scored check-ins as the date partitions ingest would leave."""
    frame = pd.DataFrame(rows).assign(batch=batch)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    for day, blob in partitions(frame[SCHEMA.names]):
        store.put(partition_key(day, batch), blob)
    return frame


def random_frame(seed: int = 0, n: int = 600) -> pd.DataFrame:
    """Two groups, seven people, 40 days with some empty days, shuffled, probabilities from a Dirichlet."""
    rng = np.random.default_rng(seed)
    people = [("Alpha", f"a{i}") for i in range(4)] + [("Beta", f"b{i}") for i in range(3)]
    pick = rng.integers(0, len(people), n)
    day = rng.choice([d for d in range(40) if d % 9 != 4], n)  # days 4, 13, 22, 31 have no check-ins
    seconds = rng.integers(0, 86_400, n)
    probs = rng.dirichlet([1.0, 1.0, 1.0], n).astype(np.float32)
    start = pd.Timestamp("2025-03-01", tz="UTC")
    return pd.DataFrame(
        {
            "id": [f"c{i}" for i in range(n)],
            "participant": [people[k][1] for k in pick],
            "group": [people[k][0] for k in pick],
            "time": start + pd.to_timedelta(day, unit="D") + pd.to_timedelta(seconds, unit="s"),
            "text": "some text",
            "label": LABELS[probs.argmax(axis=1)],
            "confidence": probs.max(axis=1),
            "p_negative": probs[:, 0],
            "p_neutral": probs[:, 1],
            "p_positive": probs[:, 2],
            "model_version": "v1",
            "batch": "b1",
            "extra": "{}",
        }
    )


def expected_series(
    frame: pd.DataFrame,
    groups: list[str],
    start: date,
    end: date,
    granularity: str = "day",
    participants: tuple[str, ...] = (),
) -> pd.DataFrame:
    """The module docstring's definitions, computed by hand in pandas."""
    f = frame[frame["group"].isin(groups)]
    if participants:
        f = f[f["participant"].isin(participants)]
    day = f["time"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    if granularity == "week":
        day = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
        first, last = first - pd.Timedelta(days=first.weekday()), last + pd.Timedelta(days=6 - last.weekday())
    step, window = (1, 7) if granularity == "day" else (7, 4)
    f = f.assign(period=day, s=f["p_positive"].astype(float) - f["p_negative"].astype(float))
    for label in LABELS:
        f[label] = (f["label"] == label).astype(int)
    periods = pd.date_range(first - pd.Timedelta(days=step * (window - 1)), last, freq=f"{step}D")
    g = f.groupby("period").agg(n=("s", "size"), s=("s", "sum"), **{lab: (lab, "sum") for lab in LABELS})
    g = g.reindex(periods, fill_value=0)
    n = g["n"].where(g["n"] > 0)
    rolling_n = g["n"].rolling(window, min_periods=1).sum()
    out = pd.DataFrame(
        {
            "period": periods,
            "count": g["n"].to_numpy(),
            **{lab: (g[lab] / n).to_numpy() for lab in LABELS},
            "mean": (g["s"] / n).to_numpy(),
            "rolling": (g["s"].rolling(window, min_periods=1).sum() / rolling_n.where(rolling_n > 0)).to_numpy(),
        }
    )
    return out[out["period"] >= first].reset_index(drop=True)


def assert_same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == trends.SERIES_COLUMNS
    actual = actual.assign(period=pd.to_datetime(actual["period"]).astype("datetime64[ns]"))
    expected = expected.assign(period=expected["period"].astype("datetime64[ns]"))
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False, atol=1e-6, rtol=1e-6)


# --- correctness against pandas ---------------------------------------------------------------


@pytest.fixture
def sample(store: LocalStore) -> pd.DataFrame:
    frame = random_frame()
    shuffled = frame.sample(frac=1.0, random_state=1)  # out of order, and split over two batches a day
    write(store, shuffled.iloc[:400], "b1")
    write(store, shuffled.iloc[400:], "b2")
    return frame


@pytest.mark.parametrize("granularity", ["day", "week"])
@pytest.mark.parametrize("groups", [["Alpha"], ["Alpha", "Beta"]])
def test_series_matches_pandas(store: LocalStore, sample: pd.DataFrame, granularity: str, groups: list[str]) -> None:
    start, end = date(2025, 3, 12), date(2025, 4, 3)  # a Wednesday to a Thursday: weeks get widened
    got = trends.series(store, ADMIN, groups, start=start, end=end, granularity=granularity)  # type: ignore[arg-type]
    assert_same(got, expected_series(sample, groups, start, end, granularity))
    if granularity == "week":
        assert got["period"].iloc[0] == pd.Timestamp("2025-03-10") and len(got) == 4


def test_series_days_without_checkins_and_rolling_look_back(store: LocalStore, sample: pd.DataFrame) -> None:
    got = trends.series(store, ADMIN, ["Alpha", "Beta"], start=date(2025, 3, 10), end=date(2025, 3, 20))
    empty = got[got["period"] == pd.Timestamp("2025-03-14")].iloc[0]  # day 13
    assert empty["count"] == 0 and np.isnan(empty["mean"]) and np.isnan(empty["negative"])
    assert not np.isnan(empty["rolling"])  # the rolling average still has the days before
    first = got.iloc[0]
    assert first["rolling"] != pytest.approx(first["mean"])  # it looked back past the range start


def test_series_for_chosen_participants(store: LocalStore, sample: pd.DataFrame) -> None:
    start, end = date(2025, 3, 1), date(2025, 4, 9)
    for granularity in ("day", "week"):
        got = trends.series(
            store,
            ADMIN,
            ["Alpha", "Beta"],
            participants=["a1", "b2"],
            start=start,
            end=end,
            granularity=granularity,  # type: ignore[arg-type]
        )
        assert_same(got, expected_series(sample, ["Alpha", "Beta"], start, end, granularity, ("a1", "b2")))


def test_series_default_range_is_the_data(store: LocalStore, sample: pd.DataFrame) -> None:
    got = trends.series(store, ADMIN)
    assert got["period"].iloc[0] == pd.Timestamp("2025-03-01") and got["period"].iloc[-1] == pd.Timestamp("2025-04-09")
    assert got["count"].sum() == len(sample)


def test_heatmap_matches_pandas_and_caps_the_lowest(store: LocalStore, sample: pd.DataFrame) -> None:
    start, end = date(2025, 3, 1), date(2025, 4, 9)
    alpha = sample[sample["group"] == "Alpha"].assign(
        s=lambda f: f["p_positive"].astype(float) - f["p_negative"].astype(float),
        day=lambda f: f["time"].dt.tz_localize(None).dt.normalize(),
    )
    means = alpha.groupby("participant")["s"].mean().sort_values()
    got = trends.heatmap(store, ADMIN, "Alpha", start=start, end=end, limit=2)
    assert got.total == 4
    assert got.participants == list(means.index[:2])  # the two lowest mean sentiments
    assert set(got.cells["participant"]) == set(means.index[:2])
    cells = alpha[alpha["participant"].isin(means.index[:2])].groupby(["participant", "day"])["s"].agg(["mean", "size"])
    merged = got.cells.assign(period=pd.to_datetime(got.cells["period"])).set_index(["participant", "period"])
    assert len(merged) == len(cells)
    for (who, day), row in cells.iterrows():
        assert merged.loc[(who, day), "mean"] == pytest.approx(row["mean"], abs=1e-6)
        assert merged.loc[(who, day), "count"] == row["size"]
    weekly = trends.heatmap(store, ADMIN, "Alpha", start=start, end=end, granularity="week")
    assert weekly.total == 4 and len(weekly.participants) == 4
    assert set(pd.to_datetime(weekly.cells["period"]).dt.day_of_week) == {0}


def test_filter_options(store: LocalStore, sample: pd.DataFrame) -> None:
    assert trends.visible_groups(store, ADMIN) == ["Alpha", "Beta"]
    assert trends.participants(store, ADMIN, ["Beta"]) == ["b0", "b1", "b2"]
    assert trends.date_range(store, ADMIN) == (date(2025, 3, 1), date(2025, 4, 9))
    assert trends.date_range(store, ADMIN, ["Nobody"]) is None


# --- who sees what ----------------------------------------------------------------------------


def test_manager_sees_only_own_groups(store: LocalStore, sample: pd.DataFrame, caplog) -> None:  # type: ignore[no-untyped-def]
    write(store, [checkin("x", "Gamma", "2025-03-05T09:00Z", text="SECRET-TEXT of x")], "b3")
    manager = User("mo", "manager", ("Alpha", "Gamma"))
    assert trends.visible_groups(store, manager) == ["Alpha", "Gamma"]
    assert trends.participants(store, manager, ["Alpha", "Beta"]) == ["a0", "a1", "a2", "a3"]
    mine = trends.series(store, manager, ["Alpha"], start=date(2025, 3, 1), end=date(2025, 4, 9))
    default = trends.series(store, manager, start=date(2025, 3, 1), end=date(2025, 4, 9))
    assert default["count"].sum() == mine["count"].sum() + 1  # Alpha and Gamma, never Beta
    with caplog.at_level(logging.WARNING, logger="services.access.policy"):
        caplog.clear()
        assert trends.series(store, manager, ["Beta"]).empty
        assert trends.heatmap(store, manager, "Beta").participants == []
        assert trends.timeline(store, manager, "b0", ["Beta"]).empty
        assert trends.export_rows(store, manager, ["Beta"]).empty
        assert trends.participants(store, manager, ["Beta"]) == []
        mixed = trends.series(store, manager, ["Alpha", "Beta"], start=date(2025, 3, 1), end=date(2025, 4, 9))
    assert mixed["count"].sum() == mine["count"].sum()
    records = [r for r in caplog.records if "outside their scope" in r.getMessage()]
    assert len(records) == 6 and all("'mo'" in r.getMessage() and "Beta" in r.getMessage() for r in records)
    for record in caplog.records:
        assert "text" not in record.getMessage() and "SECRET" not in record.getMessage()


def test_manager_without_groups_sees_nothing(store: LocalStore, sample: pd.DataFrame) -> None:
    nobody = User("ned", "manager", ())
    assert trends.visible_groups(store, nobody) == []
    assert trends.series(store, nobody).empty
    assert trends.date_range(store, nobody) is None


def test_annotator_is_refused(store: LocalStore, sample: pd.DataFrame, caplog) -> None:  # type: ignore[no-untyped-def]
    annotator = User("ann", "annotator", ("Alpha",))
    calls = [
        lambda: trends.visible_groups(store, annotator),
        lambda: trends.participants(store, annotator, ["Alpha"]),
        lambda: trends.date_range(store, annotator),
        lambda: trends.series(store, annotator, ["Alpha"]),
        lambda: trends.heatmap(store, annotator, "Alpha"),
        lambda: trends.timeline(store, annotator, "a0"),
        lambda: trends.export_rows(store, annotator),
    ]
    with caplog.at_level(logging.WARNING, logger="services.checkins.trends"):
        for call in calls:
            with pytest.raises(AuthError, match="managers and admins"):
                call()
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == len(calls)


def test_admin_sees_every_group(store: LocalStore, sample: pd.DataFrame) -> None:
    assert trends.series(store, ADMIN)["count"].sum() == len(sample)
    assert len(trends.export_rows(store, ADMIN)) == len(sample)


# --- the cache ----------------------------------------------------------------------------------


def test_new_partition_invalidates_the_cache(store: LocalStore, sample: pd.DataFrame) -> None:
    args = {"start": date(2025, 3, 1), "end": date(2025, 4, 30)}
    before = trends.series(store, ADMIN, ["Alpha"], **args)
    snap = aggregate.CACHE.snapshot(store)
    assert aggregate.CACHE.snapshot(store) is snap  # nothing changed: the aggregate is reused
    write(store, [checkin("a0", "Alpha", "2025-04-20T10:00Z"), checkin("a9", "Alpha", "2025-03-02T10:00Z")], "b9")
    after = trends.series(store, ADMIN, ["Alpha"], **args)
    assert aggregate.CACHE.snapshot(store) is not snap
    assert after["count"].sum() == before["count"].sum() + 2
    assert "a9" in trends.participants(store, ADMIN, ["Alpha"])
    assert trends.date_range(store, ADMIN) == (date(2025, 3, 1), date(2025, 4, 20))


def test_a_listing_is_reused_for_a_moment(store: LocalStore, sample: pd.DataFrame, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(aggregate, "LISTING_SECONDS", 60.0)
    before = trends.series(store, ADMIN)["count"].sum()
    write(store, [checkin("a0", "Alpha", "2025-03-03T10:00Z")], "b9")
    assert trends.series(store, ADMIN)["count"].sum() == before  # within the same rerun
    monkeypatch.setattr(aggregate, "LISTING_SECONDS", 0.0)
    assert trends.series(store, ADMIN)["count"].sum() == before + 1


def test_results_are_copies(store: LocalStore, sample: pd.DataFrame) -> None:
    first = trends.series(store, ADMIN)
    first["count"] = -1
    assert (trends.series(store, ADMIN)["count"] >= 0).all()


def test_concurrent_first_calls_build_once(store: LocalStore, sample: pd.DataFrame, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    builds = []
    real = aggregate.build

    def counting(listing):  # type: ignore[no-untyped-def]
        builds.append(listing.fingerprint)
        return real(listing)

    monkeypatch.setattr(aggregate, "build", counting)
    with ThreadPoolExecutor(max_workers=8) as pool:
        totals = list(
            pool.map(lambda i: trends.series(store, ADMIN, ["Alpha", "Beta"][i % 2 :])["count"].sum(), range(16))
        )
    assert len(builds) == 1
    assert set(totals) == {len(sample), (sample["group"] == "Beta").sum()}


def test_cache_is_bounded() -> None:
    cache = aggregate.TrendsCache(results=3)
    for i in range(10):
        cache.remember(i, lambda i=i: i)  # type: ignore[misc]
    assert cache.remember(9, lambda: -1) == 9 and cache.remember(0, lambda: -1) == -1


# --- odd data -----------------------------------------------------------------------------------

ODD = ["<script>alert(1)</script>", 'O\'Brien "quoted"', "50% _under_", "'; drop table daily; --", "Zoë 😀 日本"]


def test_odd_names_are_plain_values(store: LocalStore) -> None:
    rows = [
        checkin(name, group, f"2025-05-0{d}T09:00Z", "negative") for name in ODD for group in ODD[:3] for d in (1, 2)
    ]
    write(store, rows)
    assert trends.visible_groups(store, ADMIN) == sorted(ODD[:3])
    manager = User("mo", "manager", (ODD[0], ODD[2]))
    assert trends.visible_groups(store, manager) == sorted([ODD[0], ODD[2]])
    assert trends.participants(store, manager, [ODD[0]]) == sorted(ODD)
    got = trends.series(store, manager, [ODD[0]], participants=[ODD[3], ODD[4]])
    assert list(got["count"]) == [2, 2]
    assert trends.heatmap(store, manager, ODD[2]).total == len(ODD)
    line = trends.timeline(store, manager, ODD[3])
    assert len(line) == 4 and set(line["group"]) == {ODD[0], ODD[2]}  # never ODD[1]: not the manager's
    assert trends.series(store, manager, [ODD[1]]).empty
    assert len(trends.export_rows(store, ADMIN, [ODD[1]], participants=["%"])) == 0  # no LIKE semantics


def test_timestamps_out_of_order_and_in_the_future(store: LocalStore) -> None:
    future = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    rows = [
        checkin("p", "G", "2025-06-03T12:00Z", "positive"),
        checkin("p", "G", future, "negative"),
        checkin("p", "G", "2025-06-01T08:00Z", "neutral"),
        checkin("p", "G", "2025-06-03T07:00Z", "negative"),
    ]
    write(store, rows[:2], "b1")
    write(store, rows[2:], "b2")
    assert trends.date_range(store, ADMIN) == (date(2025, 6, 1), future.date())
    line = trends.timeline(store, ADMIN, "p")
    assert list(line["time"]) == sorted(line["time"], reverse=True)
    assert line["time"].iloc[0] == pd.Timestamp(future) and line["label"].iloc[0] == "negative"
    got = trends.series(store, ADMIN, ["G"])
    assert got["count"].sum() == 4 and got["count"].iloc[-1] == 1
    june3 = got[got["period"] == pd.Timestamp("2025-06-03")].iloc[0]
    assert june3["count"] == 2 and june3["negative"] == 0.5
    export = trends.export_rows(store, ADMIN)
    assert list(export["time"]) == sorted(export["time"])  # oldest first


def test_a_range_with_no_data(store: LocalStore, sample: pd.DataFrame) -> None:
    start, end = date(2024, 1, 1), date(2024, 1, 10)
    got = trends.series(store, ADMIN, ["Alpha"], start=start, end=end)
    assert len(got) == 10 and got["count"].sum() == 0 and got["mean"].isna().all() and got["rolling"].isna().all()
    assert trends.heatmap(store, ADMIN, "Alpha", start=start, end=end).total == 0
    assert trends.timeline(store, ADMIN, "a0", start=start, end=end).empty
    assert trends.export_rows(store, ADMIN, start=start, end=end).empty
    with pytest.raises(ValueError, match="after it ends"):
        trends.series(store, ADMIN, start=end, end=start)
    with pytest.raises(ValueError, match="granularity"):
        trends.series(store, ADMIN, granularity="month")  # type: ignore[arg-type]


def test_an_empty_store(store: LocalStore) -> None:
    assert trends.visible_groups(store, ADMIN) == []
    assert trends.date_range(store, ADMIN) is None
    assert trends.series(store, ADMIN).empty
    assert trends.heatmap(store, ADMIN, "Alpha").participants == []
    assert trends.timeline(store, ADMIN, "a0").empty


def test_one_group_with_a_single_participant(store: LocalStore) -> None:
    write(store, [checkin("solo", "Tiny", f"2025-07-0{d}T10:00Z", "positive") for d in range(1, 4)])
    heat = trends.heatmap(store, ADMIN, "Tiny")
    assert heat.total == 1 and heat.participants == ["solo"] and len(heat.cells) == 3
    assert heat.cells["mean"].tolist() == pytest.approx([0.75] * 3)
    got = trends.series(store, ADMIN, ["Tiny"], granularity="week")
    assert got["count"].sum() == 3 and got["positive"].dropna().eq(1.0).all()


def test_timeline_limit_takes_the_newest(store: LocalStore) -> None:
    rows = [checkin("p", "G", datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=7 * i)) for i in range(300)]
    write(store, rows)
    line = trends.timeline(store, ADMIN, "p", limit=50)
    assert len(line) == 50
    assert line["time"].iloc[0] == max(r["time"] for r in rows)
    assert line["time"].iloc[-1] == sorted(r["time"] for r in rows)[-50]


def test_relabelled_by_a_human(store: LocalStore) -> None:
    rows = [checkin("p", "G", f"2025-08-0{d}T10:00Z", "negative") for d in range(1, 6)]
    write(store, rows)
    ids = [r["id"] for r in rows]

    def label(i: int, value: str, who: str, at: str, final: bool = False) -> str:
        lab = Label(ids[i], "t", value, who, f"2025-08-10T10:00:{at}+00:00", "negative", "v1", final=final)
        return save_label(store, lab)

    label(0, "positive", "ann", "01")  # relabelled
    label(1, "negative", "ann", "01")  # confirmed: labelled, not relabelled
    label(2, "neutral", "ann", "01", final=True)  # a final label wins over a later one
    label(2, "negative", "bob", "02")
    retract_label(store, label(3, "positive", "ann", "01"), by="ann")  # undone: no longer counts
    line = trends.timeline(store, ADMIN, "p").set_index(pd.Index(ids[::-1]))
    assert line.loc[ids[0], "human_label"] == "positive" and line.loc[ids[0], "relabelled"]
    assert line.loc[ids[1], "human_label"] == "negative" and not line.loc[ids[1], "relabelled"]
    assert line.loc[ids[2], "human_label"] == "neutral" and line.loc[ids[2], "relabelled"]
    assert line.loc[ids[3], "human_label"] is None and not line.loc[ids[3], "relabelled"]
    assert line.loc[ids[4], "human_label"] is None and not line.loc[ids[4], "relabelled"]
    label(4, "neutral", "ann", "03")  # a new label shows without any new check-in
    assert trends.timeline(store, ADMIN, "p")["relabelled"].sum() == 3


def test_export_rows_and_csv(store: LocalStore) -> None:
    rows = [
        checkin("p", "G", "2025-09-01T10:00Z", text='=HYPERLINK("http://x")'),
        checkin("q", "G", "2025-09-02T10:00Z", text="fine, thanks"),
        checkin("r", "H", "2025-09-02T10:00Z"),
    ]
    write(store, rows)
    full = trends.export_rows(store, ADMIN, ["G"], include_text=True)
    assert list(full.columns) == [*trends.EXPORT_COLUMNS, "text"] and list(full["participant"]) == ["p", "q"]
    bare = trends.export_rows(store, ADMIN, ["G"], participants=["q"], include_text=False)
    assert "text" not in bare.columns and list(bare["participant"]) == ["q"]
    csv = csv_bytes(full).decode()
    assert "'=HYPERLINK" in csv and "fine, thanks" in csv


def test_managers_export_text_only_when_the_setting_allows_it(store: LocalStore) -> None:
    write(store, [checkin("p", "G", "2025-09-01T10:00Z", text="how I really feel")])
    manager = User("meg", "manager", ("G",))
    assert "text" not in trends.export_rows(store, manager, ["G"], include_text=True).columns
    allowed = trends.export_rows(store, manager, ["G"], include_text=True, managers_may_export_text=True)
    assert list(allowed["text"]) == ["how I really feel"]
    assert "text" not in trends.export_rows(store, ADMIN, ["G"]).columns  # text only when asked for
    assert trends.may_export_text(ADMIN, False) and not trends.may_export_text(User("a", "annotator"), True)
    # another group's rows never come, with or without text
    assert trends.export_rows(store, User("max", "manager", ("H",)), ["G"], include_text=True).empty


def test_unreadable_partition_is_a_store_error(store: LocalStore) -> None:
    from services.errors import StoreError

    write(store, [checkin("p", "G", "2025-09-01T10:00Z")])
    store.put("checkins/date=2025-09-02/broken.parquet", b"not parquet at all")
    with pytest.raises(StoreError, match="could not be read"):
        trends.series(store, ADMIN)
