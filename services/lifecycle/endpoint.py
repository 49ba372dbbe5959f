"""Endpoints score texts with whatever model is live. The local one loads the deployed version
in-process and swaps to a new one when `deployments/current.json` changes, without a restart."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from services.errors import PulseError
from services.lifecycle.deployment import require_current
from services.lifecycle.registry import fetch_model
from services.model.prediction import Model, Prediction
from services.store.base import ObjectStore

log = logging.getLogger(__name__)


class Endpoint(Protocol):
    """Something that scores raw message texts."""

    def score(self, prepared: Sequence[str]) -> tuple[str, list[Prediction]]:
        """Predictions for texts already through `model.prepare` (as a BlazingText endpoint
        expects them), and the model version that made all of them."""
        ...

    def version(self) -> str: ...

    def preprocessing(self) -> str:
        """How the live model expects its texts prepared (`prediction.PREPROCESSINGS`)."""
        ...

    def refresh(self) -> None:
        """Look at the deployment pointer on the next call (after a promotion or rollback)."""
        ...


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
        self._refresh = threading.Lock()
        self._loaded: tuple[str, Model] | None = None
        self._checked_at = 0.0

    def _model(self) -> tuple[str, Model]:
        loaded = self._loaded
        if loaded is not None and time.monotonic() - self._checked_at < self.recheck_seconds:
            return loaded
        # One thread refreshes; the others keep serving the loaded model meanwhile (only the very
        # first load makes callers wait). The pointer read and model load hold no lock that
        # scoring needs.
        if loaded is not None and not self._refresh.acquire(blocking=False):
            return loaded
        if loaded is None:
            self._refresh.acquire()
        try:
            if self._loaded is not None and time.monotonic() - self._checked_at < self.recheck_seconds:
                return self._loaded  # refreshed by the thread we waited for
            try:
                version = require_current(self.store).version
                if self._loaded is None or self._loaded[0] != version:
                    model = fetch_model(self.store, version, self.cache_dir, max_chars=self.max_chars)
                    self._loaded = (version, model)
            except PulseError as exc:
                if self._loaded is None:
                    raise
                # A broken deploy must not take down a working endpoint: keep the loaded model,
                # say so, and try again at the next recheck.
                log.warning("keeping model %s: the deployed one cannot be loaded (%s)", self._loaded[0], exc)
            self._checked_at = time.monotonic()
            return self._loaded
        finally:
            self._refresh.release()

    def score(self, prepared: Sequence[str]) -> tuple[str, list[Prediction]]:
        version, model = self._model()
        return version, model.predict_prepared(prepared)

    def version(self) -> str:
        return self._model()[0]

    def preprocessing(self) -> str:
        return self._model()[1].preprocessing

    def refresh(self) -> None:
        self._checked_at = float("-inf")
