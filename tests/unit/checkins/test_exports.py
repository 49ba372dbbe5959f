"""Every CSV download reads back to the same rows and columns, whatever its cells hold (CR, LF,
quotes, delimiters), with formulas defused: the trends export, the audit log, rejected rows."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pandas as pd
import pytest

from services.access import audit
from services.access.users import User
from services.checkins import trends
from services.checkins.exports import csv_bytes, read_rejected
from services.checkins.ingest import ingest
from services.lifecycle.endpoint import LocalEndpoint
from services.store.local import LocalStore

NASTY = [
    "line1\rline2 # hdr",
    "two\nlines",
    "crlf\r\nend",
    'a "quoted" word',
    "comma, semicolon; tab\tpipe|",
    '=HYPERLINK("http://x","y")',
    "-1+2",
    "@SUM(A1)",
    "plain",
    "",
]


def read_back(data: bytes) -> list[list[str]]:
    """What a spreadsheet or a CSV reader sees: the records, split the way the csv module reads."""
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def expected(cell: str) -> str:
    return "'" + cell if cell.startswith(("=", "+", "-", "@", "\t", "\r")) else cell


def test_cells_with_line_breaks_quotes_and_delimiters_round_trip() -> None:
    frame = pd.DataFrame({"participant": NASTY, "group": ["G"] * len(NASTY), "n": range(len(NASTY))})
    records = read_back(csv_bytes(frame))
    assert records[0] == ["participant", "group", "n"]
    assert records[1:] == [[expected(p), "G", str(i)] for i, p in enumerate(NASTY)]
    # pandas reads the same shape back too (the bug: a bare CR made 580 records of 576 rows)
    again = pd.read_csv(io.BytesIO(csv_bytes(frame)), dtype=str, keep_default_na=False)
    assert again.shape == frame.shape and list(again["group"]) == ["G"] * len(NASTY)


@pytest.fixture
def scored(bootstrap_store: LocalStore, tmp_path: Path) -> tuple[LocalStore, LocalEndpoint]:
    """A private copy of the bootstrap workspace and its endpoint."""
    store = LocalStore(shutil.copytree(bootstrap_store.root, tmp_path / "ws"))
    return store, LocalEndpoint(store, tmp_path / "models")


def test_the_trends_export_round_trips(scored: tuple[LocalStore, LocalEndpoint]) -> None:
    store, endpoint = scored
    rows = [
        {
            "participant": p or "empty-name",
            "group": f"G {i % 2}",
            "time": f"2026-11-0{1 + i % 5}T10:00:00Z",
            "text": p or "x",
        }
        for i, p in enumerate(NASTY)
    ]
    data = pd.DataFrame(rows).to_csv(index=False).encode()
    report = ingest(store, endpoint, data, "nasty.csv", threshold=0.6)
    assert report.accepted == len(NASTY)
    admin = User("a", "admin")
    frame = trends.export_rows(store, admin, ["G 0", "G 1"], include_text=True)
    records = read_back(csv_bytes(frame))
    assert records[0] == list(frame.columns)
    assert len(records) - 1 == len(frame) == len(NASTY)
    for got, (_, row) in zip(records[1:], frame.iterrows(), strict=True):  # in the frame's order
        assert got[records[0].index("participant")] == expected(row["participant"])
        assert got[records[0].index("text")] == expected(row["text"])
        assert got[records[0].index("group")] == row["group"]


def test_the_audit_export_round_trips(store: LocalStore) -> None:
    for i, target in enumerate(NASTY):
        audit.record(store, f"admin{i}", "admin", "threshold_changed", target, {"note": target[:50], "n": i})
    frame = audit.events_frame(audit.read_events(store))
    records = read_back(csv_bytes(frame))
    assert records[0] == list(frame.columns)
    assert len(records) - 1 == len(NASTY)
    assert sorted(r[records[0].index("target")] for r in records[1:]) == sorted(expected(t) for t in NASTY)


@pytest.mark.parametrize("header", ["participant,group,time,text", "participant;group;time;text"])
def test_the_rejected_rows_export_round_trips(scored: tuple[LocalStore, LocalEndpoint], header: str) -> None:
    store, endpoint = scored
    sep = header[len("participant")]
    lines = [header, sep.join(["ok", "G", "2026-11-01T10:00:00Z", "fine"])]
    for i, cell in enumerate(NASTY[:6]):
        quoted = '"' + cell.replace('"', '""') + '"'
        lines.append(sep.join([quoted, "G", "not a time", f"text {i}"]))  # rejected: the time
    report = ingest(store, endpoint, ("\n".join(lines) + "\n").encode(), "r.csv", threshold=0.6)
    assert report.quarantine_key and report.rejected == 6
    frame = read_rejected(store, report.quarantine_key)
    records = read_back(csv_bytes(frame))
    assert records[0] == list(frame.columns) and {"row", "reason", "participant", "time"} <= set(records[0])
    assert len(records) - 1 == 6
    got = [r[records[0].index("participant")] for r in records[1:]]
    assert got == [expected(c) for c in NASTY[:6]]
