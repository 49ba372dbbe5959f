"""Removing one participant's data from each place of the workspace, one function per place (the order
and the resuming are `services.access.privacy`'s). Each returns what it found, so what a place holds
(check-in ids, texts) reaches the places after it."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from services.errors import KeyNotFound
from services.review import batches
from services.review.labels import PREFIX as LABELS_PREFIX
from services.review.labels import Label
from services.store import keys
from services.store.base import ObjectStore

CHECKINS = keys.CHECKINS


ITEMS = keys.REVIEW_ITEMS


CLAIMS = keys.REVIEW_CLAIMS


SKIPS = keys.REVIEW_SKIPS


ACTIONS = keys.REVIEW_ACTIONS


EVENTS = keys.ALERT_EVENTS


STATUS = keys.ALERT_STATUS


UPLOADS = keys.INGEST_UPLOADS


QUARANTINE = keys.INGEST_QUARANTINE


DATASETS = keys.DATASETS


@dataclass
class DeletionReport:
    """Counts per place, and what cannot be undone by deleting files. Never ids or text."""

    pseudonym: str
    checkins: int = 0
    partitions_rewritten: int = 0
    review_items: int = 0
    labels_scrubbed: int = 0
    annotator_actions: int = 0
    alerts: int = 0
    uploads_deleted: int = 0
    quarantined_rows: int = 0
    dataset_lines: int = 0
    models_trained_on_them: list[str] = field(default_factory=list)
    resumed: bool = False  # a stopped run of this deletion was found and completed

    @property
    def found_anything(self) -> bool:
        return any((self.checkins, self.review_items, self.labels_scrubbed, self.alerts, self.uploads_deleted)) or bool(
            self.quarantined_rows or self.dataset_lines or self.annotator_actions
        )


def delete_checkins(store: ObjectStore, participant: str, report: DeletionReport) -> tuple[set[str], set[str]]:
    ids: set[str] = set()
    texts: set[str] = set()
    for key in list(store.list(CHECKINS)):
        if not key.endswith(".parquet"):
            continue
        table = pq.read_table(io.BytesIO(store.get(key)))
        mine = pc.equal(table.column("participant"), participant)
        hits = int(pc.sum(mine).as_py() or 0)
        if not hits:
            continue
        gone = table.filter(mine)
        ids.update(str(i) for i in gone.column("id").to_pylist())
        texts.update(str(t) for t in gone.column("text").to_pylist())
        kept = table.filter(pc.invert(mine))
        if kept.num_rows:
            out = io.BytesIO()
            pq.write_table(kept, out)
            store.put(key, out.getvalue())
        else:
            store.delete(key)
        report.checkins += hits
        report.partitions_rewritten += 1
    return ids, texts


def json_or_none(store: ObjectStore, key: str) -> Any:
    """The JSON at `key`, or None when it is absent or unreadable (a deletion goes on past it)."""
    try:
        return json.loads(store.get(key))
    except (KeyNotFound, json.JSONDecodeError, UnicodeDecodeError):
        return None


def delete_review_items(store: ObjectStore, participant: str, report: DeletionReport) -> set[str]:
    """Their waiting items: one-file items deleted; batch items marked as left, then their lines
    taken out of the batch parts (every read checks the marker first, so no copy in a replica's
    memory is served meanwhile)."""
    ids: set[str] = set()
    for key in list(store.list(ITEMS)):
        item = json_or_none(store, key)
        if isinstance(item, dict) and item.get("participant") == participant:
            ids.add(str(item.get("id", "")))
            store.delete(key)
            report.review_items += 1
    in_parts: dict[str, set[str]] = {}
    for part, item in batches.part_items(store, batches.all_parts(store)):
        if item.get("participant") == participant:
            in_parts.setdefault(part, set()).add(str(item.get("id", "")))
    for part, mine in in_parts.items():
        for item_id in mine:
            batches.leave(store, item_id, "erased")
        report.review_items += batches.rewrite_without(store, part, mine)
        ids |= mine
    for item_id in ids:
        store.delete(f"{CLAIMS}{item_id}.json")
        for key in list(store.list(SKIPS)):
            if key.endswith(f"/{item_id}.json"):
                store.delete(key)
    return ids


def scrub_labels(store: ObjectStore, ids: set[str], report: DeletionReport) -> set[str]:
    """Labels keep their decision, annotator and time, and lose the text."""
    texts: set[str] = set()
    for item_id in sorted(ids):
        for key in list(store.list(f"{LABELS_PREFIX}{item_id}/")):
            raw = json_or_none(store, key)
            if not isinstance(raw, dict) or not raw.get("text"):
                continue
            texts.add(str(raw["text"]))
            label = Label(**{**raw, "text": ""})
            store.put(key, json.dumps(label.__dict__, ensure_ascii=False).encode())
            report.labels_scrubbed += 1
    return texts


def delete_actions(store: ObjectStore, ids: set[str], participant: str, report: DeletionReport) -> None:
    for key in list(store.list(ACTIONS)):
        record = json_or_none(store, key)
        if not isinstance(record, dict):
            continue
        item = record.get("item")
        theirs = isinstance(item, dict) and item.get("participant") == participant
        if record.get("item_id") in ids or theirs:
            store.delete(key)
            report.annotator_actions += 1


def delete_alerts(store: ObjectStore, ids: set[str], participant: str, report: DeletionReport) -> None:
    for key in list(store.list(EVENTS)):
        alert = json_or_none(store, key)
        if not isinstance(alert, dict):
            continue
        if alert.get("participant") == participant or set(alert.get("checkin_ids") or ()) & ids:
            alert_id = key.removeprefix(EVENTS).removesuffix(".json")
            for status in list(store.list(f"{STATUS}{alert_id}/")):
                store.delete(status)
            store.delete(key)
            report.alerts += 1


def delete_uploads(store: ObjectStore, participant: str, report: DeletionReport) -> None:
    """An original upload holding any row of theirs is deleted whole: uploads come in many formats
    and are kept only to re-ingest; the other rows of the file are already in checkins/."""
    for key in list(store.list(UPLOADS)):
        if _upload_mentions(store.get(key), key.rsplit("/", 1)[-1], participant):
            store.delete(key)
            report.uploads_deleted += 1


def _upload_mentions(data: bytes, filename: str, participant: str) -> bool:
    """Whether a kept upload holds a row of `participant`: read row by row as ingest reads it, but
    without parsing times or anything else that can fail on a row; a row that cannot be read, or a
    file that cannot be read at all, is searched for their id as bytes."""
    from services.checkins.records import Rejected, upload_records
    from services.errors import InvalidUpload

    wanted = participant.strip()
    needle = participant.encode("utf-8", "surrogateescape")
    try:
        for _, record in upload_records(data, filename):
            fields = record.raw if isinstance(record, Rejected) else record
            if not fields:  # a row whose fields could not be read at all
                if needle in data:
                    return True
                continue
            if _row_mentions(record, fields, wanted):
                return True
    except (InvalidUpload, ValueError, RecursionError, OverflowError, MemoryError):
        return needle in data
    return False


def _row_mentions(record: object, fields: dict[str, Any], wanted: str) -> bool:
    """A row read as a record: its participant field. A rejected row: any of its fields as split,
    or, for a JSON line that did not parse, the id anywhere in the line."""
    from services.checkins.records import Rejected

    if not isinstance(record, Rejected):
        return str(fields.get("participant") or "").strip() == wanted
    if any(str(v).strip() == wanted for v in fields.values()):
        return True
    return "line" in fields and wanted in str(fields["line"])


def scrub_quarantine(store: ObjectStore, participant: str, report: DeletionReport) -> None:
    for key in list(store.list(QUARANTINE)):
        lines = store.get(key).decode("utf-8", "surrogateescape").splitlines()
        kept = []
        for line in lines:
            try:
                raw = json.loads(line).get("raw", {})
            except (json.JSONDecodeError, AttributeError):
                kept.append(line)
                continue
            if isinstance(raw, dict) and any(str(v).strip() == participant for v in raw.values()):
                report.quarantined_rows += 1
            else:
                kept.append(line)
        if len(kept) != len(lines):
            if kept:
                store.put(key, ("\n".join(kept) + "\n").encode("utf-8", "surrogateescape"))
            else:
                store.delete(key)


def scrub_datasets(store: ObjectStore, prepared: set[str], report: DeletionReport) -> None:
    """Dataset versions holding lines made from their messages (`prepared`: hashes of their prepared
    texts) are rebuilt from their manifests (whose labels have lost the text by now, so the lines drop
    out; the split may move a few other rows), with the manifest's hashes updated and the redaction
    counted: `verify_rebuild` holds."""
    if not prepared:
        return
    from services.lifecycle.datasets import load_manifest, rebuilt_content

    keys = list(store.list(DATASETS))
    versions = {k.split("/")[1] for k in keys if k.endswith("/manifest.json")}
    for key in keys:  # the files of a build that failed before its manifest: unusable, deleted
        if key.split("/")[1] not in versions and key.endswith(".txt"):
            hits = _lines_of(store.get(key).decode("utf-8", "replace"), prepared)
            if hits:
                store.delete(key)
                report.dataset_lines += hits
    for version in sorted(versions):
        m = load_manifest(store, version)
        old = [store.get(m.train_key).decode("utf-8"), store.get(m.validation_key).decode("utf-8")]
        hits = sum(_lines_of(body, prepared) for body in old)
        if not hits:
            continue
        train, validation = rebuilt_content(store, m)
        store.put(m.train_key, train)
        store.put(m.validation_key, validation)
        manifest = {
            **asdict(m),
            "hashes": {**m.hashes, "train.txt": sha(train), "validation.txt": sha(validation)},
            "redactions": m.redactions + 1,
        }
        store.put(f"{DATASETS}{version}/manifest.json", json.dumps(manifest, indent=2).encode())
        report.dataset_lines += hits
        report.models_trained_on_them += _models_of(store, version)


def _lines_of(body: str, prepared: set[str]) -> int:
    """Lines of a dataset file (`__label__x text`) whose text hashes to one of `prepared`."""
    return sum(1 for line in body.splitlines() if sha(line.split(" ", 1)[-1].encode()) in prepared)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _models_of(store: ObjectStore, dataset: str) -> list[str]:
    out = []
    for key in store.list(keys.MODELS):
        if key.endswith("/card.json"):
            card = json_or_none(store, key)
            if isinstance(card, dict) and card.get("dataset") == dataset:
                out.append(str(card.get("version", key.split("/")[1])))
    return sorted(out)
