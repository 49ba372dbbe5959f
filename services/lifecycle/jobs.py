"""Background training jobs: started from any app replica, followed and cancelled from any other.

A job is `run_training` in a daemon thread of the process that started it. Everything about it
lives in the store, so a browser refresh or another replica sees the same job:

- `training/lock.json`: at most one run at a time. Taken with a create-if-absent write and kept
  alive by a heartbeat; a lock whose holder died (no heartbeat for `LOCK_LEASE`) is taken over.
- `training/runs/<job>.json`: the run record (`services.training.TrainingRun`), rewritten with
  status "Running", the share done and the last log lines while the run lasts.
- `training/cancel/<job>`: a cancel request; the trainer checks it through `should_stop`.

A record still "Running" whose lock is gone or expired belongs to a process that died: it is
shown as "Interrupted", never as a run that goes on forever.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.access import audit
from services.errors import AlreadyExists, PulseError
from services.lifecycle.datasets import load_manifest
from services.lifecycle.trainers import Progress, ShouldStop, Trainer, TrainingOutcome, TrainingRequest
from services.lifecycle.training import RUNS, TrainingRun, run_training
from services.model.params import TrainParams, validate_params
from services.store import lease
from services.store.base import ObjectStore
from services.store.lease import read_json
from services.workspace import Workspace

log = logging.getLogger(__name__)

LOCK = "training/lock.json"
CANCEL = "training/cancel/"
TAKEOVERS = "training/lock-takeovers/"
LOCK_LEASE = timedelta(minutes=2)  # no heartbeat for this long: the process running the job died
HEARTBEAT_SECONDS = 20.0
WRITE_EVERY_SECONDS = 0.5  # progress records are written at most this often
TRAINING_SHARE = 0.9  # of a run's progress bar; the rest is scoring on the gold set and registering
LOG_LINES = 50  # log lines kept in a progress record (the final record keeps the trainer's 200)
START_TIMEOUT_SECONDS = 120.0  # how long `start_training` waits for the run to get its name

RUNNING = ("Running", "Stopping")
_IN_PROGRESS = ("InProgress", "Running")  # as written by run_training / by the progress writer
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")


class TrainingBusy(PulseError):
    """Another training run holds the training lock."""


class InvalidParams(PulseError, ValueError):
    """Hyperparameters outside their valid range (the message names the range)."""


class JobNotFound(PulseError):
    """No training run of that name."""


class JobNotRunning(PulseError):
    """A cancel of a run that has already ended."""


class JobNotStarted(PulseError):
    """The run failed before it could be given a name (nothing was trained)."""


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


def _stamp(when: datetime | None = None) -> str:
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


def _run_key(job: str) -> str:
    return f"{RUNS}{_check_name(job)}.json"


def _cancel_key(job: str) -> str:
    return f"{CANCEL}{_check_name(job)}"


# --- the lock --------------------------------------------------------------------------------


def _lock_alive(lock: dict[str, Any] | None, now: datetime | None = None) -> bool:
    if lock is None:
        return False
    renewed = _parse_time(lock.get("renewed_at")) or _parse_time(lock.get("since"))
    return renewed is not None and (now or _now()) - renewed < LOCK_LEASE


def _covers(lock: dict[str, Any] | None, run: TrainingRun) -> bool:
    """Whether a live lock belongs to `run` (a lock not yet named covers a run started under it)."""
    if not _lock_alive(lock):
        return False
    assert lock is not None
    if lock.get("job"):
        return bool(lock["job"] == run.job_name)
    since, started = _parse_time(lock.get("since")), _parse_time(run.started_at)
    return since is not None and started is not None and started >= since


class _TrainingLock:
    """At most one training run at a time, across processes and replicas (`services.lease`, plus a
    heartbeat: a training run lasts far longer than a deployment)."""

    def __init__(self, store: ObjectStore, by: str, dataset: str) -> None:
        self.store, self.by, self.dataset = store, by, dataset
        self.token = secrets.token_hex(8)
        self.job: str | None = None
        self.since = _stamp()

    def _body(self) -> bytes:
        body = {
            "job": self.job,
            "by": self.by,
            "dataset": self.dataset,
            "since": self.since,
            "renewed_at": _stamp(),
            "token": self.token,
        }
        return json.dumps(body).encode()

    def acquire(self) -> None:
        taken_over = lease.acquire(
            self.store,
            LOCK,
            self._body,
            takeovers=TAKEOVERS,
            alive=_lock_alive,
            busy=_busy,
            contested=TrainingBusy("another replica is taking over an expired training lock; try again"),
            churning=TrainingBusy("the training lock is changing hands too fast; try again"),
        )
        if taken_over is not None and taken_over.get("job"):
            _end_record(self.store, str(taken_over["job"]), "Interrupted", "the process running it stopped")

    def renew(self, job: str | None = None) -> None:
        """Push the lease forward (and name the job), while the lock is still ours."""
        if not lease.holds(self.store, LOCK, self.token):
            log.warning("training lock of %s is no longer ours; not renewing it", self.job or "a starting run")
            return
        if job is not None:
            self.job = job
        self.store.put(LOCK, self._body())

    def release(self) -> None:
        lease.release(self.store, LOCK, self.token)


def _busy(held: dict[str, Any]) -> TrainingBusy:
    what = f"job {held['job']}" if held.get("job") else "a run that is starting"
    return TrainingBusy(
        f"another training run ({what} on dataset {held.get('dataset')}, started by {held.get('by')} "
        f"at {held.get('since')}) is running; wait for it to finish or cancel it"
    )


def _end_record(store: ObjectStore, job: str, status: str, reason: str | None) -> None:
    """Mark a run that is still in progress as ended (a dead process, or an exception)."""
    record = read_json(store, _run_key(job))
    if record is None or record.get("status") not in _IN_PROGRESS:
        return
    record.update(status=status, failure_reason=reason, finished_at=_stamp())
    record["log"] = [*record.get("log", []), f"{status.lower()}: {reason}" if reason else status.lower()]
    store.put(_run_key(job), json.dumps(record, indent=2).encode())


# --- reading jobs ----------------------------------------------------------------------------


def _run_from(record: dict[str, Any]) -> TrainingRun:
    known = {f.name for f in fields(TrainingRun)}
    return TrainingRun(**{k: v for k, v in record.items() if k in known})


def _job(record: dict[str, Any], lock: dict[str, Any] | None, cancel_by: str | None) -> TrainingJob:
    run = _run_from(record)
    status = run.status
    if status in _IN_PROGRESS:
        status = ("Stopping" if cancel_by else "Running") if _covers(lock, run) else "Interrupted"
    share = record.get("progress")
    progress = 1.0 if status == "Completed" else float(share) if isinstance(share, int | float) else 0.0
    return TrainingJob(run, status, min(max(progress, 0.0), 1.0), record.get("updated_at"), cancel_by)


def _cancel_by(store: ObjectStore, job: str) -> str | None:
    request = read_json(store, _cancel_key(job))
    return None if request is None else str(request.get("by") or "someone")


def load_run(store: ObjectStore, job: str) -> TrainingJob:
    """One training run and its status now; `JobNotFound` if there is no such run."""
    record = read_json(store, _run_key(job))
    if record is None:
        raise JobNotFound(f"there is no training run {job}")
    return _job(record, read_json(store, LOCK), _cancel_by(store, job))


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
            out.append(_job(record, lock, _cancel_by(store, job) if job in cancelled else None))
        except (PulseError, ValueError, TypeError) as exc:
            log.warning("training run record %s cannot be read: %s", key, exc)
    return sorted(out, key=lambda j: (j.run.started_at, j.job_name), reverse=True)


def running_job(store: ObjectStore) -> TrainingJob | None:
    """The run holding the training lock now, if any (whichever replica started it)."""
    lock = read_json(store, LOCK)
    if not _lock_alive(lock) or lock is None or not lock.get("job"):
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
        if not found.running and not _covers(read_json(store, LOCK), found.run):
            return found
        if time.monotonic() >= deadline:
            raise TimeoutError(f"training run {job} still {found.status} after {timeout:.0f}s")
        time.sleep(poll)


# --- cancelling ------------------------------------------------------------------------------


def cancel(store: ObjectStore, job: str, by: str, *, role: str = "") -> TrainingJob:
    """Ask a running job to stop (from any replica). The local trainer stops before its next
    candidate, a SageMaker job is stopped with StopTrainingJob at its next poll; a model trained
    before the stop is seen is discarded. Refuses a run that has already ended."""
    found = load_run(store, job)
    if not found.running:
        raise JobNotRunning(f"training run {job} is not running ({found.status}); there is nothing to cancel")
    body = json.dumps({"by": by, "at": _stamp()}).encode()
    with contextlib.suppress(AlreadyExists):  # asked already: the first request stands
        store.put(_cancel_key(job), body, if_absent=True)
        audit.try_record(store, by, role, "training_cancelled", job)
    return load_run(store, job)


# --- running ---------------------------------------------------------------------------------


class _ProgressWriter:
    """Rewrites the run record with the share done and the last log lines, at most every
    `WRITE_EVERY_SECONDS` (a trainer may report many lines a second); a line held back by that
    limit is written by a timer, so the record never lags behind by more than that."""

    def __init__(self, store: ObjectStore, job: str) -> None:
        self.store, self.job = store, job
        self.record = read_json(store, _run_key(job)) or {}
        self.lines: list[str] = []
        self.share = 0.0
        self.started = time.monotonic()
        self.last_write = -WRITE_EVERY_SECONDS
        self.mutex = threading.Lock()
        self.timer: threading.Timer | None = None
        self.closed = False

    def note(self, share: float, line: str) -> None:
        with self.mutex:
            if self.closed:
                return
            self.share = max(self.share, min(max(share, 0.0), 1.0))
            self.lines.append(line)
            due = self.last_write + WRITE_EVERY_SECONDS - time.monotonic()
            if due <= 0:
                self._write()
            elif self.timer is None:
                self.timer = threading.Timer(due, self._flush)
                self.timer.daemon = True
                self.timer.start()

    def _flush(self) -> None:
        with self.mutex:
            self.timer = None
            if not self.closed:
                self._write()

    def close(self, line: str | None = None) -> None:
        """Write `line` (if any) now, and nothing after: the run's final record comes next."""
        with self.mutex:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            if line is not None and not self.closed:
                self.share = max(self.share, TRAINING_SHARE)
                self.lines.append(line)
                self._write()
            self.closed = True

    def _write(self) -> None:
        self.last_write = time.monotonic()
        record = {
            **self.record,
            "status": "Running",
            "progress": round(self.share, 4),
            "log": self.lines[-LOG_LINES:],
            "seconds": round(time.monotonic() - self.started, 2),
            "updated_at": _stamp(),
        }
        try:
            self.store.put(_run_key(self.job), json.dumps(record, indent=2).encode())
        except PulseError as exc:  # progress is a view of the run: a failed write must not end it
            log.warning("cannot write the progress of training run %s: %s", self.job, exc)


@dataclass
class _Start:
    """What the job thread tells `start_training`: the run's name, or why it never got one."""

    named: threading.Event
    job: str | None = None
    error: str | None = None


class _JobTrainer:
    """Wraps the workspace's trainer: learns the run's name, writes progress records, and stops
    when a cancel request appears in the store."""

    def __init__(self, inner: Trainer, store: ObjectStore, lock: _TrainingLock, start: _Start) -> None:
        self.inner, self.store, self.lock, self.start = inner, store, lock, start
        self.name = inner.name

    def train(
        self,
        request: TrainingRequest,
        workdir: Path,
        *,
        progress: Progress | None = None,
        should_stop: ShouldStop | None = None,
    ) -> TrainingOutcome:
        job = request.job_name
        self.lock.renew(job)
        self.start.job = job
        self.start.named.set()
        writer = _ProgressWriter(self.store, job)

        def stop_requested() -> bool:
            try:
                return self.store.exists(_cancel_key(job))
            except PulseError as exc:  # a store hiccup is not a cancel request; check again later
                log.warning("cannot check the cancel request of %s: %s", job, exc)
                return False

        if stop_requested():
            return TrainingOutcome("Stopped", log=["stopped on request before training started"])
        writer.note(0.0, f"training on {request.dataset_version} with {self.inner.name}")

        def trainer_progress(share: float, line: str) -> None:
            # The trainer's 100% is not the run's: scoring on the gold set and registering follow.
            writer.note(share * TRAINING_SHARE, line)

        try:
            outcome = self.inner.train(request, workdir, progress=trainer_progress, should_stop=stop_requested)
        except BaseException:
            writer.close()
            raise
        if outcome.status == "Completed" and stop_requested():
            # The trainer finished before it saw the request (the local one checks between
            # candidates only): the request still wins, and nothing is registered.
            writer.close()
            line = "stopped on request after training; the trained model was discarded"
            return TrainingOutcome("Stopped", seconds=outcome.seconds, log=[*outcome.log, line])
        # One last progress record while the model is scored on the gold set and registered.
        writer.close("evaluating on the gold set and registering the model" if outcome.status == "Completed" else None)
        return outcome


def _reason(exc: Exception) -> str:
    """What to record of an unexpected exception: a domain error says what went wrong in words
    meant for users; anything else is named by its type only (its text could quote a message)."""
    if isinstance(exc, PulseError):
        return str(exc)
    return f"unexpected error ({type(exc).__name__}); the server log has the details"


def _run_job(ws: Workspace, dataset: str, params: TrainParams, by: str, lock: _TrainingLock, start: _Start) -> None:
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            try:
                lock.renew()
            except PulseError as exc:
                log.warning("cannot renew the training lock: %s", exc)

    beat = threading.Thread(target=heartbeat, name="pulse-training-heartbeat", daemon=True)
    beat.start()
    try:
        run = run_training(
            ws.store,
            _JobTrainer(ws.trainer, ws.store, lock, start),
            dataset,
            params=params,
            by=by,
            max_chars=ws.settings.max_text_chars,
            name_prefix=ws.settings.sagemaker_name_prefix,
        )
        if run.status == "Stopped":
            who = _cancel_by(ws.store, run.job_name)
            if who:
                run.log = [*run.log, f"stop requested by {who}"]
                ws.store.put(_run_key(run.job_name), json.dumps(asdict(run), indent=2).encode())
    except Exception as exc:  # a thread has no caller: record every failure, then release the lock
        log.exception("training run %s failed", start.job or "(not started)")
        reason = _reason(exc)
        try:
            if start.job:
                _end_record(ws.store, start.job, "Failed", reason)
            else:
                start.error = reason
        except PulseError as write_error:
            log.error("cannot record the failure of training run %s: %s", start.job, write_error)
    finally:
        done.set()
        beat.join(timeout=5)
        try:
            lock.release()
        except PulseError as exc:
            log.error("cannot release the training lock (it expires in %s): %s", LOCK_LEASE, exc)
        start.named.set()


def start_training(workspace: Workspace, dataset_version: str, params: TrainParams, by: str, *, role: str = "") -> str:
    """Start a training run in the background and return its job name.

    Refuses out-of-range hyperparameters (`InvalidParams`, naming the range), an unknown dataset
    (`DatasetError`) and a second run while one is running (`TrainingBusy`), whichever replica
    started it. The run ends in the registry like `services.cli train`; follow it with `load_run`.
    """
    try:
        validate_params(params)
    except ValueError as exc:
        raise InvalidParams(str(exc)) from None
    load_manifest(workspace.store, dataset_version)
    lock = _TrainingLock(workspace.store, by, dataset_version)
    lock.acquire()
    start = _Start(threading.Event())
    thread = threading.Thread(
        target=_run_job,
        args=(workspace, dataset_version, params, by, lock, start),
        name=f"pulse-training-{lock.token}",
        daemon=True,
    )
    try:
        thread.start()
    except RuntimeError:
        lock.release()
        raise
    if not start.named.wait(START_TIMEOUT_SECONDS):
        raise JobNotStarted(
            f"the training run has not started after {START_TIMEOUT_SECONDS:.0f}s; it may still start: "
            "look for it among the runs in a minute"
        )
    if start.job is None:
        raise JobNotStarted(f"the training run could not start: {start.error or 'no reason given'}")
    details = {"dataset": dataset_version, "family": params.family, "trainer": workspace.trainer.name}
    audit.try_record(workspace.store, by, role, "training_started", start.job, details)
    return start.job
