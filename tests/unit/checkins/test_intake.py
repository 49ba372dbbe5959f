"""Continuous intake from a folder: every file that lands is ingested once, its marker is the record,
a changed file is read again, a file that cannot be read fails once with its reason, a file still
being written waits, a watcher stopped mid-file resumes; the status table; the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from services.checkins.ingest import batch_id
from services.checkins.intake import (
    DONE,
    FAILED,
    PENDING,
    FolderInbox,
    Handled,
    Intake,
    intake_status,
    marker_key,
    marker_prefix,
    read_marker,
    wanted,
)
from services.checkins.partitions import read_scored
from services.config import Settings, load_settings
from services.errors import InboxError, ModelUnavailable
from services.lifecycle.endpoint import LocalEndpoint
from services.model.prediction import Prediction
from services.store.local import LocalStore

ROOT = Path(__file__).resolve().parents[3]
HEADER = "participant,group,time,text\n"
SECRET = "zqxintake4471"  # a word of a message: it must never reach a marker or a printed line


def rows(day: int, n: int = 4, *, tag: str = "") -> bytes:
    """`n` check-ins on 2025-06-<day> (surely in the past), distinct per day and tag."""
    lines = [
        f"p{i},team-{'ab'[i % 2]},2025-06-{day:02d}T{9 + i:02d}:00:00Z,{tag}day {day} note {i} {SECRET} feeling fine"
        for i in range(n)
    ]
    return (HEADER + "\n".join(lines) + "\n").encode()


@pytest.fixture
def settings(ws: LocalStore) -> Settings:
    return load_settings(secrets_file=ROOT / "no-such-secrets.toml", workspace=ws.root)


@pytest.fixture
def inbox_dir(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


def drop(folder: Path, name: str, data: bytes, *, age: float = 60.0) -> Path:
    """A file landed in the inbox `age` seconds ago (its modification time set back)."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def make_intake(ws: LocalStore, endpoint: object, inbox: Path, settings: Settings, **kw: object) -> Intake:
    return Intake(ws, endpoint, FolderInbox(inbox), settings=settings, **kw)  # type: ignore[arg-type]


def names(handled: Sequence[Handled]) -> list[tuple[str, str]]:
    return [(h.name, h.state) for h in handled]


def markers(ws: LocalStore) -> list[dict[str, object]]:
    docs = [read_marker(ws, key) for key in ws.list("ingest/intake/")]
    return sorted((d for d in docs if d), key=lambda d: (str(d["file"]), str(d["updated_at"])))


# --- passes over a folder ----------------------------------------------------------------------------


def test_two_files_are_ingested_and_marked_done(ws, endpoint, inbox_dir, settings) -> None:  # type: ignore[no-untyped-def]
    a, b = rows(1), rows(2, 3)
    drop(inbox_dir, "a.csv", a)
    drop(inbox_dir, "sub/b.csv", b)
    handled = make_intake(ws, endpoint, inbox_dir, settings).run_once()
    assert names(handled) == [("a.csv", DONE), ("sub/b.csv", DONE)]
    assert [h.report.accepted for h in handled if h.report] == [4, 3]
    assert handled[0].line().startswith(f"a.csv: batch {batch_id(a)}: 4 rows = 4 accepted")
    docs = markers(ws)
    assert [(d["file"], d["state"], d["batch"]) for d in docs] == [
        ("a.csv", DONE, batch_id(a)),
        ("sub/b.csv", DONE, batch_id(b)),
    ]
    first = docs[0]
    assert (first["total_rows"], first["accepted"], first["rejected"], first["already_present"]) == (4, 4, 0, 0)
    assert first["attempts"] == 1 and first["host"] and first["repeated"] is False
    assert first["version"] == f"{len(a)}-{(inbox_dir / 'a.csv').stat().st_mtime_ns}"
    inbox = FolderInbox(inbox_dir)
    (landed,) = [f for f in inbox.files() if f.name == "a.csv"]
    assert ws.exists(marker_key(inbox, landed)) and marker_key(inbox, landed).startswith(marker_prefix(inbox))
    assert len(read_scored(ws)) == 7
    for key in ws.list("ingest/intake/"):  # names, versions, counts: never a word of a message
        assert SECRET not in ws.get(key).decode()
    assert all(SECRET not in h.line() for h in handled)
    assert sorted(p.name for p in inbox_dir.rglob("*.csv")) == ["a.csv", "b.csv"]  # marked, not moved


def test_a_second_pass_does_nothing_even_in_a_new_process(ws, endpoint, inbox_dir, settings) -> None:  # type: ignore[no-untyped-def]
    drop(inbox_dir, "a.csv", rows(1))
    intake = make_intake(ws, endpoint, inbox_dir, settings)
    assert len(intake.run_once()) == 1
    before = {key: ws.get(key) for key in ws.list("")}
    assert intake.run_once() == []
    assert make_intake(ws, endpoint, inbox_dir, settings).run_once() == []  # the markers are the record
    assert {key: ws.get(key) for key in ws.list("")} == before


def test_a_file_dropped_between_passes_is_picked_up(ws, endpoint, inbox_dir, settings) -> None:  # type: ignore[no-untyped-def]
    drop(inbox_dir, "a.csv", rows(1))
    intake = make_intake(ws, endpoint, inbox_dir, settings)
    assert names(intake.run_once()) == [("a.csv", DONE)]
    drop(inbox_dir, "b.jsonl", b'{"participant":"p9","group":"g","time":"2025-06-03T09:00:00Z","text":"hello"}\n')
    assert names(intake.run_once()) == [("b.jsonl", DONE)]
    assert len(read_scored(ws)) == 5


def test_a_changed_file_is_read_again(ws, endpoint, inbox_dir, settings) -> None:  # type: ignore[no-untyped-def]
    path = drop(inbox_dir, "a.csv", rows(1))
    intake = make_intake(ws, endpoint, inbox_dir, settings)
    intake.run_once()
    drop(inbox_dir, "a.csv", rows(1, 6), age=30)  # two rows more: the four first are already stored
    (again,) = intake.run_once()
    assert again.state == DONE and again.report is not None
    assert (again.report.accepted, again.report.already_present) == (2, 4)
    assert [(d["file"], d["state"]) for d in markers(ws)] == [("a.csv", DONE), ("a.csv", DONE)]
    os.utime(path, (time.time() - 10, time.time() - 10))  # touched, same bytes: a new version, nothing new
    (touched,) = intake.run_once()
    assert touched.report is not None and touched.report.repeated
    assert "already ingested earlier" in touched.line()
    assert len(read_scored(ws)) == 6


def test_an_unreadable_file_fails_with_its_reason_once(ws, endpoint, inbox_dir, settings) -> None:  # type: ignore[no-untyped-def]
    drop(inbox_dir, "bad.csv", b"who;what\nx;y\n")
    drop(inbox_dir, "empty.csv", (HEADER + "p1,g,2025-06-01T09:00:00Z,\n").encode())
    intake = make_intake(ws, endpoint, inbox_dir, settings)
    handled = intake.run_once()
    assert names(handled) == [("bad.csv", FAILED), ("empty.csv", FAILED)]
    assert "missing required column(s)" in handled[0].reason
    assert handled[1].reason == "no row of 'empty.csv' could be accepted (1 rejected)."
    assert handled[0].line().startswith("bad.csv: failed: missing required column(s)")
    docs = markers(ws)
    assert [d["state"] for d in docs] == [FAILED, FAILED] and "batch" not in docs[0]
    assert docs[1]["reason"] == handled[1].reason  # the reason without a store key
    assert intake.run_once() == []
    assert make_intake(ws, endpoint, inbox_dir, settings).run_once() == []  # not retried


def test_a_file_still_being_written_waits_for_the_next_pass(ws, endpoint, inbox_dir, settings) -> None:  # type: ignore[no-untyped-def]
    path = inbox_dir / "fresh.csv"
    path.write_bytes(rows(1))  # modified just now
    intake = make_intake(ws, endpoint, inbox_dir, settings)
    assert intake.run_once() == []
    assert list(ws.list("ingest/intake/")) == []
    drop(inbox_dir, "fresh.csv", rows(1))  # ... and then left alone
    assert names(intake.run_once()) == [("fresh.csv", DONE)]


def test_hidden_temporary_and_other_files_are_left_alone(ws, endpoint, inbox_dir, settings) -> None:  # type: ignore[no-untyped-def]
    for name in (".partial.csv", "~$sheet.csv", ".uploading/a.csv", "~tmp/b.csv", "notes.md", "c.csv.part"):
        drop(inbox_dir, name, rows(1))
    drop(inbox_dir, "Good.CSV", rows(2))
    assert names(make_intake(ws, endpoint, inbox_dir, settings).run_once()) == [("Good.CSV", DONE)]
    assert wanted("a/b.parquet") and wanted("x.ndjson") and not wanted("a//b.csv") and not wanted("dir/")


def test_the_oldest_file_goes_first(ws, endpoint, inbox_dir, settings) -> None:  # type: ignore[no-untyped-def]
    drop(inbox_dir, "a.csv", rows(1), age=10)
    drop(inbox_dir, "b.csv", rows(2), age=100)
    assert names(make_intake(ws, endpoint, inbox_dir, settings).run_once()) == [("b.csv", DONE), ("a.csv", DONE)]


# --- interruptions -----------------------------------------------------------------------------------


class Failing:
    """An endpoint that raises `error` on its first `times` scoring calls, then scores."""

    def __init__(self, inner: LocalEndpoint, error: BaseException, times: int = 1) -> None:
        self.inner, self.error, self.times = inner, error, times

    def preprocessing(self) -> str:
        return "pulse-v2"

    def score(self, prepared: Sequence[str]) -> tuple[str, list[Prediction]]:
        if self.times > 0:
            self.times -= 1
            raise self.error
        return self.inner.score(prepared)

    def version(self) -> str:
        return self.inner.version()

    def refresh(self) -> None:
        self.inner.refresh()


def test_a_transient_error_leaves_the_file_pending_for_the_next_pass(ws, endpoint, inbox_dir, settings) -> None:  # type: ignore[no-untyped-def]
    drop(inbox_dir, "a.csv", rows(1))
    drop(inbox_dir, "b.csv", rows(2), age=30)
    flaky = Failing(endpoint, ModelUnavailable("the model artifact cannot be read"))
    intake = make_intake(ws, flaky, inbox_dir, settings)
    first = intake.run_once()
    assert names(first) == [("a.csv", PENDING), ("b.csv", DONE)]  # the pass goes on after it
    assert first[0].line() == "a.csv: left for the next pass: the model artifact cannot be read"
    (waiting,) = [d for d in markers(ws) if d["file"] == "a.csv"]
    assert waiting["state"] == PENDING and "cannot be read" in str(waiting["reason"])
    assert names(intake.run_once()) == [("a.csv", DONE)]
    (done,) = [d for d in markers(ws) if d["file"] == "a.csv"]
    assert done["state"] == DONE and done["attempts"] == 2 and done["seen_at"] == waiting["seen_at"]


def test_a_watcher_stopped_mid_file_resumes_it(ws, endpoint, inbox_dir, settings) -> None:  # type: ignore[no-untyped-def]
    drop(inbox_dir, "a.csv", rows(1))
    crashing = Failing(endpoint, SystemExit(9))  # not a domain error: the watcher dies mid-file
    with pytest.raises(SystemExit):
        make_intake(ws, crashing, inbox_dir, settings).run_once()
    assert [d["state"] for d in markers(ws)] == [PENDING]
    (resumed,) = make_intake(ws, endpoint, inbox_dir, settings).run_once()
    assert resumed.state == DONE and resumed.report is not None and resumed.report.accepted == 4
    assert [(d["state"], d["attempts"]) for d in markers(ws)] == [(DONE, 2)]


def test_a_file_gone_before_it_is_read_gets_no_marker(ws, endpoint, inbox_dir, settings) -> None:  # type: ignore[no-untyped-def]
    class Vanishing(FolderInbox):
        def read(self, name: str) -> bytes:
            (self.path / name).unlink()
            return super().read(name)

    drop(inbox_dir, "a.csv", rows(1))
    (gone,) = Intake(ws, endpoint, Vanishing(inbox_dir), settings=settings).run_once()
    assert gone.state == PENDING and "cannot read 'a.csv'" in gone.reason
    assert list(ws.list("ingest/intake/")) == []


def test_stop_ends_a_pass_between_files(ws, endpoint, inbox_dir, settings) -> None:  # type: ignore[no-untyped-def]
    for day in (1, 2, 3):
        drop(inbox_dir, f"{day}.csv", rows(day), age=100 - day)
    stop = threading.Event()
    intake = make_intake(ws, endpoint, inbox_dir, settings, on_file=lambda _: stop.set())
    assert names(intake.run_once(stop)) == [("1.csv", DONE)]
    stop.clear()
    assert names(intake.run_once(stop)) == [("2.csv", DONE)]


def test_watch_runs_passes_until_stopped(ws, endpoint, inbox_dir, settings) -> None:  # type: ignore[no-untyped-def]
    drop(inbox_dir, "a.csv", rows(1))
    stop, seen, errors = threading.Event(), [], []

    def heard(handled: Handled) -> None:
        seen.append(handled.name)
        if handled.name == "a.csv":
            drop(inbox_dir, "b.csv", rows(2))  # lands while the watcher runs
        else:
            stop.set()

    intake = make_intake(ws, endpoint, inbox_dir, settings, on_file=heard)
    watcher = threading.Thread(target=intake.watch, args=(0.05, stop), kwargs={"on_error": errors.append})
    watcher.start()
    watcher.join(timeout=120)
    assert not watcher.is_alive() and seen == ["a.csv", "b.csv"] and errors == []


def test_a_pass_over_a_vanished_folder_is_reported_and_the_watch_goes_on(ws, endpoint, inbox_dir, settings) -> None:  # type: ignore[no-untyped-def]
    intake = make_intake(ws, endpoint, inbox_dir, settings)
    inbox_dir.rmdir()
    stop, errors = threading.Event(), []

    def failed(exc: Exception) -> None:
        errors.append(str(exc))
        if len(errors) == 2:
            stop.set()

    intake.watch(0.01, stop, on_error=failed)
    assert errors == [f"the inbox folder {inbox_dir.resolve()} is gone"] * 2
    with pytest.raises(InboxError, match="does not exist"):
        FolderInbox(inbox_dir)


# --- the status table --------------------------------------------------------------------------------


def test_intake_status_lists_every_file_newest_first(ws, endpoint, inbox_dir, settings) -> None:  # type: ignore[no-untyped-def]
    assert intake_status(ws).empty
    drop(inbox_dir, "a.csv", rows(1))
    drop(inbox_dir, "bad.csv", b"who;what\nx;y\n", age=30)
    intake = make_intake(ws, endpoint, inbox_dir, settings)
    intake.run_once()
    key = next(k for k in ws.list("ingest/intake/") if read_marker(ws, k)["file"] == "a.csv")  # type: ignore[index]
    doc = json.loads(ws.get(key))
    ws.put(key, json.dumps({**doc, "updated_at": "2030-01-01T00:00:00+00:00"}).encode())  # the newest
    table = intake_status(ws)
    assert list(table.columns) == [
        "file",
        "state",
        "rows",
        "accepted",
        "rejected",
        "already present",
        "to review",
        "reason",
        "updated",
        "inbox",
    ]
    assert list(table["file"]) == ["a.csv", "bad.csv"] and list(table["state"]) == [DONE, FAILED]
    assert table.loc[0, "rows"] == 4 and table.loc[0, "accepted"] == 4 and table.loc[0, "reason"] == ""
    assert table["accepted"].isna().tolist() == [False, True]
    assert "missing required column(s)" in table.loc[1, "reason"]
    assert set(table["inbox"]) == {f"local folder {inbox_dir.resolve()}"}
    assert len(intake_status(ws, limit=1)) == 1


# --- the command line --------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_watch_once_prints_a_line_per_file(ws: LocalStore, inbox_dir: Path, tmp_path: Path) -> None:
    drop(inbox_dir, "a.csv", rows(1))
    drop(inbox_dir, "bad.csv", b"who;what\nx;y\n", age=30)
    once = ("ingest", "--watch", str(inbox_dir), "--once", "--workspace", str(ws.root))
    result = run_cli(*once, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"a.csv: batch {batch_id(rows(1))}: 4 rows = 4 accepted")
    assert lines[1].startswith("bad.csv: failed: missing required column(s)") and len(lines) == 2
    assert SECRET not in result.stdout + result.stderr
    again = run_cli(*once, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ingest",), "one of the arguments file --watch is required"),
        (("ingest", "x.csv", "--watch", "inbox"), "argument --watch: not allowed with argument file"),
        (("ingest", "x.csv", "--once"), "--once and --interval SECONDS (more than 0) go with --watch"),
        (("ingest", "--watch", "inbox", "--interval", "0"), "--interval SECONDS (more than 0) go with --watch"),
        (("ingest", "--watch", "no-such-folder", "--once"), "the inbox folder"),
        (("ingest", "--watch", "s3:///prefix/", "--once"), "is not an S3 address: write s3://bucket/prefix/"),
        (("ingest", "--watch", ".", "--once"), "holds the workspace"),
        (("ingest", "--watch", "ws/..", "--once"), "holds the workspace"),
    ],
)
def test_cli_watch_refuses_what_it_cannot_do(args: tuple[str, ...], message: str, ws: LocalStore) -> None:
    (ws.root.parent / "inbox").mkdir(exist_ok=True)
    result = run_cli(*args, "--workspace", str(ws.root), cwd=ws.root.parent)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
