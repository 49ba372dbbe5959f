"""The local model server: the deployed model behind the SageMaker inference-container contract,
so that client code written for a SageMaker BlazingText endpoint talks to it unchanged.

- `GET /ping` answers 200 when a model is loaded, 503 with `{"error": reason}` when none is
  deployed or its artifact is missing or corrupt.
- `POST /invocations` (`Content-Type: application/json`) takes BlazingText's request,
  `{"instances": ["preprocessed text", ...], "configuration": {"k": 3}}`, and answers BlazingText's
  response, `[{"label": ["__label__positive", ...], "prob": [0.9, ...]}, ...]`: the k most likely
  labels of each instance, most likely first (k is 1 unless configured, at most 3). The texts are
  already preprocessed, as BlazingText expects tokens: nothing but the model is applied, and the
  probabilities are fastText's own, as BlazingText returns them for the same `model.bin` (the
  local endpoint's calibration, the model card's temperature, is undone: a client of a SageMaker
  endpoint applies it itself). The `X-Pulse-Model-Version` response header names the version
  that scored the whole batch.
- `POST /endpoints/<name>/invocations` is the same call at the path boto3's `sagemaker-runtime`
  `invoke_endpoint` uses, so a boto3 client with `endpoint_url` pointing here works. On that path an
  error is reported the way SageMaker reports a container's error: HTTP 424 `ModelError` carrying
  the original status code and message.

Bad input is a 400 with `{"error": ...}`; a body over 5 MiB, or one instance over 20,000
characters (`MAX_INSTANCE_CHARS`), is a 413; wrong method 405; unknown path 404. A connection that
has not sent complete headers within 10 s is closed. Message texts are never logged nor echoed in
errors (access logs name method, path and status only).

Scoring runs on the event loop by default, and the requests waiting to be scored are scored together
(`Coalescer`): a model's cost per call (the linear model's most of all) is then paid once for many
requests, not once each. A large batch is scored in chunks of about 0.1 s of scoring each, with a turn
of the loop between two, so /ping answers within SageMaker's 2 s whatever is being scored. fastText
holds the GIL while it predicts, so a thread pool cannot score in parallel; it only adds a hand-off
per request (tests/benchmarks/test_serve_load.py compares the two).
`make_app(endpoint, executor=...)` / `run(..., score_threads=N)` move scoring to threads anyway.

Known limit: `LocalEndpoint` re-reads the deployment pointer (every 2 s) and loads a new model
inside `score`, so on this path the event loop waits for that read and, on a hot swap, for the
model load; requests are delayed then, never failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import json
import logging
import math
import signal
import time
import traceback
import uuid
from collections.abc import Awaitable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from types import TracebackType
from typing import Any

import tornado.httpserver
import tornado.web

from services.config import Settings
from services.errors import PulseError
from services.lifecycle.endpoint import Endpoint
from services.lifecycle.registry import load_card
from services.model.prediction import PREFIX, Prediction, apply_temperature
from services.store.base import ObjectStore

log = logging.getLogger(__name__)
access_log = logging.getLogger(__name__ + ".access")

MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_INSTANCES = 1000
# One instance at most this long (a check-in is cut to PULSE_MAX_TEXT_CHARS, 2,000 by default,
# before it is prepared): the model scores one instance in one call, which nothing can split.
MAX_INSTANCE_CHARS = 20_000
# Scoring gives the event loop a turn after this much text, so /ping (SageMaker's health check,
# which must answer within 2 s) and other requests are served while a large batch is scored.
CHUNK_CHARS = 50_000  # the first chunk; the next ones are sized to take about TURN_SECONDS each
CHUNK_INSTANCES = 2_000
TURN_SECONDS = 0.1
MIN_CHUNK_CHARS, MAX_CHUNK_CHARS = 2_000, 1_000_000
# A connection must send its complete request headers within this many seconds of opening (or of
# its previous request), else it is closed; SageMaker's own examples keep no idle connection at all.
HEADER_TIMEOUT_SECONDS = 10.0
DEFAULT_K = 1  # as BlazingText
MAX_K = 3
VERSION_HEADER = "X-Pulse-Model-Version"
JSON_TYPE = "application/json"
_ACCEPTED = (JSON_TYPE, "application/*", "*/*")
# What HTTPServer lets a request declare before it gives up; the handlers answer 413 past
# MAX_BODY_BYTES and close the connection, so this only keeps tornado from writing its own 400.
SERVER_MAX_BODY_BYTES = 1 << 30
LISTEN_BACKLOG = 2048
# SageMaker endpoint names: letters, digits and single hyphens, at most 63 characters.
_ENDPOINT_NAME = r"[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62}"
# Request ids: one random part per process and a counter (uuid4 per request costs a syscall).
_RUN_ID = uuid.uuid4().hex[:12]
_REQUEST_NUMBER = itertools.count(1)


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


Answer = asyncio.Future[tuple[str, list[Prediction]]]


def chunks(texts: list[str], max_chars: int = CHUNK_CHARS, max_texts: int = CHUNK_INSTANCES) -> list[list[str]]:
    """`texts` in order, cut into runs of at most `max_texts` texts and about `max_chars` characters
    (a run holds at least one text, however long)."""
    out: list[list[str]] = [[]]
    size = 0
    for text in texts:
        if out[-1] and (len(out[-1]) >= max_texts or size + len(text) > max_chars):
            out.append([])
            size = 0
        out[-1].append(text)
        size += len(text)
    return out


class Coalescer:
    """Scores, in as few `endpoint.score` calls as it can, every request waiting to be scored; each
    gets its own slice of the predictions and the version that made all of them. Predictions do
    not depend on what else is in the batch (each text is scored on its own).

    One worker scores at a time, a batch in `chunks`, giving the event loop a turn between two
    chunks: a large request never keeps /ping waiting for more than one chunk. Requests that arrive
    meanwhile are scored together in the next batch."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._pending: list[tuple[list[str], Answer]] = []
        self._worker: asyncio.Task[None] | None = None
        self._chunk_chars = CHUNK_CHARS

    def _adapt(self, chars: int, seconds: float) -> None:
        """Size the next chunk to take about `TURN_SECONDS` at the rate this one was scored (fastText
        scores many times faster than the linear model, and made-up words cost more than real ones)."""
        if chars >= MIN_CHUNK_CHARS and seconds > 0:
            wanted = int(chars / seconds * TURN_SECONDS)
            self._chunk_chars = min(MAX_CHUNK_CHARS, max(MIN_CHUNK_CHARS, (self._chunk_chars + wanted) // 2))

    def score(self, instances: list[str]) -> Answer:
        loop = asyncio.get_running_loop()
        answer: Answer = loop.create_future()
        self._pending.append((instances, answer))
        if self._worker is None:
            self._worker = loop.create_task(self._work())
        return answer

    async def _work(self) -> None:
        try:
            await asyncio.sleep(0)  # the requests whose bodies arrived in this turn join the batch
            while self._pending:
                batch, self._pending = self._pending, []
                await self._score(batch)
        finally:
            self._worker = None

    async def _score(self, batch: list[tuple[list[str], Answer]]) -> None:
        texts = [text for instances, _ in batch for text in instances]
        try:
            version, predictions = await self._score_chunks(texts)
        except Exception as exc:  # noqa: BLE001 (each waiting request gets it, as it would have alone)
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        start = 0
        for instances, answer in batch:
            if not answer.done():  # a client that went away cancelled its wait
                answer.set_result((version, predictions[start : start + len(instances)]))
            start += len(instances)

    async def _score_chunks(self, texts: list[str]) -> tuple[str, list[Prediction]]:
        while True:
            versions: set[str] = set()
            predictions: list[Prediction] = []
            start = 0
            while start < len(texts):
                if start:
                    await asyncio.sleep(0)  # /ping and new requests are served between two chunks
                part = chunks(texts[start : start + CHUNK_INSTANCES], max_chars=self._chunk_chars)[0]
                began = time.perf_counter()
                version, scored = self.endpoint.score(part)
                self._adapt(sum(map(len, part)), time.perf_counter() - began)
                versions.add(version)
                predictions.extend(scored)
                start += len(part)
            if len(versions) == 1:
                return version, predictions
            # A new model went live between two chunks: score it all again, so one version made it all.


class _Handler(tornado.web.RequestHandler):
    """JSON errors, no request bodies over MAX_BODY_BYTES, nothing of the texts in the logs.

    Bodies are streamed (`stream_request_body`) so that a body too large is refused as soon as its
    headers, or its first bytes past the limit, arrive, instead of being read into memory."""

    runtime_api = False

    def initialize(
        self,
        endpoint: Endpoint,
        executor: Executor | None = None,
        runtime_api: bool = False,
        temperatures: Temperatures | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.executor = executor
        self.temperatures = temperatures or Temperatures(None)
        if runtime_api:
            self.runtime_api = True
            self.set_default_headers()  # tornado set them before initialize() ran
        self._chunks: list[bytes] = []
        self._received = 0
        self._refused = False

    def prepare(self) -> Awaitable[None] | None:
        declared = self.request.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES:,} bytes")
        return None

    def data_received(self, chunk: bytes) -> None:
        if self._refused:
            return
        self._received += len(chunk)
        if self._received > MAX_BODY_BYTES:  # a chunked body without Content-Length
            self._chunks = []
            self._refused = True
            self.send_error(413, exc_info=_exc_info(ApiError(413, f"the body is larger than {MAX_BODY_BYTES:,} bytes")))
            return
        self._keep(chunk)

    def _keep(self, chunk: bytes) -> None:
        """Bodies of paths that take none are counted, not kept."""

    def body(self) -> bytes:
        return b"".join(self._chunks)

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", f"{JSON_TYPE}; charset=UTF-8")
        if self.runtime_api:  # boto3 reads it into ResponseMetadata.RequestId
            self.set_header("x-amzn-RequestId", f"{_RUN_ID}-{next(_REQUEST_NUMBER):x}")

    def compute_etag(self) -> str | None:
        return None  # answers are not cacheable: a new model may answer differently

    def write_json(self, data: Any) -> None:
        self.finish(json.dumps(data, separators=(",", ":")))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            message = exc.message
        elif isinstance(exc, tornado.web.HTTPError):
            message = exc.reason or http.client.responses.get(status_code, "error")
        else:
            message = "internal error"
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.SUPPORTED_METHODS))
        body = {"error": message}
        aws_type = exc.aws_type if isinstance(exc, ApiError) else None
        if self.runtime_api and aws_type:  # an error of SageMaker itself, such as an unknown endpoint
            self.set_header("x-amzn-ErrorType", aws_type)
            self.write_json({**body, "message": message})
            return
        if self.runtime_api and status_code not in (404, 405):
            # What SageMaker answers when its container refuses a request: 424 ModelError
            # (boto3 raises `client.exceptions.ModelError`) with the container's own answer inside.
            original = json.dumps(body)
            kind = "client" if status_code < 500 else "server"
            self.set_status(424)
            self.set_header("x-amzn-ErrorType", "ModelError")
            self.write_json(
                {
                    "ErrorCode": "CLIENT_ERROR_FROM_MODEL" if kind == "client" else "SERVER_ERROR_FROM_MODEL",
                    "OriginalStatusCode": status_code,
                    "OriginalMessage": original,
                    "Message": f'Received {kind} error ({status_code}) from primary with message "{original}".',
                }
            )
            return
        self.write_json(body)

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(value, tornado.web.HTTPError):
            return  # answered with its message; the access log has the status
        # The exception's message may quote a text: log its type and where it happened only.
        where = "".join(traceback.format_tb(tb)) if tb else ""
        log.error(
            "unexpected %s on %s %s\n%s",
            typ.__name__ if typ else "error",
            self.request.method,
            self.request.path,
            where,
        )


def _exc_info(exc: BaseException) -> tuple[type[BaseException], BaseException, None]:
    return type(exc), exc, None


@tornado.web.stream_request_body
class PingHandler(_Handler):
    SUPPORTED_METHODS = ("GET",)

    async def get(self) -> None:
        try:
            version = self.endpoint.version()
        except PulseError as exc:  # nothing deployed, artifact missing or corrupt, store unreachable
            self.set_status(503)
            self.write_json({"error": str(exc)})
            return
        self.set_header(VERSION_HEADER, version)
        self.write_json({"status": "ok", "model_version": version})


@tornado.web.stream_request_body
class InvocationsHandler(_Handler):
    SUPPORTED_METHODS = ("POST",)

    def initialize(
        self,
        endpoint: Endpoint,
        executor: Executor | None = None,
        runtime_api: bool = False,
        temperatures: Temperatures | None = None,
        endpoint_name: str | None = None,
    ) -> None:
        super().initialize(endpoint, executor, runtime_api, temperatures)
        self.endpoint_name = endpoint_name
        self.coalescer: Coalescer = self.application.settings["coalescer"]

    def _keep(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    async def post(self, name: str | None = None) -> None:
        if self._refused:  # answered 413 while the body streamed in
            return
        if name is not None and self.endpoint_name is not None and name != self.endpoint_name:
            raise ApiError(
                400, f"Endpoint {name} not found (this server serves {self.endpoint_name})", aws_type="ValidationError"
            )
        accept = self.request.headers.get("Accept", "")
        if accept and not any(a.split(";")[0].strip() in _ACCEPTED for a in accept.split(",")):
            raise ApiError(406, f"this server answers {JSON_TYPE} only")
        instances, k = parse_request(self.body(), self.request.headers.get("Content-Type"))
        self._chunks = []
        try:
            if self.executor is None:
                version, predictions = await self.coalescer.score(instances)
            else:
                loop = asyncio.get_running_loop()
                version, predictions = await loop.run_in_executor(self.executor, self.endpoint.score, instances)
        except PulseError as exc:  # nothing deployed, artifact missing or corrupt, store unreachable
            raise ApiError(503, str(exc)) from None
        self.set_header(VERSION_HEADER, version)
        if self.runtime_api:
            self.set_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
        self.write_json(blazingtext_output(predictions, k, self.temperatures(version)))


@tornado.web.stream_request_body
class NotFoundHandler(_Handler):
    def prepare(self) -> Awaitable[None] | None:
        raise ApiError(404, "no such path: this server answers GET /ping and POST /invocations")


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log: status, method, path (never the query or the body) and time."""
    status = handler.get_status()
    level = logging.DEBUG if status < 400 else logging.INFO if status < 500 else logging.WARNING
    if access_log.isEnabledFor(level):
        path = handler.request.path if status != 404 else "(unknown path)"
        ms = 1000.0 * handler.request.request_time()
        access_log.log(level, "%d %s %s %.1fms", status, handler.request.method, path, ms)


def make_app(
    endpoint: Endpoint,
    *,
    executor: Executor | None = None,
    endpoint_name: str | None = None,
    store: ObjectStore | None = None,
) -> tornado.web.Application:
    """The server's routes around `endpoint`. With `executor`, scoring runs on its threads instead
    of the event loop. With `endpoint_name`, the boto3-compatible path serves that name only.
    `store` (by default the endpoint's own, as `LocalEndpoint` has one) holds the model cards whose
    temperature is undone so that probabilities are BlazingText's."""
    if store is None:
        store = getattr(endpoint, "store", None)
    args = {"endpoint": endpoint, "executor": executor, "temperatures": Temperatures(store)}
    runtime = {**args, "runtime_api": True, "endpoint_name": endpoint_name}
    return tornado.web.Application(
        [
            (r"/ping", PingHandler, args),
            (r"/invocations", InvocationsHandler, args),
            (rf"/endpoints/({_ENDPOINT_NAME})/invocations", InvocationsHandler, runtime),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
        log_function=_log_request,
        cross_origin_protection=True,  # a web page cannot post to this server from a browser
        compress_response=False,
        coalescer=Coalescer(endpoint),
    )


def make_server(
    app: tornado.web.Application, *, header_timeout: float = HEADER_TIMEOUT_SECONDS
) -> tornado.httpserver.HTTPServer:
    """An HTTP server for `app` with the limits `run` uses (call `.listen` on it inside a loop): a
    connection whose request headers are not complete within `header_timeout` seconds is closed
    (tornado's idle timeout is that same clock), a body must arrive within 60 s."""
    return tornado.httpserver.HTTPServer(
        app, max_body_size=SERVER_MAX_BODY_BYTES, body_timeout=60.0, idle_connection_timeout=header_timeout
    )


def run(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    score_threads: int = 0,
) -> None:
    """Serve the workspace's deployed model until SIGTERM or SIGINT (blocking)."""
    from services.workspace import open_workspace

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    workspace = open_workspace(settings)
    try:
        log.info("model version %s loaded", workspace.endpoint.version())
    except PulseError as exc:
        log.warning("no model to serve yet (/ping answers 503 until one is deployed): %s", exc)
    executor = ThreadPoolExecutor(score_threads, thread_name_prefix="pulse-score") if score_threads > 0 else None
    app = make_app(
        workspace.endpoint,
        executor=executor,
        endpoint_name=settings.sagemaker_endpoint_name,
        store=workspace.store,
    )

    async def serve() -> None:
        server = make_server(app)
        server.listen(port, host, backlog=LISTEN_BACKLOG)
        how = f"on {score_threads} threads" if executor else "on the event loop"
        log.info("serving on http://%s:%d (scoring %s)", host, port, how)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
        server.stop()
        await asyncio.wait_for(server.close_all_connections(), timeout=10)

    try:
        asyncio.run(serve())
    finally:
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


__all__ = ["MAX_BODY_BYTES", "MAX_INSTANCES", "MAX_K", "VERSION_HEADER", "Coalescer", "make_app", "make_server", "run"]
