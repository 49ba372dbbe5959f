"""Check-ins: reading uploads (CSV, JSON lines, Parquet) into validated rows.

Every row either becomes a check-in or is rejected with a reason; nothing is dropped silently. The
bytes become records in `services.checkins.records`, times are read by `services.checkins.times`,
and the fields and ids are checked here.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from services.checkins.records import REQUIRED, Rejected, has_bad_bytes, quoted, upload_records, visible
from services.checkins.times import TimeRule

FUTURE_TOLERANCE = timedelta(minutes=10)
MAX_NAME_CHARS = 200
MAX_ID_CHARS = 128
# A given id becomes a key segment of the review queue and its labels: plain characters only.
_ID = re.compile(r"[A-Za-z0-9._:@+=~-]+")


@dataclass
class ParsedUpload:
    """Valid check-ins (a DataFrame with id, participant, group, time, text, extra) and rejects."""

    checkins: pd.DataFrame
    rejected: list[Rejected]
    total_rows: int


def checkin_id(participant: str, time: pd.Timestamp, text: str) -> str:
    """A stable id, so the same check-in ingested twice is recognised."""
    digest = hashlib.sha256(f"{participant}\x1f{time.isoformat()}\x1f{text}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:20]


def _id_problem(value: Any) -> str | None:
    """Why a given id cannot be used, or None."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return f"id must be text or a number, not {type(value).__name__}"
    text = str(value).strip()
    shown = quoted(text, 40)
    if len(text) > MAX_ID_CHARS:
        return f"id {shown} is {len(text):,} characters long; at most {MAX_ID_CHARS}"
    if not _ID.fullmatch(text) or not text.strip("."):
        return (
            f"id {shown} has characters an id cannot have: letters, digits and . _ : @ + = ~ - only (no spaces, "
            "slashes or control characters). Fix it, or leave it empty and Pulse derives the id from participant, "
            "time and text"
        )
    return None


def _given_id(rec: dict[str, Any]) -> Any:
    """The id a row gives, or None when it gives none (no id column, or an empty or blank id)."""
    value = rec.get("id")
    return None if value is None or not str(value).strip() else value


def _text_value(value: Any) -> str | None:
    """A field that must be text: strings and numbers as text; None for objects and arrays."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return None
    return str(value)


def _extra_value(value: Any) -> Any:
    """An extra field as it is kept in the check-in's `extra` JSON: objects and arrays as JSON,
    anything else as text."""
    if isinstance(value, dict):
        return {str(k): _extra_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_extra_value(v) for v in value]
    if value is None or isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return visible(value)  # NaN and infinities too: strict JSON has no word for them


def _field_problem(values: dict[str, str]) -> str | None:
    if any(has_bad_bytes(v) for v in values.values()):
        return "text is not valid UTF-8 (the bad bytes are kept in the quarantine file as \\xNN)"
    if any("\x00" in v for v in values.values()):
        return "a field holds NUL characters"
    if not values["participant"].strip():
        return "participant is empty"
    if not values["group"].strip():
        return "group is empty"
    if len(values["participant"]) > MAX_NAME_CHARS or len(values["group"]) > MAX_NAME_CHARS:
        return f"participant or group is longer than {MAX_NAME_CHARS} characters"
    if not values["text"].strip():
        return "text is empty"
    return None


def _raw(rec: dict[str, Any]) -> dict[str, str]:
    return {k: visible(json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v) for k, v in rec.items()}


def parse_upload(
    data: bytes, filename: str, *, now: datetime | None = None, time_format: str | None = None
) -> ParsedUpload:
    """Read an upload into valid check-ins and rejected rows (each with its reason).

    Raises `InvalidUpload` only when the file as a whole cannot be read (wrong type or encoding,
    missing or repeated columns, empty); single bad rows are rejected and the rest go on. Times are
    read by `services.checkins.times` (`time_format`: how dates like 03/04/2026 are meant).
    """
    rule = TimeRule(pd.Timestamp(now or datetime.now(UTC)) + FUTURE_TOLERANCE, time_format)
    rejected: list[Rejected] = []
    candidates: list[tuple[int, dict[str, Any], dict[str, str]]] = []
    total = 0
    for row, rec in upload_records(data, filename):
        total += 1
        if isinstance(rec, Rejected):
            rejected.append(rec)
            continue
        fields = {k: _text_value(rec.get(k)) for k in ("participant", "group", "text")}
        not_text = [k for k, v in fields.items() if v is None]
        problem = f"{not_text[0]} is a JSON object or array; it must be text" if not_text else None
        values = {k: v or "" for k, v in fields.items()}
        problem = problem or _field_problem(values)
        if problem is None and _given_id(rec) is not None:
            problem = _id_problem(_given_id(rec))
        if problem is not None:
            rejected.append(Rejected(row, problem, _raw(rec)))
            continue
        candidates.append((row, rec, values))

    good: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    times = rule.parse([rec.get("time") for _, rec, _ in candidates])
    for (row, rec, values), ts in zip(candidates, times, strict=True):
        if isinstance(ts, str):
            rejected.append(Rejected(row, ts, _raw(rec)))
            continue
        participant = values["participant"].strip()
        given = _given_id(rec)
        cid = str(given).strip() if given is not None else checkin_id(participant, ts, values["text"])
        if cid in seen:
            rejected.append(Rejected(row, f"duplicate id {cid!r} (same as row {seen[cid]})", _raw(rec)))
            continue
        seen[cid] = row
        extra = {k: _extra_value(v) for k, v in rec.items() if k not in (*REQUIRED, "id")}
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
