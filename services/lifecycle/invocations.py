"""What `/invocations` takes and gives, as SageMaker's BlazingText container does: the request's
limits, reading a request (`parse_request`), and the answer (`blazingtext_output`) with the
calibration undone (`Temperatures`). Errors are `ApiError`s that never quote a text."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import tornado.httpserver
import tornado.web

from services.errors import PulseError
from services.lifecycle.registry import load_card
from services.model.prediction import PREFIX, Prediction, apply_temperature
from services.store.base import ObjectStore

MAX_BODY_BYTES = 5 * 1024 * 1024


MAX_INSTANCES = 1000


# One instance at most this long (a check-in is cut to PULSE_MAX_TEXT_CHARS, 2,000 by default,
# before it is prepared): the model scores one instance in one call, which nothing can split.
MAX_INSTANCE_CHARS = 20_000


DEFAULT_K = 1  # as BlazingText


MAX_K = 3


JSON_TYPE = "application/json"


class ApiError(tornado.web.HTTPError):
    """A request the server refuses, with the status and the message the client gets (in the
    body, not in the status line)."""

    def __init__(self, status: int, message: str, *, aws_type: str | None = None) -> None:
        super().__init__(status)
        self.message = message
        self.aws_type = aws_type  # the SageMaker runtime's own error, on the boto3 path


def parse_request(body: bytes, content_type: str | None) -> tuple[list[str], int]:
    """The instances and k of a BlazingText JSON request; `ApiError` says what is wrong.
    Messages never quote the texts."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != JSON_TYPE:
        raise ApiError(415, f"Content-Type must be {JSON_TYPE}")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, 'the body must be a JSON object: {"instances": [...]}')
    instances = data.get("instances")
    if instances is None:
        raise ApiError(400, 'no "instances": send {"instances": ["preprocessed text", ...]}')
    if not isinstance(instances, list):
        raise ApiError(400, '"instances" must be a list of strings')
    if not instances:
        raise ApiError(400, '"instances" is empty')
    if len(instances) > MAX_INSTANCES:
        raise ApiError(400, f"too many instances: {len(instances):,} (at most {MAX_INSTANCES:,} per request)")
    for i, text in enumerate(instances):
        if not isinstance(text, str):
            raise ApiError(400, f"instances[{i}] is not a string (got {_json_type(text)})")
        if len(text) > MAX_INSTANCE_CHARS:
            raise ApiError(
                413, f"instances[{i}] has {len(text):,} characters: at most {MAX_INSTANCE_CHARS:,} per instance"
            )
        if "\n" in text:  # fastText scores one line; a preprocessed text never has a line break
            raise ApiError(400, f"instances[{i}] contains a line break: send each text as one line of tokens")
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ApiError(400, f"instances[{i}] is not valid Unicode (lone surrogate)") from None
    configuration = data.get("configuration", {})
    if not isinstance(configuration, dict):
        raise ApiError(400, '"configuration" must be an object such as {"k": 3}')
    k = configuration.get("k", DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ApiError(400, f'"configuration.k" must be an integer from 1 to {MAX_K}')
    return instances, k


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", int: "number", float: "number", bool: "boolean"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def blazingtext_output(
    predictions: Sequence[Prediction], k: int, temperature: float = 1.0
) -> list[dict[str, list[Any]]]:
    """BlazingText's answer: the k most likely labels of each prediction, most likely first, with
    the `temperature` the predictions were calibrated with undone (the ranking does not change).
    An empty text scores 0 for every label (the model saw nothing); its label still comes first."""
    out: list[dict[str, list[Any]]] = []
    for p in predictions:
        probs = p.probs
        if temperature != 1.0 and any(probs.values()):
            probs = apply_temperature(probs, 1.0 / temperature)  # p ** T, renormalised: the inverse
        ranked = sorted(probs.items(), key=lambda item: (-item[1], item[0] != p.label))[:k]
        out.append({"label": [PREFIX + name for name, _ in ranked], "prob": [prob for _, prob in ranked]})
    return out


class Temperatures:
    """The calibration temperature of each model version, from its card (read once per version).
    Without a store, or for a version without a readable card, 1.0: probabilities left as they are."""

    def __init__(self, store: ObjectStore | None) -> None:
        self.store = store
        self._known: dict[str, float] = {}

    def __call__(self, version: str) -> float:
        if version not in self._known:
            value = 1.0
            if self.store is not None:
                try:
                    value = float(load_card(self.store, version).temperature)
                except (PulseError, TypeError, ValueError):
                    value = 1.0
            self._known[version] = value if math.isfinite(value) and value > 0 else 1.0
        return self._known[version]
