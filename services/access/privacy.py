"""Deleting one participant's data from the whole workspace (an admin's action, audited).

What a participant wrote lives in several places; each is handled so nothing of theirs is left:

    checkins/date=*/<batch>.parquet     their rows are removed (the file is rewritten in place)
    review/batches/, unrecognized/      their waiting items are taken out (claims and skips with them)
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

import json
import logging
from dataclasses import dataclass, field

from services.access import audit, pseudonyms
from services.access.erasure import (
    DeletionReport,
    delete_actions,
    delete_alerts,
    delete_checkins,
    delete_review_items,
    delete_uploads,
    json_or_none,
    scrub_datasets,
    scrub_labels,
    scrub_quarantine,
    sha,
)
from services.errors import PulseError
from services.model.text import PREPROCESSING, preprocess
from services.store import keys
from services.store.base import ObjectStore

log = logging.getLogger(__name__)


STATE = keys.DELETIONS
STEPS = ("checkins", "review_items", "labels", "actions", "alerts", "uploads", "quarantine", "datasets")


def audit_pseudonym(store: ObjectStore, participant: str, key: bytes | None = None) -> str:
    """The participant's pseudonym in the audit log: the one annotators see for them
    (`services.access.pseudonyms`, with the configured key when there is one)."""
    return pseudonyms.pseudonym(pseudonyms.pseudonym_key(store, key), participant)


@dataclass
class _Found:
    """What a deletion has found so far: the ids of their check-ins and the hashes of their
    prepared texts (what dataset lines are matched by), kept between a stopped run and the next."""

    ids: set[str] = field(default_factory=set)
    text_hashes: set[str] = field(default_factory=set)

    def add_texts(self, texts: set[str]) -> None:
        # As dataset building writes them, by the current rules and the earlier ones (older versions).
        prepared = {preprocess(t, v) for t in texts for v in range(1, PREPROCESSING + 1)} - {""}
        self.text_hashes |= {sha(p.encode()) for p in prepared}


def delete_participant(
    store: ObjectStore, participant: str, *, by: str, role: str = "", pseudonym_key: bytes | None = None
) -> DeletionReport:
    """Remove `participant`'s data everywhere in the workspace (see the module docstring); a run
    that stopped before is resumed."""
    if not participant.strip():
        raise PulseError("say which participant to delete")
    report = DeletionReport(pseudonym=audit_pseudonym(store, participant, pseudonym_key))
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
        ids, texts = delete_checkins(store, participant, report)
        found.ids |= ids
        found.add_texts(texts)
    elif step == "review_items":
        found.ids |= delete_review_items(store, participant, report)
    elif step == "labels":
        found.add_texts(scrub_labels(store, found.ids, report))
    elif step == "actions":
        delete_actions(store, found.ids, participant, report)
    elif step == "alerts":
        delete_alerts(store, found.ids, participant, report)
    elif step == "uploads":
        delete_uploads(store, participant, report)
    elif step == "quarantine":
        scrub_quarantine(store, participant, report)
    else:
        scrub_datasets(store, found.text_hashes, report)


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
    state = json_or_none(store, _state_key(report.pseudonym))
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
