"""Training runs that end in the registry: the bootstrap model, and runs on dataset versions
through any `Trainer` (local fastText or SageMaker BlazingText)."""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from services.errors import PulseError
from services.lifecycle.datasets import load_manifest
from services.lifecycle.deployment import Deployer, Deployment, LocalDeployer, current, record_deployment
from services.lifecycle.registry import ModelCard, load_model_file, model_file_name, new_version, register
from services.lifecycle.trainers import Progress, ShouldStop, Trainer, TrainingOutcome, TrainingRequest
from services.model.calibration import fit_temperature
from services.model.corpus import split_corpus
from services.model.evaluation import evaluate, load_gold, summary
from services.model.fasttext import fasttext_line, train
from services.model.linear import train_linear
from services.model.params import TrainParams, validate_params
from services.model.prediction import LABELS, PREFIX, Model
from services.store.base import ObjectStore

# The defaults. Measured on the shipped corpus: accuracy 0.71 on held-out texts with ~9% below
# confidence 0.6; epochs 10 / lr 0.1 reached 0.68 and left the model unsure of a third of them.
BOOTSTRAP_PARAMS = TrainParams()
# Candidates tried, in order, by the hyperparameter search (best validation macro-F1 wins).
SEARCH_SPACE = (
    TrainParams(epoch=25, lr=0.5, dim=50, word_ngrams=2),
    TrainParams(epoch=10, lr=0.1, dim=50, word_ngrams=2),
    TrainParams(epoch=15, lr=0.3, dim=50, word_ngrams=1),
    TrainParams(epoch=25, lr=0.2, dim=50, word_ngrams=2, minn=2, maxn=4),
    TrainParams(epoch=5, lr=1.0, dim=50, word_ngrams=2),
)
RUNS = "training/runs/"


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


def validation_macro_f1(model: Model, lines: list[str]) -> float:
    texts, labels = _split_lines(lines)
    return evaluate(model.predict_prepared(texts), labels).macro_f1 if texts else 0.0


def _split_lines(lines: list[str]) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for line in lines:
        head, _, text = line.partition(" ")
        label = head.removeprefix(PREFIX)
        if label in LABELS:
            texts.append(text)
            labels.append(label)
    return texts, labels


def balance(lines: list[str], seed: int = 0) -> list[str]:
    """Repeat rows of the smaller classes until each class has as many as the largest: fastText has
    no class weights, and without this a 63%-negative set starves the positive class."""
    by_label: dict[str, list[str]] = {}
    for line in lines:
        by_label.setdefault(line.split(" ", 1)[0], []).append(line)
    target = max(len(v) for v in by_label.values())
    rng = random.Random(seed)
    out: list[str] = []
    for rows in by_label.values():
        out += rows * (target // len(rows)) + rng.sample(rows, target % len(rows))
    rng.shuffle(out)
    return out


class LocalFastTextTrainer:
    """Trains in this process: fastText, and (family "auto", the default) the linear model beside
    it, keeping the better on validation macro-F1. With `search_seconds` > 0 it also tries
    `SEARCH_SPACE` within that budget."""

    name = "local-fasttext"

    def __init__(self, store: ObjectStore, *, search_seconds: float = 0.0) -> None:
        self.store = store
        self.search_seconds = search_seconds

    def train(
        self,
        request: TrainingRequest,
        workdir: Path,
        *,
        progress: Progress | None = None,
        should_stop: ShouldStop | None = None,
    ) -> TrainingOutcome:
        say = progress or (lambda _share, _line: None)
        started = time.perf_counter()
        log: list[str] = []

        def note(share: float, line: str) -> None:
            log.append(line)
            say(share, line)

        try:
            train_lines = self.store.get(request.train_key).decode("utf-8").splitlines()
            val_lines = self.store.get(request.validation_key).decode("utf-8").splitlines()
        except PulseError as exc:
            return TrainingOutcome("Failed", failure_reason=f"cannot read the dataset: {exc}", log=log)
        candidates = candidates_for(request.params, search=self.search_seconds > 0, rows=len(train_lines))
        fitted = fit_pipeline(train_lines, val_lines, candidates, self.search_seconds, note, should_stop)
        if fitted == "stopped":
            return TrainingOutcome("Stopped", seconds=time.perf_counter() - started, log=log)
        if fitted is None:
            return TrainingOutcome("Failed", failure_reason="every training attempt failed", log=log)
        model, _params, temperature = fitted
        path = workdir / model_file_name(model)
        model.save(path)
        note(1.0, "done")
        seconds = time.perf_counter() - started
        return TrainingOutcome("Completed", model_bin=path, seconds=seconds, log=log, temperature=temperature)


# The default pipeline on large data. The linear family is there for small data (a few hundred to a
# few thousand labels, where fastText trails it by 0.03-0.15 macro-F1); its character n-grams cost
# ~0.16 ms a row to build and fit (16 s for 100k rows on 2 cores), so above this many training rows
# "auto" trains fastText only. fastText's 25 epochs are for small data too: on large data the same
# number of updates takes fewer passes, so "auto" uses max(5, min(epoch, UPDATES / rows)) epochs.
LARGE_TRAINING_SET = 50_000
UPDATES = 500_000
MIN_EPOCHS = 5


def candidates_for(params: TrainParams, *, search: bool = False, rows: int = 0) -> list[TrainParams]:
    """What to train, in order: the requested family (both for "auto", linear second; fastText only
    for "auto" on more than LARGE_TRAINING_SET `rows`), then, with `search`, the fastText search space."""
    if params.family != "auto":
        families: tuple[str, ...] = (params.family,)
    elif rows > LARGE_TRAINING_SET:
        families = ("fasttext",)
    else:
        families = ("fasttext", "linear")
    if params.family == "auto" and rows:
        params = replace(params, epoch=max(MIN_EPOCHS, min(params.epoch, math.ceil(UPDATES / rows))))
    out = [replace(params, family=f) for f in families]
    if search and "fasttext" in families:
        tried = out[0].fasttext_args()
        more = (replace(p, seed=params.seed, family="fasttext") for p in SEARCH_SPACE)
        out += [p for p in more if p.fasttext_args() != tried]
    return out


def fit_one(lines: list[str], params: TrainParams, *, max_chars: int = 2000) -> Model:
    """Train one candidate (family "fasttext" or "linear") on fastText-format lines."""
    if params.family == "linear":
        texts, labels = _split_lines(lines)
        return train_linear(texts, labels, c=params.c, max_chars=max_chars)
    return train(lines, params, max_chars=max_chars)


def search(
    train_lines: list[str],
    val_lines: list[str],
    candidates: list[TrainParams],
    budget_seconds: float,
    note: Progress,
    should_stop: ShouldStop | None = None,
) -> tuple[float, Model, TrainParams] | Literal["stopped"] | None:
    """Train each candidate in turn (the first two families always; the search space while the
    budget lasts) and return (validation macro-F1, model, parameters) of the best, "stopped", or
    None if all failed."""
    started = time.perf_counter()
    best: tuple[float, Model, TrainParams] | None = None
    families_seen: set[str] = set()
    for i, params in enumerate(candidates):
        if should_stop and should_stop():
            note(i / len(candidates), "stopped on request")
            return "stopped"
        first_of_family = params.family not in families_seen
        families_seen.add(params.family)
        if not first_of_family and time.perf_counter() - started > budget_seconds:
            note(i / len(candidates), f"search budget of {budget_seconds:.0f}s used; keeping the best")
            break
        try:
            model = fit_one(train_lines, params)
        except (RuntimeError, ValueError) as exc:
            note((i + 1) / len(candidates), f"candidate {i + 1} failed: {exc}")
            continue
        score = validation_macro_f1(model, val_lines) if val_lines else 0.0
        note((i + 1) / len(candidates), f"candidate {i + 1}/{len(candidates)} {_describe(params)}: F1 {score:.3f}")
        if best is None or score > best[0]:
            best = (score, model, params)
    return best


def fit_pipeline(
    train_lines: list[str],
    val_lines: list[str],
    candidates: list[TrainParams],
    budget_seconds: float,
    note: Progress,
    should_stop: ShouldStop | None = None,
) -> tuple[Model, TrainParams, float] | Literal["stopped"] | None:
    """The default local pipeline: pick the family and parameters on validation (`search`),
    calibrate on validation while it is still held out, then refit on train + validation (a fifth
    more data was worth +0.03 macro-F1 on the shipped gold set). Returns (model, parameters,
    temperature)."""
    found = search(train_lines, val_lines, candidates, budget_seconds, note, should_stop)
    if not isinstance(found, tuple):
        return found
    score, model, params = found
    note(0.9, f"kept {_describe(params)} (validation macro-F1 {score:.3f}); refitting on train + validation")
    val_texts, val_labels = _split_lines(val_lines)
    temperature = fit_temperature(model, val_texts, val_labels)
    try:
        model = fit_one(train_lines + val_lines, params)
    except (RuntimeError, ValueError) as exc:
        note(0.95, f"refit failed ({exc}); keeping the model trained on the train split")
    return model.with_temperature(temperature), params, temperature


def _describe(p: TrainParams) -> str:
    if p.family == "linear":
        return f"linear SVM on word 1-2-grams + character 2-5-grams, C {p.c}"
    sub = f", subwords {p.minn}-{p.maxn}" if p.maxn else ""
    return f"fastText epoch {p.epoch}, lr {p.lr}, dim {p.dim}, {p.word_ngrams}-grams{sub}"


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
        train_key = f"datasets/{dataset_version}/train-balanced.txt"
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
    val_texts, val_labels = _split_lines(store.get(manifest.validation_key).decode("utf-8").splitlines())
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
        params=asdict(params),
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
        dataset="bootstrap-corpus (TweetEval val + UCI sentences, train part)",
        params=asdict(params),
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
