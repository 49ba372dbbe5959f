"""Load on the local model server (services/serve.py), on 127.0.0.1 only: the server runs in a
subprocess, 1,000 concurrent keep-alive HTTP/1.1 clients (asyncio, one process) each send a bounded
number of 1-8 message batches of preprocessed TweetEval texts. Scoring on the event loop and on a
thread pool are measured in the same run, against the raw in-process fastText predict rate.

Only correctness is asserted (every request answered 200 with one prediction per text), never a
timing. Bounded: REQUESTS_PER_CLIENT requests per client and TIME_LIMIT seconds per server mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.lifecycle.deployment import require_current
from services.lifecycle.endpoint import LocalEndpoint
from services.lifecycle.registry import fetch_model
from services.model.corpus import split_corpus
from services.model.fasttext import fasttext_line, train
from services.model.text import preprocess
from services.store.local import LocalStore
from tests.benchmarks.results import write_result
from tests.conftest import ROOT, SHARED_DATA, free_port

VAL_TEXT = SHARED_DATA / "tweeteval_sentiment_val" / "val_text.txt"
CLIENTS = 1000
REQUESTS_PER_CLIENT = 20
TIME_LIMIT = 20.0  # seconds of sending per server mode; clients stop early when it is up
MODES = {"event loop": 0, "thread pool (4)": 4}  # score_threads passed to services.serve.run
HOST = "127.0.0.1"


def _texts() -> list[str]:
    if not VAL_TEXT.exists():
        pytest.skip(f"{VAL_TEXT} is missing: the benchmark reads the shared TweetEval texts in place")
    lines = VAL_TEXT.read_text(encoding="utf-8").splitlines()
    return [p for p in (preprocess(line) for line in lines) if p]


def _batches(texts: list[str], n: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    return [rng.sample(texts, rng.randint(1, 8)) for _ in range(n)]


def _request(port: int, batch: list[str]) -> bytes:
    body = json.dumps({"instances": batch, "configuration": {"k": 3}}).encode()
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class LoadResult:
    connected: int = 0
    requests: int = 0
    messages: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    server_cpu: float = 0.0  # seconds of CPU the server process used during the load
    client_cpu: float = 0.0  # seconds of CPU this (client) process used during the load
    first_errors: list[str] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)

    def fail(self, why: str) -> None:
        self.errors += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(why)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _client(
    port: int, payloads: list[tuple[bytes, int]], start: asyncio.Event, deadline: list[float], out: LoadResult
) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout=30)
    except (OSError, TimeoutError) as exc:
        out.fail(f"connect: {exc!r}")
        return
    out.connected += 1
    await start.wait()
    try:
        for request, size in payloads:
            if time.monotonic() >= deadline[0]:
                break
            sent = time.perf_counter()
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            headers = {k.lower(): v for k, v in headers.items()}
            body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), timeout=30)
            out.latencies.append(time.perf_counter() - sent)
            out.requests += 1
            if status != 200:
                out.fail(f"HTTP {status}: {body[:100]!r}")
                continue
            answer = json.loads(body)
            if len(answer) != size or any(len(item["label"]) != 3 for item in answer):
                out.fail("wrong number of predictions")
                continue
            out.messages += size
            out.versions.add(headers.get("x-pulse-model-version", ""))
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, KeyError) as exc:
        out.fail(f"{type(exc).__name__}: {exc}")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _load(port: int, requests: list[tuple[bytes, int]]) -> LoadResult:
    out = LoadResult()
    start = asyncio.Event()
    deadline = [float("inf")]
    per_client = [requests[i::CLIENTS][:REQUESTS_PER_CLIENT] for i in range(CLIENTS)]
    tasks = [asyncio.create_task(_client(port, mine, start, deadline, out)) for mine in per_client]
    # Every client connects before any sends, so all 1,000 sockets are open at once.
    wait_until = time.monotonic() + 30
    while out.connected + out.errors < CLIENTS and time.monotonic() < wait_until:
        await asyncio.sleep(0.05)
    began = time.perf_counter()
    deadline[0] = time.monotonic() + TIME_LIMIT
    start.set()
    await asyncio.gather(*tasks)
    out.seconds = time.perf_counter() - began
    return out


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _raise_open_files_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _start_server(workspace: Path, port: int, threads: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PULSE_WORKSPACE": str(workspace), "PYTHONPATH": str(ROOT)}
    code = (
        "from services.config import load_settings; from services.serve import run; "
        f"run(load_settings(), host={HOST!r}, port={port}, score_threads={threads})"
    )
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/ping", timeout=2) as reply:
                if reply.status == 200:
                    return proc
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"the server did not answer /ping within 60s: {log_path.read_text()[-2000:]}")


def _stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()  # SIGTERM: the server closes its connections and exits
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def test_serve_load(bootstrap_store: LocalStore, tmp_path: Path) -> None:
    texts = _texts()
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure below
    _raise_open_files_limit(CLIENTS * 2 + 256)
    workspace = tmp_path / "ws"
    shutil.copytree(bootstrap_store.root, workspace)
    store = LocalStore(workspace)
    version = require_current(store).version
    batches = _batches(texts, CLIENTS * REQUESTS_PER_CLIENT)
    n_messages = sum(len(b) for b in batches)

    # Baselines in this process: raw fastText on every message at once, then the endpoint on the
    # same 1-8 message batches the clients send (no HTTP).
    model = fetch_model(store, version, tmp_path / "cache")
    # The baseline is fastText's own predict; the deployed bootstrap may be of the linear family.
    ft = getattr(model, "_ft", None) or train([fasttext_line(r.label, r.text) for r in split_corpus().train])._ft
    flat = [t for b in batches for t in b]
    began = time.perf_counter()
    ft.predict(flat, k=-1)
    raw_rate = len(flat) / (time.perf_counter() - began)
    endpoint = LocalEndpoint(store, tmp_path / "cache")
    endpoint.version()
    began = time.perf_counter()
    for batch in batches:
        endpoint.score(batch)
    endpoint_seconds = time.perf_counter() - began

    results: dict[str, LoadResult] = {}
    for name, threads in MODES.items():
        port = free_port()
        proc = _start_server(workspace, port, threads, tmp_path / f"server-{threads}.log")
        try:
            requests = [(_request(port, b), len(b)) for b in batches]
            server_cpu, client_cpu = _cpu_seconds(proc.pid), time.process_time()
            results[name] = asyncio.run(_load(port, requests))
            results[name].server_cpu = _cpu_seconds(proc.pid) - server_cpu
            results[name].client_cpu = time.process_time() - client_cpu
        finally:
            _stop_server(proc)

    out = io.StringIO()
    print(
        f"\nserve load: {CLIENTS:,} concurrent keep-alive clients x up to {REQUESTS_PER_CLIENT} requests "
        f"(1-8 TweetEval messages each, {n_messages / len(batches):.1f} on average, k=3), "
        f"server in a subprocess on {HOST}, {os.cpu_count()} cores, load average {load_before:.1f} before",
        file=out,
    )
    header = f"  {'mode':<18}{'clients':>8}{'requests':>10}{'errors':>8}{'req/s':>9}{'msg/s':>9}{'p50 ms':>9}"
    print(header + f"{'p99 ms':>9}{'vs raw':>8}{'server CPU/req':>16}{'client CPU':>12}", file=out)
    for name, r in results.items():
        msg_rate = r.messages / r.seconds
        print(
            f"  {name:<18}{r.connected:>8,}{r.requests:>10,}{r.errors:>8,}{r.requests / r.seconds:>9,.0f}"
            f"{msg_rate:>9,.0f}{1000 * r.percentile(0.5):>9.1f}{1000 * r.percentile(0.99):>9.1f}"
            f"{msg_rate / raw_rate:>7.3f}x{1000 * r.server_cpu / max(1, r.requests):>13.2f} ms"
            f"{r.client_cpu:>11.1f}s",
            file=out,
        )
    print(f"  in-process LocalEndpoint.score, same batches: {n_messages / endpoint_seconds:>9,.0f} msg/s", file=out)
    print(f"  in-process raw fastText predict (baseline):   {raw_rate:>9,.0f} msg/s", file=out)
    print(out.getvalue())
    write_result(
        "serve_load",
        f"`serve` under {CLIENTS:,} concurrent clients (127.0.0.1, {model.family} model live)",
        ["mode", "clients", "requests", "errors", "req/s", "msg/s", "p50 ms", "p99 ms"],
        [
            [
                name,
                r.connected,
                r.requests,
                r.errors,
                round(r.requests / r.seconds),
                round(r.messages / r.seconds),
                round(1000 * r.percentile(0.5), 1),
                round(1000 * r.percentile(0.99), 1),
            ]
            for name, r in results.items()
        ],
        [
            f"Keep-alive clients, up to {REQUESTS_PER_CLIENT} requests each of 1-8 TweetEval messages.",
            f"In-process baselines: LocalEndpoint.score {n_messages / endpoint_seconds:,.0f} msg/s, raw fastText "
            f"predict {raw_rate:,.0f} msg/s; load average {load_before:.1f} before the run.",
        ],
    )

    for name, r in results.items():
        assert r.connected == CLIENTS, f"{name}: {r.first_errors}"
        assert r.errors == 0, f"{name}: {r.errors} failed requests, first: {r.first_errors}"
        assert r.requests > 0
        assert r.versions == {version}
