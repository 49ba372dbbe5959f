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

import json
import logging
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.access import audit
from services.errors import InvalidParams, JobNotStarted, PulseError, TrainingBusy
from services.lifecycle.datasets import load_manifest
from services.lifecycle.runs import LOCK, LOCK_LEASE, cancel_by, cancel_key, end_record, lock_alive, run_key, stamp
from services.lifecycle.trainers import Trainer, TrainingOutcome, TrainingRequest
from services.lifecycle.training import run_training
from services.model.params import TrainParams, validate_params
from services.model.pipeline import Progress, ShouldStop
from services.store import keys, lease
from services.store.base import ObjectStore
from services.store.lease import read_json

if TYPE_CHECKING:
    from services.workspace import Workspace

log = logging.getLogger(__name__)

TAKEOVERS = keys.TRAINING_LOCK_TAKEOVERS
HEARTBEAT_SECONDS = 20.0
WRITE_EVERY_SECONDS = 0.5  # progress records are written at most this often
TRAINING_SHARE = 0.9  # of a run's progress bar; the rest is scoring on the gold set and registering
LOG_LINES = 50  # log lines kept in a progress record (the final record keeps the trainer's 200)
START_TIMEOUT_SECONDS = 120.0  # how long `start_training` waits for the run to get its name


# --- the lock --------------------------------------------------------------------------------


class _TrainingLock:
    """At most one training run at a time, across processes and replicas (`services.lease`, plus a
    heartbeat: a training run lasts far longer than a deployment)."""

    def __init__(self, store: ObjectStore, by: str, dataset: str) -> None:
        self.store, self.by, self.dataset = store, by, dataset
        self.token = secrets.token_hex(8)
        self.job: str | None = None
        self.since = stamp()

    def _body(self) -> bytes:
        body = {
            "job": self.job,
            "by": self.by,
            "dataset": self.dataset,
            "since": self.since,
            "renewed_at": stamp(),
            "token": self.token,
        }
        return json.dumps(body).encode()

    def acquire(self) -> None:
        taken_over = lease.acquire(
            self.store,
            LOCK,
            self._body,
            takeovers=TAKEOVERS,
            alive=lock_alive,
            busy=_busy,
            contested=TrainingBusy("another replica is taking over an expired training lock; try again"),
            churning=TrainingBusy("the training lock is changing hands too fast; try again"),
        )
        if taken_over is not None and taken_over.get("job"):
            end_record(self.store, str(taken_over["job"]), "Interrupted", "the process running it stopped")

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


# --- reading jobs ----------------------------------------------------------------------------


# --- cancelling ------------------------------------------------------------------------------


# --- running ---------------------------------------------------------------------------------


class _ProgressWriter:
    """Rewrites the run record with the share done and the last log lines, at most every
    `WRITE_EVERY_SECONDS` (a trainer may report many lines a second); a line held back by that
    limit is written by a timer, so the record never lags behind by more than that."""

    def __init__(self, store: ObjectStore, job: str) -> None:
        self.store, self.job = store, job
        self.record = read_json(store, run_key(job)) or {}
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
            "updated_at": stamp(),
        }
        try:
            self.store.put(run_key(self.job), json.dumps(record, indent=2).encode())
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
                return self.store.exists(cancel_key(job))
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
            who = cancel_by(ws.store, run.job_name)
            if who:
                run.log = [*run.log, f"stop requested by {who}"]
                ws.store.put(run_key(run.job_name), json.dumps(asdict(run), indent=2).encode())
    except Exception as exc:  # a thread has no caller: record every failure, then release the lock
        log.exception("training run %s failed", start.job or "(not started)")
        reason = _reason(exc)
        try:
            if start.job:
                end_record(ws.store, start.job, "Failed", reason)
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
