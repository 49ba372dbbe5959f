"""Participant deletion against S3 (moto's server): partitions rewritten, items and alerts deleted."""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from services.access.audit import read_events
from services.access.privacy import delete_participant
from services.aws.s3 import S3Store
from services.review.labels import Label, read_labels, save_label


def _partition(rows: list[dict[str, str]]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out.getvalue()


def test_deletion_on_s3(s3_client: Any, bucket: str) -> None:
    store = S3Store(s3_client, bucket, "pulse")
    rows = [
        {"id": "c1", "participant": "zed", "group": "G", "text": "zed is sad"},
        {"id": "c2", "participant": "amy", "group": "G", "text": "amy is fine"},
    ]
    store.put("checkins/date=2026-11-20/b1.parquet", _partition(rows))
    store.put("checkins/date=2026-11-21/b2.parquet", _partition(rows[:1]))
    store.put(
        "review/unrecognized/c1.json", json.dumps({"id": "c1", "participant": "zed", "text": "zed is sad"}).encode()
    )
    store.put("alerts/events/a1.json", json.dumps({"id": "a1", "participant": "zed", "checkin_ids": ["c1"]}).encode())
    store.put("alerts/status/a1/s1.json", b"{}")
    save_label(store, Label("c1", "zed is sad", "negative", "ann", "2026-11-22T00:00:00+00:00"))

    report = delete_participant(store, "zed", by="admin", role="admin")

    assert (report.checkins, report.partitions_rewritten, report.review_items, report.alerts) == (2, 2, 1, 1)
    left = pq.read_table(io.BytesIO(store.get("checkins/date=2026-11-20/b1.parquet"))).to_pylist()
    assert [r["participant"] for r in left] == ["amy"]
    assert not store.exists("checkins/date=2026-11-21/b2.parquet")  # nothing else was in it
    assert not store.exists("review/unrecognized/c1.json") and not list(store.list("alerts/"))
    [(_, label)] = read_labels(store)
    assert (label.label, label.text) == ("negative", "")
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]]
    blob = b"".join(s3_client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys if k.endswith(".json"))
    assert b"zed" not in blob
    assert read_events(store, actions=["participant_deleted"])[0].target == report.pseudonym
