"""Ingest: upload -> scored date partitions, review queue, quarantine; idempotent re-runs; the CLI."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from services.checkins.ingest import IngestReport, batch_id, ingest
from services.checkins.partitions import SCHEMA, partition_files, partition_key, read_scored
from services.checkins.upload import parse_upload
from services.errors import InvalidUpload, ModelUnavailable, StoreError
from services.lifecycle.deployment import current
from services.lifecycle.endpoint import LocalEndpoint
from services.model.fasttext import fasttext_line
from services.model.prediction import LABELS, PREFIX, prepare
from services.review.items import waiting_items
from services.store.local import LocalStore

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
HEADER = "participant,group,time,text\n"
REVIEW_KEYS = {
    "id",
    "line",
    "text",
    "predicted_label",
    "confidence",
    "probs",
    "model_version",
    "time",
    "participant",
    "group",
}

# Eight good rows over two days (one of them only stopwords, which the model cannot read) and two bad rows.
UPLOAD = (
    HEADER
    + "p1,team-a,2026-01-01T09:00:00Z,I love this team so much :)\n"
    + "p2,team-a,2026-01-01T10:00:00Z,terrible awful day\n"
    + "p3,team-a,2026-01-01T11:00:00Z,meeting moved to 3pm\n"
    + "p4,team-b,2026-01-01T12:00:00Z,the and of\n"
    + "p1,team-a,2026-01-02T09:00:00Z,ok\n"
    + "p2,team-a,2026-01-02T10:00:00Z,tired but fine\n"
    + "p3,team-b,2026-01-02T11:00:00Z,not sure how I feel\n"
    + "p4,team-b,2026-01-02T12:00:00Z,the project deadline is on Friday\n"
    + "p5,team-b,2026-01-02T13:00:00Z,\n"
    + "p6,team-b,yesterday,bad time\n"
).encode()


def snapshot(store: LocalStore) -> dict[str, bytes]:
    return {key: store.get(key) for key in store.list("")}


def split_threshold(endpoint: LocalEndpoint, texts: list[str]) -> float:
    """A threshold in the widest gap between the confidences of `texts`, so some fall below it and some
    above, far from float32 rounding."""
    _, preds = endpoint.score([prepare(t) for t in texts])
    confs = sorted({p.confidence for p in preds})
    assert len(confs) >= 2, "the sample needs check-ins of different confidence"
    gaps = [(b - a, (a + b) / 2) for a, b in itertools.pairwise(confs)]
    return max(gaps)[1]


def read_table(store: LocalStore, key: str):  # type: ignore[no-untyped-def]
    return pq.read_table(io.BytesIO(store.get(key)))


def review_items(store: LocalStore) -> dict[str, dict[str, object]]:
    return {str(raw["id"]): raw for raw, _ in waiting_items(store)}


# --- scoring and layout ----------------------------------------------------------------------------


def test_scored_rows_land_in_date_partitions_with_the_schema(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    report = ingest(ws, endpoint, UPLOAD, "checkins.csv", threshold=0.6, now=NOW)
    batch = batch_id(UPLOAD)
    assert report.batch == batch
    assert (report.total_rows, report.accepted, report.rejected, report.already_present) == (10, 8, 2, 0)
    assert report.total_rows == report.accepted + report.rejected
    assert report.dates == ["2026-01-01", "2026-01-02"]
    deployed = current(ws)
    assert deployed is not None
    assert report.model_version == deployed.version
    assert partition_files(ws) == [partition_key("2026-01-01", batch), partition_key("2026-01-02", batch)]

    expected = parse_upload(UPLOAD, "checkins.csv", now=NOW).checkins
    for date, n in (("2026-01-01", 4), ("2026-01-02", 4)):
        table = read_table(ws, f"checkins/date={date}/{batch}.parquet")
        assert table.schema.remove_metadata().equals(SCHEMA)
        frame = table.to_pandas()
        assert len(frame) == n
        assert set(frame["label"]) <= set(LABELS)
        assert frame["confidence"].between(0.0, 1.0).all()
        for col in ("p_negative", "p_neutral", "p_positive"):
            assert frame[col].between(0.0, 1.0).all()
        assert set(frame["model_version"]) == {deployed.version}
        assert set(frame["batch"]) == {batch}
        assert (frame["time"].dt.strftime("%Y-%m-%d") == date).all()
        assert set(frame["id"]) <= set(expected["id"])

    scored = read_scored(ws)
    assert sorted(scored["id"]) == sorted(expected["id"])
    assert sorted(scored["text"]) == sorted(expected["text"])
    # The label is the most likely class.
    probs = scored[["p_negative", "p_neutral", "p_positive"]].to_numpy()
    readable = scored["confidence"] > 0
    assert (probs.max(axis=1)[readable] == scored["confidence"][readable]).all()


def test_rows_below_the_threshold_and_only_those_go_to_review(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    texts = list(parse_upload(UPLOAD, "c.csv", now=NOW).checkins["text"])
    threshold = split_threshold(endpoint, texts)
    report = ingest(ws, endpoint, UPLOAD, "c.csv", threshold=threshold, now=NOW)
    scored = read_scored(ws).set_index("id")
    low = set(scored.index[scored["confidence"] < threshold])
    assert low, "some check-ins must fall below the threshold"
    assert len(low) < len(scored), "some check-ins must be at or above the threshold"
    assert "the and of" in set(scored.loc[list(low), "text"])  # nothing readable: confidence 0

    items = review_items(ws)
    assert set(items) == low
    assert report.unrecognized == len(low)
    for cid, item in items.items():
        row = scored.loc[cid]
        assert set(item) >= REVIEW_KEYS
        assert item["id"] == cid
        assert isinstance(item["line"], str)
        assert item["line"].startswith(f"{PREFIX}{row['label']}")
        assert item["line"] == fasttext_line(str(row["label"]), str(row["text"]))
        assert item["text"] == row["text"]
        assert item["predicted_label"] == row["label"]
        assert item["confidence"] == pytest.approx(float(row["confidence"]), abs=1e-6)
        assert item["confidence"] < threshold
        assert set(item["probs"]) == set(LABELS)  # type: ignore[arg-type]
        assert item["model_version"] == report.model_version
        assert datetime.fromisoformat(str(item["time"])) == row["time"]
        assert (item["participant"], item["group"]) == (row["participant"], row["group"])

    # The batch's review index lists exactly the queued items, with what the queue orders on.
    index = [json.loads(line) for line in ws.get(f"review/index/{report.batch}.jsonl").decode().splitlines()]
    assert {row["id"] for row in index} == low
    for row in index:
        item = items[row["id"]]
        probs = sorted(item["probs"].values(), reverse=True)  # type: ignore[union-attr]
        assert row["margin"] == pytest.approx(probs[0] - probs[1], abs=1e-3)
        assert row["confidence"] == pytest.approx(item["confidence"], abs=1e-3)
        assert row["group"] == item["group"]


def test_rejected_rows_are_quarantined_and_the_upload_is_kept(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    report = ingest(ws, endpoint, UPLOAD, "my checkins.csv", threshold=0.6, now=NOW)
    batch = batch_id(UPLOAD)
    assert report.quarantine_key == f"ingest/quarantine/{batch}.jsonl"
    lines = [json.loads(line) for line in ws.get(report.quarantine_key).decode().splitlines()]
    assert [q["row"] for q in lines] == [9, 10]
    assert lines[0]["reason"] == "text is empty"
    assert "not a date and time" in lines[1]["reason"]
    assert lines[1]["raw"]["text"] == "bad time"
    uploads = list(ws.list(f"ingest/uploads/{batch}/"))
    assert len(uploads) == 1
    assert ws.get(uploads[0]) == UPLOAD
    assert report.quarantine_key in report.summary()


def test_a_clean_file_writes_no_quarantine(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    data = (HEADER + "p1,g,2026-01-01T09:00:00Z,good day\n").encode()
    report = ingest(ws, endpoint, data, "c.csv", threshold=0.6, now=NOW)
    assert report.quarantine_key is None
    assert list(ws.list("ingest/quarantine/")) == []


# --- idempotence -----------------------------------------------------------------------------------


def test_reingesting_the_same_bytes_is_a_no_op(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    first = ingest(ws, endpoint, UPLOAD, "c.csv", threshold=0.6, now=NOW)
    before = snapshot(ws)
    again = ingest(ws, endpoint, UPLOAD, "renamed.csv", threshold=0.6, now=NOW)
    assert again.repeated
    assert not first.repeated
    assert (again.batch, again.accepted, again.rejected, again.unrecognized) == (
        first.batch,
        first.accepted,
        first.rejected,
        first.unrecognized,
    )
    assert snapshot(ws) == before


def test_an_overlapping_file_writes_only_new_checkins(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    lines = UPLOAD.decode().splitlines(keepends=True)
    first_file = "".join(lines[:5]).encode()  # header + rows 1-4 (2026-01-01)
    second_file = "".join([lines[0], *lines[3:9]]).encode()  # header + rows 3-8: two already ingested
    first = ingest(ws, endpoint, first_file, "a.csv", threshold=0.6, now=NOW)
    assert first.accepted == 4
    items_before = review_items(ws)
    second = ingest(ws, endpoint, second_file, "b.csv", threshold=0.6, now=NOW)
    assert (second.accepted, second.already_present, second.rejected) == (4, 2, 0)
    assert second.total_rows == 6

    new_ids = set(parse_upload(second_file, "b.csv", now=NOW).checkins["id"]) - set(
        parse_upload(first_file, "a.csv", now=NOW).checkins["id"]
    )
    written = set()
    for key in partition_files(ws):
        if second.batch in key:
            written |= set(read_table(ws, key).column("id").to_pylist())
    assert written == new_ids
    scored = read_scored(ws)
    assert scored["id"].is_unique
    assert len(scored) == 8
    # Review items of the first batch are untouched.
    items_after = review_items(ws)
    assert {k: items_after[k] for k in items_before} == items_before


def test_an_interrupted_run_ends_like_one_clean_run(
    bootstrap_store: LocalStore, tmp_path: Path, model_cache: Path
) -> None:
    clean = LocalStore(shutil.copytree(bootstrap_store.root, tmp_path / "clean"))
    crashed = LocalStore(shutil.copytree(bootstrap_store.root, tmp_path / "crashed"))
    texts = list(parse_upload(UPLOAD, "c.csv", now=NOW).checkins["text"])
    threshold = split_threshold(LocalEndpoint(clean, model_cache), texts)

    ingest(clean, LocalEndpoint(clean, model_cache), UPLOAD, "c.csv", threshold=threshold, now=NOW)

    report = ingest(crashed, LocalEndpoint(crashed, model_cache), UPLOAD, "c.csv", threshold=threshold, now=NOW)
    assert report.unrecognized > 0
    # Killed after the review items were written: no partitions, no manifest.
    for key in partition_files(crashed):
        crashed.delete(key)
    crashed.delete(f"ingest/batches/{report.batch}.json")
    queued = review_items(crashed)
    rerun = ingest(crashed, LocalEndpoint(crashed, model_cache), UPLOAD, "c.csv", threshold=threshold, now=NOW)
    assert not rerun.repeated
    assert (rerun.accepted, rerun.already_present, rerun.unrecognized) == (8, 0, report.unrecognized)

    a, b = snapshot(clean), snapshot(crashed)
    assert set(a) == set(b)
    for key in a:
        if key.endswith(".parquet"):
            assert read_table(clean, key).equals(read_table(crashed, key)), key
        elif key.startswith("review/batches/"):
            ja, jb = ([json.loads(line) for line in x[key].splitlines()] for x in (a, b))
            for doc in (*ja, *jb):
                doc.pop("queued_at")
            assert ja == jb, key
        elif key.startswith("ingest/batches/"):
            ja, jb = json.loads(a[key]), json.loads(b[key])
            ja.pop("finished_at"), jb.pop("finished_at")
            assert ja == jb
        else:
            assert a[key] == b[key], key
    # The review items queued by the killed run were kept, not written again.
    assert review_items(crashed) == queued


# --- failures --------------------------------------------------------------------------------------


def test_a_file_with_no_good_row_raises_and_still_quarantines(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    data = (HEADER + "p1,g,2026-01-01,\np2,g,not a time,hello\np3,,2026-01-01,hi\n").encode()
    with pytest.raises(InvalidUpload, match=r"no row of 'bad\.csv' could be accepted") as err:
        ingest(ws, endpoint, data, "bad.csv", threshold=0.6, now=NOW)
    batch = batch_id(data)
    key = f"ingest/quarantine/{batch}.jsonl"
    assert key in str(err.value)
    lines = [json.loads(line) for line in ws.get(key).decode().splitlines()]
    assert [q["row"] for q in lines] == [1, 2, 3]
    assert all(q["reason"] for q in lines)
    assert list(ws.list(f"ingest/uploads/{batch}/"))
    assert partition_files(ws) == []
    assert list(ws.list("ingest/batches/")) == []


def test_a_one_megabyte_text_is_scored_truncated_but_stored_whole(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    head = "so happy great lovely day " * 80  # 2080 chars: all the model sees
    tail = "terrible awful hate everything " * 33_000
    big = head + tail
    assert len(big) > 1_000_000
    data = (
        json.dumps({"participant": "p1", "group": "g", "time": "2026-01-01T09:00:00Z", "text": big}) + "\n"
    ).encode()
    report = ingest(ws, endpoint, data, "big.jsonl", threshold=0.6, max_chars=2000, now=NOW)
    assert report.accepted == 1
    row = read_scored(ws).iloc[0]
    assert row["text"] == big
    _, (head_pred, tail_pred) = endpoint.score([prepare(big, 2000), prepare(tail, 2000)])
    assert head_pred.label != tail_pred.label  # the truncation is observable
    assert row["label"] == head_pred.label
    assert float(row["confidence"]) == pytest.approx(head_pred.confidence, abs=1e-6)


def test_no_deployed_model_says_what_to_run(tmp_path: Path) -> None:
    empty = LocalStore(tmp_path / "empty")
    with pytest.raises(ModelUnavailable, match=r"python -m services\.cli bootstrap"):
        ingest(empty, LocalEndpoint(empty, tmp_path / "cache"), UPLOAD, "c.csv", threshold=0.6, now=NOW)
    assert partition_files(empty) == []
    assert list(empty.list("ingest/batches/")) == []


def test_a_corrupt_model_artifact_raises_model_unavailable(ws: LocalStore, tmp_path: Path) -> None:
    deployed = current(ws)
    assert deployed is not None
    ws.put(f"models/{deployed.version}/model.tar.gz", b"this is not a gzip file" * 100)
    with pytest.raises(ModelUnavailable, match=deployed.version):
        ingest(ws, LocalEndpoint(ws, tmp_path / "fresh-cache"), UPLOAD, "c.csv", threshold=0.6, now=NOW)
    assert partition_files(ws) == []
    assert list(ws.list("review/")) == []
    assert list(ws.list("ingest/batches/")) == []


def _writable(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make `folder` unwritable: by mode bits, or, when they do not bind (root), the immutable flag."""
    folder.chmod(0o555)
    immutable = False
    try:
        if _writable(folder) and shutil.which("chattr"):
            immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode == 0
        if _writable(folder):
            pytest.skip("cannot make a folder read-only for this user")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True, check=False)
        folder.chmod(0o755)


def test_an_unwritable_workspace_raises_a_store_error(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    endpoint.version()  # the model is readable; only writes must fail
    with read_only(ws.root), pytest.raises(StoreError) as err:
        ingest(ws, endpoint, UPLOAD, "c.csv", threshold=0.6, now=NOW)
    assert str(ws.root) in str(err.value)
    assert "Traceback" not in str(err.value)


def test_a_workspace_that_cannot_hold_the_folders_raises_a_store_error(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    (ws.root / "ingest").write_bytes(b"")  # a file where the `ingest/` folder must go
    with pytest.raises(StoreError):
        ingest(ws, endpoint, UPLOAD, "c.csv", threshold=0.6, now=NOW)
    assert partition_files(ws) == []


def test_report_round_trips_through_the_manifest(ws: LocalStore, endpoint: LocalEndpoint) -> None:
    report = ingest(ws, endpoint, UPLOAD, "c.csv", threshold=0.6, now=NOW)
    stored = IngestReport(**json.loads(ws.get(f"ingest/batches/{report.batch}.json")))
    assert stored == report
    assert "10 rows = 8 accepted + 2 rejected + 0 already in the workspace" in report.summary()


# --- command line ----------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_ingest_prints_the_summary(ws: LocalStore, tmp_path: Path) -> None:
    upload = tmp_path / "checkins.csv"
    data = UPLOAD.replace(b"2026-01-", b"2025-06-")  # surely in the past whatever today is
    upload.write_bytes(data)
    result = run_cli("ingest", str(upload), "--workspace", str(ws.root), "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout.strip()
    assert out.startswith(f"batch {batch_id(data)}: 10 rows = 8 accepted + 2 rejected + 0 already in the workspace")
    assert f"ingest/quarantine/{batch_id(data)}.jsonl" in out
    assert "Traceback" not in result.stderr
    assert len(partition_files(ws)) == 2


def test_cli_ingest_fails_clearly_when_nothing_can_be_accepted(ws: LocalStore, tmp_path: Path) -> None:
    upload = tmp_path / "bad.csv"
    upload.write_bytes((HEADER + "p1,g,2025-01-01,\np2,g,never,hi\n").encode())
    result = run_cli("ingest", str(upload), "--workspace", str(ws.root), "--quiet", cwd=tmp_path)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "no row of 'bad.csv' could be accepted (2 rejected)" in errors[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_and_logs_never_print_message_text(ws: LocalStore, tmp_path: Path) -> None:
    marker = "zqxmarker7731 feeling secretive"
    rejected_marker = "zqxrejected9912"
    upload = tmp_path / "private.csv"
    upload.write_bytes(
        (
            HEADER
            + f"p1,g,2025-06-01T09:00:00Z,{marker}\n"
            + "p2,g,2025-06-01T10:00:00Z,the and of\n"  # goes to review
            + f"p3,g,not-a-time,{rejected_marker}\n"  # goes to quarantine
        ).encode()
    )
    result = run_cli("--verbose", "ingest", str(upload), "--workspace", str(ws.root), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "INFO" in result.stderr  # the logs really were on
    assert "3 rows = 2 accepted + 1 rejected" in result.stdout and "sent to review" in result.stdout
    for shown in (result.stdout, result.stderr):
        assert "zqxmarker7731" not in shown
        assert rejected_marker not in shown
        assert "the and of" not in shown


def test_review_items_cost_a_write_per_part_not_per_item(
    ws: LocalStore, endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.review import batches

    monkeypatch.setattr(batches, "PART_ITEMS", 3)
    puts: list[str] = []
    real_put = ws.put

    def counted(key: str, data: bytes, **kw: object) -> None:
        puts.append(key)
        real_put(key, data, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ws, "put", counted)
    report = ingest(ws, endpoint, UPLOAD, "c.csv", threshold=1.01, now=NOW)  # every accepted row to review
    assert report.unrecognized == report.accepted == 8
    review = [k for k in puts if k.startswith("review/")]
    assert sorted(review) == [
        *(f"review/batches/{report.batch}-000{n}.jsonl" for n in range(3)),
        f"review/index/{report.batch}.jsonl",
    ]
    assert set(review_items(ws)) == set(read_scored(ws)["id"])
