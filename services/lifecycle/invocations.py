"""What `/invocations` takes and gives, as SageMaker's BlazingText container does: the request's
limits, reading a request (`parse_request`), and the answer (`blazingtext_output`, written by
`render` in the type the client accepts) with the calibration undone (`Temperatures`). Errors are
`ApiError`s that never quote a text.

Two request types, as BlazingText takes them:
- `application/json`: `{"instances": ["text", ...], "configuration": {"k": 3}}`, answered by one JSON
  array `[{"label": [...], "prob": [...]}, ...]`;
- `application/jsonlines` (what Batch Transform sends and expects): one `{"source": "text"}` per line,
  optionally with its own `"k"`, answered by one `{"label": [...], "prob": [...]}` per line, in order.
The answer is in the type `Accept` names when it names one of the two; any other `Accept` gets the
request's own type, as BlazingText ignores what it cannot give.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import tornado.httpserver
import tornado.web

from services.errors import PulseError
from services.lifecycle.registry import load_card
from services.model.prediction import PREFIX, Prediction, apply_temperature
from services.store.base import ObjectStore

# SageMaker's real-time limit is 6 MB a request; Batch Transform tells the container its own
# MaxPayloadInMB (up to 100) in SAGEMAKER_MAX_PAYLOAD_IN_MB.
DEFAULT_MAX_PAYLOAD_MB = 6
MAX_BODY_BYTES = DEFAULT_MAX_PAYLOAD_MB * 1024 * 1024


def max_body_bytes(environ: Any = None) -> int:
    """The largest body a request may have: SAGEMAKER_MAX_PAYLOAD_IN_MB when it is set (as Batch
    Transform sets it), else SageMaker's real-time 6 MB."""
    raw = (os.environ if environ is None else environ).get("SAGEMAKER_MAX_PAYLOAD_IN_MB", "").strip()
    if not raw:
        return MAX_BODY_BYTES
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise PulseError(f"SAGEMAKER_MAX_PAYLOAD_IN_MB={raw!r} is not a whole number of MB from 1 to 100")
    return int(raw) * 1024 * 1024


# Instances of one JSON request (a jsonlines body is bounded by its size only: Batch Transform
# packs as many records into one request as MaxPayloadInMB allows).
MAX_INSTANCES = 1000


# One instance at most this long (a check-in is cut to PULSE_MAX_TEXT_CHARS, 2,000 by default,
# before it is prepared): the model scores one instance in one call, which nothing can split.
MAX_INSTANCE_CHARS = 20_000


DEFAULT_K = 1  # as BlazingText


MAX_K = 3


JSON_TYPE = "application/json"
JSONLINES_TYPE = "application/jsonlines"
MEDIA_TYPES = (JSON_TYPE, JSONLINES_TYPE)


class ApiError(tornado.web.HTTPError):
    """A request the server refuses, with the status and the message the client gets (in the
    body, not in the status line)."""

    def __init__(self, status: int, message: str, *, aws_type: str | None = None) -> None:
        super().__init__(status)
        self.message = message
        self.aws_type = aws_type  # the SageMaker runtime's own error, on the boto3 path


@dataclass(frozen=True)
class Request:
    """A parsed `/invocations` request: the texts, the k of each, and the type it came in."""

    instances: list[str]
    k: list[int]
    media: str


def parse_request(body: bytes, content_type: str | None) -> Request:
    """The instances and k of a BlazingText JSON or jsonlines request; `ApiError` says what is
    wrong. Messages never quote the texts."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == JSONLINES_TYPE:
        return _parse_jsonlines(body)
    if media != JSON_TYPE:
        raise ApiError(415, f"Content-Type must be {JSON_TYPE} or {JSONLINES_TYPE}")
    data = _json(body, "the body")
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
        _check_text(text, f"instances[{i}]")
    configuration = data.get("configuration", {})
    if not isinstance(configuration, dict):
        raise ApiError(400, '"configuration" must be an object such as {"k": 3}')
    k = _check_k(configuration.get("k", DEFAULT_K), '"configuration.k"')
    return Request(instances, [k] * len(instances), JSON_TYPE)


def _parse_jsonlines(body: bytes) -> Request:
    """One `{"source": "text"}` (and optionally `"k"`) per line; blank lines are skipped, as Batch
    Transform's line splitting may leave one at the end."""
    instances: list[str] = []
    ks: list[int] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        record = _json(line, f"line {number}")
        if not isinstance(record, dict) or "source" not in record:
            raise ApiError(400, f'line {number} is not a JSON object with a "source": send {{"source": "text"}}')
        _check_text(record["source"], f"line {number}'s source")
        instances.append(record["source"])
        ks.append(_check_k(record.get("k", DEFAULT_K), f'line {number}\'s "k"'))
    if not instances:
        raise ApiError(400, 'the body has no line: send one {"source": "text"} per line')
    return Request(instances, ks, JSONLINES_TYPE)


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, f"{what} is not valid JSON") from None


def _check_text(text: Any, where: str) -> None:
    if not isinstance(text, str):
        raise ApiError(400, f"{where} is not a string (got {_json_type(text)})")
    if len(text) > MAX_INSTANCE_CHARS:
        raise ApiError(413, f"{where} has {len(text):,} characters: at most {MAX_INSTANCE_CHARS:,} per instance")
    if "\n" in text:  # fastText scores one line; a preprocessed text never has a line break
        raise ApiError(400, f"{where} contains a line break: send each text as one line of tokens")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, f"{where} is not valid Unicode (lone surrogate)") from None


def _check_k(k: Any, where: str) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ApiError(400, f"{where} must be an integer from 1 to {MAX_K}")
    return k


def answer_type(accept: str | None, request_media: str) -> str:
    """The type of the answer: the first of JSON and jsonlines that `Accept` names (in the order
    given), else the request's own (`*/*`, a missing Accept, or one naming neither)."""
    for part in (accept or "").split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in MEDIA_TYPES:
            return media
    return request_media


def render(predictions: Sequence[Prediction], request: Request, media: str, temperature: float = 1.0) -> bytes:
    """The answer's body in `media`: one JSON array, or one JSON object per line."""
    if len(set(request.k)) <= 1:
        rows = blazingtext_output(predictions, request.k[0] if request.k else DEFAULT_K, temperature)
    else:
        rows = [blazingtext_output([p], k, temperature)[0] for p, k in zip(predictions, request.k, strict=True)]
    if media == JSONLINES_TYPE:
        return b"".join(json.dumps(row, separators=(",", ":")).encode() + b"\n" for row in rows)
    return json.dumps(rows, separators=(",", ":")).encode()


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
