"""S3 faults for the fault tests: a botocore `before-send` handler that answers in place of the
network (throttling, a 500) or drops the connection, before or after the request reached S3, so
the client's real parser and retry policy see the fault; and what a workspace holds afterwards,
reduced to ids and digests (never message text) so that two runs can be compared."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow.parquet as pq
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ConnectionClosedError
from botocore.httpsession import URLLib3Session

from services.store.base import ObjectStore
from tests.adapters.test_s3_errors import _Raw, s3_error_body

KINDS = ("throttle", "500", "reset")
_ERRORS = {"throttle": ("SlowDown", 503), "500": ("InternalError", 500)}


class Fault:
    """Fail calls number `start` .. `start + count - 1` of the operations it is registered for
    (`count=None`: every call from `start` until `end()`), counting only requests whose URL
    contains `where`. Kinds: "throttle" (503 SlowDown), "500" (500 InternalError), "reset" (the
    connection drops before S3 saw the request), "landed" (S3 handles the request, then the
    connection drops before the answer arrives). With `then`, the calls after those fail with that
    kind until `end()` (an outage that begins with a lost answer)."""

    def __init__(
        self, kind: str, *, start: int = 1, count: int | None = 1, where: str = "", then: str | None = None
    ) -> None:
        if kind not in (*KINDS, "landed") or then not in (None, *KINDS):
            raise ValueError(f"unknown fault kind {kind!r} / {then!r}")
        self.kind, self.start, self.count, self.where, self.then = kind, start, count, where, then
        self.calls = 0  # requests seen (matching `where`)
        self.failed = 0  # requests failed
        self.ended = False

    def end(self) -> None:
        """S3 is back: let every later request through."""
        self.ended = True

    def _kind(self) -> str | None:
        """How the current call fails, or None."""
        if self.ended or self.calls < self.start:
            return None
        if self.count is None or self.calls < self.start + self.count:
            return self.kind
        return self.then

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        if self.where and self.where not in request.url:
            return None
        self.calls += 1
        kind = self._kind()
        if kind is None:
            return None
        self.failed += 1
        if kind == "reset":
            raise ConnectionClosedError(endpoint_url=request.url)
        if kind == "landed":
            URLLib3Session().send(request)  # S3 handles it; the answer is lost on the way back
            raise ConnectionClosedError(endpoint_url=request.url)
        code, status = _ERRORS[kind]
        return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Raw(s3_error_body(code)))


class Vanish:
    """A before-send handler that deletes the whole bucket (its objects, then the bucket) through
    another client, `admin`, when the `at`-th request goes out; that request then goes on and
    meets the missing bucket, like every later one."""

    def __init__(self, admin: Any, bucket: str, *, at: int = 1, where: str = "") -> None:
        self.admin, self.bucket, self.at, self.where = admin, bucket, at, where
        self.calls = 0
        self.vanished = False
        self._lock = threading.Lock()  # ingest writes review items from several threads

    def __call__(self, request: Any, **_: Any) -> None:
        if self.where and self.where not in request.url:
            return
        with self._lock:
            self.calls += 1
            if self.calls == self.at:
                delete_bucket(self.admin, self.bucket)
                self.vanished = True


def delete_bucket(client: Any, bucket: str, *, rounds: int = 20) -> None:
    """Delete every object of `bucket`, then the bucket; again while writers still add objects."""
    for _ in range(rounds):
        keys = [
            {"Key": obj["Key"]}
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for obj in page.get("Contents", [])
        ]
        for start in range(0, len(keys), 1000):
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True})
        try:
            client.delete_bucket(Bucket=bucket)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketNotEmpty":
                raise
    raise RuntimeError(f"bucket {bucket} kept filling up while it was being deleted")


@contextmanager
def injected(client: Any, operation: str, fault: Any) -> Iterator[Any]:
    """`fault` as a before-send handler of `operation` (e.g. "PutObject") on `client`, for the block."""
    event = f"before-send.s3.{operation}"
    client.meta.events.register(event, fault)
    try:
        yield fault
    finally:
        client.meta.events.unregister(event, fault)


def copy_keys(source: ObjectStore, target: ObjectStore, prefix: str = "") -> int:
    """Copy every object under `prefix` from one store to another; the number copied."""
    n = 0
    for key in source.list(prefix):
        target.put(key, source.get(key))
        n += 1
    return n


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def batch_items(store: ObjectStore) -> dict[str, str]:
    """The review items of the batch parts, by id, as digests (but their queue time)."""
    out = {}
    for key in store.list("review/batches/"):
        for line in store.get(key).decode().splitlines():
            doc = json.loads(line)
            doc.pop("queued_at", None)
            out[f"{key}#{doc['id']}"] = digest(doc)
    return out


def snapshot(store: ObjectStore) -> dict[str, Any]:
    """What ingests leave in a workspace, as ids and digests: every scored row (all columns), every
    review item (but its queue time), the review index, alerts (but when they were raised), batch
    manifests (but when they finished), quarantined rows and kept uploads."""

    def docs(prefix: str, drop: str) -> dict[str, str]:
        out = {}
        for key in store.list(prefix):
            doc = json.loads(store.get(key))
            doc.pop(drop, None)
            out[key] = digest(doc)
        return out

    rows = {}
    for key in store.list("checkins/"):
        for row in pq.read_table(io.BytesIO(store.get(key))).to_pylist():
            rows[(key, row["id"])] = digest(row)
    return {
        "rows": rows,
        "items": {**docs("review/unrecognized/", "queued_at"), **batch_items(store)},
        "index": sorted(
            digest(line) for key in store.list("review/index/") for line in store.get(key).decode().splitlines()
        ),
        "alerts": docs("alerts/events/", "created_at"),
        "batches": docs("ingest/batches/", "finished_at"),
        "kept": {
            key: hashlib.sha256(store.get(key)).hexdigest()[:16]
            for prefix in ("ingest/quarantine/", "ingest/uploads/")
            for key in store.list(prefix)
        },
    }
