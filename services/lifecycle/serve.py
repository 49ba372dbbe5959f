"""The local model server: the deployed model behind the SageMaker inference-container contract,
so that client code written for a SageMaker BlazingText endpoint talks to it unchanged.

- `GET /ping` answers 200 when a model is loaded, 503 with `{"error": reason}` when none is
  deployed or its artifact is missing or corrupt.
- `POST /invocations` (`Content-Type: application/json`) takes BlazingText's request,
  `{"instances": ["preprocessed text", ...], "configuration": {"k": 3}}`, and answers BlazingText's
  response, `[{"label": ["__label__positive", ...], "prob": [0.9, ...]}, ...]`: the k most likely
  labels of each instance, most likely first (k is 1 unless configured, at most 3). It takes and
  gives `application/jsonlines` too, one `{"source": ...}` per line, as Batch Transform sends it
  (`services.lifecycle.invocations`: `Accept` picks the answer's type). The texts are
  already preprocessed, as BlazingText expects tokens: nothing but the model is applied, and the
  probabilities are fastText's own, as BlazingText returns them for the same `model.bin` (the
  local endpoint's calibration, the model card's temperature, is undone: a client of a SageMaker
  endpoint applies it itself). The `X-Pulse-Model-Version` response header names the version
  that scored the whole batch.
- `POST /endpoints/<name>/invocations` is the same call at the path boto3's `sagemaker-runtime`
  `invoke_endpoint` uses, so a boto3 client with `endpoint_url` pointing here works. On that path an
  error is reported the way SageMaker reports a container's error: HTTP 424 `ModelError` carrying
  the original status code and message.

Bad input is a 400 with `{"error": ...}`; a body over 6 MiB (or SAGEMAKER_MAX_PAYLOAD_IN_MB, which
Batch Transform sets), or one instance over 20,000
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
import signal
import traceback
import uuid
from collections.abc import Awaitable
from concurrent.futures import Executor, ThreadPoolExecutor
from types import TracebackType
from typing import Any

import tornado.httpserver
import tornado.web

from services.config import Settings
from services.errors import PulseError
from services.lifecycle.coalescer import Coalescer
from services.lifecycle.endpoint import Endpoint, LocalEndpoint
from services.lifecycle.invocations import (
    JSON_TYPE,
    ApiError,
    Temperatures,
    answer_type,
    max_body_bytes,
    parse_request,
    render,
)
from services.store.base import ObjectStore

log = logging.getLogger(__name__)
access_log = logging.getLogger(__name__ + ".access")

# A connection must send its complete request headers within this many seconds of opening (or of
# its previous request), else it is closed; SageMaker's own examples keep no idle connection at all.
HEADER_TIMEOUT_SECONDS = 10.0
VERSION_HEADER = "X-Pulse-Model-Version"
# What HTTPServer lets a request declare before it gives up; the handlers answer 413 past
# the app's max_body_bytes and close the connection, so this only keeps tornado from writing its own 400.
SERVER_MAX_BODY_BYTES = 1 << 30
LISTEN_BACKLOG = 2048
# SageMaker endpoint names: letters, digits and single hyphens, at most 63 characters.
_ENDPOINT_NAME = r"[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62}"
# Request ids: one random part per process and a counter (uuid4 per request costs a syscall).
_RUN_ID = uuid.uuid4().hex[:12]
_REQUEST_NUMBER = itertools.count(1)


# A new model went live between two chunks: score it all again, so one version made it all.


class _Handler(tornado.web.RequestHandler):
    """JSON errors, no request bodies over the app's `max_body_bytes`, nothing of the texts in the logs.

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
        self.max_body: int = self.application.settings["max_body_bytes"]

    def prepare(self) -> Awaitable[None] | None:
        declared = self.request.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise ApiError(413, f"the body is larger than {self.max_body:,} bytes")
        return None

    def data_received(self, chunk: bytes) -> None:
        if self._refused:
            return
        self._received += len(chunk)
        if self._received > self.max_body:  # a chunked body without Content-Length
            self._chunks = []
            self._refused = True
            self.send_error(413, exc_info=_exc_info(ApiError(413, f"the body is larger than {self.max_body:,} bytes")))
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
        request = parse_request(self.body(), self.request.headers.get("Content-Type"))
        media = answer_type(self.request.headers.get("Accept"), request.media)
        self._chunks = []
        try:
            if self.executor is None:
                version, predictions = await self.coalescer.score(request.instances)
            else:
                loop = asyncio.get_running_loop()
                score = self.endpoint.score
                version, predictions = await loop.run_in_executor(self.executor, score, request.instances)
        except PulseError as exc:  # nothing deployed, artifact missing or corrupt, store unreachable
            raise ApiError(503, str(exc)) from None
        self.set_header(VERSION_HEADER, version)
        if self.runtime_api:
            self.set_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
        self.set_header("Content-Type", f"{media}; charset=UTF-8")
        self.finish(render(predictions, request, media, self.temperatures(version)))


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
    max_body: int | None = None,
) -> tornado.web.Application:
    """The server's routes around `endpoint`. With `executor`, scoring runs on its threads instead
    of the event loop. With `endpoint_name`, the boto3-compatible path serves that name only.
    `store` (by default the endpoint's own, as `LocalEndpoint` has one) holds the model cards whose
    temperature is undone so that probabilities are BlazingText's. `max_body` is the largest body
    taken, by default SageMaker's (`max_body_bytes`)."""
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
        max_body_bytes=max_body if max_body is not None else max_body_bytes(),
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
    """Serve the workspace's deployed model until SIGTERM or SIGINT (blocking). The model is loaded
    here from the registry whatever the backend: on the aws backend this is not a client of the
    SageMaker endpoint (which may be what calls it), and `python -m services.container serve` is
    the endpoint's own container."""
    from services.lifecycle.registry import model_cache_dir
    from services.workspace import open_workspace

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    workspace = open_workspace(settings)
    endpoint = LocalEndpoint(workspace.store, model_cache_dir(workspace.store), max_chars=settings.max_text_chars)
    try:
        log.info("model version %s loaded", endpoint.version())
    except PulseError as exc:
        log.warning("no model to serve yet (/ping answers 503 until one is deployed): %s", exc)
    executor = ThreadPoolExecutor(score_threads, thread_name_prefix="pulse-score") if score_threads > 0 else None
    app = make_app(
        endpoint,
        executor=executor,
        endpoint_name=settings.sagemaker_endpoint_name,
        store=workspace.store,
    )

    try:
        serve_forever(app, host, port, how=f"on {score_threads} threads" if executor else "on the event loop")
    finally:
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def serve_forever(app: tornado.web.Application, host: str, port: int, *, how: str = "on the event loop") -> None:
    """Serve `app` on host:port until SIGTERM or SIGINT (blocking); connections in flight get 10 s
    to finish."""

    async def serve() -> None:
        server = make_server(app)
        server.listen(port, host, backlog=LISTEN_BACKLOG)
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

    asyncio.run(serve())
