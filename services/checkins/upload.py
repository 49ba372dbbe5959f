"""Check-ins: reading uploads (CSV, JSON lines, Parquet) into validated rows.

Every row either becomes a check-in or is rejected with a reason; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from services.errors import InvalidUpload

REQUIRED = ("participant", "group", "time", "text")
# Column names people commonly use for the required fields.
ALIASES = {
    "participant": ("participant", "participant_id", "participantid", "user", "person"),
    "group": ("group", "group_id", "team", "cohort"),
    "time": ("time", "timestamp", "created_at", "datetime", "date"),
    "text": ("text", "message", "checkin", "check_in", "body"),
    "id": ("id", "checkin_id", "message_id"),
}
FUTURE_TOLERANCE = timedelta(minutes=10)
# csv's default field limit (128 KiB) would reject a long message outright; texts are cut for
# scoring anyway, and the upload size limit bounds the whole file.
csv.field_size_limit(64 * 1024 * 1024)
MAX_NAME_CHARS = 200


@dataclass(frozen=True)
class Rejected:
    """A row that did not become a check-in, and why."""

    row: int
    reason: str
    raw: dict[str, str] = field(default_factory=dict)


@dataclass
class ParsedUpload:
    """Valid check-ins (a DataFrame with id, participant, group, time, text, extra) and rejects."""

    checkins: pd.DataFrame
    rejected: list[Rejected]
    total_rows: int


def _visible(value: Any) -> str:
    """A field as text, with undecodable bytes shown as \\xNN instead of lost."""
    text = "" if value is None else str(value)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_ESCAPED_BYTES = re.compile("[\udc80-\udcff]")  # where surrogateescape put undecodable bytes


def _has_bad_bytes(value: str) -> bool:
    return _ESCAPED_BYTES.search(value) is not None


def _canonical(columns: list[str]) -> dict[str, str]:
    """Map each source column to its Pulse name, or keep it as an extra field. A column named
    exactly like a Pulse field wins over an alias ("time" over "date"), and an extra column never
    takes a Pulse field's name, so no value is overwritten."""
    keys = {col: col.strip().lower().replace(" ", "_") for col in columns}
    mapping: dict[str, str] = {}
    for col, key in keys.items():
        if key in ALIASES and key not in mapping.values():
            mapping[col] = key
    for col, key in keys.items():
        if col in mapping:
            continue
        name = next((n for n, a in ALIASES.items() if key in a and n not in mapping.values()), None)
        extra = col.strip()
        while extra in ALIASES or extra in mapping.values():
            extra = f"extra_{extra}"
        mapping[col] = name or extra
    return mapping


def _decode(data: bytes) -> str:
    # surrogateescape keeps undecodable bytes so the rows holding them can be rejected and
    # quarantined with the bytes visible, instead of failing the whole file.
    return data.decode("utf-8-sig", errors="surrogateescape")


def _csv_records(data: bytes) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
    text = _decode(data)
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t|", key=first_line.count)
    if first_line.count(delimiter) == 0:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidUpload("the file is empty") from None
    except csv.Error as exc:
        raise InvalidUpload(f"the header line cannot be read as CSV: {exc}") from None
    names = _canonical(header)
    missing = [c for c in REQUIRED if c not in names.values()]
    if missing:
        hint = ""
        if len(header) == 1:
            hint = " The header has a single column: is the file delimited by something other than , ; tab or |?"
        raise InvalidUpload(
            f"missing required column(s): {', '.join(missing)}. Found: {', '.join(map(_visible, header))}.{hint}"
        )
    row = 0
    while True:
        row += 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield row, Rejected(row, f"unreadable CSV near line {reader.line_num}: {exc}")
            if "end of data" in str(exc).lower():  # an unterminated quote swallowed the rest
                return
            continue
        if not fields:
            row -= 1  # blank lines are not records
            continue
        if len(fields) != len(header):
            raw = {f"field{i + 1}": _visible(v) for i, v in enumerate(fields)}
            reason = f"row has {len(fields)} fields but the header has {len(header)} (check delimiter and quoting)"
            yield row, Rejected(row, reason, raw)
            continue
        yield row, {names[h]: v for h, v in zip(header, fields, strict=True)}


def _json_records(data: bytes) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
    text = _decode(data).strip()
    if not text:
        raise InvalidUpload("the file is empty")
    if text.startswith("["):  # a JSON array of objects is accepted too
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidUpload(f"the file is not valid JSON: {exc}") from None
        lines: list[Any] = items
    else:
        lines = text.splitlines()
    for row, item in enumerate(lines, start=1):
        if isinstance(item, str):
            if not item.strip():
                continue
            try:
                item = json.loads(item)
            except json.JSONDecodeError as exc:
                yield row, Rejected(row, f"not valid JSON: {exc.msg}", {"line": _visible(item)})
                continue
        if not isinstance(item, dict):
            yield row, Rejected(row, "a JSON line must be an object with participant, group, time and text")
            continue
        names = _canonical(list(item))
        yield row, {names[k]: v for k, v in item.items()}


def _parquet_records(data: bytes) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise InvalidUpload(f"the file is not a readable Parquet file: {exc}") from None
    names = _canonical(table.column_names)
    missing = [c for c in REQUIRED if c not in names.values()]
    if missing:
        raise InvalidUpload(f"missing required column(s): {', '.join(missing)}")
    for row, item in enumerate(table.to_pylist(), start=1):
        yield row, {names[k]: v for k, v in item.items()}


def upload_records(data: bytes, filename: str) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
    """The rows of an upload as read, before any field is checked: (row number, fields by Pulse
    name) or a `Rejected` row that could not be read as a record. `InvalidUpload` when the file as a
    whole cannot be read."""
    name = filename.lower()
    if data[:4] == b"PAR1" or name.endswith(".parquet"):
        return _parquet_records(data)
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return _json_records(data)
    if name.endswith((".csv", ".tsv", ".txt")):
        return _csv_records(data)
    raise InvalidUpload(f"unsupported file type {filename!r}: upload CSV, JSON lines (.jsonl) or Parquet")


def checkin_id(participant: str, time: pd.Timestamp, text: str) -> str:
    """A stable id, so the same check-in ingested twice is recognised."""
    digest = hashlib.sha256(f"{participant}\x1f{time.isoformat()}\x1f{text}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:20]


def _parse_time(value: Any) -> pd.Timestamp | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            ts = pd.Timestamp(value, unit="s", tz="UTC")
        else:
            ts = pd.Timestamp(value)
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
        return None
    return None if pd.isna(ts) else ts


def _parse_times(values: list[Any]) -> list[pd.Timestamp | None]:
    """Parse many times at once: one vectorised ISO 8601 pass, then one by one for the rest."""
    strings = pd.Series([v if isinstance(v, str) else None for v in values], dtype="object")
    fast = pd.to_datetime(strings, utc=True, errors="coerce", format="ISO8601")
    return [f if isinstance(v, str) and not pd.isna(f) else _parse_time(v) for v, f in zip(values, fast, strict=True)]


def _field_problem(values: dict[str, str]) -> str | None:
    if any(_has_bad_bytes(v) for v in values.values()):
        return "text is not valid UTF-8 (the bad bytes are kept in the quarantine file as \\xNN)"
    if not values["participant"].strip():
        return "participant is empty"
    if not values["group"].strip():
        return "group is empty"
    if len(values["participant"]) > MAX_NAME_CHARS or len(values["group"]) > MAX_NAME_CHARS:
        return f"participant or group is longer than {MAX_NAME_CHARS} characters"
    if not values["text"].strip():
        return "text is empty"
    return None


def parse_upload(data: bytes, filename: str, *, now: datetime | None = None) -> ParsedUpload:
    """Read an upload into valid check-ins and rejected rows (each with its reason).

    Raises `InvalidUpload` only when the file as a whole cannot be read (wrong type, missing
    columns, empty); single bad rows are rejected and the rest go on.
    """
    latest = pd.Timestamp(now or datetime.now(UTC)) + FUTURE_TOLERANCE
    rejected: list[Rejected] = []
    candidates: list[tuple[int, dict[str, Any], dict[str, str]]] = []
    total = 0
    for row, rec in upload_records(data, filename):
        total += 1
        if isinstance(rec, Rejected):
            rejected.append(rec)
            continue
        values = {k: ("" if rec.get(k) is None else str(rec.get(k))) for k in ("participant", "group", "text")}
        problem = _field_problem(values)
        if problem is not None:
            rejected.append(Rejected(row, problem, {k: _visible(v) for k, v in rec.items()}))
            continue
        candidates.append((row, rec, values))

    good: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    times = _parse_times([rec.get("time") for _, rec, _ in candidates])
    for (row, rec, values), ts in zip(candidates, times, strict=True):
        reason = None
        if ts is None:
            shown = _visible(rec.get("time", ""))
            reason = f"time {shown!r} is not a date and time (use ISO 8601, e.g. 2026-11-23T09:30:00Z)"
        elif ts > latest:
            reason = f"time {ts.isoformat()} is in the future"
        else:
            participant = values["participant"].strip()
            cid = str(rec.get("id") or "").strip() or checkin_id(participant, ts, values["text"])
            if cid in seen:
                reason = f"duplicate id {cid!r} (same as row {seen[cid]})"
        if reason is not None:
            rejected.append(Rejected(row, reason, {k: _visible(v) for k, v in rec.items()}))
            continue
        seen[cid] = row
        extra = {k: _visible(v) for k, v in rec.items() if k not in (*REQUIRED, "id")}
        good.append(
            {
                "id": cid,
                "participant": participant,
                "group": values["group"].strip(),
                "time": ts,
                "text": values["text"],
                "extra": json.dumps(extra, ensure_ascii=False) if extra else "",
            }
        )
    rejected.sort(key=lambda r: r.row)
    frame = pd.DataFrame(good, columns=["id", "participant", "group", "time", "text", "extra"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True).astype("datetime64[us, UTC]")
    return ParsedUpload(frame, rejected, total)
