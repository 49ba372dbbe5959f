"""`serve`: a SageMaker endpoint (or Batch Transform) container of the Pulse image.

Loads the model SageMaker unpacked into the model folder (`model.bin` of either trainer, BlazingText's
included, or `linear.npz`) and answers the local model server's routes (`services.lifecycle.serve`):
`GET /ping`, `POST /invocations` in BlazingText's JSON or in jsonlines, `Accept` honoured, bodies up
to SAGEMAKER_MAX_PAYLOAD_IN_MB (6 MB unless Batch Transform sets it). It listens on 0.0.0.0 and on
port 8080 (SAGEMAKER_BIND_TO_PORT when SageMaker sets one). Probabilities are the model's own,
uncalibrated, as BlazingText's: the client applies the temperature on the version's card.

A folder without a loadable model still starts, so that `/ping` can say why (503 with the reason):
SageMaker then reports the endpoint failed with the container's log, rather than a silent crash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from services.container.layout import FACTS_FILE, Layout
from services.errors import ModelUnavailable, PulseError
from services.lifecycle.invocations import max_body_bytes
from services.lifecycle.registry import find_model_file, load_model_file
from services.lifecycle.serve import make_app, serve_forever
from services.model.linear import ARTIFACT_NAME as LINEAR_FILE
from services.model.prediction import Model, Prediction

log = logging.getLogger(__name__)

DEFAULT_PORT = 8080


class FolderEndpoint:
    """The model in a folder, loaded once (a SageMaker container serves one model for its life)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._model: Model | None = None
        self._version = ""
        self.problem = ""
        try:
            self._model, self._version = _load(folder)
        except PulseError as exc:
            self.problem = str(exc)

    def version(self) -> str:
        if self._model is None:
            raise ModelUnavailable(self.problem)
        return self._version

    def score(self, prepared: Sequence[str]) -> tuple[str, list[Prediction]]:
        if self._model is None:
            raise ModelUnavailable(self.problem)
        return self._version, self._model.predict_prepared(prepared)

    def refresh(self) -> None:
        """Nothing to do: a container's model never changes (SageMaker starts a new one)."""

    def preprocessing(self) -> str:
        """The model's own (a container is sent texts already prepared for it)."""
        return self._model.preprocessing if self._model is not None else "pulse-v2"


def _load(folder: Path) -> tuple[Model, str]:
    found = find_model_file(folder)
    if found is None:
        raise ModelUnavailable(f"{folder} holds no model.bin or {LINEAR_FILE}")
    try:
        model = load_model_file(found)  # temperature 1: the model's own probabilities
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"{found.name} in {folder} cannot be loaded ({type(exc).__name__})") from None
    return model, _version_of(found)


def _version_of(path: Path) -> str:
    """The version a model file names in `pulse-model.json`, else a digest of the file."""
    facts = path.parent / FACTS_FILE
    if facts.is_file():
        try:
            named = json.loads(facts.read_text(encoding="utf-8")).get("version")
        except (ValueError, UnicodeDecodeError, AttributeError):
            named = None
        if isinstance(named, str) and named:
            return named
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"sha256-{digest.hexdigest()[:12]}"


def port_from_env(environ: dict[str, str] | None = None) -> int:
    raw = (os.environ if environ is None else environ).get("SAGEMAKER_BIND_TO_PORT", "").strip()
    if not raw:
        return DEFAULT_PORT
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise PulseError(f"SAGEMAKER_BIND_TO_PORT={raw!r} is not a port number")
    return int(raw)


def main(root: Path, *, host: str = "0.0.0.0", port: int | None = None) -> int:  # noqa: S104 (SageMaker's contract)
    """The `serve` entry point: serve the model folder until SIGTERM."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    endpoint = FolderEndpoint(Layout(root).model_dir)
    if endpoint.problem:
        log.error("no model to serve: %s (/ping answers 503)", endpoint.problem)
    else:
        log.info("serving model %s from %s", endpoint.version(), endpoint.folder)
    app = make_app(endpoint, max_body=max_body_bytes())
    serve_forever(app, host, port if port is not None else port_from_env())
    return 0
