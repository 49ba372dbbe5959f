"""When a check-in was made: the rules an upload's `time` field is read by.

A time names its year in four digits (so "now", "today" or "Monday" are refused: they would make the
same row a new check-in each time it is read), falls between `EARLIEST` and a few minutes from now,
and is UTC when it names no zone. A date written with slashes or dots whose first two numbers could
each be the day (03/04/2026) is refused unless the upload says which comes first.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd

from services.checkins.records import quoted

EARLIEST = pd.Timestamp("2000-01-01", tz="UTC")
DAY_FIRST = "day-first"
MONTH_FIRST = "month-first"
# What a user may say about their dates: nothing (ISO 8601 and other unambiguous forms), which of
# day or month comes first in 03/04/2026-style dates, or a strftime pattern such as %d.%m.%Y %H:%M.
TIME_FORMATS = (DAY_FIRST, MONTH_FIRST)
EXAMPLE = "2026-11-23T09:30:00Z"

_YEAR = re.compile(r"(?<!\d)\d{4}")  # a run of digits that starts with a year: 2026-…, 20261123T…
_EPOCH = re.compile(r"\s*\d{9,13}(\.\d+)?\s*")  # seconds (or, refused, milliseconds) since 1970
_NUMERIC_DATE = re.compile(r"\s*(\d{1,2})[/.-](\d{1,2})[/.-]\d{4}(?!\d)")
_RELATIVE = re.compile(r"\b(now|today|tonight|tomorrow|yesterday|ago|last|next)\b", re.IGNORECASE)
_MILLISECONDS = 1e11  # seconds since 1970 pass this in the year 5138; milliseconds did in 1973


@dataclass(frozen=True)
class TimeRule:
    """How the times of one upload are read (`time_format`: None, `DAY_FIRST`, `MONTH_FIRST` or a
    strftime pattern) and the latest time accepted."""

    latest: pd.Timestamp
    time_format: str | None = None

    def parse(self, values: list[Any]) -> list[pd.Timestamp | str]:
        """Each value as a UTC time, or the reason it is not one. ISO 8601 strings are read in one
        vectorised pass; the others one by one."""
        # ISO 8601 is read as such whatever the upload says of day and month order.
        patterned = self.time_format is not None and self.time_format not in TIME_FORMATS
        iso = [isinstance(v, str) and not patterned and _YEAR.search(v) is not None for v in values]
        strings = pd.Series([v if ok else None for v, ok in zip(values, iso, strict=True)], dtype="object")
        fast = pd.to_datetime(strings, utc=True, errors="coerce", format="ISO8601")
        out: list[pd.Timestamp | str] = []
        for value, ok, ts in zip(values, iso, fast, strict=True):
            if ok and not pd.isna(ts) and not _RELATIVE.search(value):
                out.append(self._bounded(ts, value))
            else:
                out.append(self._one(value))
        return out

    def _one(self, value: Any) -> pd.Timestamp | str:
        if value is None or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
            return _not_a_time(value)
        if isinstance(value, int | float) or (isinstance(value, str) and _EPOCH.fullmatch(value)):
            return self._epoch(float(value), value)
        if not isinstance(value, str):
            try:
                ts = pd.Timestamp(value)  # a datetime from Parquet or JSON-decoded value
            except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
                return _not_a_time(value)
            return self._bounded(ts, value)
        if self.time_format is not None and self.time_format not in TIME_FORMATS:
            return self._formatted(value)
        if _RELATIVE.search(value) or not _YEAR.search(value):
            return (
                f"time {_shown(value)} is not a date and time with a four-digit year; words like 'now' or "
                f"'today' are not accepted: write when the check-in was made (use ISO 8601, e.g. {EXAMPLE})"
            )
        numeric = _NUMERIC_DATE.match(value)
        day_first = self.time_format == DAY_FIRST
        if numeric is not None:
            first, second = int(numeric.group(1)), int(numeric.group(2))
            if self.time_format is None:
                if first <= 12 and second <= 12 and first != second:
                    return (
                        f"time {_shown(value)} is ambiguous: the day could be {first} or {second}. Write dates "
                        "as ISO 8601 (YYYY-MM-DD), or say whether the day or the month comes first"
                    )
                day_first = first > 12
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pandas warns when it guesses the order; we chose it
                ts = pd.to_datetime(value, dayfirst=day_first)
        except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
            return _not_a_time(value)
        return self._bounded(ts, value)

    def _formatted(self, value: str) -> pd.Timestamp | str:
        try:
            ts = pd.to_datetime(value.strip(), format=self.time_format)
        except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
            return f"time {_shown(value)} does not match the format {self.time_format}"
        return self._bounded(ts, value)

    def _epoch(self, seconds: float, value: Any) -> pd.Timestamp | str:
        if seconds != seconds or seconds in (float("inf"), float("-inf")):
            return _not_a_time(value)
        if abs(seconds) >= _MILLISECONDS:
            return f"time {_shown(value)} looks like milliseconds since 1970; numbers are read as seconds"
        return self._bounded(pd.Timestamp(seconds, unit="s", tz="UTC"), value)

    def _bounded(self, ts: pd.Timestamp, value: Any) -> pd.Timestamp | str:
        if pd.isna(ts):
            return _not_a_time(value)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        if ts < EARLIEST:
            return f"time {ts.isoformat()} is before {EARLIEST.date().isoformat()}: is the year or the unit wrong?"
        if ts > self.latest:
            return f"time {ts.isoformat()} is in the future"
        return ts.as_unit("us")


def validate_time_format(time_format: str | None) -> str | None:
    """`time_format` if Pulse can read by it; `ValueError` saying what is accepted otherwise."""
    if time_format is None or time_format in TIME_FORMATS:
        return time_format
    if "%" not in time_format or not any(c in time_format for c in "YyGC"):
        raise ValueError(
            f"time format {time_format!r} is neither {DAY_FIRST}, {MONTH_FIRST} nor a strftime pattern "
            "naming the year (e.g. %d/%m/%Y %H:%M)"
        )
    return time_format


def _not_a_time(value: Any) -> str:
    return f"time {_shown('' if value is None else value)} is not a date and time (use ISO 8601, e.g. {EXAMPLE})"


def _shown(value: Any) -> str:
    return quoted(value, 60)
