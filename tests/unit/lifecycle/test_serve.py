"""The local model server (services/serve.py) over real HTTP on 127.0.0.1: the SageMaker
inference-container contract, bad input, a model that is missing or corrupt, a hot swap under
load, and boto3's `sagemaker-runtime` client pointed at it."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import random
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import tornado.netutil

from services.lifecycle.coalescer import chunks
from services.lifecycle.deployment import deploy_local, require_current
from services.lifecycle.endpoint import Endpoint, LocalEndpoint
from services.lifecycle.invocations import MAX_BODY_BYTES, MAX_INSTANCE_CHARS, MAX_INSTANCES
from services.lifecycle.registry import ModelCard, fetch_model, load_card, new_version, register
from services.lifecycle.serve import HEADER_TIMEOUT_SECONDS, VERSION_HEADER, make_app, make_server
from services.model.fasttext import fasttext_line, train
from services.model.params import TrainParams
from services.model.prediction import Prediction, apply_temperature
from services.store.local import LocalStore

LABELS = {"__label__negative", "__label__neutral", "__label__positive"}
TEXTS = ["love this great team", "awful day hate traffic", "meeting moved to monday"]
SECRET = "zebracakes"  # a word that must never come back in an error or reach a log


class Server:
    """The app on 127.0.0.1 (a free port picked by the OS) with its own event loop in a thread."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        executor: Executor | None = None,
        endpoint_name: str | None = None,
        header_timeout: float = HEADER_TIMEOUT_SECONDS,
    ):
        self.app = make_app(endpoint, executor=executor, endpoint_name=endpoint_name)
        self.header_timeout = header_timeout
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        self.port = int(sockets[0].getsockname()[1])
        self._sockets = sockets
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "server did not start"

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = make_server(self.app, header_timeout=self.header_timeout)
        server.add_sockets(self._sockets)
        self._ready.set()
        await self._stop.wait()
        server.stop()
        await server.close_all_connections()

    def close(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Reply:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.raw = response.read()

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


def call(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> Reply:
    """One request; `body` is sent as JSON unless `raw` bytes are given."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    sent = dict(headers or {})
    if content_type is not None and data is not None:
        sent["Content-Type"] = content_type
    try:
        conn.request(method, path, body=data, headers=sent)
        return Reply(conn.getresponse())
    finally:
        if own:
            conn.close()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-cache")


@pytest.fixture(scope="module")
def endpoint(bootstrap_store: LocalStore, cache_dir: Path) -> LocalEndpoint:
    return LocalEndpoint(bootstrap_store, cache_dir)


@pytest.fixture(scope="module")
def server(endpoint: LocalEndpoint) -> Iterator[Server]:
    running = Server(endpoint)
    yield running
    running.close()


@pytest.fixture(scope="module")
def live_version(bootstrap_store: LocalStore) -> str:
    return require_current(bootstrap_store).version


# --- the contract --------------------------------------------------------------------------


def test_ping_answers_200_and_names_the_loaded_version(server: Server, live_version: str) -> None:
    reply = call(server.port, "GET", "/ping")
    assert reply.status == 200
    assert reply.headers[VERSION_HEADER] == live_version
    assert reply.json["model_version"] == live_version


def test_invocations_default_to_the_top_label_like_blazingtext(server: Server, live_version: str) -> None:
    reply = call(server.port, "POST", "/invocations", {"instances": TEXTS})
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.headers[VERSION_HEADER] == live_version
    answer = reply.json
    assert len(answer) == len(TEXTS)
    for item in answer:
        assert set(item) == {"label", "prob"}
        assert len(item["label"]) == len(item["prob"]) == 1
        assert item["label"][0] in LABELS
        assert 0.0 < item["prob"][0] <= 1.0


def test_k3_gives_every_label_most_likely_first_summing_to_one(server: Server) -> None:
    reply = call(server.port, "POST", "/invocations", {"instances": TEXTS, "configuration": {"k": 3}})
    assert reply.status == 200
    for item in reply.json:
        assert set(item["label"]) == LABELS
        assert item["prob"] == sorted(item["prob"], reverse=True)
        assert sum(item["prob"]) == pytest.approx(1.0, abs=1e-3)


def test_k2_gives_two_labels(server: Server) -> None:
    reply = call(server.port, "POST", "/invocations", {"instances": TEXTS[:1], "configuration": {"k": 2}})
    assert reply.status == 200
    assert len(reply.json[0]["label"]) == 2


def test_the_server_applies_the_model_and_nothing_else(server: Server, endpoint: LocalEndpoint) -> None:
    """Texts reach the model as sent: upper case, URLs and stopwords are not preprocessed again.
    The answer is the model's, with only the card's calibration temperature undone."""
    texts = ["LOVE this SO much http://x.y", "the and of not", "great"]
    version, expected = endpoint.score(texts)
    temperature = load_card(endpoint.store, version).temperature
    reply = call(server.port, "POST", "/invocations", {"instances": texts, "configuration": {"k": 3}})
    assert reply.status == 200
    for item, want in zip(reply.json, expected, strict=True):
        assert item["label"][0] == "__label__" + want.label
        got = {label.removeprefix("__label__"): p for label, p in zip(item["label"], item["prob"], strict=True)}
        assert got == pytest.approx(apply_temperature(want.probs, 1 / temperature))


def test_an_empty_text_scores_zero_for_every_label(server: Server) -> None:
    reply = call(server.port, "POST", "/invocations", {"instances": ["", "great"], "configuration": {"k": 3}})
    assert reply.status == 200
    empty, scored = reply.json
    assert empty["prob"] == [0.0, 0.0, 0.0] and set(empty["label"]) == LABELS
    assert scored["prob"][0] > 0


def test_a_thousand_instances_are_accepted(server: Server) -> None:
    reply = call(server.port, "POST", "/invocations", {"instances": ["great day"] * MAX_INSTANCES})
    assert reply.status == 200
    assert len(reply.json) == MAX_INSTANCES


def test_keep_alive_connection_serves_many_requests(server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        statuses = [
            call(server.port, "POST", "/invocations", {"instances": TEXTS}, conn=conn).status for _ in range(20)
        ]
    finally:
        conn.close()
    assert statuses == [200] * 20


def test_scoring_on_an_executor_gives_the_same_answers(endpoint: LocalEndpoint, server: Server) -> None:
    with ThreadPoolExecutor(2) as pool:
        threaded = Server(endpoint, executor=pool)
        try:
            a = call(threaded.port, "POST", "/invocations", {"instances": TEXTS, "configuration": {"k": 3}})
        finally:
            threaded.close()
    b = call(server.port, "POST", "/invocations", {"instances": TEXTS, "configuration": {"k": 3}})
    assert a.status == b.status == 200
    assert a.json == b.json


class Counting:
    """An endpoint that counts its score calls (and can be told to fail)."""

    def __init__(self, inner: LocalEndpoint) -> None:
        self.inner, self.calls, self.fail = inner, 0, False
        self.store = inner.store

    def preprocessing(self) -> str:
        return "pulse-v2"

    def score(self, prepared: Any) -> Any:
        self.calls += 1
        if self.fail:
            from services.errors import ModelUnavailable

            raise ModelUnavailable("no model is deployed")
        return self.inner.score(prepared)

    def version(self) -> str:
        return self.inner.version()

    def refresh(self) -> None:
        self.inner.refresh()


def test_requests_that_arrive_together_are_scored_in_one_call(endpoint: LocalEndpoint, server: Server) -> None:
    counting = Counting(endpoint)
    together = Server(counting)  # type: ignore[arg-type]
    texts = [[f"{word} day number {n}"] * (1 + n % 3) for n, word in enumerate(["great", "awful", "ok"] * 20)]
    try:
        with ThreadPoolExecutor(30) as pool:
            answers = list(pool.map(lambda t: call(together.port, "POST", "/invocations", {"instances": t}), texts))
        counting.fail = True  # every request waiting on a failed call gets its 503
        failed = call(together.port, "POST", "/invocations", {"instances": TEXTS})
    finally:
        together.close()
    alone = [call(server.port, "POST", "/invocations", {"instances": t}) for t in texts]
    assert [a.status for a in answers] == [200] * len(texts)
    for got, own in zip(answers, alone, strict=True):  # each its own slice, in order (floats: to the 1e-12)
        assert [r["label"] for r in got.json] == [r["label"] for r in own.json]
        assert [r["prob"] for r in got.json] == [pytest.approx(r["prob"], abs=1e-12) for r in own.json]
    assert counting.calls <= len(texts)  # (fewer when requests arrived in the same turn of the loop)
    assert failed.status == 503 and "no model is deployed" in failed.json["error"]


# --- bad input -----------------------------------------------------------------------------

BAD_BODIES = {
    "not JSON": b'{"instances": ["zebracakes"',
    "not UTF-8": b'{"instances": ["\xff\xfe zebracakes"]}',
    "a JSON list": b'["zebracakes"]',
    "JSON null": b"null",
    "no instances": b'{"texts": ["zebracakes"]}',
    "instances null": b'{"instances": null}',
    "instances empty": b'{"instances": []}',
    "instances a string": b'{"instances": "zebracakes"}',
    "instances an object": b'{"instances": {"a": "zebracakes"}}',
    "a number among the texts": b'{"instances": ["zebracakes", 5]}',
    "a null among the texts": b'{"instances": [null, "zebracakes"]}',
    "a list among the texts": b'{"instances": [["zebracakes"]]}',
    "a line break in a text": b'{"instances": ["zebracakes\\nsecond line"]}',
    "a lone surrogate": b'{"instances": ["zebracakes \\ud800"]}',
    "k = 0": b'{"instances": ["zebracakes"], "configuration": {"k": 0}}',
    "k = 4": b'{"instances": ["zebracakes"], "configuration": {"k": 4}}',
    "k = -1": b'{"instances": ["zebracakes"], "configuration": {"k": -1}}',
    "k a string": b'{"instances": ["zebracakes"], "configuration": {"k": "3"}}',
    "k a float": b'{"instances": ["zebracakes"], "configuration": {"k": 2.0}}',
    "k true": b'{"instances": ["zebracakes"], "configuration": {"k": true}}',
    "configuration not an object": b'{"instances": ["zebracakes"], "configuration": "k=3"}',
    "too many instances": json.dumps({"instances": [SECRET] * (MAX_INSTANCES + 1)}).encode(),
    "nested too deep": b'{"instances": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_input_is_a_400_that_echoes_no_text(server: Server, case: str) -> None:
    reply = call(server.port, "POST", "/invocations", raw=BAD_BODIES[case])
    assert reply.status == 400, reply.raw[:200]
    assert reply.headers["Content-Type"].startswith("application/json")
    assert set(reply.json) == {"error"} and reply.json["error"]
    assert SECRET not in reply.raw.decode()


@pytest.mark.parametrize("content_type", [None, "text/plain", "text/csv"])
def test_a_body_that_is_neither_json_nor_jsonlines_is_a_415(server: Server, content_type: str | None) -> None:
    reply = call(server.port, "POST", "/invocations", {"instances": TEXTS}, content_type=content_type)
    assert reply.status == 415
    assert "application/json" in reply.json["error"] and "application/jsonlines" in reply.json["error"]


def test_json_with_a_charset_is_accepted(server: Server) -> None:
    reply = call(
        server.port, "POST", "/invocations", {"instances": TEXTS}, content_type="application/json; charset=utf-8"
    )
    assert reply.status == 200


def test_an_accept_the_server_cannot_give_gets_the_requests_own_type(server: Server) -> None:
    # BlazingText ignores an Accept it cannot give; so does Pulse (a 406 broke clients that send one)
    plain = call(server.port, "POST", "/invocations", {"instances": TEXTS})
    for accept in ("text/csv", "*/*", "application/json", "text/html, application/json;q=0.9"):
        reply = call(server.port, "POST", "/invocations", {"instances": TEXTS}, headers={"Accept": accept})
        assert reply.status == 200, accept
        assert reply.headers["Content-Type"].startswith("application/json;"), accept
        assert reply.json == plain.json


def jsonlines(*records: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def send_lines(server: Server, body: bytes, accept: str) -> Reply:
    """`body` as application/jsonlines, answered in `accept`."""
    return call(
        server.port, "POST", "/invocations", raw=body, content_type="application/jsonlines", headers={"Accept": accept}
    )


def test_jsonlines_in_and_out_one_answer_per_line_in_order(server: Server) -> None:
    """Batch Transform's format: one {"source": ...} per line, each with its own k if it says so."""
    body = jsonlines(*({"source": t} for t in TEXTS), {"source": TEXTS[0], "k": 3}) + b"\n"  # a blank last line
    reply = send_lines(server, body, "application/jsonlines")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/jsonlines")
    lines = [json.loads(line) for line in reply.raw.decode().splitlines()]
    assert [len(line["label"]) for line in lines] == [1, 1, 1, 3]
    as_json = call(server.port, "POST", "/invocations", {"instances": TEXTS, "configuration": {"k": 1}})
    assert lines[:3] == as_json.json
    assert lines[3]["label"][0] == lines[0]["label"][0] and set(lines[3]["label"]) == LABELS


def test_the_answer_takes_the_type_accept_names(server: Server) -> None:
    as_lines = call(
        server.port, "POST", "/invocations", {"instances": TEXTS}, headers={"Accept": "application/jsonlines"}
    )
    assert as_lines.headers["Content-Type"].startswith("application/jsonlines")
    assert len(as_lines.raw.decode().splitlines()) == len(TEXTS)
    body = jsonlines(*({"source": t} for t in TEXTS))
    as_json = send_lines(server, body, "application/json")
    assert as_json.headers["Content-Type"].startswith("application/json;")
    assert [json.loads(line) for line in as_lines.raw.decode().splitlines()] == as_json.json


@pytest.mark.parametrize(
    "body",
    [
        b'{"source": "ok"}\nnot json\n',
        b'{"text": "ok"}\n',
        b'["ok"]\n',
        b'{"source": 3}\n',
        b"\n\n",
        b'{"source": "ok", "k": 9}\n',
    ],
    ids=["not json", "no source", "not an object", "not a string", "no line", "k out of range"],
)
def test_bad_jsonlines_is_a_400_that_names_the_line(server: Server, body: bytes) -> None:
    reply = call(server.port, "POST", "/invocations", raw=body, content_type="application/jsonlines")
    assert reply.status == 400
    assert "line" in reply.json["error"]


def test_a_body_declared_over_the_limit_is_a_413_before_it_is_read(server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest("POST", "/invocations")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
        conn.endheaders()  # headers only: the server must answer without waiting for the body
        response = conn.getresponse()
        assert response.status == 413
        assert "error" in json.loads(response.read())
    finally:
        conn.close()


def test_a_chunked_body_over_the_limit_is_a_413(server: Server) -> None:
    size = MAX_BODY_BYTES + 1
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + f"{size:x}\r\n".encode()
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + b" " * size)  # no terminating chunk: the server stops reading at the limit
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"error"' in answer


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/invocations"), ("PUT", "/invocations"), ("DELETE", "/invocations"), ("POST", "/ping")],
)
def test_a_wrong_method_is_a_405(server: Server, method: str, path: str) -> None:
    reply = call(server.port, method, path, {"instances": TEXTS} if method != "GET" else None)
    assert reply.status == 405
    assert reply.headers["Allow"] in ("GET", "POST")
    assert "error" in reply.json


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("POST", "/invocation"), ("GET", "/ping/extra"), ("POST", "/endpoints/bad_name!/invocations")],
)
def test_an_unknown_path_is_a_404(server: Server, method: str, path: str) -> None:
    reply = call(server.port, method, path, {"instances": TEXTS} if method == "POST" else None)
    assert reply.status == 404
    assert "error" in reply.json


def test_no_text_reaches_the_logs(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    call(server.port, "POST", "/invocations", {"instances": [SECRET, "great"]})
    call(server.port, "POST", "/invocations", {"instances": [SECRET, 5]})
    call(server.port, "POST", "/invocations", {"instances": [f"{SECRET}\nx"]})
    call(server.port, "GET", f"/{SECRET}?q={SECRET}")
    call(server.port, "POST", f"/invocations?q={SECRET}", {"instances": [SECRET]})
    time.sleep(0.05)  # the access log is written after the answer is sent
    assert caplog.records, "the access log should have recorded the requests"
    assert SECRET not in caplog.text


# --- no model ------------------------------------------------------------------------------


def test_nothing_deployed_is_a_503_with_the_reason(tmp_path: Path) -> None:
    empty = Server(LocalEndpoint(LocalStore(tmp_path / "empty"), tmp_path / "cache"))
    try:
        ping = call(empty.port, "GET", "/ping")
        scored = call(empty.port, "POST", "/invocations", {"instances": TEXTS})
    finally:
        empty.close()
    assert ping.status == 503 and "no model is deployed" in ping.json["error"]
    assert scored.status == 503 and "no model is deployed" in scored.json["error"]
    assert VERSION_HEADER not in ping.headers


def test_a_corrupt_model_is_a_503_with_the_reason(bootstrap_store: LocalStore, tmp_path: Path) -> None:
    broken = LocalStore(tmp_path / "ws")
    shutil.copytree(bootstrap_store.root, broken.root)
    version = require_current(broken).version
    broken.put(f"models/{version}/model.tar.gz", b"not a tarball")
    running = Server(LocalEndpoint(broken, tmp_path / "cache"))
    try:
        ping = call(running.port, "GET", "/ping")
        scored = call(running.port, "POST", "/invocations", {"instances": TEXTS})
    finally:
        running.close()
    assert ping.status == 503 and "corrupt" in ping.json["error"]
    assert scored.status == 503 and "corrupt" in scored.json["error"]


# --- hot swap ------------------------------------------------------------------------------


def _register_tiny_model(store: LocalStore, temperature: float = 1.0) -> str:
    corpus = {
        "positive": ["great happy lovely day", "so happy today", "love this team"],
        "negative": ["awful sad terrible day", "hate this so much", "terrible awful mood"],
        "neutral": ["meeting at noon today", "report on the desk", "call moved to monday"],
    }
    lines = [fasttext_line(label, text) for label, texts in corpus.items() for text in texts * 3]
    model = train(lines, TrainParams(epoch=20, lr=0.5, dim=10, word_ngrams=2, bucket=10_000))
    now = datetime.now(UTC)
    card = ModelCard(
        version=new_version(now),
        created_at=now.isoformat(timespec="seconds"),
        created_by="tests",
        dataset="tiny",
        temperature=temperature,
    )
    register(store, model, card)
    return card.version


@pytest.mark.parametrize("threads", [0, 4], ids=["inline", "executor"])
def test_hot_swap_under_load_fails_no_request(bootstrap_store: LocalStore, tmp_path: Path, threads: int) -> None:
    store = LocalStore(tmp_path / "ws")
    shutil.copytree(bootstrap_store.root, store.root)
    old = require_current(store).version
    new = _register_tiny_model(store)
    pool = ThreadPoolExecutor(threads) if threads else None
    running = Server(LocalEndpoint(store, tmp_path / "cache", recheck_seconds=0.05), executor=pool)
    stop = threading.Event()
    seen: list[list[tuple[int, str]]] = [[] for _ in range(8)]
    failures: list[str] = []

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
        batch = {"instances": [TEXTS[n % 3], TEXTS[(n + 1) % 3]], "configuration": {"k": 3}}
        try:
            while not stop.is_set():
                reply = call(running.port, "POST", "/invocations", batch, conn=conn)
                seen[n].append((reply.status, reply.headers.get(VERSION_HEADER, "")))
                if reply.status != 200 or len(reply.json) != 2:
                    failures.append(f"{reply.status} {reply.raw[:100]!r}")
        except Exception as exc:
            failures.append(repr(exc))
        finally:
            conn.close()

    workers = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    try:
        for w in workers:
            w.start()
        deadline = time.monotonic() + 10
        while min(len(s) for s in seen) < 5 and time.monotonic() < deadline and not failures:
            time.sleep(0.01)
        deploy_local(store, new, by="tests", reason="hot swap under load")
        while not all(s and s[-1][1] == new for s in seen) and time.monotonic() < deadline and not failures:
            time.sleep(0.01)
        counts = [len(s) for s in seen]
        while min(len(s) - c for s, c in zip(seen, counts, strict=True)) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        for w in workers:
            w.join(10)
        running.close()
        if pool is not None:
            pool.shutdown()
    assert failures == []
    for answers in seen:
        versions = [v for _, v in answers]
        assert {status for status, _ in answers} == {200}
        assert versions[0] == old and versions[-1] == new
        switch = versions.index(new)
        assert set(versions[:switch]) == {old} and set(versions[switch:]) == {new}  # never back


# --- calibrated models: the probabilities are BlazingText's ---------------------------------


@pytest.fixture(scope="module")
def calibrated(
    bootstrap_store: LocalStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, LocalEndpoint]]:
    """A server on a workspace whose live model has a fitted temperature of 2 on its card."""
    root = tmp_path_factory.mktemp("calibrated")
    store = LocalStore(root / "ws")
    shutil.copytree(bootstrap_store.root, store.root)
    deploy_local(store, _register_tiny_model(store, temperature=2.0), by="tests", reason="calibrated model")
    local = LocalEndpoint(store, root / "cache")
    running = Server(local)
    yield running, local
    running.close()


def test_probabilities_are_fasttexts_own_as_blazingtext_returns_them(calibrated: tuple[Server, LocalEndpoint]) -> None:
    """The local endpoint applies the card's temperature; a BlazingText endpoint cannot, so the
    server undoes it: its answer is what BlazingText would give for the same model.bin."""
    server, local = calibrated
    version = local.version()
    raw_model = fetch_model(local.store, version, local.cache_dir)._ft
    texts = ["love this great team", "awful day hate traffic", "meeting moved to monday"]
    reply = call(server.port, "POST", "/invocations", {"instances": texts, "configuration": {"k": 3}})
    assert reply.status == 200 and reply.headers[VERSION_HEADER] == version
    _, tempered = local.score(texts)
    for text, item, calibrated_prediction in zip(texts, reply.json, tempered, strict=True):
        labels, probs = raw_model.predict(text, k=-1)
        raw = {label: float(p) for label, p in zip(labels, probs, strict=True)}
        served = dict(zip(item["label"], item["prob"], strict=True))
        assert served == pytest.approx(raw, abs=1e-4)
        assert item["label"][0] == "__label__" + calibrated_prediction.label  # same ranking
        assert max(served.values()) != pytest.approx(calibrated_prediction.confidence, abs=1e-3)  # T=2 undone


# --- boto3 and the SageMaker client --------------------------------------------------------


def _runtime_client(server: Server) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=server.url,
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )


def test_boto3_invoke_endpoint_reaches_the_server(server: Server, live_version: str) -> None:
    """boto3 posts to `/endpoints/<name>/invocations` (SigV4-signed; the signature is not checked)."""
    answer = _runtime_client(server).invoke_endpoint(
        EndpointName="pulse-sentiment",
        Body=json.dumps({"instances": TEXTS, "configuration": {"k": 3}}).encode(),
        ContentType="application/json",
        Accept="application/json",
    )
    assert answer["ContentType"].startswith("application/json")
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert answer["ResponseMetadata"]["RequestId"]
    assert answer["ResponseMetadata"]["HTTPHeaders"][VERSION_HEADER.lower()] == live_version
    body = json.loads(answer["Body"].read())
    assert len(body) == len(TEXTS) and all(set(item["label"]) == LABELS for item in body)


def test_boto3_sees_a_refused_request_as_sagemaker_reports_it(server: Server) -> None:
    """SageMaker turns a container's 4xx into a 424 ModelError carrying the original status."""
    client = _runtime_client(server)
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(
            EndpointName="pulse-sentiment",
            Body=json.dumps({"instances": [SECRET], "configuration": {"k": 9}}).encode(),
            ContentType="application/json",
        )
    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 400
    assert "configuration.k" in error["OriginalMessage"]
    assert SECRET not in json.dumps(error, default=str)


def test_boto3_names_an_endpoint_this_server_does_not_serve(endpoint: LocalEndpoint) -> None:
    named = Server(endpoint, endpoint_name="pulse-sentiment")
    try:
        client = _runtime_client(named)
        with pytest.raises(client.exceptions.ValidationError):
            client.invoke_endpoint(
                EndpointName="someone-else", Body=b'{"instances": ["x"]}', ContentType="application/json"
            )
        answer = client.invoke_endpoint(
            EndpointName="pulse-sentiment", Body=b'{"instances": ["great"]}', ContentType="application/json"
        )
        assert len(json.loads(answer["Body"].read())) == 1
    finally:
        named.close()


def test_the_sagemaker_endpoint_client_talks_to_the_server(calibrated: tuple[Server, LocalEndpoint]) -> None:
    """`SageMakerEndpoint`, the client of a real BlazingText endpoint, gets the same predictions
    (calibrated once, by the client) from this server as the in-process endpoint."""
    from services.aws.endpoint import SageMakerEndpoint

    server, endpoint = calibrated
    client = SageMakerEndpoint(_runtime_client(server), "pulse-sentiment", endpoint.store, batch_size=2)
    texts = [*TEXTS, "", "great great great"]
    version, remote = client.score(texts)
    local_version, local = endpoint.score(texts)
    assert version == local_version
    assert [p.label for p in remote] == [p.label for p in local]
    for r, want in zip(remote, local, strict=True):
        assert r.probs == pytest.approx(want.probs)


# --- a server that stays healthy under large requests ----------------------------------------


def big_instances(n: int, chars: int, seed: int) -> list[str]:
    """`n` texts of `chars` characters of made-up words (few repeat, as in a hostile payload)."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(n):
        words = " ".join("".join(rng.choices(letters, k=rng.randint(3, 10))) for _ in range(chars // 6 + 1))
        out.append(words[:chars].strip())
    return out


def ping_while(port: int, busy: threading.Event, done: threading.Event) -> list[tuple[float, float, int]]:
    """GET /ping every 0.1 s from `busy` until `done`, each on a new connection with SageMaker's 2 s
    timeout: (sent, seconds to answer, status; 0 for a timeout) per probe."""
    busy.wait(10)
    probes = []
    while not done.is_set():
        sent = time.monotonic()
        try:
            status = call(port, "GET", "/ping", conn=http.client.HTTPConnection("127.0.0.1", port, timeout=2)).status
        except (TimeoutError, OSError):
            status = 0
        probes.append((sent, time.monotonic() - sent, status))
        time.sleep(0.1)
    return probes


@pytest.mark.parametrize(("clients", "requests", "shape"), [(1, 1, (1000, 4900)), (2, 3, (250, 4900))])
def test_ping_answers_while_large_requests_are_scored(
    server: Server, clients: int, requests: int, shape: tuple[int, int]
) -> None:
    """The hostile tester's case: 1,000 instances of 4.9 KB (4.9 MB: the event loop was blocked 9 s
    here before scoring was chunked), by one client, or three requests in a row by each of two
    clients, while SageMaker probes /ping with a 2 s timeout."""
    bodies = [json.dumps({"instances": big_instances(*shape, seed=s)}).encode() for s in range(clients * requests)]
    assert max(map(len, bodies)) < MAX_BODY_BYTES
    busy, done = threading.Event(), threading.Event()
    spans: list[tuple[float, float]] = []

    def client(mine: list[bytes]) -> list[int]:
        statuses = []
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        for body in mine:
            start = time.monotonic()
            busy.set()
            statuses.append(call(server.port, "POST", "/invocations", raw=body, conn=conn).status)
            spans.append((start, time.monotonic()))
        conn.close()
        return statuses

    with ThreadPoolExecutor(clients + 1) as pool:
        probing = pool.submit(ping_while, server.port, busy, done)
        sending = [pool.submit(client, bodies[c::clients]) for c in range(clients)]
        statuses = [s for f in sending for s in f.result()]
        done.set()
        probes = probing.result()
    assert statuses == [200] * len(bodies)
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    during = [p for p in probes if first <= p[0] and p[0] + p[1] <= last]
    assert during, "no probe was answered while the requests were scored"
    assert [p for p in probes if p[2] != 200] == []  # every probe answered, none timed out


def test_one_instance_over_the_cap_is_a_413_that_names_the_cap(server: Server) -> None:
    reply = call(server.port, "POST", "/invocations", {"instances": ["ok", "x" * (MAX_INSTANCE_CHARS + 1)]})
    assert (
        reply.status == 413
        and f"{MAX_INSTANCE_CHARS:,}" in reply.json["error"]
        and "instances[1]" in reply.json["error"]
    )
    assert call(server.port, "POST", "/invocations", {"instances": ["x" * MAX_INSTANCE_CHARS]}).status == 200


def test_a_connection_that_never_finishes_its_headers_is_closed(endpoint: LocalEndpoint) -> None:
    quick = Server(endpoint, header_timeout=1.0)
    try:
        with socket.create_connection(("127.0.0.1", quick.port), timeout=10) as slow:
            slow.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: applic")
            started = time.monotonic()
            assert slow.recv(1024) == b""  # closed by the server, not by our 10 s timeout
            assert time.monotonic() - started < 8
        assert call(quick.port, "GET", "/ping").status == 200  # a request that completes is served
    finally:
        quick.close()


def test_chunks_keep_the_order_and_bound_the_text_per_call() -> None:
    texts = [f"t{i} " + "x" * (i * 37 % 900) for i in range(2000)]
    parts = chunks(texts, max_chars=5000, max_texts=64)
    assert [t for part in parts for t in part] == texts
    assert all(len(part) <= 64 and (len(part) == 1 or sum(map(len, part)) <= 5000) for part in parts)
    assert chunks(["y" * 50_000], max_chars=5000) == [["y" * 50_000]]  # one long text is a chunk of its own


class Swapping:
    """An endpoint whose model changes after its first call, as a promotion would mid-batch."""

    def __init__(self) -> None:
        self.calls = 0

    def preprocessing(self) -> str:
        return "pulse-v2"

    def score(self, prepared: list[str]) -> tuple[str, list[Prediction]]:
        self.calls += 1
        version = "v1" if self.calls == 1 else "v2"
        return version, [Prediction("neutral", 0.5, {"neutral": 0.5, "positive": 0.5}) for _ in prepared]

    def version(self) -> str:
        return "v2"

    def refresh(self) -> None:
        pass


def test_a_model_swap_between_chunks_is_scored_again_by_one_version() -> None:
    swapping = Swapping()
    running = Server(swapping)  # type: ignore[arg-type]
    try:
        reply = call(running.port, "POST", "/invocations", {"instances": big_instances(300, 400, seed=1)})
    finally:
        running.close()
    assert reply.status == 200 and reply.headers[VERSION_HEADER] == "v2" and len(reply.json) == 300
    assert swapping.calls >= 3  # two chunks or more by v1 then v2, thrown away, then all of it by v2
