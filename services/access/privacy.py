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

A run that stops half-way (the store fails, the process dies) is resumed by running it again: what
it found so far is kept in `privacy/deletions/<pseudonym>.json` (check-in ids, counts, and hashes
of their prepared texts, never the texts), so the places still to clean are cleaned of messages
whose check-ins are already gone. The audit log records the stopped run (`complete: false`, the
step it stopped at) and the run that completes it; the record is deleted once the deletion is done.
Kept uploads are read row by row without parsing times, and a file or row that cannot be read is
searched for the participant's id as bytes: no upload can stop a deletion.
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

from services.access import audit
from services.errors import KeyNotFound, PulseError
from services.model.text import PREPROCESSING, preprocess
from services.review.labels import PREFIX as LABELS_PREFIX
from services.review.labels import Label
from services.store.base import ObjectStore

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


STATE = "privacy/deletions/"
STEPS = ("checkins", "review_items", "labels", "actions", "alerts", "uploads", "quarantine", "datasets")


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


def audit_pseudonym(store: ObjectStore, participant: str) -> str:
    """A keyed, non-reversible stand-in for the participant in the audit log (the same key as the
    annotators' pseudonyms, so an admin holding the key can still answer "was X deleted?")."""
    from services.review.labeling import workspace_pseudonym_key

    digest = hmac.new(workspace_pseudonym_key(store), participant.encode(), hashlib.sha256).hexdigest()
    return f"p-{digest[:12]}"


@dataclass
class _Found:
    """What a deletion has found so far: the ids of their check-ins and the hashes of their
    prepared texts (what dataset lines are matched by), kept between a stopped run and the next."""

    ids: set[str] = field(default_factory=set)
    text_hashes: set[str] = field(default_factory=set)

    def add_texts(self, texts: set[str]) -> None:
        # As dataset building writes them, by the current rules and the earlier ones (older versions).
        prepared = {preprocess(t, v) for t in texts for v in range(1, PREPROCESSING + 1)} - {""}
        self.text_hashes |= {_sha(p.encode()) for p in prepared}


def delete_participant(
    store: ObjectStore, participant: str, *, by: str, role: str = "", pseudonym_key: bytes | None = None
) -> DeletionReport:
    """Remove `participant`'s data everywhere in the workspace (see the module docstring); a run
    that stopped before is resumed."""
    if not participant.strip():
        raise PulseError("say which participant to delete")
    report = DeletionReport(pseudonym=audit_pseudonym(store, participant))
    found = _resume(store, report)
    step = STEPS[0]
    try:
        for step in STEPS:
            _run_step(store, step, participant, report, found)
            _save_state(store, report, found, step)
    except PulseError:
        audit.try_record(store, by, role, "participant_deleted", report.pseudonym, _details(report, stopped_at=step))
        log.warning("deletion %s stopped at %s; running it again resumes it", report.pseudonym, step)
        raise
    audit.record(store, by, role, "participant_deleted", report.pseudonym, _details(report))
    store.delete(_state_key(report.pseudonym))
    log.info("participant data deleted by %s (%s)", by, report.pseudonym)
    return report


def _run_step(store: ObjectStore, step: str, participant: str, report: DeletionReport, found: _Found) -> None:
    if step == "checkins":
        ids, texts = _delete_checkins(store, participant, report)
        found.ids |= ids
        found.add_texts(texts)
    elif step == "review_items":
        found.ids |= _delete_review_items(store, participant, report)
    elif step == "labels":
        found.add_texts(_scrub_labels(store, found.ids, report))
    elif step == "actions":
        _delete_actions(store, found.ids, participant, report)
    elif step == "alerts":
        _delete_alerts(store, found.ids, participant, report)
    elif step == "uploads":
        _delete_uploads(store, participant, report)
    elif step == "quarantine":
        _scrub_quarantine(store, participant, report)
    else:
        _scrub_datasets(store, found.text_hashes, report)


_COUNTS = (
    "checkins",
    "partitions_rewritten",
    "review_items",
    "labels_scrubbed",
    "annotator_actions",
    "alerts",
    "uploads_deleted",
    "quarantined_rows",
    "dataset_lines",
)


def _details(report: DeletionReport, *, stopped_at: str | None = None) -> dict[str, object]:
    details: dict[str, object] = {
        "complete": stopped_at is None,
        "resumed": report.resumed,
        **{name: getattr(report, name) for name in _COUNTS if name != "partitions_rewritten"},
        "models_trained_on_them": len(report.models_trained_on_them),
    }
    if stopped_at is not None:
        details["stopped_at"] = stopped_at
    return details


def _state_key(pseudonym: str) -> str:
    return f"{STATE}{pseudonym}.json"


def _resume(store: ObjectStore, report: DeletionReport) -> _Found:
    """What a stopped run of this deletion had found and counted (nothing if there was none)."""
    state = _read_json(store, _state_key(report.pseudonym))
    if not isinstance(state, dict):
        return _Found()
    report.resumed = True
    counts = state.get("counts")
    counts = counts if isinstance(counts, dict) else {}
    for name in _COUNTS:
        value = counts.get(name, 0)
        setattr(report, name, int(value) if isinstance(value, int) else 0)
    return _Found({str(i) for i in state.get("ids") or ()}, {str(h) for h in state.get("text_hashes") or ()})


def _save_state(store: ObjectStore, report: DeletionReport, found: _Found, step: str) -> None:
    state = {
        "pseudonym": report.pseudonym,
        "last_step": step,
        "ids": sorted(found.ids),
        "text_hashes": sorted(found.text_hashes),
        "counts": {name: getattr(report, name) for name in _COUNTS},
    }
    store.put(_state_key(report.pseudonym), json.dumps(state).encode())


def unfinished_deletions(store: ObjectStore) -> list[str]:
    """Pseudonyms of deletions that stopped half-way (run them again, with the participant's id)."""
    return sorted(k.removeprefix(STATE).removesuffix(".json") for k in store.list(STATE) if k.endswith(".json"))


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
    for key in list(store.list(UPLOADS)):
        if _upload_mentions(store.get(key), key.rsplit("/", 1)[-1], participant):
            store.delete(key)
            report.uploads_deleted += 1


def _upload_mentions(data: bytes, filename: str, participant: str) -> bool:
    """Whether a kept upload holds a row of `participant`: read row by row as ingest reads it, but
    without parsing times or anything else that can fail on a row; a row that cannot be read, or a
    file that cannot be read at all, is searched for their id as bytes."""
    from services.checkins.upload import Rejected, upload_records
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
    from services.checkins.upload import Rejected

    if not isinstance(record, Rejected):
        return str(fields.get("participant") or "").strip() == wanted
    if any(str(v).strip() == wanted for v in fields.values()):
        return True
    return "line" in fields and wanted in str(fields["line"])


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


def _scrub_datasets(store: ObjectStore, prepared: set[str], report: DeletionReport) -> None:
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
            "hashes": {**m.hashes, "train.txt": _sha(train), "validation.txt": _sha(validation)},
            "redactions": m.redactions + 1,
        }
        store.put(f"{DATASETS}{version}/manifest.json", json.dumps(manifest, indent=2).encode())
        report.dataset_lines += hits
        report.models_trained_on_them += _models_of(store, version)


def _lines_of(body: str, prepared: set[str]) -> int:
    """Lines of a dataset file (`__label__x text`) whose text hashes to one of `prepared`."""
    return sum(1 for line in body.splitlines() if _sha(line.split(" ", 1)[-1].encode()) in prepared)


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
