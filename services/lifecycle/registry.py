"""The model registry: `models/<version>/model.tar.gz` plus `card.json` describing where the model
came from and how good it is. The tarball holds `model.bin` for fastText (as SageMaker packs a
BlazingText model) or `linear.npz` for the linear family."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import tarfile
import tempfile
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.errors import AlreadyExists, KeyNotFound, ModelUnavailable
from services.model.fasttext import SentimentModel
from services.model.linear import ARTIFACT_NAME as LINEAR_FILE
from services.model.linear import LinearModel
from services.model.prediction import PREPROCESSINGS, PULSE_PREPROCESSING, Model
from services.store import keys
from services.store.base import ObjectStore, validate_key

ARTIFACT = "model.tar.gz"
FASTTEXT_FILE = "model.bin"
MODEL_FILES = {"fasttext": FASTTEXT_FILE, "linear": LINEAR_FILE}


def model_file_name(model: Model) -> str:
    return MODEL_FILES[model.family]


def load_model_file(path: Path, *, max_chars: int = 2000, temperature: float = 1.0) -> Model:
    """Load a model file of either family, by its name (`model.bin` or `linear.npz`)."""
    if path.name == LINEAR_FILE:
        return LinearModel.load(path, max_chars=max_chars, temperature=temperature)
    return SentimentModel.load(path, max_chars=max_chars, temperature=temperature)


def model_cache_dir(store: ObjectStore) -> Path:
    """Where downloaded model artifacts are unpacked: one folder per store, outside the store."""
    tag = hashlib.sha256(store.describe().encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "pulse-models" / tag


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
    trainer: str = "local"
    temperature: float = 1.0  # confidence calibration fitted on validation data
    family: str = "fasttext"  # "fasttext" (model.bin, BlazingText-compatible) or "linear"
    notes: str = ""
    # How the model expects texts prepared (`prediction.PREPROCESSINGS`): Pulse's rules, unless it
    # was trained elsewhere on other text (`services.cli import-model --preprocessing`).
    preprocessing: str = PULSE_PREPROCESSING


def new_version(now: datetime | None = None) -> str:
    """A sortable, unique version id such as `m20261123-183000-1a2b`."""
    now = now or datetime.now(UTC)
    return f"m{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _key(version: str, name: str) -> str:
    return validate_key(keys.model_key(version, name))


def register(store: ObjectStore, model: Model, card: ModelCard) -> ModelCard:
    """Store the artifact and card of a new version; a version is never overwritten. The card's
    `family` is the model's."""
    card = replace(card, family=model.family)
    name = model_file_name(model)
    with tempfile.TemporaryDirectory(prefix="pulse-reg-") as tmp:
        file_path = Path(tmp) / name
        model.save(file_path)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(file_path, arcname=name)
    try:
        store.put(_key(card.version, ARTIFACT), buf.getvalue(), if_absent=True)
    except AlreadyExists:
        raise AlreadyExists(f"model version {card.version} already exists") from None
    store.put(_key(card.version, "card.json"), json.dumps(asdict(card), indent=2).encode())
    return card


_CARD_KEYS = {f.name: f for f in fields(ModelCard)}
_REQUIRED_KEYS = sorted(n for n, f in _CARD_KEYS.items() if f.default is MISSING and f.default_factory is MISSING)


def load_card(store: ObjectStore, version: str) -> ModelCard:
    """A version's card; `ModelUnavailable` naming the file and what is wrong with it when it is
    missing, not JSON, or has keys missing or unknown (a card written by hand or by another tool)."""
    key = _key(version, "card.json")
    try:
        body = store.get(key)
    except KeyNotFound:
        raise ModelUnavailable(f"model version {version} has no card in the registry ({key})") from None
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelUnavailable(f"model card {key} is not valid JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(data, dict):
        raise ModelUnavailable(f"model card {key} is not a JSON object")
    missing = [k for k in _REQUIRED_KEYS if k not in data]
    if missing:
        raise ModelUnavailable(
            f"model card {key} has no {', '.join(missing)} (every card names {', '.join(_REQUIRED_KEYS)})"
        )
    unknown = sorted(str(k) for k in data if k not in _CARD_KEYS)
    if unknown:
        raise ModelUnavailable(
            f"model card {key} has unknown key(s) {', '.join(unknown)}; a card's keys are {', '.join(_CARD_KEYS)}"
        )
    if str(data["version"]) != version:
        raise ModelUnavailable(f"model card {key} names version {data['version']!r}, not {version!r}")
    if data.get("family", "fasttext") not in MODEL_FILES:
        raise ModelUnavailable(
            f"model card {key} has family {data.get('family')!r}; Pulse serves {', '.join(MODEL_FILES)}"
        )
    if data.get("preprocessing", PULSE_PREPROCESSING) not in PREPROCESSINGS:
        raise ModelUnavailable(
            f"model card {key} has preprocessing {data.get('preprocessing')!r}; one of {', '.join(PREPROCESSINGS)}"
        )
    return ModelCard(**data)


def list_versions(store: ObjectStore) -> list[str]:
    """Registered versions, oldest first."""
    return sorted({k.split("/")[1] for k in store.list(keys.MODELS) if k.endswith("/card.json")})


def find_model_file(folder: Path) -> Path | None:
    """The model file (`model.bin` or `linear.npz`) in `folder`, if it holds one."""
    return next((folder / n for n in MODEL_FILES.values() if (folder / n).is_file()), None)


def fetch_model(store: ObjectStore, version: str, cache_dir: Path, *, max_chars: int = 2000) -> Model:
    """Download (once) and load a registered version; a missing or corrupt artifact raises
    `ModelUnavailable` with what is wrong."""
    folder = cache_dir / version
    target = find_model_file(folder)
    if target is not None:
        model = load_model_file(target, max_chars=max_chars)
    else:
        try:
            blob = store.get(_key(version, ARTIFACT))
        except KeyNotFound:
            raise ModelUnavailable(f"model version {version}: artifact {ARTIFACT} is missing") from None
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".x-") as tmp:
            try:
                with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
                    tar.extractall(tmp, filter="data")  # refuses links and paths outside tmp
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise ModelUnavailable(f"model version {version}: {ARTIFACT} is corrupt ({exc})") from exc
            found = find_model_file(Path(tmp))
            if found is None:
                raise ModelUnavailable(f"model version {version}: {ARTIFACT} holds no model.bin or {LINEAR_FILE}")
            model = load_model_file(found, max_chars=max_chars)  # a bad file never reaches the cache
            found.replace(folder / found.name)
    card = load_card(store, version)
    model = model.with_temperature(card.temperature)
    if card.preprocessing != PULSE_PREPROCESSING and isinstance(model, SentimentModel):
        model = model.with_preprocessing(card.preprocessing)
    return model
