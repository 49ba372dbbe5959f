"""Input a hostile or careless sender would produce, through the real ingest (local store, the
bootstrap model): every row of a file is accepted, rejected with a reason or already present, and
the three always add up; a row-level problem rejects that row, never the file; a file refused as a
whole leaves nothing behind; a check-in is stored once, whatever file or day it came in, even when
two processes ingest overlapping files at the same time."""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from services.checkins.ingest import IngestReport, ingest
from services.checkins.partitions import read_scored
from services.errors import InvalidUpload
from services.lifecycle.endpoint import LocalEndpoint
from services.review.items import waiting_entries
from services.store.base import ObjectStore
from services.store.local import LocalStore
from tests.conftest import ROOT
from tests.faults.conftest import StandIn, child_env

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
HEADER = "participant,group,time,text\n"
OPERATION = "ingest, hostile input (local)"


def run(ws: LocalStore, endpoint: LocalEndpoint, data: bytes | str, name: str = "in.csv", **kw: Any) -> IngestReport:
    raw = data.encode() if isinstance(data, str) else data
    report = ingest(ws, endpoint, raw, name, threshold=0.6, now=NOW, **kw)
    assert report.total_rows == report.accepted + report.rejected + report.already_present
    assert str(f"{report.total_rows:,} rows = {report.accepted:,} accepted + {report.rejected:,} rejected") in (
        report.summary()
    )
    return report


def quarantined(ws: LocalStore, report: IngestReport) -> dict[int, str]:
    if not report.quarantine_key:
        return {}
    lines = ws.get(report.quarantine_key).decode().splitlines()
    return {doc["row"]: doc["reason"] for doc in map(json.loads, lines)}


def stored(ws: LocalStore) -> pd.DataFrame:
    return read_scored(ws, ["id", "participant", "time", "text", "extra"])


def files(ws: LocalStore) -> set[str]:
    """Every file in the workspace folder, temp files included."""
    return {p.relative_to(ws.root).as_posix() for p in ws.root.rglob("*") if p.is_file()}


def rows(n: int, start: int = 0, day: str = "2026-01-0{}") -> str:
    return "".join(
        f"p{i},g,{day.format(1 + i % 5)}T09:{i % 60:02d}:00Z,check-in number {i} went fine\n"
        for i in range(start, start + n)
    )


# --- one row of the table each ------------------------------------------------------------


@pytest.mark.fault(
    operation=OPERATION,
    fault="an unterminated quote in row 3 of 6",
    when="CSV",
    expected="row 3 rejected (the line of the open quote named), rows 4-6 read again: 5 + 1 = 6",
)
def test_an_unterminated_quote_rejects_its_row_and_the_rows_after_it_are_read(
    ws: LocalStore, endpoint: LocalEndpoint
) -> None:
    lines = rows(6).splitlines(keepends=True)
    lines[2] = 'p2,g,2026-01-01T10:00:00Z,"this quote never closes\n'
    report = run(ws, endpoint, HEADER + "".join(lines))
    assert (report.total_rows, report.accepted, report.rejected) == (6, 5, 1)
    reason = quarantined(ws, report)[3]
    assert "unterminated quote" in reason and "line 4" in reason
    assert sorted(stored(ws)["participant"]) == ["p0", "p1", "p3", "p4", "p5"]


@pytest.mark.fault(
    operation=OPERATION,
    fault="a duplicated header column (`text,text`; also `Text,text` and a JSON key given twice)",
    when="CSV, JSON lines",
    expected="CSV refused naming the column, nothing kept; the JSON line rejected, the others stored",
)
def test_a_column_named_twice_is_refused_not_half_read(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    before = files(ws)
    for header in ("participant,group,time,text,text\n", "participant,group,time,Text,text\n"):
        with pytest.raises(InvalidUpload, match=r"(?i)'text' more than once"):
            run(ws, endpoint, header + "p1,g,2026-01-01T09:00:00Z,first,second\n")
    assert files(ws) == before  # not even the upload is kept
    good = {"participant": "p1", "group": "g", "time": "2026-01-01T09:00:00Z", "text": "fine"}
    twice = json.dumps(good)[:-1] + ', "text": "again"}'
    report = run(ws, endpoint, json.dumps(good) + "\n" + twice + "\n", "in.jsonl")
    assert (report.accepted, report.rejected) == (1, 1)
    assert "'text' more than once" in quarantined(ws, report)[2]


@pytest.mark.fault(
    operation=OPERATION,
    fault="the same check-in id in two files on different dates",
    when="two files, one after the other",
    expected="stored once; the second file counts it as already in the workspace",
)
def test_an_id_is_stored_once_whatever_the_day(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    head = "id,participant,group,time,text\n"
    run(ws, endpoint, head + "chk-1,p1,g,2026-01-01T09:00:00Z,slept well\nchk-2,p2,g,2026-01-01T09:00:00Z,ok\n")
    second = run(ws, endpoint, head + "chk-1,p1,g,2026-01-05T09:00:00Z,slept well (resent)\n", "later.csv")
    assert (second.accepted, second.already_present) == (0, 1)
    assert Counter(stored(ws)["id"]) == {"chk-1": 1, "chk-2": 1}


@pytest.mark.fault(
    operation=OPERATION,
    fault="`time` = `now`, `today`, `yesterday`, `Monday 9:30`",
    when="CSV",
    expected="each rejected: a time must name its year; the other rows stored",
)
def test_relative_times_are_refused(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    words = ["now", "today", "yesterday", "Monday 9:30", "2026-01-01 now"]
    body = "".join(f"p{i},g,{w},words {i}\n" for i, w in enumerate(words)) + "p9,g,2026-01-02T09:00:00Z,a real time\n"
    report = run(ws, endpoint, HEADER + body)
    assert (report.accepted, report.rejected) == (1, len(words))
    assert all("four-digit year" in r for r in quarantined(ws, report).values())


@pytest.mark.fault(
    operation=OPERATION,
    fault="one bad `id` ({kind}) among good rows",
    when="CSV",
    expected="that row rejected with what an id may hold; the others stored; no review item of it",
)
@pytest.mark.parametrize("kind", ["a\\nb", "../..", "2,000 chars", "a/b/c", "..", "a b"])
def test_a_bad_id_rejects_only_its_row(ws: LocalStore, endpoint: LocalEndpoint, kind: str) -> None:
    bad = {"a\\nb": '"a\nb"', "2,000 chars": "x" * 2000}.get(kind, kind)
    body = (
        "id,participant,group,time,text\n"
        "ok-1,p1,g,2026-01-01T09:00:00Z,the and of\n"  # stopwords only: goes to review
        f"{bad},p2,g,2026-01-01T09:05:00Z,the and of\n"
        "ok-3,p3,g,2026-01-01T09:10:00Z,the and of\n"
    )
    report = run(ws, endpoint, body)
    assert (report.accepted, report.rejected) == (2, 1)
    assert "id" in quarantined(ws, report)[2]
    assert sorted(waiting_entries(ws)) == ["ok-1", "ok-3"]
    assert [p for p in (ws.root / "review").rglob("*") if p.is_dir() and p.parent.name not in ("review",)] == []


@pytest.mark.fault(
    operation=OPERATION,
    fault="a time out of pandas' nanosecond range, or before 2000: `{when}`",
    when="beside normal rows",
    expected="that row rejected naming its time; the others stored",
)
@pytest.mark.parametrize("when", ["1500-01-01T00:00:00Z", "0001-01-01", "9999-12-31T23:59:59Z", "1999-12-31T23:00:00Z"])
def test_a_time_out_of_range_rejects_only_its_row(ws: LocalStore, endpoint: LocalEndpoint, when: str) -> None:
    report = run(ws, endpoint, HEADER + rows(3) + f"p9,g,{when},a long time ago\n")
    assert (report.accepted, report.rejected) == (3, 1)
    reason = quarantined(ws, report)[4]
    assert "before 2000-01-01" in reason or "in the future" in reason


@pytest.mark.fault(
    operation=OPERATION,
    fault="dates like 03/04/2026 (day and month both possible)",
    when="without, then with a date order",
    expected="rejected as ambiguous; the same file with day-first: read as 3 April; 13/04/2026 always read",
)
def test_an_ambiguous_date_is_refused_unless_the_order_is_given(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    body = HEADER + "p1,g,03/04/2025 09:30,ambiguous\np2,g,13/04/2025 09:30,the day is plain\n"
    first = run(ws, endpoint, body)
    assert (first.accepted, first.rejected) == (1, 1)
    assert "ambiguous" in quarantined(ws, first)[1]
    again = run(ws, endpoint, body, time_format="day-first")
    assert not again.repeated and (again.accepted, again.already_present) == (1, 1)
    times = stored(ws).set_index("participant")["time"]
    assert times["p1"] == pd.Timestamp("2025-04-03T09:30:00Z") and times["p2"] == pd.Timestamp("2025-04-13T09:30Z")


@pytest.mark.fault(
    operation=OPERATION,
    fault="nested JSON values in an extra field",
    when="JSON lines",
    expected="kept in `extra` as JSON (objects and arrays), not Python repr; a text given as an object rejected",
)
def test_nested_json_extras_are_kept_as_json(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    base = {"participant": "p1", "group": "g", "time": "2026-01-01T09:00:00Z", "text": "fine today"}
    meta = {"device": {"os": "ios", "tags": ["a", 1, None, True]}, "score": 4.5}
    bad = {**base, "participant": "p2", "text": {"oops": "an object"}}
    report = run(ws, endpoint, json.dumps({**base, **meta}) + "\n" + json.dumps(bad) + "\n", "in.jsonl")
    assert (report.accepted, report.rejected) == (1, 1)
    assert json.loads(stored(ws)["extra"].iloc[0]) == meta
    assert "must be text" in quarantined(ws, report)[2]


@pytest.mark.fault(
    operation=OPERATION,
    fault="a JSON array nested 100,000 deep",
    when="one JSON line; a whole .json file",
    expected="the line rejected ('nested deeper than Pulse reads'), the others stored; the file refused, no traceback",
)
def test_json_nested_too_deep_is_a_reason_not_a_traceback(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    good = json.dumps({"participant": "p1", "group": "g", "time": "2026-01-01T09:00:00Z", "text": "fine"})
    report = run(ws, endpoint, good + "\n" + "[" * 100_000 + "]" * 100_000 + "\n", "in.jsonl")
    assert (report.accepted, report.rejected) == (1, 1)
    assert "nested deeper" in quarantined(ws, report)[2]
    with pytest.raises(InvalidUpload, match="nested deeper"):
        run(ws, endpoint, "[" * 100_000, "in.json")


@pytest.mark.fault(
    operation=OPERATION,
    fault="files in UTF-16 with a BOM, UTF-8 with a BOM, UTF-16 without a BOM (NUL bytes in the header), Windows-1252",
    when="CSV",
    expected="UTF-8 and UTF-16 with BOM read; the others refused naming the encoding, nothing kept",
)
def test_encodings_are_read_or_refused_by_name(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    text = HEADER + 'p1,g,2026-01-01T09:00:00Z,"café au lait, très bien"\np2,g,2026-01-01T09:00:00Z,né ici\n'
    for encoding in ("utf-16", "utf-8-sig", "utf-32"):  # the same rows each time: stored once
        report = run(ws, endpoint, text.encode(encoding), f"{encoding}.csv")
        assert (report.accepted + report.already_present, report.rejected) == (2, 0), encoding
    assert sorted(stored(ws)["text"]) == ["café au lait, très bien", "né ici"]
    before = files(ws)
    for encoding, named in (("utf-16-le", "UTF-16 or UTF-32 without a byte order mark"), ("cp1252", "not UTF-8")):
        with pytest.raises(InvalidUpload, match=named):
            run(ws, endpoint, text.encode(encoding), f"{encoding}.csv")
    assert files(ws) == before


@pytest.mark.fault(
    operation=OPERATION,
    fault="ids with `/` (`2026/12/01-7`)",
    when="JSON lines",
    expected="rejected with the reason; no review item under nested folders",
)
def test_an_id_with_slashes_never_becomes_a_folder(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    line = {"id": "2026/12/01-7", "participant": "p1", "group": "g", "time": "2026-01-01T09:00:00Z", "text": "the of"}
    report = run(ws, endpoint, json.dumps(line) + "\n" + json.dumps({**line, "id": "ok"}) + "\n", "in.jsonl")
    assert (report.accepted, report.rejected) == (1, 1)
    assert "slashes" in quarantined(ws, report)[1]
    assert list(waiting_entries(ws)) == ["ok"]
    assert [p for p in (ws.root / "review").rglob("*") if p.is_dir() and p.parent.name != "review"] == []


# --- every row accounted for, whatever the mix ----------------------------------------------------

BAD_FIELDS = [
    ("id", "../x"),
    ("id", "x" * 300),
    ("time", "now"),
    ("time", "03/04/2025"),
    ("time", "1500-01-01T00:00:00Z"),
    ("time", "2099-01-01T00:00:00Z"),
    ("text", ""),
    ("participant", " "),
]


def hostile_csv(seed: int) -> tuple[bytes, int]:
    """A CSV of good rows with bad fields, broken quoting, short rows and duplicates mixed in."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=rng.choice(["\n", "\r\n"]))
    writer.writerow(["id", "participant", "group", "time", "text"])
    n = rng.randint(5, 60)
    lines = []
    for i in range(n):
        row = {
            "id": f"s{seed}-{i}",
            "participant": f"p{i % 7}",
            "group": "g",
            "time": "2026-01-0{}T09:00:00Z",
            "text": f"day {i}",
        }
        row["time"] = row["time"].format(1 + i % 9)
        if rng.random() < 0.3:
            key, value = rng.choice(BAD_FIELDS)
            row[key] = value
        if rng.random() < 0.1:
            row["id"] = f"s{seed}-{max(i - 1, 0)}"  # a duplicate id within the file
        if rng.random() < 0.2:
            row["text"] = rng.choice(["multi\nline", 'a "quoted" word', "comma, inside"])
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(row.values())  # quotes fields holding a line break
        line = buf.getvalue().removesuffix("\n")
        if rng.random() < 0.05 and '"' not in line:
            line = line.rsplit(",", 1)[0]  # a short row
        lines.append(line)
    if rng.random() < 0.5:
        lines[rng.randrange(n)] = f'open-{seed},p0,g,2026-01-01T09:00:00Z,"never closed'
    out.write("\n".join(lines) + "\n")
    return out.getvalue().encode(), n


@pytest.mark.fault(
    operation=OPERATION,
    fault="40 random mixes of good rows, bad ids and times, empty fields, duplicates, short rows, an open quote",
    when="CSV, then the same rows again in a second file",
    expected="rows = accepted + rejected + already present in every file; each id stored at most once",
)
def test_every_row_is_accounted_for_in_any_mix(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    for seed in range(40):
        data, n = hostile_csv(seed)
        report = run(ws, endpoint, data, f"mix{seed}.csv")
        assert report.total_rows == n, seed  # every physical row is one record, none swallowed
        again = run(ws, endpoint, data + b"\n", f"mix{seed}-again.csv")  # a new batch of the same rows
        assert (again.accepted, again.already_present, again.rejected) == (0, report.accepted, report.rejected)
    assert stored(ws)["id"].is_unique


# --- stored once, even at the same time ---------------------------------------------------------


def _airlike(n: int, start: int = 0) -> str:
    at = datetime(2026, 1, 1, 8, tzinfo=UTC)
    return "".join(
        f"p{i % 97},g{i % 5},{(at + timedelta(minutes=7 * i)).isoformat()},check-in {i}: the shift went fine\n"
        for i in range(start, start + n)
    )


def ingest_at_once(store: ObjectStore, env: dict[str, str], files: tuple[str, str], folder: Path) -> list[str]:
    """Two `services.cli ingest` processes started together on `files`; their printed summaries."""
    paths = [folder / "a.csv", folder / "b.csv"]
    for path, text in zip(paths, files, strict=True):
        path.write_text(text)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "services.cli", "ingest", str(p), "--quiet"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for p in paths
    ]
    outs = [proc.communicate(timeout=600) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err.decode()[-2000:] for _, err in outs]
    return [out.decode() for out, _ in outs]


def assert_stored_once(store: ObjectStore, rows: int, already: list[int], summaries: list[str]) -> None:
    ids = read_scored(store, ["id"])["id"]
    assert len(ids) == rows and ids.is_unique
    reports = [json.loads(store.get(key)) for key in store.list("ingest/batches/")]
    assert sorted(r["already_present"] for r in reports) == already, summaries
    assert not store.exists("ingest/lock.json")  # released


PAIRS = {
    "newline": ((HEADER + "{a}", HEADER + "{a}\n"), 1, [0, 1]),  # rows of the second: all already present
    "overlap": ((HEADER + "{a}", HEADER + "{b}"), 1.5, [0, 0.5]),  # rows 0..n-1 and n/2..3n/2-1
}


def pair(kind: str, n: int) -> tuple[tuple[str, str], int, list[int]]:
    (first, second), total, already = PAIRS[kind]
    a, b = _airlike(n), _airlike(n, start=n // 2)
    return (first.format(a=a, b=b), second.format(a=a, b=b)), int(total * n), [int(x * n) for x in already]


@pytest.mark.fault(
    operation=OPERATION,
    fault="two files: {kind} (4,000 rows each; overlap: 2,000 shared; newline: the same rows and one more newline)",
    when="two `services.cli ingest` processes started at the same time",
    expected="the same check-ins as one after the other: each stored once, the overlap counted as already present",
)
@pytest.mark.parametrize("kind", list(PAIRS))
def test_two_processes_ingesting_overlapping_files_at_once_store_each_checkin_once(
    bootstrap_store: LocalStore, tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "ws"
    shutil.copytree(bootstrap_store.root, target)
    files, rows, already = pair(kind, 4000)
    summaries = ingest_at_once(LocalStore(target), child_env({"PULSE_WORKSPACE": str(target)}), files, tmp_path)
    assert_stored_once(LocalStore(target), rows, already, summaries)
    assert not [p for p in target.rglob("*") if p.is_file() and ".tmp" in p.relative_to(target).parts]


@pytest.mark.fault(
    operation="ingest, concurrent (S3 + SageMaker endpoint)",
    fault="two files: {kind} (1,000 rows each; overlap: 500 shared; newline: the same rows and one more newline)",
    when="two `services.cli ingest` processes started at the same time",
    expected="each check-in stored once; the ingest lock (a conditional write on S3) makes the second wait",
)
@pytest.mark.parametrize("kind", list(PAIRS))
def test_two_processes_on_s3_store_each_checkin_once(standin: StandIn, tmp_path: Path, kind: str) -> None:
    bucket, prefix = "pulse-concurrent", f"ws-{kind}"
    store = standin.seed(bucket, prefix)
    env = child_env({**standin.env, "PULSE_BUCKET": bucket, "PULSE_PREFIX": prefix})
    files, rows, already = pair(kind, 1000)
    assert_stored_once(store, rows, already, ingest_at_once(store, env, files, tmp_path))
