"""Training runs that end in the registry: runs on dataset versions through any `Trainer` (local,
or SageMaker BlazingText), and the bootstrap model trained from the shipped corpus."""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from services.errors import PulseError
from services.lifecycle.datasets import load_manifest
from services.lifecycle.deployment import Deployer, Deployment, LocalDeployer, current, record_deployment
from services.lifecycle.gold import load_gold
from services.lifecycle.registry import ModelCard, load_model_file, new_version, register
from services.lifecycle.runs import TrainingRun, save_run
from services.lifecycle.trainers import Trainer, TrainingRequest
from services.model.calibration import fit_temperature
from services.model.corpus import split_corpus
from services.model.evaluation import evaluate, summary
from services.model.fasttext import fasttext_line
from services.model.params import TrainParams, validate_params
from services.model.pipeline import Progress, ShouldStop, balance, candidates_for, fit_pipeline, labelled_texts
from services.store import keys
from services.store.base import ObjectStore

# The bootstrap model's hyperparameters: the defaults, chosen for small data.
BOOTSTRAP_PARAMS = TrainParams()


def job_name(prefix: str = "pulse") -> str:
    return f"{prefix}-{new_version()[1:]}"


def run_training(
    store: ObjectStore,
    trainer: Trainer,
    dataset_version: str,
    *,
    params: TrainParams,
    by: str,
    max_chars: int = 2000,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    name_prefix: str = "pulse",
) -> TrainingRun:
    """Train on a dataset version; on success calibrate, evaluate on the gold set and register.
    A failed or stopped job registers nothing; every run is recorded under `training/runs/`."""
    validate_params(params)
    manifest = load_manifest(store, dataset_version)
    train_key = manifest.train_key
    if params.balance_classes:
        # Written as a channel of its own, so SageMaker trains on exactly what the local trainer would.
        train_lines = store.get(train_key).decode("utf-8").splitlines()
        train_key = keys.dataset_key(dataset_version, "train-balanced.txt")
        if not store.exists(train_key):
            store.put(train_key, ("\n".join(balance(train_lines, params.seed)) + "\n").encode())
    run = TrainingRun(
        job_name=job_name(name_prefix),
        dataset=dataset_version,
        trainer=trainer.name,
        params=asdict(params),
        started_by=by,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    save_run(store, run)
    request = TrainingRequest(run.job_name, dataset_version, train_key, manifest.validation_key, params)
    with tempfile.TemporaryDirectory(prefix="pulse-job-") as tmp:
        outcome = trainer.train(request, Path(tmp), progress=progress, should_stop=should_stop)
        run.log = outcome.log[-200:]
        run.seconds = round(outcome.seconds, 2)
        if outcome.status != "Completed" or outcome.model_bin is None:
            run.status = outcome.status if outcome.status != "Completed" else "Failed"
            run.failure_reason = outcome.failure_reason or (
                "the trainer reported success but returned no model" if outcome.status == "Completed" else None
            )
            run.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
            save_run(store, run)
            return run
        model = load_model_file(outcome.model_bin, max_chars=max_chars)
    val_texts, val_labels = labelled_texts(store.get(manifest.validation_key).decode("utf-8").splitlines())
    if outcome.temperature is not None:
        model = model.with_temperature(outcome.temperature)
    else:
        model = model.with_temperature(fit_temperature(model, val_texts, val_labels))
    gold = load_gold(store)
    metrics = summary(evaluate(model.predict(gold.texts), gold.labels))
    live = current(store)
    card = ModelCard(
        version=new_version(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        created_by=by,
        dataset=dataset_version,
        params=params.used_by(model.family),
        metrics={**metrics, "gold_set": gold.fingerprint()},
        parent=live.version if live else None,
        training_seconds=run.seconds,
        trainer=trainer.name,
        temperature=model.temperature,
        family=model.family,
        notes=f"family picked by validation macro-F1 (asked: {params.family})" if params.family == "auto" else "",
    )
    register(store, model, card)
    run.status = "Completed"
    run.model_version = card.version
    run.metrics = metrics
    run.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    save_run(store, run)
    return run


def train_bootstrap(
    store: ObjectStore,
    *,
    by: str,
    max_chars: int = 2000,
    deployer: Deployer | None = None,
    family: str = BOOTSTRAP_PARAMS.family,
) -> Deployment:
    """Train the bootstrap model on the shipped corpus with the default pipeline (family picked on
    a validation fifth, calibrated, refitted on all of it), register it and make it live: through
    `deployer` when given (a SageMaker endpoint serves fastText only: pass family "fasttext"),
    else by the local deployment pointer."""
    from services.lifecycle.datasets import split_lines

    corpus = split_corpus()
    train_lines, val_lines = split_lines([fasttext_line(r.label, r.text) for r in corpus.train], seed=0, share=0.2)
    started = time.perf_counter()
    candidates = candidates_for(replace(BOOTSTRAP_PARAMS, family=family), rows=len(train_lines))
    fitted = fit_pipeline(train_lines, val_lines, candidates, 0.0, lambda _s, _l: None)
    if not isinstance(fitted, tuple):
        raise PulseError("the bootstrap model could not be trained on the shipped corpus")
    model, params, _temperature = fitted
    seconds = time.perf_counter() - started
    gold = load_gold(store)
    metrics = summary(evaluate(model.predict(gold.texts), gold.labels))
    card = ModelCard(
        version=new_version(datetime.now(UTC)),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        created_by=by,
        dataset="checkin-corpus (Pulse check-ins, train part, + TweetEval val)",
        params=params.used_by(model.family),
        metrics={**metrics, "gold_set": gold.fingerprint()},
        training_seconds=round(seconds, 2),
        temperature=model.temperature,
        family=model.family,
        notes="Bootstrap model trained from the corpus shipped with Pulse; family picked by validation macro-F1.",
    )
    register(store, model, card)
    deployer = deployer or LocalDeployer()
    live = current(store)
    details = deployer.activate(card.version, live.version if live else None)
    extra = {"backend": deployer.name, **details}
    return record_deployment(store, card.version, by=by, reason="bootstrap model", extra=extra)
