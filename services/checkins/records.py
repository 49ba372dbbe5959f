"""Check-ins: an upload's bytes as records, before any field is checked. The encoding (UTF-8 with
or without a byte order mark, UTF-16/32 with one), the format (CSV with its delimiter detected, JSON
lines or a JSON array, Parquet) and the column names (aliases, repeats) are settled here; a record
that cannot be read is a `Rejected` row with its reason, and a file that cannot be read at all is
`InvalidUpload`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

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
# csv's default field limit (128 KiB) would reject a long message outright; texts are cut for
# scoring anyway, and the upload size limit bounds the whole file.
csv.field_size_limit(64 * 1024 * 1024)


@dataclass(frozen=True)
class Rejected:
    """A row that did not become a check-in, and why."""

    row: int
    reason: str
    raw: dict[str, str] = field(default_factory=dict)


def visible(value: Any) -> str:
    """A field as text, with undecodable bytes shown as \\xNN instead of lost."""
    text = "" if value is None else str(value)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def quoted(value: Any, limit: int) -> str:
    """A field quoted for a message: visible (see `visible`) and cut to `limit` characters."""
    text = visible(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


_ESCAPED_BYTES = re.compile("[\udc80-\udcff]")  # where surrogateescape put undecodable bytes


def has_bad_bytes(value: str) -> bool:
    return _ESCAPED_BYTES.search(value) is not None


def _column_key(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def _repeated(columns: list[str]) -> list[str]:
    """Column names given more than once (ignoring case and spaces): which of them holds the value
    cannot be told, so the file or object naming them is refused rather than one silently dropped."""
    seen: dict[str, str] = {}
    repeated: list[str] = []
    for col in columns:
        key = _column_key(col)
        if key in seen and seen[key] not in repeated:
            repeated.append(seen[key])
        seen.setdefault(key, col)
    return repeated


def _canonical(columns: list[str]) -> dict[str, str]:
    """Map each source column to its Pulse name, or keep it as an extra field. A column named
    exactly like a Pulse field wins over an alias ("time" over "date"), and an extra column never
    takes a Pulse field's name, so no value is overwritten."""
    keys = {col: _column_key(col) for col in columns}
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


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16's: FF FE starts both
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
SAVE_AS_UTF8 = "Save it as UTF-8 (in Excel: CSV UTF-8) and upload it again."


def _decode(data: bytes) -> str:
    """The text of a CSV or JSON upload: UTF-8 with or without a byte order mark, or UTF-16/32 with
    one. A file in another encoding is refused with what is wrong; a few bad bytes in an otherwise
    UTF-8 file only reject the rows holding them."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise InvalidUpload(
                    f"the file starts with a {encoding.upper()} byte order mark but byte {exc.start} is not "
                    f"{encoding.upper()}. {SAVE_AS_UTF8}"
                ) from None
    # surrogateescape keeps undecodable bytes so the rows holding them can be rejected and
    # quarantined with the bytes visible, instead of failing the whole file.
    text = data.decode("utf-8-sig", errors="surrogateescape")
    lines = [line for line in text.split("\n") if line.strip()]
    if lines and "\x00" in lines[0]:
        raise InvalidUpload(
            "the file has NUL bytes in its first line: it looks like UTF-16 or UTF-32 without a byte order "
            f"mark. {SAVE_AS_UTF8}"
        )
    bad = [i for i, line in enumerate(lines) if has_bad_bytes(line)]
    if bad and (bad[0] == 0 or len(bad) * 2 > len(lines)):
        first = _ESCAPED_BYTES.search(lines[bad[0]])
        byte = f"\\x{ord(first.group()) - 0xDC00:02X}" if first else "?"
        raise InvalidUpload(
            f"the file is not UTF-8: {len(bad)} of {len(lines)} lines have bytes UTF-8 cannot read (the first, "
            f"{byte}, on line {bad[0] + 1}); it may be Windows-1252 or Latin-1. {SAVE_AS_UTF8}"
        )
    return text


def _csv_records(data: bytes) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
    text = _decode(data)
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t|", key=first_line.count)
    if first_line.count(delimiter) == 0:
        delimiter = ","
    lines = io.StringIO(text, newline="").readlines()  # physical lines, ends kept, as csv reads them

    def reader_from(line: int) -> Any:
        return csv.reader(iter(lines[line:]), delimiter=delimiter, strict=True)

    reader = reader_from(0)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidUpload("the file is empty") from None
    except csv.Error as exc:
        raise InvalidUpload(f"the header line cannot be read as CSV: {exc}") from None
    repeated = _repeated(header)
    if repeated:
        raise InvalidUpload(
            f"the header names column(s) {', '.join(map(repr, map(visible, repeated)))} more than once; "
            "give each column its own name, so no value is dropped"
        )
    names = _canonical(header)
    missing = [c for c in REQUIRED if c not in names.values()]
    if missing:
        hint = ""
        if len(header) == 1:
            hint = " The header has a single column: is the file delimited by something other than , ; tab or |?"
        raise InvalidUpload(
            f"missing required column(s): {', '.join(missing)}. Found: {', '.join(map(visible, header))}.{hint}"
        )
    row = 0
    offset = 0  # physical lines before the current reader's first
    while True:
        row += 1
        start = offset + reader.line_num  # physical lines read before this record
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The record is rejected and reading starts again on the line after its first, so a
            # quote left open (which runs to the end of the file) swallows no row.
            if "end of data" in str(exc).lower():
                reason = f"unterminated quote: a quoted field opened on line {start + 1} is never closed"
            else:
                reason = f"unreadable CSV on line {start + 1}: {exc}"
            yield row, Rejected(row, reason, {"line": visible(lines[start].rstrip("\r\n"))})
            offset = start + 1
            reader = reader_from(offset)
            continue
        if not fields:
            row -= 1  # blank lines are not records
            continue
        if len(fields) != len(header):
            raw = {f"field{i + 1}": visible(v) for i, v in enumerate(fields)}
            reason = f"row has {len(fields)} fields but the header has {len(header)} (check delimiter and quoting)"
            if offset + reader.line_num - start > 1:
                # A quoted field ran over several lines into a row of the wrong shape: an unbalanced
                # quote, most likely. Only its first line is rejected; the lines after it are rows.
                reason = (
                    f"a quoted field opened on line {start + 1} runs over {offset + reader.line_num - start} lines "
                    f"into a row of {len(fields)} fields (the header has {len(header)}): is a quote unbalanced?"
                )
                raw = {"line": visible(lines[start].rstrip("\r\n"))}
                offset = start + 1
                reader = reader_from(offset)
            yield row, Rejected(row, reason, raw)
            continue
        yield row, {names[h]: v for h, v in zip(header, fields, strict=True)}


class _RepeatedKeys(dict[str, Any]):
    """A JSON object that named a key more than once (json.loads would keep the last silently)."""

    repeated: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    repeated = _repeated([k for k, _ in pairs])
    if not repeated:
        return dict(pairs)
    obj = _RepeatedKeys(pairs)
    obj.repeated = repeated
    return obj


def _loads(text: str) -> Any:
    """json.loads, with a depth Python cannot read and repeated keys as ValueError."""
    try:
        return json.loads(text, object_pairs_hook=_object)
    except RecursionError:
        raise ValueError("nested deeper than Pulse reads") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg}") from None


def _json_records(data: bytes) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
    text = _decode(data).strip()
    if not text:
        raise InvalidUpload("the file is empty")
    if text.startswith("["):  # a JSON array of objects is accepted too
        try:
            items = _loads(text)
        except ValueError as exc:
            raise InvalidUpload(f"the file is a JSON array that cannot be read: {exc}") from None
        lines: list[Any] = items if isinstance(items, list) else [items]
    else:
        # Only "\n" ends a JSON line: str.splitlines() would also split at U+2028 and other
        # characters JSON strings may hold.
        lines = text.split("\n")
    for row, item in enumerate(lines, start=1):
        if isinstance(item, str):
            if not item.strip():
                continue
            try:
                item = _loads(item)
            except ValueError as exc:
                yield row, Rejected(row, str(exc), {"line": visible(item[:2000])})
                continue
        if not isinstance(item, dict):
            yield row, Rejected(row, "a JSON line must be an object with participant, group, time and text")
            continue
        if isinstance(item, _RepeatedKeys):
            reason = f"the object names {', '.join(map(repr, item.repeated))} more than once"
            yield row, Rejected(row, reason, {k: visible(v) for k, v in item.items()})
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
    repeated = _repeated(table.column_names)
    if repeated:
        raise InvalidUpload(f"the file names column(s) {', '.join(map(repr, repeated))} more than once")
    names = _canonical(table.column_names)
    missing = [c for c in REQUIRED if c not in names.values()]
    if missing:
        raise InvalidUpload(f"missing required column(s): {', '.join(missing)}")
    for row, item in enumerate(table.to_pylist(), start=1):
        yield row, {names[k]: v for k, v in item.items()}


CSV_SUFFIXES = (".csv", ".tsv", ".txt")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
SUFFIXES = (*CSV_SUFFIXES, *JSON_SUFFIXES, ".parquet")  # every file name an upload (or an inbox) may have


def upload_records(data: bytes, filename: str) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
    """The rows of an upload as read, before any field is checked: (row number, fields by Pulse
    name) or a `Rejected` row that could not be read as a record. `InvalidUpload` when the file as a
    whole cannot be read."""
    name = filename.lower()
    if data[:4] == b"PAR1" or name.endswith(".parquet"):
        return _parquet_records(data)
    if name.endswith(JSON_SUFFIXES):
        return _json_records(data)
    if name.endswith(CSV_SUFFIXES):
        return _csv_records(data)
    raise InvalidUpload(f"unsupported file type {filename!r}: upload CSV, JSON lines (.jsonl) or Parquet")
