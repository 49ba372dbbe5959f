"""Ingest of the same check-ins into a local folder and into S3 (moto's server in its own process,
real HTTP), in one run: seconds, check-ins per second, and the requests each store was sent. The
first two rows score with the same in-process model, so their difference is what the store costs;
the third is the whole aws backend: S3 and the SageMaker endpoint (the stand-in on moto's server,
serving the fastText model the aws demo trains), as `PULSE_BACKEND=aws` runs it.

`PULSE_BENCH_ROWS` sets the number of check-ins (default 100,000)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from services.aws.s3 import S3Store
from services.checkins.ingest import IngestReport, ingest
from services.lifecycle.endpoint import LocalEndpoint
from services.store.base import ObjectStore
from services.store.local import LocalStore
from tests.benchmarks.datasets import airline_checkins
from tests.conftest import free_port, moto_s3_client
from tests.faults.conftest import StandIn
from tests.faults.conftest import standin as aws_standin  # noqa: F401 - the stand-in's fixture

pytestmark = pytest.mark.benchmark

N = int(os.environ.get("PULSE_BENCH_ROWS", "100000"))


class Counted:
    """An object store that counts the calls made to it, by kind (puts, gets, lists, ...)."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in ("get", "put", "list", "exists", "delete"):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls[name] += 1
                return attr(*args, **kwargs)

            return counted
        return attr


@pytest.fixture(scope="module")
def moto_process() -> Iterator[str]:
    """moto's server in a process of its own, so its CPU is not the ingest's."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    client = moto_s3_client(url)
    for _ in range(100):
        try:
            client.list_buckets()
            break
        except Exception:  # not listening yet
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def _upload() -> bytes:
    return pd.DataFrame(airline_checkins(N)).to_csv(index=False).encode()


def _run(
    store: ObjectStore, cache: Path, data: bytes, endpoint: Any = None
) -> tuple[float, IngestReport, Counter[str]]:
    counted = Counted(store)
    endpoint = endpoint or LocalEndpoint(counted, cache)
    endpoint.version()  # the model is loaded (or the endpoint found) before the clock starts
    counted.calls.clear()
    t0 = time.perf_counter()
    report = ingest(counted, endpoint, data, "bench.csv", threshold=0.6)  # type: ignore[arg-type]
    return time.perf_counter() - t0, report, counted.calls


def test_ingest_into_s3_against_a_local_folder(
    bootstrap_store: LocalStore,
    moto_process: str,
    aws_standin: StandIn,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    from services.workspace import open_workspace

    data = _upload()
    local = LocalStore(tmp_path / "ws")
    shutil.copytree(bootstrap_store.root, local.root)
    client = moto_s3_client(moto_process)
    client.create_bucket(Bucket="pulse-bench")
    s3 = S3Store(client, "pulse-bench", prefix="ws")
    for key in [*bootstrap_store.list("deployments/"), *bootstrap_store.list("models/")]:
        s3.put(key, bootstrap_store.get(key))

    local_s, local_report, local_calls = _run(local, tmp_path / "cache-local", data)
    s3_s, s3_report, s3_calls = _run(s3, tmp_path / "cache-s3", data)
    aws_standin.seed("pulse-bench-aws", "ws")
    aws = open_workspace(aws_standin.settings(bucket="pulse-bench-aws", prefix="ws"))
    aws_s, aws_report, aws_calls = _run(aws.store, tmp_path / "cache-aws", data, aws.endpoint)
    assert local_report.accepted == s3_report.accepted == aws_report.accepted == N

    print(
        f"\ningest of {N:,} check-ins (airline texts; to review: {local_report.unrecognized:,} by the local "
        f"model, {aws_report.unrecognized:,} by the endpoint's), one run"
    )
    print(f"  {'store':<28}{'seconds':>9}{'check-ins/s':>13}{'PUTs':>9}{'GETs':>7}{'lists':>7}  vs local")
    for name, seconds, calls in (
        ("local folder (baseline)", local_s, local_calls),
        ("S3, moto's server (HTTP)", s3_s, s3_calls),
        ("aws backend: S3 + endpoint", aws_s, aws_calls),
    ):
        print(
            f"  {name:<28}{seconds:>9.1f}{N / seconds:>13,.0f}{calls['put']:>9,}{calls['get']:>7,}"
            f"{calls['list']:>7,}  {local_s / seconds:.2f}x"
        )
