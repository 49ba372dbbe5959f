"""Training backends: the `Trainer` protocol and the local trainer (SageMaker's is
`services.aws.training`). A trainer turns a dataset version into a model file; everything around
it (datasets, registry, gate) is the same for every backend."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from services.errors import PulseError
from services.lifecycle.registry import model_file_name
from services.model.params import TrainParams
from services.model.pipeline import Progress, ShouldStop, candidates_for, fit_pipeline
from services.store.base import ObjectStore


@dataclass(frozen=True)
class TrainingRequest:
    """One training run: which dataset (store keys of its channels) and which hyperparameters."""

    job_name: str  # unique; also the SageMaker TrainingJobName (<= 63 chars, [a-zA-Z0-9-])
    dataset_version: str
    train_key: str  # store key of the train channel, fastText format ("__label__x tokens")
    validation_key: str  # store key of the validation channel
    params: TrainParams


@dataclass
class TrainingOutcome:
    """How a run ended. `model_bin` is a local file when status is "Completed"."""

    status: Literal["Completed", "Failed", "Stopped"]
    model_bin: Path | None = None
    failure_reason: str | None = None
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)
    # Set when the trainer calibrated on validation data the final model no longer holds out.
    temperature: float | None = None


class Trainer(Protocol):
    """Runs one training job to its end (blocking). Callers run it in a background job."""

    @property
    def name(self) -> str:
        """What a model card's `trainer` says."""
        ...

    def train(
        self,
        request: TrainingRequest,
        workdir: Path,
        *,
        progress: Progress | None = None,
        should_stop: ShouldStop | None = None,
    ) -> TrainingOutcome:
        """Train; write the model under `workdir`; never raise for a failed job (return Failed)."""
        ...


class LocalTrainer:
    """Trains in this process with the default pipeline (`services.model.pipeline`): fastText and,
    for family "auto", the linear model beside it, keeping the better on validation macro-F1 (the
    card names the family that won). With `search_seconds` > 0 it also tries fastText's
    `SEARCH_SPACE` within that budget."""

    name = "local"

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
