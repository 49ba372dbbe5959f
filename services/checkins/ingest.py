"""Ingest: upload -> validated check-ins -> scored by the live model -> date-partitioned Parquet,
low-confidence rows to the review queue, rejected rows to quarantine.

Idempotent: a batch is named by the hash of its bytes, every write lands on a key fixed by the
batch or the check-in id, and the batch manifest is written last. Re-running a file (or a run that
was killed half-way) gives the same final state. A check-in is stored once in the workspace: one
whose id is already stored by another batch, on any day, counts as already present; ingests hold
the ingest lock (`services.checkins.lock`) while they decide that, so two running at once end as
one after the other would. Every row of a file is accepted, rejected with a reason or already
present: `total_rows == accepted + rejected + already_present`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from services.checkins.aggregate import dataset, list_partitions, unreadable
from services.checkins.lock import IngestLock
from services.checkins.partitions import partition_key, partitions
from services.checkins.upload import ParsedUpload, parse_upload
from services.errors import InvalidUpload, KeyNotFound, StoreError
from services.lifecycle.endpoint import Endpoint
from services.model.prediction import LABELS, PREFIX, PULSE_PREPROCESSING, Prediction, prepare
from services.monitoring.alerts import Notifier, evaluate_alerts
from services.review.batches import write_parts
from services.review.items import text_key
from services.store import keys
from services.store.base import ObjectStore

log = logging.getLogger(__name__)

CHUNK = 5_000
REVIEW_INDEX = keys.REVIEW_INDEX  # <batch>.jsonl: id, confidence, margin, group, time per queued item
Progress = Callable[[int, int], None]


@dataclass
class IngestReport:
    """What one ingest did. Counts, never message text."""

    batch: str
    filename: str
    total_rows: int
    accepted: int
    already_present: int
    rejected: int
    unrecognized: int
    model_version: str
    threshold: float
    dates: list[str] = field(default_factory=list)
    quarantine_key: str | None = None
    finished_at: str = ""
    repeated: bool = False
    alerts: int = 0  # new alerts raised by these check-ins
    labels: dict[str, int] = field(default_factory=dict)  # the model's label -> accepted rows

    def summary(self) -> str:
        rows = (
            f"{self.total_rows:,} rows = {self.accepted:,} accepted + {self.rejected:,} rejected + "
            f"{self.already_present:,} already in the workspace"
        )
        parts = [
            rows,
            f"{self.unrecognized:,} sent to review (confidence < {self.threshold:.2f})",
            f"{self.alerts} new alert{'' if self.alerts == 1 else 's'}",
        ]
        text = f"batch {self.batch}: " + "; ".join(parts) + f"; model {self.model_version}"
        if self.quarantine_key:
            text += f"; rejected rows and reasons in {self.quarantine_key}"
        return text


def batch_id(data: bytes, time_format: str | None = None) -> str:
    """A batch is named by its bytes, and by how its times are read when the upload says so (the
    same file again with a date format is a new batch, so rows refused as ambiguous can be read)."""
    digest = hashlib.sha256(data)
    if time_format:
        digest.update(b"\x00time_format=" + time_format.encode())
    return digest.hexdigest()[:16]


def _stored_ids(store: ObjectStore, batch: str, ids: pd.Series) -> set[str]:
    """Which of `ids` the workspace already holds in other batches, on any day (this batch's own
    partitions are those of an interrupted run of it, which this run rewrites)."""
    listing = list_partitions(store)
    if not listing.files:
        return set()
    try:
        table = dataset(listing).to_table(
            columns=["id"],
            filter=(pc.field("batch") != batch) & pc.field("id").isin(pa.array(ids.unique(), pa.string())),
        )
    except (OSError, pa.ArrowException) as exc:
        raise unreadable(exc) from exc
    return set(table.column("id").to_pylist())


def _write_quarantine(store: ObjectStore, batch: str, parsed: ParsedUpload) -> str | None:
    if not parsed.rejected:
        return None
    key = f"{keys.INGEST_QUARANTINE}{batch}.jsonl"
    lines = (json.dumps(asdict(r), ensure_ascii=False) for r in parsed.rejected)
    store.put(key, ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
    return key


def _review_item(row: dict[str, Any], batch: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "line": f"{PREFIX}{row['label']} {row['prepared']}",
        "text": row["text"],
        "predicted_label": row["label"],
        "confidence": float(row["confidence"]),
        "probs": {label: float(row[f"p_{label}"]) for label in LABELS},
        "model_version": row["model_version"],
        "time": row["time"].isoformat(),
        "participant": row["participant"],
        "group": row["group"],
        "batch": batch,
        "queued_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def score_frame(
    endpoint: Endpoint, frame: pd.DataFrame, *, max_chars: int = 2000, progress: Progress | None = None
) -> pd.DataFrame:
    """Add the prepared text (by Pulse's rules, as datasets hold it), label, confidence, class
    probabilities and model version. The endpoint scores the texts prepared as its model expects."""
    prepared: list[str] = []
    preds: list[Prediction] = []
    versions: list[str] = []
    texts = frame["text"].tolist()
    scheme = endpoint.preprocessing()
    # An endpoint that scores a large batch as one job (a SageMaker Batch Transform) says from how
    # many texts: such an upload goes in one call.
    bulk = getattr(endpoint, "bulk_rows", 0)
    size = len(texts) if bulk and len(texts) >= bulk else CHUNK
    for start in range(0, len(texts), size):
        chunk = [prepare(t, max_chars) for t in texts[start : start + size]]
        if scheme == PULSE_PREPROCESSING:
            version, chunk_preds = endpoint.score(chunk)
        else:
            version, chunk_preds = endpoint.score([prepare(t, max_chars, scheme) for t in texts[start : start + size]])
        prepared.extend(chunk)
        preds.extend(chunk_preds)
        versions.extend([version] * len(chunk))
        if progress:
            progress(len(prepared), len(texts))
    return frame.assign(
        prepared=prepared,
        label=[p.label for p in preds],
        confidence=[p.confidence for p in preds],
        p_negative=[p.probs.get("negative", 0.0) for p in preds],
        p_neutral=[p.probs.get("neutral", 0.0) for p in preds],
        p_positive=[p.probs.get("positive", 0.0) for p in preds],
        margin=[p.margin for p in preds],
        model_version=versions,
    )


def _queue_for_review(store: ObjectStore, low: pd.DataFrame, batch: str) -> None:
    """The batch's low-confidence check-ins as review items, written per part of the batch
    (`services.review.batches`), then one small index naming each item's part, so the labeling
    queue is built without reading the items. The keys are fixed by the batch, so a re-run of an
    interrupted ingest writes the same files; an item labelled meanwhile keeps its left marker."""
    records = low.to_dict("records")
    if not records:
        return
    parts = write_parts(store, batch, [_review_item(row, batch) for row in records])
    index = [
        {
            "id": r["id"],
            "confidence": round(float(r["confidence"]), 4),
            "margin": round(float(r["margin"]), 4),
            "group": r["group"],
            "time": r["time"].isoformat(),
            "text_key": text_key(str(r["text"])),
            "part": part,
        }
        for r, part in zip(records, parts, strict=True)
    ]
    body = "\n".join(json.dumps(row, ensure_ascii=False) for row in index) + "\n"
    store.put(f"{REVIEW_INDEX}{batch}.jsonl", body.encode())


def ingest(
    store: ObjectStore,
    endpoint: Endpoint,
    data: bytes,
    filename: str,
    *,
    threshold: float,
    max_chars: int = 2000,
    now: datetime | None = None,
    progress: Progress | None = None,
    notifier: Notifier | None = None,
    time_format: str | None = None,
) -> IngestReport:
    """Ingest one uploaded file. Raises `InvalidUpload` when the file cannot be read (nothing of it
    is kept) or when not a single row could be accepted (the rejects are quarantined first).
    `time_format` says how dates like 03/04/2026 are meant (`services.checkins.times`).

    Alerts are evaluated on the freshly scored rows once their partitions are written (and before
    the manifest, so an interrupted run evaluates them again); `notifier` publishes the new ones."""
    batch = batch_id(data, time_format)
    done = _recorded(store, batch)
    if done is not None:
        return done
    parsed = parse_upload(data, filename, now=now, time_format=time_format)  # before anything is written
    with IngestLock(store, batch) as lock:
        done = _recorded(store, batch)  # another process ingested the same file while we waited
        if done is not None:
            return done
        report = _ingest_locked(
            store, endpoint, data, filename, parsed, batch, lock, threshold, max_chars, progress, notifier
        )
    log.info("ingested batch %s: %d accepted, %d rejected", batch, report.accepted, report.rejected)
    return report


def _recorded(store: ObjectStore, batch: str) -> IngestReport | None:
    try:
        done = IngestReport(**json.loads(store.get(keys.batch_key(batch))))
    except KeyNotFound:
        return None
    done.repeated = True
    return done


def _ingest_locked(
    store: ObjectStore,
    endpoint: Endpoint,
    data: bytes,
    filename: str,
    parsed: ParsedUpload,
    batch: str,
    lock: IngestLock,
    threshold: float,
    max_chars: int,
    progress: Progress | None,
    notifier: Notifier | None,
) -> IngestReport:
    # Keep the original bytes: a rejected row can always be recovered and fixed.
    store.put(f"{keys.INGEST_UPLOADS}{batch}/{keys.file_name_segment(filename)}", data)
    quarantine_key = _write_quarantine(store, batch, parsed)
    frame = parsed.checkins
    if frame.empty:
        raise InvalidUpload(
            f"no row of {filename!r} could be accepted ({len(parsed.rejected)} rejected).", rejected_key=quarantine_key
        )
    frame = frame.assign(date=frame["time"].dt.strftime("%Y-%m-%d"))
    fresh = frame[~frame["id"].isin(_stored_ids(store, batch, frame["id"]))]
    already = len(frame) - len(fresh)
    version = endpoint.version()
    unrecognized = 0
    alerts = 0
    labels: dict[str, int] = {}

    def scoring(done: int, total: int) -> None:
        lock.renew()
        if progress:
            progress(done, total)

    if not fresh.empty:
        scored = score_frame(endpoint, fresh, max_chars=max_chars, progress=scoring).assign(batch=batch)
        version = scored["model_version"].iloc[0]
        low = scored[scored["confidence"] < threshold]
        _queue_for_review(store, low, batch)
        lock.renew()
        unrecognized = len(low)
        labels = {str(k): int(v) for k, v in scored["label"].value_counts().items()}
        for date, blob in partitions(scored):
            store.put(partition_key(date, batch), blob)
        lock.renew()
        alerts = len(evaluate_alerts(store, scored, notifier=notifier))
    report = IngestReport(
        batch=batch,
        filename=filename,
        total_rows=parsed.total_rows,
        accepted=len(fresh),
        already_present=already,
        rejected=len(parsed.rejected),
        unrecognized=unrecognized,
        model_version=version,
        threshold=threshold,
        dates=sorted(fresh["date"].unique().tolist()),
        quarantine_key=quarantine_key,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        alerts=alerts,
        labels=labels,
    )
    if report.total_rows != report.accepted + report.rejected + report.already_present:
        raise StoreError(f"batch {batch}: the row counts do not add up ({report.summary()}); nothing was recorded")
    store.put(keys.batch_key(batch), json.dumps(asdict(report), indent=2).encode())
    return report
