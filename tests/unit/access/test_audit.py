"""The audit log: append-only events, filters, no message text, and the events the services record."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from services.access import audit
from services.access.audit import ACTIONS, label_events, read_events, record, try_record
from services.config import load_settings
from services.errors import StoreError
from services.monitoring.rules import load_rules, save_rules
from services.monitoring.threshold import save_threshold
from services.review.labels import Label, save_label
from services.store.local import LocalStore

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def test_an_event_is_written_once_and_read_back(store: LocalStore) -> None:
    event = record(store, "alice", "admin", "promotion", "m1", {"gate_passed": True, "candidate_f1": 0.71}, now=T0)
    keys = list(store.list("audit/"))
    assert len(keys) == 1 and keys[0].startswith("audit/2026-03-02/20260302T093000")
    assert json.loads(store.get(keys[0])) == {
        "at": "2026-03-02T09:30:00.000000+00:00",
        "actor": "alice",
        "role": "admin",
        "action": "promotion",
        "target": "m1",
        "details": {"candidate_f1": 0.71, "gate_passed": True},
    }
    assert read_events(store) == [event]


def test_events_of_the_same_microsecond_do_not_overwrite_each_other(store: LocalStore) -> None:
    for who in ("a", "b", "c"):
        record(store, who, "admin", "rollback", "m1", now=T0)
    assert sorted(e.actor for e in read_events(store)) == ["a", "b", "c"]


def test_filters_newest_first_and_limit(store: LocalStore) -> None:
    for i in range(6):
        action = "promotion" if i % 2 else "rollback"
        record(store, f"u{i % 3}", "admin", action, f"m{i}", now=T0 + timedelta(days=i))
    everything = read_events(store)
    assert [e.target for e in everything] == ["m5", "m4", "m3", "m2", "m1", "m0"]
    assert [e.target for e in read_events(store, actions=["promotion"])] == ["m5", "m3", "m1"]
    assert [e.target for e in read_events(store, actor="u0")] == ["m3", "m0"]
    window = read_events(store, since=date(2026, 3, 3), until=date(2026, 3, 5))
    assert [e.target for e in window] == ["m3", "m2", "m1"]
    assert len(read_events(store, limit=2)) == 2


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"text": "x" * 201}, "longer than 200"),  # a message pasted into a detail
        ({"rows": ["a", "b"]}, "must be a scalar"),
        ({"nested": {"a": 1}}, "must be a scalar"),
    ],
)
def test_details_cannot_carry_message_text_or_structures(store: LocalStore, details: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        record(store, "alice", "admin", "promotion", "m1", details)
    assert not list(store.list("audit/"))


def test_an_unknown_action_is_refused(store: LocalStore) -> None:
    with pytest.raises(ValueError, match="unknown audit action"):
        record(store, "alice", "admin", "coffee_break")
    assert "sign_in" in ACTIONS


def test_an_unreadable_event_is_skipped(store: LocalStore) -> None:
    record(store, "alice", "admin", "rollback", "m1", now=T0)
    store.put("audit/2026-03-02/20260302T093001000000Z-broken.json", b"{not json")
    assert [e.actor for e in read_events(store)] == ["alice"]


class _BrokenStore(LocalStore):
    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        raise StoreError("the disk is full")


def test_record_raises_but_try_record_only_logs_a_store_failure(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    broken = _BrokenStore(tmp_path)
    with pytest.raises(StoreError):
        record(broken, "alice", "admin", "sign_in", "demo")
    try_record(broken, "alice", "admin", "sign_in", "demo")
    assert "sign_in by alice was not recorded" in caplog.text


def test_labels_are_shown_as_events_without_their_text(store: LocalStore) -> None:
    secret = "I feel awful about the review"
    save_label(store, Label("c1", secret, "negative", "ann", "2026-03-02T09:00:00+00:00", group="North"))
    save_label(store, Label("c2", secret, "neutral", "bob", "2026-03-04T09:00:00+00:00", gold=True))
    events = label_events(store)
    assert [(e.actor, e.action, e.target) for e in events] == [("bob", "label", "c2"), ("ann", "label", "c1")]
    assert events[0].details == {"label": "neutral", "group": "", "gold": True}
    assert secret not in json.dumps([e.details for e in events])
    assert [e.target for e in label_events(store, since=date(2026, 3, 3))] == ["c2"]


def test_threshold_and_rule_changes_are_recorded(store: LocalStore) -> None:
    save_threshold(store, 0.55, by="alice", settings=load_settings(), role="admin")
    save_rules(store, load_rules(store), "bob", role="admin")
    events = {e.action: e for e in read_events(store)}
    assert events["threshold_changed"].actor == "alice" and events["threshold_changed"].role == "admin"
    assert events["threshold_changed"].details == {"from": 0.6, "to": 0.55}
    assert events["alert_rules_changed"].actor == "bob"


def test_rows_per_split_flattens_manifest_counts() -> None:
    counts = {"train": {"negative": 3, "neutral": 2, "positive": 1}, "validation": {"negative": 1}}
    assert audit.rows_per_split(counts) == {"train_rows": 6, "validation_rows": 1}


def test_out_of_scope_requests_are_refused_and_audited(store: LocalStore) -> None:
    from services.access.users import User
    from services.checkins import trends
    from services.errors import NotAllowed
    from services.monitoring.inbox import list_alerts
    from tests.unit.checkins.test_trends import checkin, write

    write(store, [checkin("p", "G", "2025-09-01T10:00Z"), checkin("q", "H", "2025-09-01T10:00Z")])
    manager = User("meg", "manager", ("G",))
    assert trends.participants(store, manager, ["H"]) == []  # another group: nothing
    with pytest.raises(NotAllowed):
        list_alerts(store, User("ann", "annotator"))
    denied = read_events(store, actions=["access_denied"])
    assert {(e.actor, e.target) for e in denied} == {("meg", "trends"), ("ann", "alerts")}
    assert any(e.details.get("groups_outside_scope") == 1 for e in denied)
