"""CSV downloads (the trends export, the audit log, rejected upload rows), written by the `csv`
module: a cell holding CR, LF, quotes or delimiters is quoted, so reading the file back gives the
same rows and columns. Text a spreadsheet would run as a formula gets a leading apostrophe."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import pandas as pd

from services.errors import KeyNotFound
from services.store.base import ObjectStore

FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA) else value
    return str(value)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """`frame` as UTF-8 CSV (header first), every cell quoted as it needs."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([_cell(str(c)) for c in frame.columns])
    for row in frame.itertuples(index=False, name=None):
        writer.writerow([_cell(v) for v in row])
    return out.getvalue().encode("utf-8")


def read_rejected(store: ObjectStore, quarantine_key: str) -> pd.DataFrame:
    """The rejected rows of an upload (ingest/quarantine/<batch>.jsonl): row number, reason, and the
    row's fields as they were read (one column each)."""
    try:
        body = store.get(quarantine_key).decode("utf-8", "backslashreplace")
    except KeyNotFound:
        return pd.DataFrame(columns=["row", "reason"])
    records: list[dict[str, Any]] = []
    for line in body.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            raw = record.get("raw")
            raw = raw if isinstance(raw, dict) else {}
            records.append({"row": record.get("row"), "reason": record.get("reason", ""), **_fields(raw.items())})
    frame = pd.DataFrame.from_records(records)
    return frame if len(frame.columns) else pd.DataFrame(columns=["row", "reason"])


def _fields(items: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """A rejected row's fields as columns; names that clash with row/reason get a prefix."""
    return {(f"field {k}" if k in ("row", "reason") else str(k)): "" if v is None else str(v) for k, v in items}


# A file to start from on the Upload page: the columns Pulse reads, times with and without a zone.
SAMPLE_ROWS = (
    (
        "p-001",
        "Support desk",
        "2026-12-01T09:12:00+01:00",
        "Calm queue this morning, backlog cleared by lunch.",
    ),
    ("p-002", "Support desk", "2026-12-01 17:40", "Long call with an angry customer. Drained."),
    ("p-003", "Night shift", "2026-12-02T06:55:00Z", "Handover went fine, nothing to report."),
    ("p-004", "Student cohort", "2026-12-02T21:03:00-05:00", "Finally understood recursion 🎉"),
    ("p-005", "Student cohort", "2026-12-02T12:30:00", "Is the lab moved to Thursday this week?"),
)


def sample_csv() -> bytes:
    """A small CSV in the upload format (UTF-8): participant, group, time, text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["participant", "group", "time", "text"])
    writer.writerows(SAMPLE_ROWS)
    return out.getvalue().encode("utf-8")
