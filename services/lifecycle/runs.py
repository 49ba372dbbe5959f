"""Training runs as the store records them, and what they mean now:

- `training/runs/<job>.json`: the run record (`TrainingRun`), rewritten while the run lasts;
- `training/lock.json`: held by the run in progress (see `services.lifecycle.jobs`); a record still
  "Running" whose lock is gone or expired belongs to a process that died: it reads "Interrupted";
- `training/cancel/<job>`: a cancel request, which the running trainer checks.

Any replica lists, follows and cancels any run from these records.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from services.access import audit
from services.errors import AlreadyExists, JobNotFound, JobNotRunning, PulseError
from services.store import keys
from services.store.base import ObjectStore
from services.store.lease import read_json

log = logging.getLogger(__name__)


RUNS = keys.TRAINING_RUNS


@dataclass
class TrainingRun:
    """One training run as recorded in the store (`training/runs/<job>.json`)."""

    job_name: str
    dataset: str
    trainer: str
    params: dict[str, object]
    started_by: str
    started_at: str
    status: str = "InProgress"
    finished_at: str | None = None
    model_version: str | None = None
    failure_reason: str | None = None
    seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


def save_run(store: ObjectStore, run: TrainingRun) -> None:
    store.put(f"{RUNS}{run.job_name}.json", json.dumps(asdict(run), indent=2).encode())


LOCK = keys.TRAINING_LOCK


CANCEL = keys.TRAINING_CANCEL


LOCK_LEASE = timedelta(minutes=2)  # no heartbeat for this long: the process running the job died


RUNNING = ("Running", "Stopping")


_IN_PROGRESS = ("InProgress", "Running")  # as written by run_training / by the progress writer


_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")


@dataclass(frozen=True)
class TrainingJob:
    """A training run as a page shows it: the stored record and what it means now."""

    run: TrainingRun
    status: str  # Running, Stopping, Completed, Failed, Stopped, Interrupted
    progress: float  # share done, 0..1
    updated_at: str | None = None
    cancel_requested_by: str | None = None

    @property
    def job_name(self) -> str:
        return self.run.job_name

    @property
    def running(self) -> bool:
        return self.status in RUNNING

    def elapsed_seconds(self, now: datetime | None = None) -> float:
        """Seconds since the start while running; the run's own duration once it has ended."""
        if not self.running and self.run.seconds:
            return self.run.seconds
        end = now or datetime.now(UTC)
        if not self.running:
            end = _parse_time(self.run.finished_at or self.updated_at) or end
        started = _parse_time(self.run.started_at)
        return max(0.0, (end - started).total_seconds()) if started else 0.0


def _now() -> datetime:
    return datetime.now(UTC)


def stamp(when: datetime | None = None) -> str:
    return (when or _now()).isoformat(timespec="seconds")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _check_name(job: str) -> str:
    if not isinstance(job, str) or not _JOB_NAME.match(job):
        raise JobNotFound(f"{str(job)[:70]!r} is not a training job name")
    return job


def run_key(job: str) -> str:
    return f"{RUNS}{_check_name(job)}.json"


def cancel_key(job: str) -> str:
    return f"{CANCEL}{_check_name(job)}"


def lock_alive(lock: dict[str, Any] | None, now: datetime | None = None) -> bool:
    if lock is None:
        return False
    renewed = _parse_time(lock.get("renewed_at")) or _parse_time(lock.get("since"))
    return renewed is not None and (now or _now()) - renewed < LOCK_LEASE


def covers(lock: dict[str, Any] | None, run: TrainingRun) -> bool:
    """Whether a live lock belongs to `run` (a lock not yet named covers a run started under it)."""
    if not lock_alive(lock):
        return False
    assert lock is not None
    if lock.get("job"):
        return bool(lock["job"] == run.job_name)
    since, started = _parse_time(lock.get("since")), _parse_time(run.started_at)
    return since is not None and started is not None and started >= since


def end_record(store: ObjectStore, job: str, status: str, reason: str | None) -> None:
    """Mark a run that is still in progress as ended (a dead process, or an exception)."""
    record = read_json(store, run_key(job))
    if record is None or record.get("status") not in _IN_PROGRESS:
        return
    record.update(status=status, failure_reason=reason, finished_at=stamp())
    record["log"] = [*record.get("log", []), f"{status.lower()}: {reason}" if reason else status.lower()]
    store.put(run_key(job), json.dumps(record, indent=2).encode())


def _run_from(record: dict[str, Any]) -> TrainingRun:
    known = {f.name for f in fields(TrainingRun)}
    return TrainingRun(**{k: v for k, v in record.items() if k in known})


def _job(record: dict[str, Any], lock: dict[str, Any] | None, cancel_by: str | None) -> TrainingJob:
    run = _run_from(record)
    status = run.status
    if status in _IN_PROGRESS:
        status = ("Stopping" if cancel_by else "Running") if covers(lock, run) else "Interrupted"
    share = record.get("progress")
    progress = 1.0 if status == "Completed" else float(share) if isinstance(share, int | float) else 0.0
    return TrainingJob(run, status, min(max(progress, 0.0), 1.0), record.get("updated_at"), cancel_by)


def cancel_by(store: ObjectStore, job: str) -> str | None:
    request = read_json(store, cancel_key(job))
    return None if request is None else str(request.get("by") or "someone")


def load_run(store: ObjectStore, job: str) -> TrainingJob:
    """One training run and its status now; `JobNotFound` if there is no such run.

    The lock is read before the record: a run writes its final record before it lets go of the
    lock, so a run that ends between the two reads is seen running (its lock, then its record still
    in progress), never as interrupted (a record in progress, then no lock)."""
    lock = read_json(store, LOCK)
    record = read_json(store, run_key(job))
    if record is None:
        raise JobNotFound(f"there is no training run {job}")
    return _job(record, lock, cancel_by(store, job))


def list_runs(store: ObjectStore) -> list[TrainingJob]:
    """Every training run, newest first. A record that cannot be read is logged and left out."""
    lock = read_json(store, LOCK)
    cancelled = {k.removeprefix(CANCEL) for k in store.list(CANCEL)}
    out: list[TrainingJob] = []
    for key in store.list(RUNS):
        if not key.endswith(".json"):
            continue
        try:
            record = read_json(store, key)
            if record is None:
                continue  # deleted since the listing
            job = _run_from(record).job_name
            out.append(_job(record, lock, cancel_by(store, job) if job in cancelled else None))
        except (PulseError, ValueError, TypeError) as exc:
            log.warning("training run record %s cannot be read: %s", key, exc)
    return sorted(out, key=lambda j: (j.run.started_at, j.job_name), reverse=True)


def running_job(store: ObjectStore) -> TrainingJob | None:
    """The run holding the training lock now, if any (whichever replica started it)."""
    lock = read_json(store, LOCK)
    if not lock_alive(lock) or lock is None or not lock.get("job"):
        return None
    try:
        job = load_run(store, str(lock["job"]))
    except JobNotFound:
        return None
    return job if job.running else None


def wait_for(store: ObjectStore, job: str, *, timeout: float, poll: float = 0.2) -> TrainingJob:
    """Block until `job` has ended and let go of the training lock (for the command line and tests),
    so a run started next is not refused as busy; `TimeoutError` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        found = load_run(store, job)
        if not found.running and not covers(read_json(store, LOCK), found.run):
            return found
        if time.monotonic() >= deadline:
            raise TimeoutError(f"training run {job} still {found.status} after {timeout:.0f}s")
        time.sleep(poll)


def cancel(store: ObjectStore, job: str, by: str, *, role: str = "") -> TrainingJob:
    """Ask a running job to stop (from any replica). The local trainer stops before its next
    candidate, a SageMaker job is stopped with StopTrainingJob at its next poll; a model trained
    before the stop is seen is discarded. Refuses a run that has already ended."""
    found = load_run(store, job)
    if not found.running:
        raise JobNotRunning(f"training run {job} is not running ({found.status}); there is nothing to cancel")
    body = json.dumps({"by": by, "at": stamp()}).encode()
    with contextlib.suppress(AlreadyExists):  # asked already: the first request stands
        store.put(cancel_key(job), body, if_absent=True)
        audit.try_record(store, by, role, "training_cancelled", job)
    return load_run(store, job)
