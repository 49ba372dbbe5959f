"""Faults in the middle of an ingest on S3 (moto's server, real HTTP): transient ones are retried and
the ingest completes; one that outlasts the retries stops it with a domain error, and running the same
upload again finishes the work with nothing lost or duplicated (compared with a fault-free run)."""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError

from services.endpoint import LocalEndpoint
from services.errors import StoreError
from services.ingest import ingest
from services.storage import LocalStore, S3Store
from tests.adapters.test_s3_errors import _Raw, s3_error_body

N = 60


def upload() -> bytes:
    rows = [
        {
            "participant": f"p{i % 7}",
            "group": f"g{i % 3}",
            "time": f"2026-11-{10 + i % 10:02d}T09:{i % 60:02d}:00Z",
            "text": f"message number {i}, some days are {'good' if i % 2 else 'hard'}",
        }
        for i in range(N)
    ]
    return pd.DataFrame(rows).to_csv(index=False).encode()


def seeded(s3_client: Any, bucket: str, prefix: str, bootstrap_store: LocalStore) -> S3Store:
    store = S3Store(s3_client, bucket, prefix)
    for key in bootstrap_store.list(""):
        store.put(key, bootstrap_store.get(key))
    return store


def state(store: S3Store) -> dict[str, Any]:
    """What an ingest leaves: scored rows (decoded), review items, the review index, alerts."""
    rows = []
    for key in store.list("checkins/"):
        rows += pq.read_table(io.BytesIO(store.get(key))).to_pylist()
    items = {k: json.loads(store.get(k)) for k in store.list("review/unrecognized/")}
    for item in items.values():
        item.pop("queued_at", None)
    return {
        "rows": sorted((r["id"], r["label"], r["model_version"]) for r in rows),
        "items": sorted(items),
        "index": sorted(line for k in store.list("review/index/") for line in store.get(k).decode().splitlines()),
        "alerts": sorted(store.list("alerts/events/")),
    }


class FailPuts:
    """Fail PutObject calls number `start` .. `start + count - 1` (after that, let them through)."""

    def __init__(self, start: int, count: int, kind: str) -> None:
        self.start, self.count, self.kind, self.calls = start, count, kind, 0

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        self.calls += 1
        if not self.start <= self.calls < self.start + self.count:
            return None
        if self.kind == "reset":
            raise ConnectionClosedError(endpoint_url=request.url)
        code, status = {"throttle": ("SlowDown", 503), "500": ("InternalError", 500)}[self.kind]
        return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Raw(s3_error_body(code)))


@pytest.fixture
def clean(s3_client: Any, bucket: str, bootstrap_store: LocalStore, tmp_path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    store = seeded(s3_client, bucket, "clean", bootstrap_store)
    report = ingest(store, LocalEndpoint(store, tmp_path / "c0"), upload(), "x.csv", threshold=0.9)
    assert report.accepted == N and report.unrecognized > 0
    return state(store)


@pytest.mark.parametrize("kind", ["throttle", "500", "reset"])
def test_a_brief_fault_is_retried_and_the_ingest_completes(  # type: ignore[no-untyped-def]
    kind: str, s3_client: Any, bucket: str, bootstrap_store: LocalStore, clean: dict[str, Any], tmp_path
) -> None:
    store = seeded(s3_client, bucket, f"brief-{kind}", bootstrap_store)
    fault = FailPuts(start=5, count=1, kind=kind)
    s3_client.meta.events.register("before-send.s3.PutObject", fault)
    try:
        report = ingest(store, LocalEndpoint(store, tmp_path / "c"), upload(), "x.csv", threshold=0.9)
    finally:
        s3_client.meta.events.unregister("before-send.s3.PutObject", fault)
    assert fault.calls > 5 and report.accepted == N
    assert state(store) == clean


@pytest.mark.parametrize("kind", ["throttle", "500", "reset"])
@pytest.mark.parametrize("start", [3, 12])
def test_a_lasting_fault_stops_the_ingest_and_a_rerun_finishes_it(  # type: ignore[no-untyped-def]
    kind: str, start: int, s3_client: Any, bucket: str, bootstrap_store: LocalStore, clean: dict[str, Any], tmp_path
) -> None:
    store = seeded(s3_client, bucket, f"lasting-{kind}-{start}", bootstrap_store)
    fault = FailPuts(start=start, count=50, kind=kind)  # outlasts the client's retries
    s3_client.meta.events.register("before-send.s3.PutObject", fault)
    try:
        with pytest.raises(StoreError):
            ingest(store, LocalEndpoint(store, tmp_path / "c1"), upload(), "x.csv", threshold=0.9)
    finally:
        s3_client.meta.events.unregister("before-send.s3.PutObject", fault)
    again = ingest(store, LocalEndpoint(store, tmp_path / "c2"), upload(), "x.csv", threshold=0.9)
    assert again.accepted + again.already_present == N
    assert state(store) == clean
