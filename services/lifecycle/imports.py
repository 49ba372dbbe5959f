"""Registering a model trained outside Pulse (a BlazingText training job's `model.tar.gz`, a fastText
`.bin` from fastText's own trainer, a Pulse image job's artifact) as a version, ready for the gate.

- **Labels** are checked against Pulse's (negative, neutral, positive). A model with other labels,
  such as a numbered export (`__label__0/1/2`), needs a mapping (`0=negative,1=neutral,2=positive`):
  the labels are renamed inside the `.bin` (`fasttext.relabel`), so the model reads the same on
  every endpoint, BlazingText's included. Without one it is refused, its labels named.
- **Preprocessing** is recorded on the card (`pulse-v2`, `lowercase` or `none`) and applied whenever
  the version scores (`Endpoint.preprocessing`): a model trained on lower-cased raw text is sent
  lower-cased raw text, not Pulse's tokens.
- It is **evaluated on the gold set** with that preprocessing, and not calibrated (temperature 1:
  Pulse holds no validation data of the model's own). It is not deployed: `evaluate` and `promote`
  take it from there, gate included.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

from services.errors import ModelUnavailable
from services.lifecycle.deployment import current
from services.lifecycle.gold import load_gold
from services.lifecycle.registry import (
    FASTTEXT_FILE,
    ModelCard,
    find_model_file,
    load_model_file,
    new_version,
    register,
)
from services.model.evaluation import evaluate, summary
from services.model.fasttext import FASTTEXT_MAGIC, SentimentModel, check_model_file, relabel
from services.model.prediction import LABELS, PREFIX, PREPROCESSINGS, PULSE_PREPROCESSING, Model
from services.store.base import ObjectStore

GZIP_MAGIC = b"\x1f\x8b"
EXAMPLE_MAPPING = "0=negative,1=neutral,2=positive"


def parse_labels(spec: str) -> dict[str, str]:
    """`0=negative,1=neutral,2=positive` as a mapping; `ValueError` says what is wrong."""
    mapping: dict[str, str] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        source, sep, target = part.partition("=")
        source, target = source.strip().removeprefix(PREFIX), target.strip().removeprefix(PREFIX)
        if not sep or not source or not target:
            raise ValueError(f"--labels: {part!r} is not LABEL=PULSE_LABEL (for example {EXAMPLE_MAPPING})")
        if target not in LABELS:
            raise ValueError(f"--labels: {target!r} is not a Pulse label ({', '.join(LABELS)})")
        if source in mapping:
            raise ValueError(f"--labels: {source!r} is mapped twice")
        mapping[source] = target
    if not mapping:
        raise ValueError(f"--labels is empty (for example {EXAMPLE_MAPPING})")
    if len(set(mapping.values())) < len(mapping):
        raise ValueError("--labels: two of the model's labels map to the same Pulse label")
    return mapping


def import_model(
    store: ObjectStore,
    blob: bytes,
    *,
    source: str,
    by: str,
    labels: dict[str, str] | None = None,
    preprocessing: str = PULSE_PREPROCESSING,
    max_chars: int = 2000,
) -> ModelCard:
    """Register `blob` (a `model.tar.gz` or a bare fastText `.bin`) as a new version and return its
    card; `ModelUnavailable` says what is wrong with it and what to do."""
    if preprocessing not in PREPROCESSINGS:
        raise ValueError(f"--preprocessing must be one of {', '.join(PREPROCESSINGS)}, not {preprocessing!r}")
    with tempfile.TemporaryDirectory(prefix="pulse-import-") as tmp:
        found = _model_file(blob, Path(tmp), source)
        if found.name == FASTTEXT_FILE:
            found = _with_pulse_labels(found, labels, source)
        elif labels:
            raise ModelUnavailable(f"{source} is a Pulse linear model: its labels are Pulse's, give no --labels")
        model: Model = load_model_file(found, max_chars=max_chars)
        if preprocessing != PULSE_PREPROCESSING:
            if not isinstance(model, SentimentModel):
                raise ModelUnavailable(f"{source} is a Pulse linear model: it reads Pulse's preprocessing only")
            model = model.with_preprocessing(preprocessing)
        gold = load_gold(store)
        metrics = summary(evaluate(model.predict(gold.texts), gold.labels))
        live = current(store)
        now = datetime.now(UTC)
        mapped = f"; labels mapped {', '.join(f'{k}={v}' for k, v in labels.items())}" if labels else ""
        card = ModelCard(
            version=new_version(now),
            created_at=now.isoformat(timespec="seconds"),
            created_by=by,
            dataset=f"imported: {source}",
            metrics={**metrics, "gold_set": gold.fingerprint()},
            parent=live.version if live else None,
            trainer="imported",
            notes=f"imported from {source}{mapped}; preprocessing {preprocessing}; not calibrated (temperature 1)",
            preprocessing=preprocessing,
        )
        return register(store, model, card)


def _model_file(blob: bytes, folder: Path, source: str) -> Path:
    """The model file of a `model.tar.gz` (unpacked into `folder`) or of a bare `.bin`."""
    if blob[:4] == FASTTEXT_MAGIC.to_bytes(4, "little"):
        path = folder / FASTTEXT_FILE
        path.write_bytes(blob)
        check_model_file(path)
        return path
    if blob[:2] != GZIP_MAGIC:
        raise ModelUnavailable(f"{source} is neither a model.tar.gz nor a fastText .bin")
    unpacked = folder / "unpacked"
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            tar.extractall(unpacked, filter="data")  # refuses links and paths outside the folder
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ModelUnavailable(f"{source} is not a readable model.tar.gz ({type(exc).__name__})") from None
    found = find_model_file(unpacked)
    if found is None:  # fastText's trainer names its output as told: take the one .bin there is
        bins = [p for p in unpacked.rglob("*.bin") if p.is_file()]
        if len(bins) != 1:
            raise ModelUnavailable(f"{source} holds no model.bin or linear.npz (nor exactly one .bin)")
        found = bins[0].rename(unpacked / FASTTEXT_FILE)
    if found.name == FASTTEXT_FILE:
        check_model_file(found)
    return found


def _with_pulse_labels(path: Path, labels: dict[str, str] | None, source: str) -> Path:
    """The fastText file with Pulse's labels: as it is, or renamed by `labels`."""
    import fasttext

    try:
        own = [label.removeprefix(PREFIX) for label in fasttext.load_model(str(path)).get_labels()]
    except (ValueError, RuntimeError, MemoryError) as exc:
        raise ModelUnavailable(f"{source} is corrupt or not a fastText model") from exc
    if labels is None:
        foreign = [label for label in own if label not in LABELS]
        if foreign:
            raise ModelUnavailable(
                f"{source} predicts the labels {', '.join(own)}, and Pulse reads {', '.join(LABELS)}: "
                f"say which is which with --labels (for example --labels {EXAMPLE_MAPPING})"
            )
        return path
    unknown = sorted(set(labels) - set(own))
    unmapped = [label for label in own if label not in labels]
    if unknown or unmapped:
        said = f"--labels names {', '.join(unknown)}, which the model does not predict" if unknown else ""
        missed = f"--labels leaves {', '.join(unmapped)} unmapped" if unmapped else ""
        raise ModelUnavailable(f"{source} predicts {', '.join(own)}: {'; '.join(p for p in (said, missed) if p)}")
    renamed = path.with_name("relabelled.bin")
    relabel(path, renamed, labels)
    renamed.replace(path)
    return path
