"""`python -m services.cli benchmark`: the default training pipeline on one labelled file,
evaluated on another, as one JSON object."""

from __future__ import annotations

import random
import time
from typing import Any

from services.model.evaluation import evaluate, silent_errors
from services.model.fasttext import fasttext_line
from services.model.params import TrainParams
from services.model.pipeline import candidates_for, fit_pipeline
from services.model.prediction import PREFIX


def run_benchmark(
    train_rows: list[tuple[str, str]],
    test_rows: list[tuple[str, str]],
    *,
    search_seconds: float = 0.0,
    seed: int = 0,
    family: str = "auto",
    threshold: float = 0.6,
) -> dict[str, Any]:
    """Train as `run_training` does (a validation slice for the search and calibration, then a
    refit on everything) and report on the test rows: macro-F1, neutral recall, accuracy, calibration
    error, silent errors and the share sent to review at `threshold`, and timings."""
    started = time.perf_counter()
    lines = [fasttext_line(label, text) for text, label in train_rows]
    lines = [line for line in lines if line.split(" ", 1)[1:] != [""]]
    random.Random(seed).shuffle(lines)
    n_val = max(1, len(lines) // 5)
    val, fit = lines[:n_val], lines[n_val:]
    candidates = candidates_for(TrainParams(seed=seed, family=family), search=search_seconds > 0, rows=len(fit))
    fitted = fit_pipeline(fit, val, candidates, search_seconds, lambda _s, _l: None)
    if not isinstance(fitted, tuple):
        raise RuntimeError("training failed for every candidate")
    model, params, _ = fitted
    train_seconds = time.perf_counter() - started
    predictions = model.predict([t for t, _ in test_rows])
    truth = [y for _, y in test_rows]
    ev = evaluate(predictions, truth)
    silent, review = silent_errors(predictions, truth, threshold)
    return {
        "macro_f1": round(ev.macro_f1, 4),
        "neutral_recall": round(ev.per_class.get("neutral", {}).get("recall", 0.0), 4),
        "silent_errors": round(silent, 4),  # wrong and confident enough to skip review at `threshold`
        "review_share": round(review, 4),
        "accuracy": round(ev.accuracy, 4),
        "ece": round(ev.ece, 4),
        "train_seconds": round(train_seconds, 2),
        "n_train": len(train_rows),
        "n_test": len(test_rows),
        "family": model.family,
        "params": {k: v for k, v in params.__dict__.items()},
        "temperature": model.temperature,
        "label_prefix": PREFIX,
    }
