"""Training runs that end in the registry, the gold-set gate, promotion and rollback (local backend,
real fastText, real LocalStore on copies of the bootstrap workspace)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.errors import AlreadyExists, DeployFailed, GateFailed, ModelUnavailable
from services.lifecycle.datasets import build_dataset
from services.lifecycle.deployment import CURRENT, LocalDeployer, current, history
from services.lifecycle.gold import load_gold
from services.lifecycle.promotion import LOCK, GateVerdict, gate, promote, rollback
from services.lifecycle.registry import (
    ARTIFACT,
    ModelCard,
    fetch_model,
    list_versions,
    load_card,
    new_version,
    register,
)
from services.lifecycle.runs import RUNS
from services.lifecycle.trainers import LocalTrainer, TrainingOutcome, TrainingRequest
from services.lifecycle.training import run_training
from services.model.corpus import split_corpus
from services.model.evaluation import evaluate, rounded, summary
from services.model.fasttext import fasttext_line, train
from services.model.params import TrainParams, validate_params
from services.model.pipeline import Progress, ShouldStop
from services.store.base import ObjectStore
from services.store.local import LocalStore

TINY = TrainParams(epoch=5, dim=10, bucket=10_000)
MARGIN = 0.01
FLIP = {"positive": "negative", "negative": "positive", "neutral": "neutral"}


@dataclass(frozen=True)
class Prepared:
    root: Path
    live: str  # the bootstrap model, deployed
    dataset: str  # built from the base corpus
    equal: str  # the live model registered again under a new version (same gold score)
    worse: str  # trained on positive/negative swapped


def _card(version: str, dataset: str, **extra: Any) -> ModelCard:
    return ModelCard(
        version=version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        created_by="tests",
        dataset=dataset,
        **extra,
    )


def register_copy(store: ObjectStore, version: str, cache: Path) -> str:
    model = fetch_model(store, version, cache)
    return register(store, model, _card(new_version(), f"copy of {version}", temperature=model.temperature)).version


def register_tiny(store: ObjectStore) -> str:
    """A small model (a small artifact, quick to register); worse than the live one on the gold set."""
    lines = [fasttext_line(r.label, r.text) for r in split_corpus().train[:800]]
    return register(store, train(lines, TINY), _card(new_version(), "small")).version


def register_flipped(store: ObjectStore) -> str:
    lines = [fasttext_line(FLIP[r.label], r.text) for r in split_corpus().train]
    return register(store, train(lines, TINY), _card(new_version(), "flipped labels")).version


@pytest.fixture(scope="module")
def prepared(bootstrap_store: LocalStore, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    base = tmp_path_factory.mktemp("lifecycle")
    root = base / "ws"
    shutil.copytree(bootstrap_store.root, root)
    s = LocalStore(root)
    live = current(s)
    assert live is not None
    dataset = build_dataset(s, by="tests").version
    return Prepared(root, live.version, dataset, register_copy(s, live.version, base / "cache"), register_flipped(s))


def _copy(src: str, dst: str) -> object:
    # Model artifacts are written once (create-if-absent) and only ever read or deleted, and a
    # LocalStore never writes a file in place: a hard link is as good as a copy, and much faster.
    if src.endswith(f"/{ARTIFACT}"):
        with contextlib.suppress(OSError):
            os.link(src, dst)
            return dst
    return shutil.copy2(src, dst)


@pytest.fixture
def ws(prepared: Prepared, tmp_path: Path) -> LocalStore:
    """A private copy of the prepared workspace that a test may change."""
    shutil.copytree(prepared.root, tmp_path / "ws", copy_function=_copy)
    return LocalStore(tmp_path / "ws")


def live(store: ObjectStore) -> str:
    dep = current(store)
    assert dep is not None
    return dep.version


def history_count(store: ObjectStore) -> int:
    return len(list(store.list("deployments/history/")))


def snapshot(store: ObjectStore) -> tuple[bytes, int]:
    """What says which model serves: the pointer and the number of history records."""
    return store.get(CURRENT), history_count(store)


def runs(store: ObjectStore) -> list[dict[str, Any]]:
    return [json.loads(store.get(k)) for k in store.list(RUNS)]


# --- training runs ---------------------------------------------------------------------------------


def test_a_training_run_registers_a_model_with_its_card(ws: LocalStore, prepared: Prepared, tmp_path: Path) -> None:
    before = list_versions(ws)
    seen: list[tuple[float, str]] = []
    run = run_training(
        ws,
        LocalTrainer(ws),
        prepared.dataset,
        params=TINY,
        by="alice",
        progress=lambda share, line: seen.append((share, line)),
    )
    assert run.status == "Completed", run.failure_reason
    assert run.model_version is not None
    assert list_versions(ws) == sorted([*before, run.model_version])
    assert ws.exists(f"models/{run.model_version}/{ARTIFACT}")

    card = load_card(ws, run.model_version)
    assert card.dataset == prepared.dataset
    assert card.params == TINY.used_by(card.family)
    assert card.parent == prepared.live
    assert card.trainer == "local"
    assert card.created_by == "alice"
    assert 0.25 <= card.temperature <= 4.0
    assert {"macro_f1", "accuracy", "ece", "n", "f1_negative", "f1_neutral", "f1_positive"} <= set(card.metrics)
    gold = load_gold(ws)
    assert card.metrics["gold_set"] == gold.fingerprint()
    assert card.metrics["n"] == len(gold.texts)
    assert 0.0 < card.metrics["macro_f1"] <= 1.0
    assert 0.0 <= card.metrics["ece"] <= 1.0

    # The card's numbers are the registered artifact's numbers on the gold set.
    model = fetch_model(ws, run.model_version, tmp_path / "cache")
    assert model.temperature == card.temperature
    assert summary(evaluate(model.predict(gold.texts), gold.labels)) == {
        k: v for k, v in card.metrics.items() if k != "gold_set"
    }

    [record] = runs(ws)
    assert record["job_name"] == run.job_name
    assert record["status"] == "Completed"
    assert record["model_version"] == run.model_version
    assert record["dataset"] == prepared.dataset
    assert record["trainer"] == "local"
    assert record["params"] == asdict(TINY)
    assert record["metrics"] == run.metrics == {k: v for k, v in card.metrics.items() if k != "gold_set"}
    assert record["finished_at"] and record["failure_reason"] is None
    assert record["log"] and record["log"][-1] == "done"
    assert seen and seen[-1] == (1.0, "done")
    assert live(ws) == prepared.live  # training deploys nothing


class FailingTrainer:
    """A trainer whose job fails (the Trainer protocol's failure path)."""

    name = "failing"

    def __init__(self, outcome: TrainingOutcome) -> None:
        self.outcome = outcome
        self.requests: list[TrainingRequest] = []

    def train(
        self,
        request: TrainingRequest,
        workdir: Path,
        *,
        progress: Progress | None = None,
        should_stop: ShouldStop | None = None,
    ) -> TrainingOutcome:
        self.requests.append(request)
        return self.outcome


def test_a_failed_training_run_registers_nothing_and_records_the_reason(ws: LocalStore, prepared: Prepared) -> None:
    before = list_versions(ws)
    trainer = FailingTrainer(TrainingOutcome("Failed", failure_reason="boom", log=["step 1", "boom"]))
    run = run_training(ws, trainer, prepared.dataset, params=TINY, by="tests")
    assert (run.status, run.failure_reason, run.model_version) == ("Failed", "boom", None)
    assert list_versions(ws) == before
    [record] = runs(ws)
    assert record["status"] == "Failed"
    assert record["failure_reason"] == "boom"
    assert record["trainer"] == "failing"
    assert record["model_version"] is None
    assert record["finished_at"]
    assert record["log"] == ["step 1", "boom"]
    [request] = trainer.requests
    assert request.job_name == run.job_name
    assert request.train_key == f"datasets/{prepared.dataset}/train.txt"
    assert request.validation_key == f"datasets/{prepared.dataset}/validation.txt"


def test_a_completed_outcome_without_a_model_is_not_recorded_as_completed(ws: LocalStore, prepared: Prepared) -> None:
    before = list_versions(ws)
    run = run_training(ws, FailingTrainer(TrainingOutcome("Completed")), prepared.dataset, params=TINY, by="tests")
    assert list_versions(ws) == before
    assert run.status != "Completed"
    assert runs(ws)[0]["status"] != "Completed"


def test_a_stopped_training_run_registers_nothing(ws: LocalStore, prepared: Prepared) -> None:
    before = list_versions(ws)
    asked: list[int] = []

    def should_stop() -> bool:
        asked.append(1)
        return len(asked) >= 2  # let the first candidate train, stop before the second

    run = run_training(
        ws,
        LocalTrainer(ws, search_seconds=60),
        prepared.dataset,
        params=TINY,
        by="tests",
        should_stop=should_stop,
    )
    assert run.status == "Stopped"
    assert run.model_version is None
    assert len(asked) == 2
    assert list_versions(ws) == before
    [record] = runs(ws)
    assert record["status"] == "Stopped"
    assert record["model_version"] is None
    assert "stopped on request" in record["log"]


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("lr", 9.0, "lr=9.0 is outside 0.001..2"),
        ("lr", 0.0, "lr=0.0 is outside 0.001..2"),
        ("epoch", 0, "epoch=0 is outside 1..100"),
        ("epoch", 101, "epoch=101 is outside 1..100"),
        ("dim", 1, "dim=1 is outside 2..300"),
        ("word_ngrams", 6, "word_ngrams=6 is outside 1..5"),
        ("minn", 7, "minn=7 is outside 0..6"),
        ("maxn", 9, "maxn=9 is outside 0..8"),
    ],
)
def test_hyperparameters_out_of_range_are_refused_with_the_range(field: str, value: Any, shown: str) -> None:
    with pytest.raises(ValueError) as err:
        validate_params(TrainParams(**{field: value}))
    assert shown in str(err.value)


def test_every_bad_hyperparameter_is_named_and_good_ones_pass() -> None:
    with pytest.raises(ValueError) as err:
        validate_params(TrainParams(lr=5, epoch=500, minn=4, maxn=3))
    message = str(err.value)
    assert "lr=5 is outside 0.001..2" in message
    assert "epoch=500 is outside 1..100" in message
    assert "minn=4 is larger than maxn=3" in message
    assert validate_params(TINY) is TINY
    edge = TrainParams(epoch=1, lr=2.0, dim=300, word_ngrams=5, minn=6, maxn=8)
    assert validate_params(edge) is edge


# --- promotion -------------------------------------------------------------------------------------


def gate_details(store: ObjectStore) -> dict[str, Any]:
    dep = current(store)
    assert dep is not None
    data: dict[str, Any] = json.loads(dep.details["gate"])
    return data


def test_an_equal_candidate_passes_the_gate_and_becomes_live(ws: LocalStore, prepared: Prepared) -> None:
    dep, verdict = promote(ws, LocalDeployer(), prepared.equal, by="alice", reason="same model", margin=MARGIN)
    assert verdict.passed
    assert verdict.candidate_f1 == verdict.live_f1 == load_card(ws, prepared.live).metrics["macro_f1"]
    assert verdict.live == prepared.live
    assert verdict.n == len(load_gold(ws).texts)
    assert current(ws) == dep
    assert (dep.version, dep.previous, dep.deployed_by, dep.reason) == (
        prepared.equal,
        prepared.live,
        "alice",
        "same model",
    )
    assert history(ws)[-1] == dep
    assert history_count(ws) == 2
    assert dep.details["backend"] == "local"
    recorded = gate_details(ws)
    assert recorded["passed"] is True
    assert recorded["candidate"] == prepared.equal
    assert recorded["live"] == prepared.live
    assert recorded["candidate_f1"] == recorded["live_f1"]
    assert recorded["margin"] == MARGIN
    assert recorded["gold_set"] == load_gold(ws).fingerprint()
    assert not ws.exists(LOCK)


def test_a_better_candidate_passes_the_gate(ws: LocalStore, prepared: Prepared) -> None:
    promote(ws, LocalDeployer(), prepared.worse, by="t", reason="r", margin=MARGIN, override_reason="test setup")
    dep, verdict = promote(ws, LocalDeployer(), prepared.equal, by="t", reason="better", margin=MARGIN)
    assert verdict.passed
    assert verdict.live_f1 is not None and verdict.candidate_f1 > verdict.live_f1 + 0.1
    assert live(ws) == prepared.equal
    assert dep.previous == prepared.worse


def test_a_clearly_worse_candidate_is_refused_and_nothing_switches(ws: LocalStore, prepared: Prepared) -> None:
    before = snapshot(ws)
    expected = gate(ws, prepared.worse, margin=MARGIN)
    assert not expected.passed
    assert expected.live_f1 is not None and expected.candidate_f1 < expected.live_f1 - 0.1
    with pytest.raises(GateFailed) as err:
        promote(ws, LocalDeployer(), prepared.worse, by="t", reason="r", margin=MARGIN)
    message = str(err.value)
    # the figures as every page rounds them (half up, services.model.evaluation.rounded)
    assert f"{rounded(expected.candidate_f1):.3f}" in message
    assert f"{rounded(expected.live_f1):.3f}" in message
    assert prepared.worse in message and prepared.live in message
    assert "override" in message
    assert snapshot(ws) == before
    assert not ws.exists(LOCK)


def test_a_wide_margin_lets_a_worse_candidate_through(ws: LocalStore, prepared: Prepared) -> None:
    _, verdict = promote(ws, LocalDeployer(), prepared.worse, by="t", reason="r", margin=1.0)
    assert verdict.passed
    assert live(ws) == prepared.worse


def test_an_override_deploys_a_refused_candidate_and_records_why(ws: LocalStore, prepared: Prepared) -> None:
    dep, verdict = promote(
        ws, LocalDeployer(), prepared.worse, by="admin", reason="r", margin=MARGIN, override_reason="why: known issue"
    )
    assert not verdict.passed
    assert current(ws) == dep
    assert dep.version == prepared.worse
    assert history(ws)[-1].reason == "r [gate overridden: why: known issue]"
    assert gate_details(ws)["passed"] is False
    assert not ws.exists(LOCK)


def test_a_blank_override_reason_does_not_override(ws: LocalStore, prepared: Prepared) -> None:
    before = snapshot(ws)
    with pytest.raises(GateFailed):
        promote(ws, LocalDeployer(), prepared.worse, by="t", reason="r", margin=MARGIN, override_reason="   ")
    assert snapshot(ws) == before


def test_promoting_the_live_version_again_is_refused(ws: LocalStore, prepared: Prepared) -> None:
    before = snapshot(ws)
    with pytest.raises(DeployFailed, match="already live"):
        promote(ws, LocalDeployer(), prepared.live, by="t", reason="r", margin=MARGIN)
    assert snapshot(ws) == before
    assert not ws.exists(LOCK)


def test_promoting_an_unknown_version_is_refused(ws: LocalStore) -> None:
    before = snapshot(ws)
    with pytest.raises(ModelUnavailable):
        promote(ws, LocalDeployer(), "m20990101-000000-abcd", by="t", reason="r", margin=MARGIN)
    assert snapshot(ws) == before
    assert not ws.exists(LOCK)


def test_promoting_a_version_without_its_artifact_is_refused(ws: LocalStore) -> None:
    version = register_tiny(ws)  # new, never gated: in no cache
    ws.delete(f"models/{version}/{ARTIFACT}")
    before = snapshot(ws)
    with pytest.raises(ModelUnavailable, match="missing"):
        promote(ws, LocalDeployer(), version, by="t", reason="r", margin=1.0)
    assert snapshot(ws) == before
    assert not ws.exists(LOCK)


def test_promoting_a_version_whose_artifact_was_deleted_after_evaluation_is_refused(ws: LocalStore) -> None:
    version = register_tiny(ws)
    assert gate(ws, version, margin=1.0).passed  # "evaluate" first, as a user would
    ws.delete(f"models/{version}/{ARTIFACT}")
    before = snapshot(ws)
    with pytest.raises(ModelUnavailable):
        promote(ws, LocalDeployer(), version, by="t", reason="r", margin=1.0)
    assert snapshot(ws) == before


def lock_body(since: datetime) -> bytes:
    return json.dumps({"by": "bob", "version": "m-other", "since": since.isoformat(timespec="seconds")}).encode()


def test_a_held_deploy_lock_refuses_a_promotion(ws: LocalStore, prepared: Prepared) -> None:
    held = lock_body(datetime.now(UTC) - timedelta(minutes=1))
    ws.put(LOCK, held)
    before = snapshot(ws)
    with pytest.raises(DeployFailed, match="in progress") as err:
        promote(ws, LocalDeployer(), prepared.equal, by="t", reason="r", margin=MARGIN)
    assert "bob" in str(err.value)
    assert snapshot(ws) == before
    assert ws.get(LOCK) == held  # someone else's lock is left alone


def test_an_expired_deploy_lock_is_taken_over(ws: LocalStore, prepared: Prepared) -> None:
    ws.put(LOCK, lock_body(datetime.now(UTC) - timedelta(hours=2)))
    dep, _ = promote(ws, LocalDeployer(), prepared.equal, by="t", reason="r", margin=MARGIN)
    assert current(ws) == dep
    assert not ws.exists(LOCK)


def test_promote_pressed_twice_at_once_deploys_once(ws: LocalStore, prepared: Prepared) -> None:
    _, count_before = snapshot(ws)
    start = threading.Barrier(2)
    results: list[object] = []

    def press() -> None:
        start.wait()
        try:
            results.append(promote(ws, LocalDeployer(), prepared.equal, by="t", reason="r", margin=MARGIN))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=press) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    wins = [r for r in results if isinstance(r, tuple)]
    losses = [r for r in results if isinstance(r, BaseException)]
    assert len(wins) == 1, results
    assert len(losses) == 1 and isinstance(losses[0], DeployFailed), losses
    assert live(ws) == prepared.equal
    assert history_count(ws) == count_before + 1
    assert not ws.exists(LOCK)


class Wrapped:
    """A real LocalStore with hooks that force one interleaving of concurrent deploys."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner

    def list(self, prefix: str) -> Iterator[str]:
        return self.inner.list(prefix)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def describe(self) -> str:
        return self.inner.describe()

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        self.inner.put(key, data, if_absent=if_absent)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


class TakeoverRace(Wrapped):
    """Both promotions read the same expired lock; the second deletes it only after the first has
    taken it over."""

    def __init__(self, inner: LocalStore) -> None:
        super().__init__(inner)
        self.both_read = threading.Barrier(2, timeout=10)
        self.first_taken = threading.Event()
        self.mutex = threading.Lock()
        self.deletes = 0

    def get(self, key: str) -> bytes:
        data = self.inner.get(key)
        if key == LOCK:
            with contextlib.suppress(threading.BrokenBarrierError):
                self.both_read.wait()
        return data

    def delete(self, key: str) -> None:
        if key == LOCK:
            with self.mutex:
                self.deletes += 1
                second = self.deletes == 2
            if second:
                self.first_taken.wait(timeout=10)
        self.inner.delete(key)

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        self.inner.put(key, data, if_absent=if_absent)
        if key == LOCK:
            self.first_taken.set()


def test_two_deploys_taking_over_the_same_expired_lock_do_not_both_run(ws: LocalStore, prepared: Prepared) -> None:
    other = register_tiny(ws)
    ws.put(LOCK, lock_body(datetime.now(UTC) - timedelta(hours=2)))
    store = TakeoverRace(ws)
    results: list[object] = []

    def press(version: str) -> None:
        try:
            results.append(promote(store, LocalDeployer(), version, by="t", reason="r", margin=1.0))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=press, args=(v,)) for v in (prepared.equal, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len([r for r in results if isinstance(r, tuple)]) == 1, results


class ReleasedMeanwhile(Wrapped):
    """The lock's holder finishes between our create-if-absent and our read of its lock."""

    def __init__(self, inner: LocalStore) -> None:
        super().__init__(inner)
        self.released = False

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        try:
            self.inner.put(key, data, if_absent=if_absent)
        except AlreadyExists:
            if key == LOCK and not self.released:
                self.released = True
                self.inner.delete(LOCK)
            raise


def test_a_lock_released_while_checking_it_is_not_a_store_error(ws: LocalStore, prepared: Prepared) -> None:
    ws.put(LOCK, lock_body(datetime.now(UTC)))
    store = ReleasedMeanwhile(ws)
    with contextlib.suppress(DeployFailed):
        promote(store, LocalDeployer(), prepared.equal, by="t", reason="r", margin=MARGIN)
    assert not ws.exists(LOCK)


class BrokenDeployer:
    name = "broken"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def activate(self, version: str, previous: str | None) -> dict[str, str]:
        self.calls.append((version, previous))
        raise DeployFailed("endpoint update failed; the previous model still serves")

    def status(self) -> dict[str, str]:
        return {"status": "InService"}


def test_a_failed_activation_switches_nothing_and_releases_the_lock(ws: LocalStore, prepared: Prepared) -> None:
    before = snapshot(ws)
    deployer = BrokenDeployer()
    with pytest.raises(DeployFailed, match="endpoint update failed"):
        promote(ws, deployer, prepared.equal, by="t", reason="r", margin=MARGIN)
    assert deployer.calls == [(prepared.equal, prepared.live)]
    assert snapshot(ws) == before
    assert not ws.exists(LOCK)
    # and the next attempt is not blocked by a stale lock
    dep, _ = promote(ws, LocalDeployer(), prepared.equal, by="t", reason="r", margin=MARGIN)
    assert current(ws) == dep


# --- rollback --------------------------------------------------------------------------------------


def test_rollback_puts_the_previous_version_back(ws: LocalStore, prepared: Prepared) -> None:
    promote(ws, LocalDeployer(), prepared.equal, by="t", reason="r", margin=MARGIN)
    count = history_count(ws)
    dep = rollback(ws, LocalDeployer(), by="carol", reason="complaints from the ops team")
    assert (dep.version, dep.previous) == (prepared.live, prepared.equal)
    assert current(ws) == dep
    assert dep.reason == "rollback: complaints from the ops team"
    assert dep.deployed_by == "carol"
    assert dep.details["backend"] == "local"
    assert history(ws)[-1] == dep
    assert history_count(ws) == count + 1
    assert not ws.exists(LOCK)


def test_rollback_without_a_previous_version_is_refused(ws: LocalStore) -> None:
    before = snapshot(ws)
    with pytest.raises(DeployFailed, match="no previous version"):
        rollback(ws, LocalDeployer(), by="t", reason="r")
    assert snapshot(ws) == before


def test_rollback_to_a_missing_artifact_is_refused(ws: LocalStore, prepared: Prepared) -> None:
    promote(ws, LocalDeployer(), prepared.equal, by="t", reason="r", margin=MARGIN)
    ws.delete(f"models/{prepared.live}/{ARTIFACT}")
    before = snapshot(ws)
    with pytest.raises(DeployFailed, match="missing"):
        rollback(ws, LocalDeployer(), by="t", reason="r")
    assert snapshot(ws) == before
    assert not ws.exists(LOCK)


def test_rollback_waits_for_a_deploy_in_progress(ws: LocalStore, prepared: Prepared) -> None:
    promote(ws, LocalDeployer(), prepared.equal, by="t", reason="r", margin=MARGIN)
    ws.put(LOCK, lock_body(datetime.now(UTC)))
    before = snapshot(ws)
    with pytest.raises(DeployFailed, match="in progress"):
        rollback(ws, LocalDeployer(), by="t", reason="r")
    assert snapshot(ws) == before


def test_a_failed_rollback_activation_switches_nothing(ws: LocalStore, prepared: Prepared) -> None:
    promote(ws, LocalDeployer(), prepared.equal, by="t", reason="r", margin=MARGIN)
    before = snapshot(ws)
    with pytest.raises(DeployFailed):
        rollback(ws, BrokenDeployer(), by="t", reason="r")
    assert snapshot(ws) == before
    assert not ws.exists(LOCK)


def test_promotions_refusals_and_rollbacks_are_in_the_audit_log(ws: LocalStore, prepared: Prepared) -> None:
    from services.access.audit import read_events

    with pytest.raises(GateFailed):
        promote(ws, LocalDeployer(), prepared.worse, by="dora", reason="r", margin=MARGIN, role="admin")
    promote(
        ws, LocalDeployer(), prepared.worse, by="dora", reason="r", margin=MARGIN, override_reason="demo", role="admin"
    )
    rollback(ws, LocalDeployer(), by="erin", reason="complaints", role="cli")
    events = list(reversed(read_events(ws)))
    assert [(e.action, e.actor, e.role, e.target) for e in events] == [
        ("promotion_refused", "dora", "admin", prepared.worse),
        ("promotion", "dora", "admin", prepared.worse),
        ("rollback", "erin", "cli", prepared.live),
    ]
    assert events[1].details["gate_passed"] is False and events[1].details["override_reason"] == "demo"
    assert events[2].details == {"from": prepared.worse, "reason": "complaints"}


def _verdict(candidate: float, live: float, margin: float = 0.010) -> GateVerdict:
    return GateVerdict(
        candidate="m-new",
        live="m-live",
        candidate_f1=candidate,
        live_f1=live,
        margin=margin,
        passed=live - candidate <= margin,
        gold_set="g",
        n=600,
        candidate_metrics={"macro_f1": candidate},
        live_metrics={"macro_f1": live},
    )


def test_the_gate_says_in_words_when_a_candidate_passes_below_the_live_model() -> None:
    said = _verdict(0.728, 0.730).explain()
    assert said.startswith("m-new passes, but it is 0.002 below the live model")
    assert "0.728 against 0.730" in said and "600 gold messages" in said
    assert _verdict(0.7125, 0.730).explain().startswith("m-new is refused: it is 0.017 below")
    assert _verdict(0.745, 0.730).explain().startswith("m-new passes: 0.015 above")
    assert _verdict(0.7301, 0.7304).explain().startswith("m-new passes: level with")  # 0.730 both, as shown


def test_figures_round_the_same_way_everywhere() -> None:
    from services.model.evaluation import rounded

    assert rounded(0.0265) == 0.027 and rounded(0.0264) == 0.026 and rounded(0.7285) == 0.729
    assert f"{rounded(0.0265):.3f}" == "0.027"
