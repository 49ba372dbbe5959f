"""Deleting one participant's data from the whole workspace (an admin's action, audited).

What a participant wrote lives in several places; each is handled so nothing of theirs is left:

    checkins/date=*/<batch>.parquet     their rows are removed (the file is rewritten in place)
    review/unrecognized/<id>.json       their waiting items are deleted (claims and skips with them)
    review/labels/<id>/*.json           labels of their messages stay (counts, agreement) but lose the text
    review/actions/*                    annotators' action records of their items are deleted
                                        (they hold a copy of the item for undo)
    alerts/events/, alerts/status/      alerts about them are deleted
    ingest/uploads/<batch>/*            original uploads holding their rows are deleted (everyone
                                        else's rows of those files stay in checkins/)
    ingest/quarantine/<batch>.jsonl     their rejected rows are removed
    datasets/<version>/*.txt            versions holding their labelled messages are rebuilt from the
                                        manifest without them (hashes updated: verify_rebuild holds)

Trained models cannot forget: the report lists the model versions trained on a dataset that held
their messages, so an admin can retrain and retire them. The audit log records the deletion with a
keyed pseudonym of the participant, never the id itself (the log must not become where the deleted
person's identity survives), and counts per place. Running it again finds nothing and succeeds.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from services import audit
from services.errors import KeyNotFound, PulseError
from services.labels import PREFIX as LABELS_PREFIX
from services.labels import Label
from services.storage import ObjectStore
from services.text import PREPROCESSING, preprocess

log = logging.getLogger(__name__)

CHECKINS = "checkins/"
ITEMS = "review/unrecognized/"
CLAIMS = "review/claims/"
SKIPS = "review/skips/"
ACTIONS = "review/actions/"
EVENTS = "alerts/events/"
STATUS = "alerts/status/"
UPLOADS = "ingest/uploads/"
QUARANTINE = "ingest/quarantine/"
DATASETS = "datasets/"


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

    @property
    def found_anything(self) -> bool:
        return any((self.checkins, self.review_items, self.labels_scrubbed, self.alerts, self.uploads_deleted)) or bool(
            self.quarantined_rows or self.dataset_lines or self.annotator_actions
        )


def audit_pseudonym(store: ObjectStore, participant: str) -> str:
    """A keyed, non-reversible stand-in for the participant in the audit log (the same key as the
    annotators' pseudonyms, so an admin holding the key can still answer "was X deleted?")."""
    from services.labeling import workspace_pseudonym_key

    digest = hmac.new(workspace_pseudonym_key(store), participant.encode(), hashlib.sha256).hexdigest()
    return f"p-{digest[:12]}"


def delete_participant(
    store: ObjectStore, participant: str, *, by: str, role: str = "", pseudonym_key: bytes | None = None
) -> DeletionReport:
    """Remove `participant`'s data everywhere in the workspace (see the module docstring)."""
    if not participant.strip():
        raise PulseError("say which participant to delete")
    report = DeletionReport(pseudonym=audit_pseudonym(store, participant))
    ids, texts = _delete_checkins(store, participant, report)
    ids |= _delete_review_items(store, participant, report)
    texts |= _scrub_labels(store, ids, report)
    _delete_actions(store, ids, participant, report)
    _delete_alerts(store, ids, participant, report)
    _delete_uploads(store, participant, report)
    _scrub_quarantine(store, participant, report)
    _scrub_datasets(store, texts, report)
    audit.record(
        store,
        by,
        role,
        "participant_deleted",
        report.pseudonym,
        {
            "checkins": report.checkins,
            "review_items": report.review_items,
            "labels_scrubbed": report.labels_scrubbed,
            "alerts": report.alerts,
            "uploads_deleted": report.uploads_deleted,
            "dataset_lines": report.dataset_lines,
            "models_trained_on_them": len(report.models_trained_on_them),
        },
    )
    log.info("participant data deleted by %s (%s)", by, report.pseudonym)
    return report


def _delete_checkins(store: ObjectStore, participant: str, report: DeletionReport) -> tuple[set[str], set[str]]:
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


def _read_json(store: ObjectStore, key: str) -> Any:
    try:
        return json.loads(store.get(key))
    except (KeyNotFound, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _delete_review_items(store: ObjectStore, participant: str, report: DeletionReport) -> set[str]:
    ids: set[str] = set()
    for key in list(store.list(ITEMS)):
        item = _read_json(store, key)
        if isinstance(item, dict) and item.get("participant") == participant:
            ids.add(str(item.get("id", "")))
            store.delete(key)
            report.review_items += 1
    for item_id in ids:
        store.delete(f"{CLAIMS}{item_id}.json")
        for key in list(store.list(SKIPS)):
            if key.endswith(f"/{item_id}.json"):
                store.delete(key)
    return ids


def _scrub_labels(store: ObjectStore, ids: set[str], report: DeletionReport) -> set[str]:
    """Labels keep their decision, annotator and time, and lose the text."""
    texts: set[str] = set()
    for item_id in sorted(ids):
        for key in list(store.list(f"{LABELS_PREFIX}{item_id}/")):
            raw = _read_json(store, key)
            if not isinstance(raw, dict) or not raw.get("text"):
                continue
            texts.add(str(raw["text"]))
            label = Label(**{**raw, "text": ""})
            store.put(key, json.dumps(label.__dict__, ensure_ascii=False).encode())
            report.labels_scrubbed += 1
    return texts


def _delete_actions(store: ObjectStore, ids: set[str], participant: str, report: DeletionReport) -> None:
    for key in list(store.list(ACTIONS)):
        record = _read_json(store, key)
        if not isinstance(record, dict):
            continue
        item = record.get("item")
        theirs = isinstance(item, dict) and item.get("participant") == participant
        if record.get("item_id") in ids or theirs:
            store.delete(key)
            report.annotator_actions += 1


def _delete_alerts(store: ObjectStore, ids: set[str], participant: str, report: DeletionReport) -> None:
    for key in list(store.list(EVENTS)):
        alert = _read_json(store, key)
        if not isinstance(alert, dict):
            continue
        if alert.get("participant") == participant or set(alert.get("checkin_ids") or ()) & ids:
            alert_id = key.removeprefix(EVENTS).removesuffix(".json")
            for status in list(store.list(f"{STATUS}{alert_id}/")):
                store.delete(status)
            store.delete(key)
            report.alerts += 1


def _delete_uploads(store: ObjectStore, participant: str, report: DeletionReport) -> None:
    """An original upload holding any row of theirs is deleted whole: uploads come in many formats
    and are kept only to re-ingest; the other rows of the file are already in checkins/."""
    from services.checkins import parse_upload
    from services.errors import InvalidUpload

    for key in list(store.list(UPLOADS)):
        data = store.get(key)
        try:
            parsed = parse_upload(data, key.rsplit("/", 1)[-1])
        except InvalidUpload:
            mine = participant.encode() in data  # unreadable: fall back to a byte search
        else:
            mine = bool((parsed.checkins["participant"] == participant).any()) or any(
                r.raw.get("participant") == participant for r in parsed.rejected
            )
        if mine:
            store.delete(key)
            report.uploads_deleted += 1


def _scrub_quarantine(store: ObjectStore, participant: str, report: DeletionReport) -> None:
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


def _scrub_datasets(store: ObjectStore, texts: set[str], report: DeletionReport) -> None:
    """Dataset versions holding lines made from their messages are rebuilt from their manifests
    (whose labels have lost the text by now, so the lines drop out; the split may move a few other
    rows), with the manifest's hashes updated and the redaction counted: `verify_rebuild` holds."""
    if not texts:
        return
    from services.datasets import load_manifest, rebuilt_content

    # As dataset building writes them, by the current rules and the earlier ones (older versions).
    prepared = {preprocess(t, v) for t in texts for v in range(1, PREPROCESSING + 1)} - {""}
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
            "hashes": {**m.hashes, "train.txt": _sha(train), "validation.txt": _sha(validation)},
            "redactions": m.redactions + 1,
        }
        store.put(f"{DATASETS}{version}/manifest.json", json.dumps(manifest, indent=2).encode())
        report.dataset_lines += hits
        report.models_trained_on_them += _models_of(store, version)


def _lines_of(body: str, prepared: set[str]) -> int:
    """Lines of a dataset file (`__label__x text`) whose text is one of `prepared`."""
    return sum(1 for line in body.splitlines() if line.split(" ", 1)[-1] in prepared)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _models_of(store: ObjectStore, dataset: str) -> list[str]:
    out = []
    for key in store.list("models/"):
        if key.endswith("/card.json"):
            card = _read_json(store, key)
            if isinstance(card, dict) and card.get("dataset") == dataset:
                out.append(str(card.get("version", key.split("/")[1])))
    return sorted(out)
