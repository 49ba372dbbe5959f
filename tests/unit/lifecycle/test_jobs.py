"""Background training jobs (`services/jobs.py`): a run to the registry, one run at a time, progress
records, cancel (local and SageMaker through the Stubber), failures, and runs whose process died."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import ANY, Stubber

from services.aws.training import SageMakerTrainer
from services.config import load_settings
from services.errors import DatasetError, InvalidParams, JobNotRunning, JobNotStarted, PulseError, TrainingBusy
from services.lifecycle import jobs
from services.lifecycle.datasets import DatasetManifest
from services.lifecycle.jobs import start_training
from services.lifecycle.registry import ARTIFACT, list_versions, load_card
from services.lifecycle.runs import LOCK, RUNS, cancel, list_runs, load_run, running_job, wait_for
from services.lifecycle.trainers import TrainingOutcome, TrainingRequest
from services.model.corpus import split_corpus
from services.model.fasttext import fasttext_line, train
from services.model.params import TrainParams
from services.model.pipeline import Progress, ShouldStop
from services.store.base import ObjectStore
from services.store.local import LocalStore
from services.workspace import Workspace, open_workspace

TINY = TrainParams(epoch=5, dim=10, bucket=10_000, family="fasttext")
DATASET = "d-small"
SECRET = "my-diary-says-i-feel-awful-about-bob"  # a message text that must never reach a record
WAIT = 30.0


def write_dataset(store: ObjectStore, version: str = DATASET, rows: int = 600) -> None:
    """A small dataset version (a slice of the corpus), quick to train on."""
    lines = [fasttext_line(r.label, r.text) for r in split_corpus().train[:rows]]
    cut = len(lines) * 4 // 5
    manifest = DatasetManifest(
        version=version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        created_by="tests",
        seed=0,
        validation_share=0.2,
        base="bootstrap-corpus",
        counts={},
        sources={"base": len(lines)},
        label_keys=[],
        hashes={},
    )
    store.put(manifest.train_key, ("\n".join(lines[:cut]) + "\n").encode())
    store.put(manifest.validation_key, ("\n".join(lines[cut:]) + "\n").encode())
    store.put(f"datasets/{version}/manifest.json", json.dumps(asdict(manifest)).encode())


@pytest.fixture(scope="module")
def prepared(bootstrap_store: LocalStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("jobs") / "ws"
    shutil.copytree(bootstrap_store.root, root)
    write_dataset(LocalStore(root))
    return root


def _copy(src: str, dst: str) -> object:
    if src.endswith(f"/{ARTIFACT}"):  # written once, never in place: a hard link is as good as a copy
        with contextlib.suppress(OSError):
            os.link(src, dst)
            return dst
    return shutil.copy2(src, dst)


@pytest.fixture
def ws(prepared: Path, tmp_path: Path) -> Workspace:
    shutil.copytree(prepared, tmp_path / "ws", copy_function=_copy)
    return open_workspace(load_settings(tmp_path / "no-secrets.toml", workspace=tmp_path / "ws"))


def with_trainer(ws: Workspace, trainer: Any) -> Workspace:
    return dataclasses.replace(ws, trainer=trainer)


def record(store: ObjectStore, job: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(store.get(f"{RUNS}{job}.json"))
    return data


def until(check: Any, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class GatedTrainer:
    """Reports a step, then waits for the test to release it (or, if it honours stop requests,
    for a cancel), and returns `outcome` (with a real model file if `with_model`)."""

    name = "gated"

    def __init__(self, outcome: TrainingOutcome | None = None, *, honour_stop: bool = True, with_model: bool = False):
        self.outcome = outcome or TrainingOutcome("Failed", failure_reason="released by the test")
        self.honour_stop = honour_stop
        self.with_model = with_model
        self.entered = threading.Event()
        self.release = threading.Event()

    def train(
        self,
        request: TrainingRequest,
        workdir: Path,
        *,
        progress: Progress | None = None,
        should_stop: ShouldStop | None = None,
    ) -> TrainingOutcome:
        if progress:
            progress(0.3, "step one")
        self.entered.set()
        while not self.release.wait(0.01):
            if self.honour_stop and should_stop and should_stop():
                return TrainingOutcome("Stopped", log=["step one", "stopped on request"])
        if self.with_model:
            lines = [fasttext_line(r.label, r.text) for r in split_corpus().train[:300]]
            path = workdir / "model.bin"
            train(lines, TINY).save(path)
            return TrainingOutcome("Completed", model_bin=path, log=["trained"])
        return self.outcome


class RaisingTrainer:
    name = "raising"

    def train(self, request: TrainingRequest, workdir: Path, **_: Any) -> TrainingOutcome:
        raise RuntimeError(f"fastText choked on: {SECRET}")


class FailingTrainer:
    """The protocol's failure path: the job fails and says why."""

    name = "failing"

    def train(self, request: TrainingRequest, workdir: Path, **_: Any) -> TrainingOutcome:
        return TrainingOutcome("Failed", failure_reason="SageMaker training job failed: out of memory", log=["boom"])


# --- a run to the registry ------------------------------------------------------------------------


def test_a_job_runs_to_completion_and_its_model_is_registered(ws: Workspace) -> None:
    before = list_versions(ws.store)
    job = start_training(ws, DATASET, TINY, "alice")
    done = wait_for(ws.store, job, timeout=WAIT)
    assert done.status == "Completed", done.run.failure_reason
    assert done.progress == 1.0
    version = done.run.model_version
    assert version is not None
    assert list_versions(ws.store) == sorted([*before, version])
    card = load_card(ws.store, version)
    assert (card.dataset, card.created_by, card.trainer) == (DATASET, "alice", "local")
    assert done.run.metrics["macro_f1"] == card.metrics["macro_f1"]
    assert done.run.log[-1] == "done"
    assert not ws.store.exists(LOCK)
    assert running_job(ws.store) is None
    assert [j.job_name for j in list_runs(ws.store)] == [job]
    assert done.elapsed_seconds() > 0


def test_progress_records_are_written_and_a_second_start_is_refused(ws: Workspace) -> None:
    trainer = GatedTrainer()
    job = start_training(with_trainer(ws, trainer), DATASET, TINY, "alice")
    assert trainer.entered.wait(WAIT)
    until(lambda: "step one" in record(ws.store, job)["log"])
    stored = record(ws.store, job)
    assert stored["status"] == "Running"
    assert stored["progress"] == pytest.approx(0.3 * jobs.TRAINING_SHARE)
    assert stored["updated_at"] and stored["dataset"] == DATASET and stored["started_by"] == "alice"
    seen = running_job(ws.store)
    assert seen is not None and seen.job_name == job and seen.status == "Running"
    assert seen.progress == pytest.approx(0.3 * jobs.TRAINING_SHARE)
    assert load_run(ws.store, job).running

    with pytest.raises(TrainingBusy) as err:  # a second click, or another replica
        start_training(ws, DATASET, TINY, "bob")
    assert job in str(err.value) and "alice" in str(err.value)
    assert len(list_runs(ws.store)) == 1

    trainer.release.set()
    done = wait_for(ws.store, job, timeout=WAIT)
    assert done.status == "Failed" and done.run.failure_reason == "released by the test"
    assert not ws.store.exists(LOCK)


class CountingStore:
    """A LocalStore that counts writes per key."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner
        self.puts: dict[str, int] = {}

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        self.puts[key] = self.puts.get(key, 0) + 1
        self.inner.put(key, data, if_absent=if_absent)

    def list(self, prefix: str) -> Iterator[str]:
        return self.inner.list(prefix)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def describe(self) -> str:
        return self.inner.describe()


class ChattyTrainer:
    """Reports 300 lines in a burst, waits, and counts the record writes that caused."""

    name = "chatty"

    def __init__(self, store: CountingStore) -> None:
        self.store = store
        self.writes = 0
        self.last_logged = ""

    def train(
        self, request: TrainingRequest, workdir: Path, *, progress: Progress | None = None, **_: Any
    ) -> TrainingOutcome:
        key = f"{RUNS}{request.job_name}.json"
        first = self.store.puts.get(key, 0)
        assert progress is not None
        for i in range(300):
            progress(i / 300, f"line {i}")
        time.sleep(3 * jobs.WRITE_EVERY_SECONDS)
        self.writes = self.store.puts.get(key, 0) - first
        self.last_logged = json.loads(self.store.get(key))["log"][-1]
        return TrainingOutcome("Failed", failure_reason="enough", log=[f"line {i}" for i in range(300)])


def test_progress_writes_are_throttled(ws: Workspace) -> None:
    store = CountingStore(ws.store)  # type: ignore[arg-type]
    trainer = ChattyTrainer(store)
    job = start_training(dataclasses.replace(ws, store=store, trainer=trainer), DATASET, TINY, "t")
    wait_for(ws.store, job, timeout=WAIT)
    # 300 lines within 0.5 s of the previous write: one write, by the timer, with the latest line
    assert trainer.writes == 1
    assert trainer.last_logged == "line 299"


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_stops_a_run_and_registers_nothing(ws: Workspace) -> None:
    before = list_versions(ws.store)
    trainer = GatedTrainer()
    job = start_training(with_trainer(ws, trainer), DATASET, TINY, "alice")
    assert trainer.entered.wait(WAIT)
    asked = cancel(ws.store, job, "bob")
    assert asked.status in ("Stopping", "Stopped")
    done = wait_for(ws.store, job, timeout=WAIT)
    assert done.status == "Stopped"
    assert done.run.model_version is None
    assert "stop requested by bob" in done.run.log
    assert list_versions(ws.store) == before
    assert not ws.store.exists(LOCK)
    with pytest.raises(JobNotRunning, match="Stopped"):
        cancel(ws.store, job, "bob")


def test_a_model_trained_before_the_cancel_was_seen_is_discarded(ws: Workspace) -> None:
    before = list_versions(ws.store)
    trainer = GatedTrainer(honour_stop=False, with_model=True)
    job = start_training(with_trainer(ws, trainer), DATASET, TINY, "alice")
    assert trainer.entered.wait(WAIT)
    cancel(ws.store, job, "bob")
    assert load_run(ws.store, job).status == "Stopping"
    trainer.release.set()
    done = wait_for(ws.store, job, timeout=WAIT)
    assert done.status == "Stopped"
    assert any("discarded" in line for line in done.run.log)
    assert list_versions(ws.store) == before


def sagemaker_client() -> Any:
    return boto3.client(
        "sagemaker",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )


def describe(status: str, secondary: str) -> dict[str, Any]:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    return {
        "TrainingJobName": "job",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/job",
        "ModelArtifacts": {"S3ModelArtifacts": ""},
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": now,
        "SecondaryStatusTransitions": [],
    }


def test_cancel_stops_a_sagemaker_job_with_stop_training_job(ws: Workspace, tmp_path: Path) -> None:
    """moto has no StopTrainingJob: the Stubber answers every call, in order."""
    settings = load_settings(
        tmp_path / "none.toml",
        backend="aws",
        bucket="pulse-bucket",
        sagemaker_role_arn="arn:aws:iam::123456789012:role/pulse-sagemaker",
    )
    sm = sagemaker_client()
    polling, cancelled = threading.Event(), threading.Event()

    def sleep(_seconds: float) -> None:  # the trainer's poll interval: wait for the test's cancel
        polling.set()
        cancelled.wait(WAIT)

    s3_like = SimpleNamespace(bucket="pulse-bucket", prefix="ws/")
    trainer = SageMakerTrainer(sm, None, s3_like, settings, sleep=sleep)  # type: ignore[arg-type]
    before = list_versions(ws.store)
    with Stubber(sm) as stubber:
        stubber.add_response(
            "create_training_job",
            {"TrainingJobArn": "arn:x"},
            {
                "TrainingJobName": ANY,
                **dict.fromkeys(
                    (
                        "AlgorithmSpecification",
                        "RoleArn",
                        "HyperParameters",
                        "InputDataConfig",
                        "OutputDataConfig",
                        "ResourceConfig",
                        "StoppingCondition",
                        "Tags",
                    ),
                    ANY,
                ),
            },
        )
        stubber.add_response("describe_training_job", describe("InProgress", "Starting"))
        stubber.add_response("describe_training_job", describe("InProgress", "Training"))
        job = start_training(with_trainer(ws, trainer), DATASET, TINY, "alice")
        stubber.add_response("stop_training_job", {}, {"TrainingJobName": job})
        assert polling.wait(WAIT)
        cancel(ws.store, job, "bob")
        cancelled.set()
        done = wait_for(ws.store, job, timeout=WAIT)
        stubber.assert_no_pending_responses()
    assert done.status == "Stopped", done.run.failure_reason
    assert done.run.trainer == "sagemaker-blazingtext"
    assert any("stop requested; SageMaker is stopping the job" in line for line in done.run.log)
    assert list_versions(ws.store) == before
    assert not ws.store.exists(LOCK)


# --- failures ---------------------------------------------------------------------------------


def test_a_failing_trainer_records_the_reason_and_releases_the_lock(ws: Workspace) -> None:
    before = list_versions(ws.store)
    job = start_training(with_trainer(ws, FailingTrainer()), DATASET, TINY, "alice")
    done = wait_for(ws.store, job, timeout=WAIT)
    assert done.status == "Failed"
    assert done.run.failure_reason == "SageMaker training job failed: out of memory"
    assert done.run.model_version is None
    assert list_versions(ws.store) == before
    assert not ws.store.exists(LOCK)


def test_an_exception_inside_is_failed_without_its_text_and_releases_the_lock(ws: Workspace) -> None:
    before = list_versions(ws.store)
    job = start_training(with_trainer(ws, RaisingTrainer()), DATASET, TINY, "alice")
    done = wait_for(ws.store, job, timeout=WAIT)
    assert done.status == "Failed"
    assert "RuntimeError" in (done.run.failure_reason or "")
    assert SECRET not in json.dumps(record(ws.store, job))
    assert done.run.finished_at
    assert list_versions(ws.store) == before
    assert not ws.store.exists(LOCK)
    # the lock is free for the next run
    again = start_training(with_trainer(ws, FailingTrainer()), DATASET, TINY, "alice")
    assert wait_for(ws.store, again, timeout=WAIT).status == "Failed"


def test_a_failure_before_the_run_is_named_is_refused_at_once(ws: Workspace) -> None:
    ws.store.delete(f"datasets/{DATASET}/train.txt")  # balancing reads it before the trainer starts
    with pytest.raises(JobNotStarted, match="could not start"):
        start_training(ws, DATASET, dataclasses.replace(TINY, balance_classes=True), "alice")
    assert not ws.store.exists(LOCK)


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        (TrainParams(epoch=500), "epoch=500 is outside 1..100"),
        (TrainParams(lr=9.0), "lr=9.0 is outside 0.001..2"),
        (TrainParams(minn=4, maxn=3), "minn=4 is larger than maxn=3"),
        (TrainParams(family="bert"), "family='bert' is not one of auto, fasttext, linear"),
    ],
)
def test_bad_hyperparameters_are_refused_with_the_range(ws: Workspace, params: TrainParams, shown: str) -> None:
    with pytest.raises(InvalidParams) as err:
        start_training(ws, DATASET, params, "alice")
    assert shown in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, PulseError)
    assert not ws.store.exists(LOCK) and list_runs(ws.store) == []


def test_an_unknown_dataset_is_refused(ws: Workspace) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        start_training(ws, "d-nope", TINY, "alice")
    assert not ws.store.exists(LOCK)


# --- the lock across replicas, and runs whose process died --------------------------------------


def stale_run(store: ObjectStore, job: str, status: str = "Running") -> None:
    started = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    body = {
        "job_name": job,
        "dataset": DATASET,
        "trainer": "local-fasttext",
        "params": asdict(TINY),
        "started_by": "carol",
        "started_at": started,
        "status": status,
        "progress": 0.4,
    }
    store.put(f"{RUNS}{job}.json", json.dumps(body).encode())


def lock_body(job: str | None, renewed: datetime, token: str = "other") -> bytes:  # noqa: S107
    stamp = renewed.isoformat(timespec="seconds")
    body = {"job": job, "by": "carol", "dataset": DATASET, "since": stamp, "renewed_at": stamp, "token": token}
    return json.dumps(body).encode()


def test_a_run_whose_lock_expired_is_interrupted_and_the_lock_taken_over(ws: Workspace) -> None:
    stale_run(ws.store, "pulse-dead-1")
    ws.store.put(LOCK, lock_body("pulse-dead-1", datetime.now(UTC) - timedelta(hours=1)))
    assert load_run(ws.store, "pulse-dead-1").status == "Interrupted"
    assert running_job(ws.store) is None
    job = start_training(with_trainer(ws, FailingTrainer()), DATASET, TINY, "alice")
    wait_for(ws.store, job, timeout=WAIT)
    old = record(ws.store, "pulse-dead-1")
    assert old["status"] == "Interrupted" and old["finished_at"]
    assert {j.job_name: j.status for j in list_runs(ws.store)} == {job: "Failed", "pulse-dead-1": "Interrupted"}
    assert not ws.store.exists(LOCK)


def test_a_running_record_without_a_lock_is_interrupted(ws: Workspace) -> None:
    stale_run(ws.store, "pulse-dead-2", status="InProgress")
    job = load_run(ws.store, "pulse-dead-2")
    assert job.status == "Interrupted" and not job.running
    assert running_job(ws.store) is None
    with pytest.raises(JobNotRunning):
        cancel(ws.store, "pulse-dead-2", "bob")


def test_a_live_lock_of_another_replica_refuses_a_start_and_is_left_alone(ws: Workspace) -> None:
    stale_run(ws.store, "pulse-other-1")
    held = lock_body("pulse-other-1", datetime.now(UTC))
    ws.store.put(LOCK, held)
    assert load_run(ws.store, "pulse-other-1").status == "Running"
    found = running_job(ws.store)
    assert found is not None and found.job_name == "pulse-other-1"
    with pytest.raises(TrainingBusy, match="pulse-other-1"):
        start_training(ws, DATASET, TINY, "alice")
    assert ws.store.get(LOCK) == held
    cancel(ws.store, "pulse-other-1", "bob")  # works from any replica: it is a marker in the store
    assert load_run(ws.store, "pulse-other-1").status == "Stopping"


def test_the_heartbeat_keeps_a_long_run_alive(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "HEARTBEAT_SECONDS", 0.02)
    store = CountingStore(ws.store)  # type: ignore[arg-type]
    trainer = GatedTrainer()
    job = start_training(dataclasses.replace(ws, store=store, trainer=trainer), DATASET, TINY, "alice")
    assert trainer.entered.wait(WAIT)
    until(lambda: store.puts.get(LOCK, 0) >= 5)  # acquire, naming, then renewals
    assert json.loads(ws.store.get(LOCK))["job"] == job
    trainer.release.set()
    wait_for(ws.store, job, timeout=WAIT)
    assert not ws.store.exists(LOCK)


class EndsWhenRead:
    """A store in which the run ends (final record, lock released) the moment its record is read."""

    def __init__(self, inner: Any, job: str) -> None:
        self.inner, self.job = inner, job

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get(self, key: str) -> bytes:
        body: bytes = self.inner.get(key)
        if key == f"{RUNS}{self.job}.json" and json.loads(body)["status"] == "Running":
            final = {**json.loads(body), "status": "Stopped"}
            self.inner.put(key, json.dumps(final).encode())
            self.inner.delete(LOCK)
        return body


def test_a_run_that_ends_while_it_is_read_is_never_taken_for_interrupted(ws: Workspace) -> None:
    """Found as a CI flake: load_run read the record, then the lock; a run ending in between read as
    Interrupted, and wait_for returned that."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    job = "pulse-ending-1"
    ws.store.put(LOCK, json.dumps({"job": job, "since": now, "renewed_at": now, "token": "t"}).encode())
    run = {"job_name": job, "dataset": DATASET, "trainer": "local", "params": {}, "started_by": "a"}
    ws.store.put(f"{RUNS}{job}.json", json.dumps({**run, "started_at": now, "status": "Running"}).encode())
    seen = load_run(EndsWhenRead(ws.store, job), job)  # type: ignore[arg-type]
    assert seen.status == "Running"  # read just before it ended: not interrupted
    assert load_run(ws.store, job).status == "Stopped"


def test_bad_job_names_are_refused(ws: Workspace) -> None:
    with pytest.raises(PulseError):
        load_run(ws.store, "../deployments/current")
