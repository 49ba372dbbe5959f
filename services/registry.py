"""The model registry: `models/<version>/model.tar.gz` (a `model.bin`, as SageMaker packs it)
plus `card.json` describing where the model came from and how good it is."""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.errors import AlreadyExists, KeyNotFound, ModelUnavailable
from services.model import SentimentModel, check_model_file
from services.storage import ObjectStore, validate_key

ARTIFACT = "model.tar.gz"


@dataclass(frozen=True)
class ModelCard:
    """Where a model version came from and how it scored."""

    version: str
    created_at: str
    created_by: str
    dataset: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    training_seconds: float = 0.0
    trainer: str = "local-fasttext"
    temperature: float = 1.0  # confidence calibration fitted on validation data
    notes: str = ""


def new_version(now: datetime | None = None) -> str:
    """A sortable, unique version id such as `m20261123-183000-1a2b`."""
    now = now or datetime.now(UTC)
    return f"m{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _key(version: str, name: str) -> str:
    return validate_key(f"models/{version}/{name}")


def register(store: ObjectStore, model: SentimentModel, card: ModelCard) -> ModelCard:
    """Store the artifact and card of a new version; a version is never overwritten."""
    with tempfile.TemporaryDirectory(prefix="pulse-reg-") as tmp:
        bin_path = Path(tmp) / "model.bin"
        model.save(bin_path)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(bin_path, arcname="model.bin")
    try:
        store.put(_key(card.version, ARTIFACT), buf.getvalue(), if_absent=True)
    except AlreadyExists:
        raise AlreadyExists(f"model version {card.version} already exists") from None
    store.put(_key(card.version, "card.json"), json.dumps(asdict(card), indent=2).encode())
    return card


def load_card(store: ObjectStore, version: str) -> ModelCard:
    try:
        data = json.loads(store.get(_key(version, "card.json")))
    except KeyNotFound:
        raise ModelUnavailable(f"model version {version} has no card in the registry") from None
    return ModelCard(**data)


def list_versions(store: ObjectStore) -> list[str]:
    """Registered versions, oldest first."""
    return sorted({k.split("/")[1] for k in store.list("models/") if k.endswith("/card.json")})


def fetch_model(store: ObjectStore, version: str, cache_dir: Path, *, max_chars: int = 2000) -> SentimentModel:
    """Download (once) and load a registered version; a missing or corrupt artifact raises
    `ModelUnavailable` with what is wrong."""
    target = cache_dir / version / "model.bin"
    if not target.is_file():
        try:
            blob = store.get(_key(version, ARTIFACT))
        except KeyNotFound:
            raise ModelUnavailable(f"model version {version}: artifact {ARTIFACT} is missing") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".x-") as tmp:
            try:
                with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
                    tar.extractall(tmp, filter="data")  # refuses links and paths outside tmp
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise ModelUnavailable(f"model version {version}: {ARTIFACT} is corrupt ({exc})") from exc
            found = Path(tmp) / "model.bin"
            if not found.is_file():
                raise ModelUnavailable(f"model version {version}: {ARTIFACT} holds no model.bin")
            check_model_file(found)  # a bad file never reaches the cache
            found.replace(target)
    return SentimentModel.load(target, max_chars=max_chars, temperature=load_card(store, version).temperature)
