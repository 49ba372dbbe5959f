"""`train`: a SageMaker training job of the Pulse image, the default pipeline of the local trainer.

Reads the hyperparameters SageMaker writes (`input/config/hyperparameters.json`, every value a
string) and the `train` channel (with `validation` when given, else a stratified fifth of train),
both fastText-format lines (`__label__x tokens`) in one or more files; trains the candidates of
`candidates_for` (family "auto": fastText and the linear model, the better on validation macro-F1),
calibrates and refits as `LocalTrainer` does, and writes the model file (`model.bin` or
`linear.npz`) and `pulse-model.json` into the model folder, which SageMaker packs as
`model.tar.gz`. A job that cannot train writes why to `output/failure` (SageMaker's
FailureReason) and exits 1. SIGTERM (StopTrainingJob) stops between two candidates.

The log (CloudWatch's) names steps and figures, never a line of the data.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import fields, replace
from pathlib import Path
from types import FrameType
from typing import Any

from services.container.layout import FACTS_FILE, Layout
from services.errors import TrainingJobFailed
from services.lifecycle.datasets import split_lines
from services.lifecycle.registry import model_file_name
from services.model.params import TrainParams, validate_params
from services.model.pipeline import candidates_for, fit_pipeline
from services.model.prediction import LABELS
from services.model.text import PREPROCESSING

# Hyperparameters beside TrainParams' own fields.
SEARCH_SECONDS = "search_seconds"
# What SageMaker or its SDK add to a job's hyperparameters on their own.
_IGNORED_PREFIXES = ("sagemaker_", "_")


def read_params(path: Path) -> tuple[TrainParams, float]:
    """TrainParams and the search budget from SageMaker's hyperparameters file (all strings);
    `TrainingJobFailed` names an unknown or malformed one."""
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise TrainingJobFailed(f"{path} is not valid JSON") from None
        if not isinstance(raw, dict):
            raise TrainingJobFailed(f"{path} is not a JSON object")
    known = {f.name: type(f.default) for f in fields(TrainParams)}
    values: dict[str, Any] = {}
    search = 0.0
    for name, value in raw.items():
        if name.startswith(_IGNORED_PREFIXES):
            continue
        text = str(value).strip()
        if name == SEARCH_SECONDS:
            search = _cast(name, text, float)
        elif name in known:
            values[name] = _cast(name, text, known[name])
        else:
            raise TrainingJobFailed(f"unknown hyperparameter {name!r}; known: {', '.join([*known, SEARCH_SECONDS])}")
    try:
        params = validate_params(replace(TrainParams(), **values))
    except ValueError as exc:
        raise TrainingJobFailed(str(exc)) from None
    if search < 0:
        raise TrainingJobFailed(f"{SEARCH_SECONDS} must be 0 or more")
    return params, search


def _cast(name: str, text: str, kind: type) -> Any:
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        return kind(text)
    except ValueError:
        raise TrainingJobFailed(f"hyperparameter {name}={text!r} is not a valid {kind.__name__}") from None


def read_channel(folder: Path) -> list[str]:
    """The lines of every file in a channel folder (SageMaker copies an S3 prefix's objects there),
    in name order; `TrainingJobFailed` when the folder is missing or holds no line."""
    if not folder.is_dir():
        raise TrainingJobFailed(f"no {folder.name} channel: {folder} does not exist")
    lines: list[str] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            lines.extend(line for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        except UnicodeDecodeError:
            raise TrainingJobFailed(f"{path.relative_to(folder.parent)} is not UTF-8 text") from None
    if not lines:
        raise TrainingJobFailed(f"the {folder.name} channel holds no line")
    return lines


def train(layout: Layout, *, say: Any = print, should_stop: Any = None) -> str:
    """Run one training job in `layout`; returns "Completed" or "Stopped", raises `TrainingJobFailed`."""
    params, search = read_params(layout.hyperparameters)
    train_lines = read_channel(layout.channel("train"))
    if layout.channel("validation").is_dir():
        val_lines = read_channel(layout.channel("validation"))
    else:
        train_lines, val_lines = split_lines(train_lines, seed=params.seed, share=0.2)
        if not train_lines or not val_lines:
            raise TrainingJobFailed(
                "too few labelled lines to hold a fifth out for validation; add a validation channel"
            )
    say(f"training on {len(train_lines):,} lines, validating on {len(val_lines):,} (family {params.family})")
    started = time.perf_counter()
    candidates = candidates_for(params, search=search > 0, rows=len(train_lines))
    fitted = fit_pipeline(train_lines, val_lines, candidates, search, lambda _share, line: say(line), should_stop)
    if fitted == "stopped":
        say("stopped")
        return "Stopped"
    if fitted is None:
        raise TrainingJobFailed("every training attempt failed (see the log)")
    model, used, temperature = fitted
    layout.model_dir.mkdir(parents=True, exist_ok=True)
    model.save(layout.model_dir / model_file_name(model))
    facts = {
        "family": model.family,
        "temperature": temperature,
        "params": used.used_by(model.family),
        "labels": list(LABELS),
        "preprocessing": f"pulse-v{PREPROCESSING}",
        "training_seconds": round(time.perf_counter() - started, 2),
    }
    (layout.model_dir / FACTS_FILE).write_text(json.dumps(facts, indent=2), encoding="utf-8")
    say(f"wrote {model_file_name(model)} ({model.family}, temperature {temperature:.3f})")
    return "Completed"


def main(root: Path) -> int:
    """The `train` entry point: exit 0 when the model is written or the job was stopped, 1 with
    `output/failure` written when it cannot train."""
    layout = Layout(root)
    stop = [False]

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, on_term)
    try:
        train(layout, say=lambda line: print(line, flush=True), should_stop=lambda: stop[0])
    except TrainingJobFailed as exc:
        return _fail(layout, str(exc))
    except Exception as exc:  # noqa: BLE001 (the job must end with a reason, not a bare traceback)
        # The message may quote a line of the data: name the error's type only.
        return _fail(layout, f"internal error ({type(exc).__name__}) while training")
    return 0


def _fail(layout: Layout, reason: str) -> int:
    layout.failure.parent.mkdir(parents=True, exist_ok=True)
    layout.failure.write_text(reason, encoding="utf-8")
    print(f"failed: {reason}", file=sys.stderr, flush=True)
    return 1
