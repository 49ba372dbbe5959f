"""An ingest process killed part-way (SIGKILL: no clean-up, no exception handler) and then run again
ends in the same state as one uninterrupted run of the same file: the same scored rows (every
column), review items, review index, alerts and batch record, nothing twice and nothing missing.

`python -m services.cli ingest` runs as a subprocess on 2,000 airline check-ins, on the local backend
and on the aws backend (moto's server with the SageMaker stand-in: S3 for the store, the endpoint
for scoring). The test watches the store and kills the process once the stage named has begun."""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from services.store.base import ObjectStore
from services.store.local import LocalStore
from tests.benchmarks.datasets import airline_rows
from tests.conftest import ROOT
from tests.faults.conftest import StandIn, child_env
from tests.faults.injection import snapshot

ROWS = 2_000
RUN_SECONDS = 240  # one ingest of the file takes a few seconds; this only bounds a hung process
KILL_ATTEMPTS = 3  # a run that finishes before the watcher sees the stage is tried again


def _has(prefix: str, n: int) -> Callable[[ObjectStore], bool]:
    return lambda store: sum(1 for _ in islice(store.list(prefix), n)) >= n


STAGES = {
    "once review items are queued": _has("review/batches/", 1),
    "while partitions are written": _has("checkins/", 1),
}


@pytest.fixture(scope="module")
def upload_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 airline messages as check-ins of 97 participants in 5 groups over about two months."""
    rows = airline_rows()[:ROWS]  # skips when ../shared/data is missing
    start = datetime(2026, 9, 1, 8, tzinfo=UTC)
    path = tmp_path_factory.mktemp("killed-upload") / "checkins.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["participant", "group", "time", "text"])
        for i, row in enumerate(rows):
            out.writerow([f"p{i % 97}", f"g{i % 5}", (start + timedelta(minutes=43 * i)).isoformat(), row["text"]])
    return path


def command(upload: Path) -> list[str]:
    return [sys.executable, "-m", "services.cli", "ingest", str(upload), "--quiet"]


def run_to_completion(upload: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command(upload), cwd=ROOT, env=env, capture_output=True, timeout=RUN_SECONDS, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]  # the CLI never prints texts
    return done.stdout.decode()


def run_and_kill(upload: Path, env: dict[str, str], store: ObjectStore, reached: Callable[[ObjectStore], bool]) -> bool:
    """Start the ingest and SIGKILL it once `reached(store)`; False if it finished first."""
    proc = subprocess.Popen(command(upload), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + RUN_SECONDS
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if reached(store):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        proc.wait(timeout=30)
    return proc.returncode == -signal.SIGKILL


def temp_files(store: LocalStore) -> list[str]:
    """Temp files anywhere in the workspace folder: the store's temp folder and any `.tmp-*`."""
    return sorted(
        p.relative_to(store.root).as_posix()
        for p in store.root.rglob("*")
        if p.is_file() and (p.name.startswith(".tmp") or ".tmp" in p.relative_to(store.root).parts)
    )


def killed_then_rerun(
    upload: Path, fresh: Callable[[int], tuple[ObjectStore, dict[str, str]]], reached: Callable[[ObjectStore], bool]
) -> ObjectStore:
    """Kill an ingest part-way (in a fresh workspace per attempt), then run it again to the end."""
    for attempt in range(KILL_ATTEMPTS):
        store, env = fresh(attempt)
        if run_and_kill(upload, env, store, reached):
            break
    else:
        raise AssertionError(f"the ingest finished {KILL_ATTEMPTS} times before the stage could be caught")
    assert list(store.list("ingest/batches/")) == []  # killed before its batch record: the work is half-done
    assert reached(store)
    if isinstance(store, LocalStore):  # a write cut short leaves no temp file among the keys
        assert [p for p in temp_files(store) if not p.startswith(".tmp/")] == []
    summary = run_to_completion(upload, env)
    assert "already ingested" not in summary and f"{ROWS:,} accepted" in summary
    if isinstance(store, LocalStore):  # ... and the next run removed the killed writer's last one
        assert temp_files(store) == []
    return store


# --- local backend ---------------------------------------------------------------------------


def local_workspace(bootstrap_store: LocalStore, target: Path) -> tuple[LocalStore, dict[str, str]]:
    shutil.copytree(bootstrap_store.root, target)
    return LocalStore(target), child_env({"PULSE_WORKSPACE": str(target)})


@pytest.fixture(scope="module")
def local_clean(
    bootstrap_store: LocalStore, upload_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    store, env = local_workspace(bootstrap_store, tmp_path_factory.mktemp("killed-clean") / "ws")
    run_to_completion(upload_file, env)
    state = snapshot(store)
    assert len(state["rows"]) == ROWS and state["items"] and state["alerts"]
    return state


@pytest.mark.fault(
    operation="ingest, killed (local)",
    fault="SIGKILL of `services.cli ingest`",
    when="{stage}",
    expected="no temp file among the keys, none left after the re-run, whose state is that of one uninterrupted run",
)
@pytest.mark.parametrize("stage", list(STAGES))
def test_a_killed_local_ingest_rerun_ends_like_a_clean_run(
    stage: str, bootstrap_store: LocalStore, upload_file: Path, local_clean: dict[str, Any], tmp_path: Path
) -> None:
    store = killed_then_rerun(
        upload_file, lambda n: local_workspace(bootstrap_store, tmp_path / f"ws{n}"), STAGES[stage]
    )
    assert snapshot(store) == local_clean


# --- aws backend: S3 + the SageMaker endpoint (moto's server with the stand-in) ---------------


def s3_workspace(standin: StandIn, prefix: str) -> tuple[ObjectStore, dict[str, str]]:
    bucket = "pulse-killed"
    store = standin.seed(bucket, prefix)
    return store, child_env({**standin.env, "PULSE_BUCKET": bucket, "PULSE_PREFIX": prefix})


@pytest.mark.fault(
    operation="ingest, killed (S3 + SageMaker endpoint)",
    fault="SIGKILL of `services.cli ingest`",
    when="once review items are queued",
    expected="re-run: state identical to one uninterrupted run",
)
def test_a_killed_ingest_on_s3_rerun_ends_like_a_clean_run(standin: StandIn, upload_file: Path) -> None:
    clean, env = s3_workspace(standin, "clean")
    run_to_completion(upload_file, env)
    expected = snapshot(clean)
    assert len(expected["rows"]) == ROWS and expected["items"]
    store = killed_then_rerun(
        upload_file, lambda n: s3_workspace(standin, f"killed-{n}"), STAGES["once review items are queued"]
    )
    assert snapshot(store) == expected
