"""Reading uploads into validated check-ins: `services.checkins.parse_upload`."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.checkins.upload import ParsedUpload, parse_upload
from services.errors import InvalidUpload

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
HEADER = "participant,group,time,text\n"


def parse(data: bytes | str, filename: str = "upload.csv") -> ParsedUpload:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    parsed = parse_upload(raw, filename, now=NOW)
    check_accounting(parsed)
    return parsed


def check_accounting(parsed: ParsedUpload) -> None:
    """Nothing is dropped silently: every row is a check-in or a rejection with a row number and reason."""
    assert parsed.total_rows == len(parsed.checkins) + len(parsed.rejected)
    for rej in parsed.rejected:
        assert rej.row >= 1
        assert rej.reason.strip()
    assert list(parsed.checkins.columns) == ["id", "participant", "group", "time", "text", "extra"]
    assert str(parsed.checkins["time"].dtype) == "datetime64[us, UTC]"


def rows(parsed: ParsedUpload) -> list[dict[str, object]]:
    return parsed.checkins.to_dict("records")


def rejected_by_row(parsed: ParsedUpload) -> dict[int, str]:
    return {r.row: r.reason for r in parsed.rejected}


# --- formats -------------------------------------------------------------------------------------


def test_good_csv() -> None:
    parsed = parse(
        HEADER + "p1,team-a,2026-01-01T09:00:00Z,Feeling great today\np2,team-b,2026-01-02T10:30:00Z,bit tired\n"
    )
    assert parsed.total_rows == 2
    assert parsed.rejected == []
    got = rows(parsed)
    assert [r["participant"] for r in got] == ["p1", "p2"]
    assert [r["group"] for r in got] == ["team-a", "team-b"]
    assert [r["text"] for r in got] == ["Feeling great today", "bit tired"]
    assert got[0]["time"] == pd.Timestamp("2026-01-01T09:00:00Z")
    assert all(len(str(r["id"])) == 20 for r in got)
    assert got[0]["id"] != got[1]["id"]
    assert [r["extra"] for r in got] == ["", ""]


def test_json_lines() -> None:
    lines = [
        {"participant": "p1", "group": "g", "time": "2026-01-01T09:00:00Z", "text": "hello"},
        {"participant": "p2", "group": "g", "time": "2026-01-02T09:00:00Z", "text": "bye"},
    ]
    parsed = parse("\n".join(json.dumps(x) for x in lines) + "\n\n", "u.jsonl")
    assert parsed.total_rows == 2
    assert [r["text"] for r in rows(parsed)] == ["hello", "bye"]


def test_json_lines_with_a_broken_line() -> None:
    good = json.dumps({"participant": "p1", "group": "g", "time": "2026-01-01", "text": "ok"})
    parsed = parse(f"{good}\n{{not json\n[1, 2]\n", "u.jsonl")
    assert len(parsed.checkins) == 1
    reasons = rejected_by_row(parsed)
    assert set(reasons) == {2, 3}
    assert "not valid JSON" in reasons[2]
    assert "object" in reasons[3]


def test_json_array() -> None:
    items = [
        {"participant": "p1", "group": "g", "time": "2026-01-01T09:00:00Z", "text": "one"},
        {"participant": "p2", "group": "g", "time": "2026-01-01T10:00:00Z", "text": "two"},
        {"participant": "p3", "group": "g", "time": "2026-01-01T11:00:00Z", "text": "three"},
    ]
    parsed = parse(json.dumps(items), "u.json")
    assert parsed.total_rows == 3
    assert [r["participant"] for r in rows(parsed)] == ["p1", "p2", "p3"]


def test_parquet() -> None:
    frame = pd.DataFrame(
        {
            "participant": ["p1", "p2"],
            "group": ["g1", "g2"],
            "time": pd.to_datetime(["2026-01-01T09:00:00Z", "2026-01-02T09:00:00Z"]),
            "text": ["good", "bad"],
        }
    )
    buf = io.BytesIO()
    frame.to_parquet(buf, engine="pyarrow")
    parsed = parse(buf.getvalue(), "u.parquet")
    assert parsed.rejected == []
    got = rows(parsed)
    assert [r["text"] for r in got] == ["good", "bad"]
    assert got[1]["time"] == pd.Timestamp("2026-01-02T09:00:00Z")


def test_parquet_is_recognised_by_its_magic_bytes_whatever_the_name() -> None:
    table = pa.table({"participant": ["p"], "group": ["g"], "time": ["2026-01-01T09:00:00Z"], "text": ["x"]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    assert len(parse(buf.getvalue(), "export.csv").checkins) == 1


def test_parquet_missing_columns() -> None:
    buf = io.BytesIO()
    pq.write_table(pa.table({"participant": ["p"], "text": ["x"]}), buf)
    with pytest.raises(InvalidUpload, match=r"missing required column\(s\): group, time"):
        parse_upload(buf.getvalue(), "u.parquet", now=NOW)


def test_corrupt_parquet() -> None:
    with pytest.raises(InvalidUpload, match="not a readable Parquet file"):
        parse_upload(b"PAR1 this is not really parquet", "u.parquet", now=NOW)
    with pytest.raises(InvalidUpload, match="not a readable Parquet file"):
        parse_upload(b"plain text", "u.parquet", now=NOW)


def test_truncated_parquet() -> None:
    buf = io.BytesIO()
    pq.write_table(pa.table({"participant": ["p"], "group": ["g"], "time": ["2026-01-01"], "text": ["x"]}), buf)
    with pytest.raises(InvalidUpload, match="Parquet"):
        parse_upload(buf.getvalue()[:-20], "u.parquet", now=NOW)


@pytest.mark.parametrize(("delimiter", "filename"), [(";", "u.csv"), ("\t", "u.tsv"), ("\t", "u.csv"), ("|", "u.txt")])
def test_other_delimiters_are_detected(delimiter: str, filename: str) -> None:
    # The text holds commas: only the detected delimiter may split fields.
    text = delimiter.join(["participant", "group", "time", "text"]) + "\n"
    text += delimiter.join(["p1", "g1", "2026-01-01T09:00:00Z", "hi, there, all"]) + "\n"
    text += delimiter.join(["p2", "g1", "2026-01-01T10:00:00Z", "fine"]) + "\n"
    parsed = parse(text, filename)
    assert parsed.rejected == []
    assert [r["text"] for r in rows(parsed)] == ["hi, there, all", "fine"]


def test_space_delimited_file_names_missing_columns_and_hints_at_the_delimiter() -> None:
    with pytest.raises(InvalidUpload) as err:
        parse_upload(b"participant group time text\np1 g1 2026-01-01 hello\n", "u.csv", now=NOW)
    message = str(err.value)
    assert "missing required column(s): participant, group, time, text" in message
    assert "delimited" in message


def test_missing_columns_are_named() -> None:
    with pytest.raises(InvalidUpload) as err:
        parse_upload(b"participant,text,mood\np1,hi,3\n", "u.csv", now=NOW)
    message = str(err.value)
    assert "missing required column(s): group, time." in message
    assert "Found: participant, text, mood" in message
    assert "delimited" not in message  # the header has several columns: no delimiter hint


# --- CSV rows --------------------------------------------------------------------------------------


def test_ragged_rows_are_rejected_and_the_rest_kept() -> None:
    parsed = parse(
        HEADER
        + "p1,g1,2026-01-01,too,many,fields\n"
        + "p2,g1,2026-01-01\n"
        + "p3,g1,2026-01-01,just right\n"
        + "p4,g1,2026-01-02,also right\n"
    )
    assert [r["participant"] for r in rows(parsed)] == ["p3", "p4"]
    reasons = rejected_by_row(parsed)
    assert set(reasons) == {1, 2}
    assert "6 fields but the header has 4" in reasons[1]
    assert "3 fields but the header has 4" in reasons[2]
    too_many = next(r for r in parsed.rejected if r.row == 1)
    assert too_many.raw == {
        "field1": "p1",
        "field2": "g1",
        "field3": "2026-01-01",
        "field4": "too",
        "field5": "many",
        "field6": "fields",
    }


def test_blank_lines_are_not_rows() -> None:
    parsed = parse(HEADER + "p1,g1,2026-01-01,one\n\n\np2,g1,2026-01-01,two\n")
    assert parsed.total_rows == 2
    assert len(parsed.checkins) == 2


def test_quoted_text_spanning_lines_is_kept_with_its_newline() -> None:
    parsed = parse(HEADER + 'p1,g1,2026-01-01,"first line\nsecond, line"\np2,g1,2026-01-01,after\n')
    assert parsed.rejected == []
    assert [r["text"] for r in rows(parsed)] == ["first line\nsecond, line", "after"]


def test_crlf_line_endings() -> None:
    parsed = parse("participant,group,time,text\r\np1,g1,2026-01-01,hello\r\n")
    assert [r["text"] for r in rows(parsed)] == ["hello"]


def test_unterminated_quote_at_the_end() -> None:
    parsed = parse(HEADER + 'p1,g1,2026-01-01,fine\np2,g1,2026-01-01,"never closed\n')
    assert [r["participant"] for r in rows(parsed)] == ["p1"]
    assert len(parsed.rejected) == 1
    rej = parsed.rejected[0]
    assert rej.row == 2
    assert "unterminated quote" in rej.reason
    assert "line 3" in rej.reason


def test_non_utf8_bytes_reject_only_their_row() -> None:
    data = HEADER.encode() + b"p1,g1,2026-01-01,caf\xe9 au lait\np2,g1,2026-01-01,fine\np3,g1,2026-01-02,good\n"
    parsed = parse(data)
    assert [r["participant"] for r in rows(parsed)] == ["p2", "p3"]
    assert len(parsed.rejected) == 1
    rej = parsed.rejected[0]
    assert rej.row == 1
    assert "UTF-8" in rej.reason
    assert rej.raw["text"] == "caf\\xe9 au lait"  # the bad byte is visible, not lost
    json.dumps(rej.raw)  # and the raw row can be written to the quarantine file


def test_utf8_bom_is_ignored() -> None:
    parsed = parse(b"\xef\xbb\xbf" + (HEADER + "p1,g1,2026-01-01,caf\u00e9\n").encode())
    assert parsed.rejected == []
    assert rows(parsed)[0]["participant"] == "p1"
    assert rows(parsed)[0]["text"] == "caf\u00e9"


def test_empty_and_whitespace_only_text_are_rejected() -> None:
    parsed = parse(HEADER + 'p1,g1,2026-01-01,\np2,g1,2026-01-01,"   "\np3,g1,2026-01-01,"\t\n"\np4,g1,2026-01-01,ok\n')
    assert [r["participant"] for r in rows(parsed)] == ["p4"]
    assert rejected_by_row(parsed) == {1: "text is empty", 2: "text is empty", 3: "text is empty"}


def test_empty_participant_or_group_is_rejected() -> None:
    parsed = parse(HEADER + ",g1,2026-01-01,hi\np2, ,2026-01-01,hi\n")
    assert rejected_by_row(parsed) == {1: "participant is empty", 2: "group is empty"}


def test_surrounding_spaces_of_names_are_trimmed_but_text_is_kept_as_is() -> None:
    parsed = parse(HEADER + " p1 , g1 ,2026-01-01,  spaced text \n")
    row = rows(parsed)[0]
    assert (row["participant"], row["group"], row["text"]) == ("p1", "g1", "  spaced text ")


def test_a_one_megabyte_text_in_csv_is_accepted_whole() -> None:
    big = "lovely day " * 100_000  # 1.1 MB
    parsed = parse(HEADER + f'p1,g1,2026-01-01,"{big}"\np2,g1,2026-01-01,short\n')
    assert parsed.rejected == []
    assert rows(parsed)[0]["text"] == big


def test_a_one_megabyte_text_in_json_lines_is_accepted_whole() -> None:
    big = "lovely day " * 100_000
    line = json.dumps({"participant": "p1", "group": "g1", "time": "2026-01-01", "text": big})
    parsed = parse(line + "\n", "u.jsonl")
    assert parsed.rejected == []
    assert rows(parsed)[0]["text"] == big


# --- time ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["yesterday", "2026-13-45", "", "   ", "not a date", "32/01/2026"])
def test_unparseable_timestamps_are_rejected(value: str) -> None:
    parsed = parse(HEADER + f'p1,g1,"{value}",hello\np2,g1,2026-01-01,ok\n')
    assert len(parsed.checkins) == 1
    reasons = rejected_by_row(parsed)
    assert list(reasons) == [1]
    assert "is not a date and time" in reasons[1]
    assert "ISO 8601" in reasons[1]


def test_timestamp_in_the_future_is_rejected_but_a_few_minutes_ahead_is_accepted() -> None:
    far = (NOW + timedelta(hours=2)).isoformat()
    beyond = (NOW + timedelta(minutes=11)).isoformat()
    near = (NOW + timedelta(minutes=5)).isoformat()
    parsed = parse(HEADER + f"p1,g1,{far},later\np2,g1,{beyond},soon\np3,g1,{near},almost now\n")
    assert [r["participant"] for r in rows(parsed)] == ["p3"]
    reasons = rejected_by_row(parsed)
    assert set(reasons) == {1, 2}
    assert all("in the future" in r for r in reasons.values())


def test_future_is_judged_against_the_current_clock_by_default() -> None:
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    past = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    parsed = parse_upload(f"{HEADER}p1,g1,{future},x\np2,g1,{past},y\n".encode(), "u.csv")
    assert list(parsed.checkins["participant"]) == ["p2"]
    assert "future" in parsed.rejected[0].reason


def test_naive_timestamps_are_taken_as_utc() -> None:
    parsed = parse(HEADER + "p1,g1,2026-01-01 09:30:00,x\np2,g1,2026-01-01,y\n")
    times = list(parsed.checkins["time"])
    assert times == [pd.Timestamp("2026-01-01T09:30:00Z"), pd.Timestamp("2026-01-01T00:00:00Z")]


def test_offset_timestamps_are_converted_to_utc() -> None:
    parsed = parse(HEADER + "p1,g1,2026-01-01T10:00:00+02:00,x\np2,g1,2026-01-01T22:00:00-05:00,y\n")
    times = list(parsed.checkins["time"])
    assert times == [pd.Timestamp("2026-01-01T08:00:00Z"), pd.Timestamp("2026-01-02T03:00:00Z")]
    assert all(str(t.tz) == "UTC" for t in times)


def test_epoch_numbers_in_json_are_seconds_since_1970_utc() -> None:
    lines = [
        {"participant": "p1", "group": "g", "time": 1767225600, "text": "int"},
        {"participant": "p2", "group": "g", "time": 1767225600.5, "text": "float"},
    ]
    parsed = parse("\n".join(json.dumps(x) for x in lines), "u.jsonl")
    assert list(parsed.checkins["time"]) == [
        pd.Timestamp("2026-01-01T00:00:00Z"),
        pd.Timestamp("2026-01-01T00:00:00.5Z"),
    ]


# --- ids, extras, aliases --------------------------------------------------------------------------


def test_duplicate_ids_in_a_file_reject_the_second_naming_the_first() -> None:
    parsed = parse(
        "participant,group,time,text,id\n"
        "p1,g1,2026-01-01,first,X1\n"
        "p2,g1,2026-01-02,other,X2\n"
        "p3,g1,2026-01-03,second,X1\n"
    )
    assert [r["id"] for r in rows(parsed)] == ["X1", "X2"]
    reasons = rejected_by_row(parsed)
    assert list(reasons) == [3]
    assert "duplicate id 'X1'" in reasons[3]
    assert "row 1" in reasons[3]


def test_identical_rows_without_ids_are_duplicates() -> None:
    parsed = parse(HEADER + "p1,g1,2026-01-01T00:00:00Z,same\np1,g1,2026-01-01,same\np1,g1,2026-01-01,other\n")
    assert len(parsed.checkins) == 2
    assert "(same as row 1)" in rejected_by_row(parsed)[2]


def test_derived_ids_are_stable_across_parses_and_files() -> None:
    first = parse(HEADER + "p1,g1,2026-01-01T09:00:00Z,hello there\np2,g1,2026-01-01T09:00:00Z,hello there\n")
    # Same check-in in another file, format and time notation.
    second = parse(
        json.dumps({"text": "hello there", "time": "2026-01-01T10:00:00+01:00", "participant": "p1", "group": "g9"}),
        "other.jsonl",
    )
    ids = list(first.checkins["id"])
    assert ids[0] == second.checkins["id"].iloc[0]
    assert ids[0] != ids[1]  # another participant, another id
    assert list(parse(HEADER + "p1,g1,2026-01-01T09:00:00Z,hello there!\n").checkins["id"]) != ids[:1]


def test_extra_columns_are_kept_as_json() -> None:
    parsed = parse("participant,group,time,text,mood,Site Name\np1,g1,2026-01-01,ok,4,Caf\u00e9 Nord\n")
    assert json.loads(rows(parsed)[0]["extra"]) == {"mood": "4", "Site Name": "Caf\u00e9 Nord"}


def test_column_aliases_are_recognised() -> None:
    parsed = parse("Participant_ID,Team,Timestamp,Message\np1,g1,2026-01-01T09:00:00Z,hello\n")
    assert parsed.rejected == []
    row = rows(parsed)[0]
    assert (row["participant"], row["group"], row["text"]) == ("p1", "g1", "hello")
    assert row["time"] == pd.Timestamp("2026-01-01T09:00:00Z")
    assert row["extra"] == ""


def test_column_aliases_in_json() -> None:
    line = {"participant_id": "p1", "cohort": "g1", "timestamp": "2026-01-01", "message": "hi", "checkin_id": "C7"}
    row = rows(parse(json.dumps(line), "u.jsonl"))[0]
    assert (row["id"], row["participant"], row["group"], row["text"]) == ("C7", "p1", "g1", "hi")


def test_an_alias_after_its_canonical_column_stays_an_extra() -> None:
    parsed = parse("participant,group,time,date,text\np1,g1,2026-01-01T09:30:00Z,2025-05-05,hello\n")
    row = rows(parsed)[0]
    assert row["time"] == pd.Timestamp("2026-01-01T09:30:00Z")
    assert json.loads(row["extra"]) == {"date": "2025-05-05"}


def test_an_alias_before_its_canonical_column_is_not_lost() -> None:
    parsed = parse("participant,group,date,time,text\np1,g1,2025-05-05,2026-01-01T09:30:00Z,hello\n")
    row = rows(parsed)[0]
    assert row["time"] == pd.Timestamp("2026-01-01T09:30:00Z")
    assert json.loads(row["extra"] or "{}") == {"date": "2025-05-05"}


# --- whole-file failures ---------------------------------------------------------------------------


def test_empty_csv_file() -> None:
    with pytest.raises(InvalidUpload, match="empty"):
        parse_upload(b"", "u.csv", now=NOW)


@pytest.mark.parametrize("filename", ["u.jsonl", "u.json"])
def test_empty_json_file(filename: str) -> None:
    with pytest.raises(InvalidUpload, match="empty"):
        parse_upload(b"", filename, now=NOW)


def test_header_only_csv_has_no_rows() -> None:
    parsed = parse(HEADER)
    assert parsed.total_rows == 0
    assert parsed.checkins.empty


@pytest.mark.parametrize("filename", ["u.xlsx", "u.pdf", "checkins", "u.csv.gz"])
def test_unsupported_extension(filename: str) -> None:
    with pytest.raises(InvalidUpload, match="unsupported file type"):
        parse_upload(HEADER.encode() + b"p1,g1,2026-01-01,x\n", filename, now=NOW)


def test_invalid_json_array() -> None:
    with pytest.raises(InvalidUpload, match="not valid JSON"):
        parse_upload(b'[{"participant": "p1",', "u.json", now=NOW)


def test_every_rejection_has_a_row_number_and_a_reason() -> None:
    data = (
        HEADER.encode()
        + b"p1,g1,2026-01-01,fine\n"
        + b"p2,g1,never,bad time\n"
        + b"p3,g1,2026-01-01,bad \xff byte\n"
        + b"p4,g1\n"
        + b"p5,g1,2026-01-01,\n"
        + b"p1,g1,2026-01-01,fine\n"
        + b"p6,g1,2099-01-01,future\n"
    )
    parsed = parse(data)
    assert parsed.total_rows == 7
    assert len(parsed.checkins) == 1
    assert sorted(r.row for r in parsed.rejected) == [2, 3, 4, 5, 6, 7]
