"""The folders SageMaker gives a container, under one root (`/opt/ml` in the image; a temporary
folder in tests and in the local stand-in, which run the same entry points without Docker)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/opt/ml")
# What the training entry point writes beside the model file: the facts a registry needs that
# the file itself does not hold (the family, the calibration temperature, the preprocessing).
FACTS_FILE = "pulse-model.json"


@dataclass(frozen=True)
class Layout:
    root: Path = DEFAULT_ROOT

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"
