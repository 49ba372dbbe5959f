"""Training backends. A `Trainer` turns a dataset version into a fastText/BlazingText `model.bin`;
everything around it (datasets, registry, gate) is the same for every backend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from services.model.params import TrainParams

Progress = Callable[[float, str], None]  # (share done 0..1, log line)
ShouldStop = Callable[[], bool]


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

    name: str

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
