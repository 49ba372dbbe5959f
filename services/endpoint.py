"""Endpoints score texts with whatever model is live. The local one loads the deployed version
in-process and swaps to a new one when `deployments/current.json` changes, without a restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from services.deployment import require_current
from services.model import Prediction, SentimentModel
from services.registry import fetch_model
from services.storage import ObjectStore


class Endpoint(Protocol):
    """Something that scores raw message texts."""

    def score(self, prepared: Sequence[str]) -> tuple[str, list[Prediction]]:
        """Predictions for texts already through `model.prepare` (as a BlazingText endpoint
        expects them), and the model version that made all of them."""
        ...

    def version(self) -> str: ...


class LocalEndpoint:
    """The deployed model, in this process. Checks the deployment pointer at most every
    `recheck_seconds`; requests in flight keep the model they started with."""

    def __init__(
        self, store: ObjectStore, cache_dir: Path, *, max_chars: int = 2000, recheck_seconds: float = 2.0
    ) -> None:
        self.store = store
        self.cache_dir = cache_dir
        self.max_chars = max_chars
        self.recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._loaded: tuple[str, SentimentModel] | None = None
        self._checked_at = 0.0

    def _model(self) -> tuple[str, SentimentModel]:
        with self._lock:
            now = time.monotonic()
            if self._loaded is None or now - self._checked_at >= self.recheck_seconds:
                version = require_current(self.store).version
                if self._loaded is None or self._loaded[0] != version:
                    model = fetch_model(self.store, version, self.cache_dir, max_chars=self.max_chars)
                    self._loaded = (version, model)
                self._checked_at = now
            return self._loaded

    def score(self, prepared: Sequence[str]) -> tuple[str, list[Prediction]]:
        version, model = self._model()
        return version, model.predict_prepared(prepared)

    def version(self) -> str:
        return self._model()[0]
