"""Faults in the middle of an ingest on S3 (moto's server, real HTTP): transient ones are retried and
the ingest completes; one that outlasts the retries stops it with a domain error, and running the same
upload again finishes the work with nothing lost or duplicated (compared with a fault-free run)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from services.aws.s3 import S3Store
from services.checkins.ingest import ingest
from services.errors import StoreError
from services.lifecycle.endpoint import LocalEndpoint
from services.store.local import LocalStore
from tests.faults.injection import Fault, injected, snapshot

N = 60
RETRIED = "retried; state identical to a clean run"


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


@pytest.fixture
def clean(s3_client: Any, bucket: str, bootstrap_store: LocalStore, tmp_path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    store = seeded(s3_client, bucket, "clean", bootstrap_store)
    report = ingest(store, LocalEndpoint(store, tmp_path / "c0"), upload(), "x.csv", threshold=0.9)
    assert report.accepted == N and report.unrecognized > 0
    return snapshot(store)


@pytest.mark.fault(operation="ingest (S3)", fault="{kind}", when="one PutObject, mid-ingest", expected=RETRIED)
@pytest.mark.parametrize("kind", ["throttle", "500", "reset", "landed"])
def test_a_brief_fault_is_retried_and_the_ingest_completes(  # type: ignore[no-untyped-def]
    kind: str, s3_client: Any, bucket: str, bootstrap_store: LocalStore, clean: dict[str, Any], tmp_path
) -> None:
    store = seeded(s3_client, bucket, f"brief-{kind}", bootstrap_store)
    # PutObject #5 is a review item, written create-if-absent: after "landed", the retry finds it there.
    with injected(s3_client, "PutObject", Fault(kind, start=5, count=1)) as fault:
        report = ingest(store, LocalEndpoint(store, tmp_path / "c"), upload(), "x.csv", threshold=0.9)
    assert fault.failed == 1 and fault.calls > 5 and report.accepted == N
    assert snapshot(store) == clean


@pytest.mark.fault(
    operation="ingest (S3)",
    fault="{kind}",
    when="from PutObject #{start}, outlasting retries",
    expected="stopped with a StoreError; re-run: state identical to a clean run",
)
@pytest.mark.parametrize("kind", ["throttle", "500", "reset"])
@pytest.mark.parametrize("start", [3, 12])
def test_a_lasting_fault_stops_the_ingest_and_a_rerun_finishes_it(  # type: ignore[no-untyped-def]
    kind: str, start: int, s3_client: Any, bucket: str, bootstrap_store: LocalStore, clean: dict[str, Any], tmp_path
) -> None:
    store = seeded(s3_client, bucket, f"lasting-{kind}-{start}", bootstrap_store)
    with injected(s3_client, "PutObject", Fault(kind, start=start, count=50)), pytest.raises(StoreError):
        ingest(store, LocalEndpoint(store, tmp_path / "c1"), upload(), "x.csv", threshold=0.9)  # outlasts retries
    again = ingest(store, LocalEndpoint(store, tmp_path / "c2"), upload(), "x.csv", threshold=0.9)
    assert again.accepted + again.already_present == N
    assert snapshot(store) == clean
