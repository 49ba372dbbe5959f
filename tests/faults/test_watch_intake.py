"""The intake watcher (`python -m services.cli ingest --watch FOLDER`) as processes, on the local backend:

- SIGKILLed part-way through a file (once its pending marker is written, or once its first partition
  is), then `--once` again: the file ends done and the workspace is that of one clean run;
- two watchers on the same inbox and workspace at once, six files dropped while they run: every file
  done once, every check-in stored once (the same check-ins as one sequential run), none failed.

Files land as in production: written under a hidden name, then renamed into the inbox."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.checkins.partitions import read_scored
from services.store.base import ObjectStore
from services.store.local import LocalStore
from tests.benchmarks.datasets import airline_rows
from tests.conftest import ROOT
from tests.faults.conftest import child_env
from tests.faults.injection import snapshot

RUN_SECONDS = 300  # bounds a hung process; no figure here is a timing
KILL_ATTEMPTS = 3
KILL_ROWS = 2_000
FILES, FILE_ROWS, SHARED = 6, 1_000, 200  # each file shares its last SHARED rows with the next one
START = datetime(2026, 9, 1, 8, tzinfo=UTC)


def checkins_csv(first: int, count: int) -> bytes:
    """Airline messages `first` .. `first + count - 1` as check-ins; a row's participant and time
    follow from its number, so the same row in two files is the same check-in."""
    rows = airline_rows()[first : first + count]  # skips when ../shared/data is missing
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["participant", "group", "time", "text"])
    for n, row in enumerate(rows, start=first):
        writer.writerow([f"p{n % 97}", f"g{n % 5}", (START + timedelta(minutes=11 * n)).isoformat(), row["text"]])
    return out.getvalue().encode()


def land(inbox: Path, name: str, data: bytes, *, age: float = 0.0) -> None:
    """Write under a hidden name (never read), then rename into place, `age` seconds old."""
    hidden = inbox / f".{name}.part"
    hidden.write_bytes(data)
    if age:
        then = time.time() - age
        os.utime(hidden, (then, then))
    hidden.rename(inbox / name)


def workspace(bootstrap_store: LocalStore, target: Path) -> tuple[LocalStore, dict[str, str]]:
    shutil.copytree(bootstrap_store.root, target)
    return LocalStore(target), child_env({"PULSE_WORKSPACE": str(target)})


def watch_command(inbox: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "services.cli", "ingest", "--watch", str(inbox), *extra]


def run_once(inbox: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        watch_command(inbox, "--once"), cwd=ROOT, env=env, capture_output=True, timeout=RUN_SECONDS, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode()


def markers(store: ObjectStore) -> list[dict[str, Any]]:
    return [json.loads(store.get(key)) for key in store.list("ingest/intake/")]


def _pending(store: ObjectStore) -> bool:
    return any(m["state"] == "pending" for m in markers(store))


def _partition(store: ObjectStore) -> bool:
    return any(True for _ in store.list("checkins/"))


STAGES: dict[str, Callable[[ObjectStore], bool]] = {
    "once its pending marker is written": _pending,
    "while partitions are written": _partition,
}


# --- a watcher killed mid-file --------------------------------------------------------------------


@pytest.fixture(scope="module")
def kill_inbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    inbox = tmp_path_factory.mktemp("kill-inbox")
    land(inbox, "checkins.csv", checkins_csv(0, KILL_ROWS), age=60)
    return inbox


@pytest.fixture(scope="module")
def clean_run(
    bootstrap_store: LocalStore, kill_inbox: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    store, env = workspace(bootstrap_store, tmp_path_factory.mktemp("watch-clean") / "ws")
    assert f"{KILL_ROWS:,} accepted" in run_once(kill_inbox, env)
    state = snapshot(store)
    assert len(state["rows"]) == KILL_ROWS and state["items"]
    return state


def kill_watcher(inbox: Path, env: dict[str, str], store: ObjectStore, reached: Callable[[ObjectStore], bool]) -> bool:
    """Start a watcher and SIGKILL it once `reached(store)`; False if the file was done first."""
    proc = subprocess.Popen(
        watch_command(inbox, "--interval", "1"), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + RUN_SECONDS
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if reached(store):
                proc.send_signal(signal.SIGKILL)
                break
            if any(True for _ in store.list("ingest/batches/")):
                break  # done before the stage was seen: try again in a fresh workspace
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()
    return proc.returncode == -signal.SIGKILL and not any(True for _ in store.list("ingest/batches/"))


@pytest.mark.fault(
    operation="intake watcher, killed (local)",
    fault="SIGKILL of `services.cli ingest --watch`",
    when="{stage}",
    expected="the file's marker stays pending; `--watch --once` then ingests it: state identical to one clean run",
)
@pytest.mark.parametrize("stage", list(STAGES))
def test_a_killed_watcher_resumes_the_file_and_ends_like_a_clean_run(
    stage: str, bootstrap_store: LocalStore, kill_inbox: Path, clean_run: dict[str, Any], tmp_path: Path
) -> None:
    for attempt in range(KILL_ATTEMPTS):
        store, env = workspace(bootstrap_store, tmp_path / f"ws{attempt}")
        if kill_watcher(kill_inbox, env, store, STAGES[stage]):
            break
    else:
        raise AssertionError(f"the watcher finished the file {KILL_ATTEMPTS} times before the stage was caught")
    assert [m["state"] for m in markers(store)] == ["pending"]
    line = run_once(kill_inbox, env).strip()
    assert line.startswith("checkins.csv: batch ") and f"{KILL_ROWS:,} accepted" in line
    assert "already ingested" not in line
    assert snapshot(store) == clean_run
    (marker,) = markers(store)
    assert marker["state"] == "done" and marker["attempts"] == 2 and marker["accepted"] == KILL_ROWS
    assert run_once(kill_inbox, env) == ""  # and it is not read again


# --- two watchers at once -------------------------------------------------------------------------


def drop_plan() -> list[tuple[str, bytes]]:
    step = FILE_ROWS - SHARED
    return [(f"part-{k + 1}.csv", checkins_csv(k * step, FILE_ROWS)) for k in range(FILES)]


def wait_until(check: Callable[[], bool], procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + RUN_SECONDS
    while not check():
        assert all(p.poll() is None for p in procs), "a watcher stopped on its own"
        assert time.monotonic() < deadline, "the watchers did not finish the files"
        time.sleep(0.1)


@pytest.mark.fault(
    operation="intake, two watchers at once (local)",
    fault="a second watcher on the same inbox and workspace",
    when=f"{FILES} files of {FILE_ROWS:,} rows ({SHARED} shared with the next) dropped while both run",
    expected="every file done once, every check-in stored once (those of one sequential run), none failed; "
    "SIGTERM stops both with exit 0",
)
def test_two_watchers_ingest_every_file_and_check_in_exactly_once(bootstrap_store: LocalStore, tmp_path: Path) -> None:
    plan = drop_plan()
    expected_rows = (FILES - 1) * (FILE_ROWS - SHARED) + FILE_ROWS
    # The reference: one watcher, one pass, the files in the same order.
    sequential_inbox = tmp_path / "sequential-inbox"
    sequential_inbox.mkdir()
    for n, (name, data) in enumerate(plan):
        land(sequential_inbox, name, data, age=600 - n)
    reference, reference_env = workspace(bootstrap_store, tmp_path / "sequential")
    assert len(run_once(sequential_inbox, reference_env).splitlines()) == FILES
    expected = read_scored(reference, columns=["id", "participant", "group", "time", "label"])

    store, env = workspace(bootstrap_store, tmp_path / "ws")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    procs = [
        subprocess.Popen(
            watch_command(inbox, "--interval", "0.5"), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    try:
        for p in procs:  # each says "watching ..." once it runs
            assert p.stderr is not None and p.stderr.readline().startswith(b"watching ")
        for n, (name, data) in enumerate(plan):  # dropped while both run, a few at a time
            land(inbox, name, data)
            if n % 2:
                wait_until(lambda n=n: sum(m["state"] == "done" for m in markers(store)) >= n - 1, procs)
        wait_until(lambda: sum(m["state"] == "done" for m in markers(store)) == FILES, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=RUN_SECONDS) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    lines = [line for out, _ in outputs for line in out.decode().splitlines()]

    # Every file done exactly once: one done marker each, one batch record each, and of all the lines
    # the watchers printed, exactly one per file did the work (the other found it recorded).
    states = sorted((m["file"], m["state"]) for m in markers(store))
    assert states == sorted((name, "done") for name, _ in plan)
    assert len(list(store.list("ingest/batches/"))) == FILES
    assert len(list(store.list("ingest/uploads/"))) == FILES
    worked = Counter(line.split(":")[0] for line in lines if "already ingested" not in line)
    assert worked == Counter({name: 1 for name, _ in plan}), lines
    assert not [line for line in lines if ": failed:" in line or ": left for the next pass:" in line]

    # Every check-in stored once: the same check-ins as the sequential run, none twice.
    stored = read_scored(store, columns=["id", "participant", "group", "time", "label"])
    duplicates = int(stored["id"].duplicated().sum())
    assert duplicates == 0 and len(stored) == len(expected) == expected_rows
    by_id = ["id", "participant", "group", "time", "label"]
    assert (
        stored.sort_values("id")[by_id]
        .reset_index(drop=True)
        .equals(expected.sort_values("id")[by_id].reset_index(drop=True))
    )
    records = [json.loads(store.get(key)) for key in store.list("ingest/batches/")]
    assert sum(r["accepted"] for r in records) == expected_rows
    assert all(r["total_rows"] == FILE_ROWS == r["accepted"] + r["already_present"] for r in records)
    repeated = sum("already ingested" in line for line in lines)
    print(
        f"\ntwo watchers: {FILES} files, {FILES * FILE_ROWS:,} rows ({expected_rows:,} distinct check-ins), "
        f"{len(stored):,} stored, {duplicates} duplicates, {repeated} file(s) found already recorded by the "
        "other watcher, 0 failed"
    )
