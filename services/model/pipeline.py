"""The default training pipeline, on fastText-format lines and nothing else: which candidates to train
(`candidates_for`), training and comparing them on validation (`search`), then calibrating and
refitting the winner (`fit_pipeline`)."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

from services.model.calibration import fit_temperature
from services.model.evaluation import evaluate
from services.model.fasttext import train
from services.model.linear import train_linear
from services.model.params import TrainParams
from services.model.prediction import LABELS, PREFIX, Model

Progress = Callable[[float, str], None]  # (share done 0..1, log line)
ShouldStop = Callable[[], bool]

# Candidates tried, in order, by the hyperparameter search (best validation macro-F1 wins).
SEARCH_SPACE = (
    TrainParams(epoch=25, lr=0.5, dim=50, word_ngrams=2),
    TrainParams(epoch=10, lr=0.1, dim=50, word_ngrams=2),
    TrainParams(epoch=15, lr=0.3, dim=50, word_ngrams=1),
    TrainParams(epoch=25, lr=0.2, dim=50, word_ngrams=2, minn=2, maxn=4),
    TrainParams(epoch=5, lr=1.0, dim=50, word_ngrams=2),
)


def validation_macro_f1(model: Model, lines: list[str]) -> float:
    texts, labels = labelled_texts(lines)
    return evaluate(model.predict_prepared(texts), labels).macro_f1 if texts else 0.0


def labelled_texts(lines: list[str]) -> tuple[list[str], list[str]]:
    """The texts and labels of fastText-format lines ("__label__x tokens"), skipping unknown labels."""
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


# The linear family is there for small data, where fastText trails it; its character n-grams are
# costly to build on many rows, so above this many training rows "auto" trains fastText only.
# fastText's 25 epochs are for small data too: on large data the same number of updates takes
# fewer passes, so "auto" uses max(MIN_EPOCHS, min(epoch, UPDATES / rows)) epochs.
LARGE_TRAINING_SET = 50_000
UPDATES = 500_000
MIN_EPOCHS = 5

# Small data (up to SMALL_DATA labelled rows, train + validation): one 20% validation slice of a few
# hundred rows is too noisy to choose by, so candidates are compared by FOLDS-fold cross-validation
# over all the rows, and "auto" also tries the linear model at each C of LINEAR_C_GRID.
SMALL_DATA = 3_000
FOLDS = 5
LINEAR_C_GRID = (0.03, 0.1, 0.3, 1.0)


def candidates_for(params: TrainParams, *, search: bool = False, rows: int = 0) -> list[TrainParams]:
    """What to train, in order: the requested family (both for "auto", linear second; fastText only
    for "auto" on more than LARGE_TRAINING_SET `rows`), for "auto" on small data the linear model at
    the other C of LINEAR_C_GRID, then, with `search`, the fastText search space."""
    if params.family != "auto":
        families: tuple[str, ...] = (params.family,)
    elif rows > LARGE_TRAINING_SET:
        families = ("fasttext",)
    else:
        families = ("fasttext", "linear")
    if params.family == "auto" and rows:
        params = replace(params, epoch=max(MIN_EPOCHS, min(params.epoch, math.ceil(UPDATES / rows))))
    out = [replace(params, family=f) for f in families]
    if params.family == "auto" and 0 < rows <= SMALL_DATA:
        out += [replace(params, family="linear", c=c) for c in LINEAR_C_GRID if c != params.c]
    if search and "fasttext" in families:
        tried = out[0].fasttext_args()
        more = (replace(p, seed=params.seed, family="fasttext") for p in SEARCH_SPACE)
        out += [p for p in more if p.fasttext_args() != tried]
    return out


def fit_one(lines: list[str], params: TrainParams, *, max_chars: int = 2000) -> Model:
    """Train one candidate (family "fasttext" or "linear") on fastText-format lines."""
    if params.family == "linear":
        texts, labels = labelled_texts(lines)
        return train_linear(texts, labels, c=params.c, max_chars=max_chars)
    return train(lines, params, max_chars=max_chars)


def stratified_folds(lines: list[str], folds: int = FOLDS, seed: int = 0) -> list[list[str]]:
    """`lines` dealt into `folds` parts, each label spread evenly over them (a fixed shuffle first)."""
    by_label: dict[str, list[str]] = {}
    for line in lines:
        by_label.setdefault(line.split(" ", 1)[0], []).append(line)
    parts: list[list[str]] = [[] for _ in range(folds)]
    rng, i = random.Random(seed), 0
    for label in sorted(by_label):
        rows = by_label[label][:]
        rng.shuffle(rows)
        for row in rows:
            parts[i % folds].append(row)
            i += 1
    return parts


def cross_validated_macro_f1(lines: list[str], params: TrainParams, folds: int = FOLDS) -> float:
    """Mean validation macro-F1 of `params` over `folds` stratified folds of `lines`."""
    parts = stratified_folds(lines, folds, seed=params.seed)
    scores = []
    for k, held in enumerate(parts):
        rest = [line for j, part in enumerate(parts) if j != k for line in part]
        if held and rest:
            scores.append(validation_macro_f1(fit_one(rest, params), held))
    return sum(scores) / len(scores) if scores else 0.0


def search(
    train_lines: list[str],
    val_lines: list[str],
    candidates: list[TrainParams],
    budget_seconds: float,
    note: Progress,
    should_stop: ShouldStop | None = None,
) -> tuple[float, Model, TrainParams] | Literal["stopped"] | None:
    """Train each candidate in turn (the first two families and the linear C grid always; the
    fastText search space while the budget lasts) and return (validation macro-F1, model,
    parameters) of the best, "stopped", or None if all failed. On small data (SMALL_DATA) the
    score is the cross-validated macro-F1 over train + validation, and the model returned is the
    best candidate trained on train."""
    started = time.perf_counter()
    cross_validate = len(candidates) > 1 and len(train_lines) + len(val_lines) <= SMALL_DATA
    if cross_validate:
        note(0.0, f"small data: comparing candidates by {FOLDS}-fold cross-validation")
    best: tuple[float, Model | None, TrainParams] | None = None
    families_seen: set[str] = set()
    for i, params in enumerate(candidates):
        if should_stop and should_stop():
            note(i / len(candidates), "stopped on request")
            return "stopped"
        first_of_family = params.family not in families_seen
        families_seen.add(params.family)
        # The budget bounds fastText's search space; the linear model's C grid (small data) is cheap.
        if not first_of_family and params.family != "linear" and time.perf_counter() - started > budget_seconds:
            note(i / len(candidates), f"search budget of {budget_seconds:.0f}s used; keeping the best")
            break
        model: Model | None = None  # cross-validation: only the winner is trained on train, below
        try:
            if cross_validate:
                score = cross_validated_macro_f1(train_lines + val_lines, params)
            else:
                model = fit_one(train_lines, params)
                score = validation_macro_f1(model, val_lines) if val_lines else 0.0
        except (RuntimeError, ValueError) as exc:
            note((i + 1) / len(candidates), f"candidate {i + 1} failed: {exc}")
            continue
        note((i + 1) / len(candidates), f"candidate {i + 1}/{len(candidates)} {_describe(params)}: F1 {score:.3f}")
        if best is None or score > best[0]:
            best = (score, model, params)
    if best is None:
        return None
    score, model, params = best
    if model is None:
        try:
            model = fit_one(train_lines, params)
        except (RuntimeError, ValueError) as exc:
            note(1.0, f"the chosen candidate failed on the train split: {exc}")
            return None
    return score, model, params


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
    more data to learn from). Returns (model, parameters,
    temperature)."""
    found = search(train_lines, val_lines, candidates, budget_seconds, note, should_stop)
    if not isinstance(found, tuple):
        return found
    score, model, params = found
    note(0.9, f"kept {_describe(params)} (validation macro-F1 {score:.3f}); refitting on train + validation")
    val_texts, val_labels = labelled_texts(val_lines)
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
