"""Building the services of one workspace from the settings (the single factory)."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from services.config import Settings
from services.endpoint import Endpoint, LocalEndpoint
from services.storage import ObjectStore, make_store


@dataclass(frozen=True)
class Workspace:
    """The store and endpoint that the settings point at."""

    settings: Settings
    store: ObjectStore
    endpoint: Endpoint


def model_cache_dir(store: ObjectStore) -> Path:
    """Where downloaded model artifacts are unpacked: one folder per store, outside the store."""
    tag = hashlib.sha256(store.describe().encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "pulse-models" / tag


def open_workspace(settings: Settings) -> Workspace:
    store = make_store(settings)
    endpoint = LocalEndpoint(store, model_cache_dir(store), max_chars=settings.max_text_chars)
    return Workspace(settings, store, endpoint)
