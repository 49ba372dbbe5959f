"""Deleting a participant: nothing of theirs is left anywhere in the workspace, nobody else's data
changes, the deletion is audited without their id, and a second run finds nothing."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from services.access.audit import read_events
from services.access.privacy import audit_pseudonym, delete_participant, unfinished_deletions
from services.checkins.ingest import ingest
from services.config import load_settings
from services.errors import PulseError, StoreUnavailable
from services.lifecycle.datasets import (
    _sha,
    build_dataset,
    dataset_content,
    list_datasets,
    load_manifest,
    verify_rebuild,
)
from services.review.items import waiting_items
from services.review.labels import Label, read_labels, save_label
from services.store.base import ObjectStore
from services.store.local import LocalStore
from services.workspace import open_workspace

WHO = "zoe-unique-participant"
SECRETS = [
    "zebra lanterns feel heavy tonight honestly",
    "quartz umbrellas make me anxious every morning",
    "I want to end my life, violet harbours everywhere",  # a crisis phrase: raises an alert
]


def everything(store: LocalStore) -> str:
    """Every byte of every file of the workspace as text, Parquet decoded."""
    parts = []
    for key in store.list(""):
        data = store.get(key)
        if key.endswith(".parquet"):
            parts.append(json.dumps(pq.read_table(io.BytesIO(data)).to_pylist(), default=str))
        else:
            parts.append(data.decode("utf-8", "replace"))
    return "\n".join(parts)


def others(store: ObjectStore) -> pd.DataFrame:
    frames = [
        pq.read_table(io.BytesIO(store.get(k))).to_pandas() for k in store.list("checkins/") if k.endswith(".parquet")
    ]
    frame = pd.concat(frames)
    return frame[frame["participant"] != WHO].sort_values("id").reset_index(drop=True)


@pytest.fixture
def seeded(workspace_copy: Path) -> LocalStore:
    ws = open_workspace(load_settings(workspace=workspace_copy))
    rows = [
        {"participant": WHO, "group": "Support desk", "time": f"2026-11-2{i}T09:00:00Z", "text": text}
        for i, text in enumerate(SECRETS)
    ]
    rows.append({"participant": WHO, "group": "Support desk", "time": "not a time", "text": "olive kites"})
    rows.append(
        {"participant": "someone-else", "group": "Support desk", "time": "2026-11-20T10:00:00Z", "text": "fine"}
    )
    report = ingest(ws.store, ws.endpoint, pd.DataFrame(rows).to_csv(index=False).encode(), "z.csv", threshold=0.999)
    assert report.accepted == 4 and report.rejected == 1 and report.alerts
    items = [raw for raw, _ in waiting_items(ws.store)]
    mine = [i for i in items if i["participant"] == WHO]
    assert len(mine) == 3
    for item in mine[:2]:  # two of their messages labelled, then a dataset built from them
        save_label(ws.store, Label(item["id"], item["text"], "negative", "ann", "2026-11-23T10:00:00+00:00"))
    build_dataset(ws.store, by="test")
    assert isinstance(ws.store, LocalStore)
    return ws.store


def test_nothing_of_theirs_is_left_and_others_are_untouched(seeded: LocalStore) -> None:
    before_text = everything(seeded)
    assert WHO in before_text and all(s in before_text for s in SECRETS)
    before_others = others(seeded)
    labels_before = len(read_labels(seeded))

    report = delete_participant(seeded, WHO, by="root-admin", role="admin")

    after = everything(seeded)
    assert WHO not in after
    for secret in [*SECRETS, "olive kites"]:
        assert secret not in after
    assert report.checkins == 3 and report.review_items == 3 and report.labels_scrubbed == 2
    assert report.alerts >= 1 and report.uploads_deleted == 1 and report.quarantined_rows == 1
    assert report.dataset_lines == 2
    pd.testing.assert_frame_equal(others(seeded), before_others)
    assert len(read_labels(seeded)) == labels_before  # the decisions stay, without text
    assert "fine" in after  # the other participant of the same upload is still there


def test_the_deletion_is_audited_without_their_id_and_the_dataset_still_rebuilds(seeded: LocalStore) -> None:
    report = delete_participant(seeded, WHO, by="root-admin", role="admin")
    [event] = read_events(seeded, actions=["participant_deleted"])
    assert (event.actor, event.role, event.target) == ("root-admin", "admin", report.pseudonym)
    assert WHO not in json.dumps(event.__dict__)
    assert event.details["checkins"] == 3
    [version] = list_datasets(seeded)
    assert load_manifest(seeded, version).redactions == 1
    assert verify_rebuild(seeded, version)  # the labels lost their text, so a rebuild leaves them out too


def test_a_second_run_finds_nothing_and_an_unknown_participant_is_fine(seeded: LocalStore) -> None:
    delete_participant(seeded, WHO, by="a")
    again = delete_participant(seeded, WHO, by="a")
    assert not again.found_anything
    assert not delete_participant(seeded, "nobody-by-this-name", by="a").found_anything
    with pytest.raises(PulseError, match="which participant"):
        delete_participant(seeded, "  ", by="a")


class ManifestWriteFails:
    """A store whose writes of dataset manifests fail, and whose deletes fail too (the store is
    down): a build leaves its train/validation files behind without a manifest."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def put(self, key: str, body: bytes, **kw: object) -> None:
        if key.endswith("/manifest.json") and key.startswith("datasets/"):
            raise StoreUnavailable("the store did not answer")
        self.inner.put(key, body, **kw)  # type: ignore[arg-type]

    def delete(self, key: str) -> None:
        raise StoreUnavailable("the store did not answer")


def one_more_label(store: LocalStore) -> None:
    """So that the next build differs from the one the fixture made (a new dataset version)."""
    items = [raw for raw, _ in waiting_items(store)]
    labelled = {lab.item_id for _, lab in read_labels(store)}
    item = next(i for i in items if i["participant"] == WHO and i["id"] not in labelled)  # their third message
    save_label(store, Label(item["id"], item["text"], "positive", "ann", "2026-11-23T11:00:00+00:00"))


def test_the_files_of_a_build_that_failed_before_its_manifest_are_scrubbed(seeded: LocalStore) -> None:
    one_more_label(seeded)
    with pytest.raises(StoreUnavailable):
        build_dataset(ManifestWriteFails(seeded), by="test")  # type: ignore[arg-type]
    orphans = [k for k in seeded.list("datasets/") if k.split("/")[1] not in list_datasets(seeded)]
    assert orphans and all(k.endswith(".txt") for k in orphans)  # the store was down for the clean-up too
    report = delete_participant(seeded, WHO, by="root-admin", role="admin")
    after = everything(seeded)
    assert all(secret not in after for secret in SECRETS)
    assert report.dataset_lines == 2 + 3  # the manifested version (two labels) and the orphan files (three)
    assert not [k for k in seeded.list("datasets/") if k in orphans and k.endswith("train.txt")]


def test_a_failed_build_removes_its_files_when_the_store_lets_it(seeded: LocalStore) -> None:
    class ManifestOnlyFails(ManifestWriteFails):
        def delete(self, key: str) -> None:
            self.inner.delete(key)

    one_more_label(seeded)
    before = sorted(seeded.list("datasets/"))
    with pytest.raises(StoreUnavailable):
        build_dataset(ManifestOnlyFails(seeded), by="test")  # type: ignore[arg-type]
    assert sorted(seeded.list("datasets/")) == before


def test_lines_made_by_the_earlier_preprocessing_rules_are_found_too(workspace_copy: Path) -> None:
    ws = open_workspace(load_settings(workspace=workspace_copy))
    text = "are the copper kettles still haunting me?"
    row = {"participant": WHO, "group": "Support desk", "time": "2026-11-20T09:00:00Z", "text": text}
    ingest(ws.store, ws.endpoint, pd.DataFrame([row]).to_csv(index=False).encode(), "k.csv", threshold=0.999)
    items = [raw for raw, _ in waiting_items(ws.store)]
    [item] = [i for i in items if i["participant"] == WHO]
    save_label(ws.store, Label(item["id"], item["text"], "negative", "ann", "2026-11-23T10:00:00+00:00"))
    m = build_dataset(ws.store, by="test")
    # The same version as written before manifests recorded the rules: "?" dropped, no field.
    train, validation, _ = dataset_content(
        ws.store, m.label_keys, m.gold_inputs, seed=m.seed, share=m.validation_share, base=m.base, preprocessing=1
    )
    assert "copper kettles still haunting" in (train + validation).decode()
    assert "QUESTION" not in (train + validation).decode()
    manifest = {k: v for k, v in asdict(m).items() if k != "preprocessing"}
    manifest["hashes"] = {"train.txt": _sha(train), "validation.txt": _sha(validation)}
    ws.store.put(m.train_key, train)
    ws.store.put(m.validation_key, validation)
    ws.store.put(f"datasets/{m.version}/manifest.json", json.dumps(manifest).encode())

    report = delete_participant(ws.store, WHO, by="root-admin")

    assert report.dataset_lines == 1
    assert isinstance(ws.store, LocalStore)
    assert "copper kettles" not in everything(ws.store)
    assert load_manifest(ws.store, m.version).preprocessing == 1
    assert verify_rebuild(ws.store, m.version)


# --- a deletion always finishes -------------------------------------------------------------------


def checkin_participants(store: ObjectStore) -> set[str]:
    return {
        str(p)
        for k in store.list("checkins/")
        if k.endswith(".parquet")
        for p in pq.read_table(io.BytesIO(store.get(k)), columns=["participant"]).column("participant").to_pylist()
    }


def test_deleting_participants_of_a_fresh_demo_workspace_finishes_every_time(workspace_copy: Path) -> None:
    store = LocalStore(workspace_copy)
    people = sorted(checkin_participants(store))
    for who in people[:2]:  # the first deletion once left the next ones failing the same way
        report = delete_participant(store, who, by="root-admin", role="admin")
        assert report.checkins > 0 and report.uploads_deleted >= 0 and not report.resumed
        assert who not in checkin_participants(store)
    events = read_events(store, actions=["participant_deleted"])
    assert len(events) == 2 and all(e.details["complete"] is True for e in events)
    assert set(checkin_participants(store)) == set(people[2:])


def test_kept_uploads_that_ingest_cannot_parse_are_still_matched(seeded: LocalStore) -> None:
    unreadable = {
        "a/times.csv": f"participant,group,time,text\n{WHO},G,99999-12-31T00:00:00Z,x\nbob,G,0000-00-00,y\n",
        "b/broken.jsonl": '{"participant": "bob", "group": "G"}\n{"participant": "' + WHO + '", "group": \n',
        "c/deep.json": "[" * 100_000 + '"' + WHO + '"' + "]" * 100_000,
        "d/binary.parquet": "PAR1\x00\x01garbage " + WHO + " more garbage",
        "e/bad-quote.csv": f'participant,group,time,text\nbob,G,2026-11-01,"unterminated\n{WHO},G,2026-11-02,z\n',
    }
    for key, body in unreadable.items():
        seeded.put(f"ingest/uploads/{key}", body.encode())
    seeded.put("ingest/uploads/f/others.csv", b"participant,group,time,text\nbob,G,99999-01-01,x\n")
    report = delete_participant(seeded, WHO, by="root-admin")
    left = {k.removeprefix("ingest/uploads/") for k in seeded.list("ingest/uploads/")}
    assert not left & set(unreadable)
    assert "f/others.csv" in left  # nobody else's upload is touched
    assert report.uploads_deleted == 1 + len(unreadable)


class UploadDeletesFail:
    """A store that goes down once the deletion reaches the kept uploads (and stays down)."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def delete(self, key: str) -> None:
        if key.startswith("ingest/uploads/"):
            raise StoreUnavailable("the store did not answer")
        self.inner.delete(key)


def state_of(store: LocalStore) -> dict[str, bytes]:
    """Every object but the audit log and the deletion's own record."""
    return {k: store.get(k) for k in store.list("") if not k.startswith(("audit/", "privacy/"))}


def test_a_deletion_stopped_half_way_is_resumed_to_the_same_end(seeded: LocalStore, tmp_path: Path) -> None:
    import shutil

    audit_pseudonym(seeded, WHO)  # the workspace's pseudonym key exists before the copy is made
    clean = LocalStore(shutil.copytree(seeded.root, tmp_path / "clean"))
    expected = delete_participant(clean, WHO, by="root-admin", role="admin")

    with pytest.raises(StoreUnavailable):
        delete_participant(UploadDeletesFail(seeded), WHO, by="root-admin", role="admin")  # type: ignore[arg-type]
    [stopped] = read_events(seeded, actions=["participant_deleted"])
    assert stopped.details["complete"] is False and stopped.details["stopped_at"] == "uploads"
    assert stopped.details["checkins"] == 3 and stopped.target == expected.pseudonym
    assert unfinished_deletions(seeded) == [expected.pseudonym]
    record = seeded.get(f"privacy/deletions/{expected.pseudonym}.json").decode()
    assert WHO not in record and not any(s in record for s in SECRETS)  # ids and hashes only

    # Their check-ins and labels' texts are gone by now; the resumed run still finds their dataset lines.
    resumed = delete_participant(seeded, WHO, by="root-admin", role="admin")
    assert resumed.resumed
    assert (resumed.checkins, resumed.labels_scrubbed, resumed.dataset_lines, resumed.uploads_deleted) == (
        expected.checkins,
        expected.labels_scrubbed,
        expected.dataset_lines,
        expected.uploads_deleted,
    )
    assert state_of(seeded) == state_of(clean)
    assert unfinished_deletions(seeded) == []
    done = read_events(seeded, actions=["participant_deleted"])[0]  # newest first
    assert done.details["complete"] is True and done.details["resumed"] is True
    assert all(secret not in everything(seeded) for secret in SECRETS)


def test_the_audit_pseudonym_is_the_one_annotators_see_with_or_without_a_configured_key(
    seeded: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drifted copy: with PULSE_PSEUDONYM_KEY set, the audit log used the workspace key while the
    review page used the setting, so the two pseudonyms of one person differed."""
    from services.access.pseudonyms import configured_key
    from services.review.labeling import LabelingService

    assert audit_pseudonym(seeded, WHO) == LabelingService(seeded).pseudonym(WHO)
    monkeypatch.setenv("PULSE_PSEUDONYM_KEY", "an organisation's own pseudonym key")
    key = configured_key(load_settings())
    assert key is not None
    shown_to_annotators = LabelingService(seeded, pseudonym_key=key).pseudonym(WHO)
    assert audit_pseudonym(seeded, WHO, key) == shown_to_annotators != audit_pseudonym(seeded, WHO)
    report = delete_participant(seeded, WHO, by="root-admin", role="admin", pseudonym_key=key)
    assert report.pseudonym == shown_to_annotators
    assert read_events(seeded, actions=["participant_deleted"])[0].target == shown_to_annotators
