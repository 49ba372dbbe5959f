"""The Alerts page as each role, acting on alerts through it, the rules editor, text shown as text,
and the review page's "flag as urgent"."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from services.access.users import User
from services.checkins.ingest import ingest
from services.config import load_settings
from services.monitoring.inbox import list_alerts, resolve
from services.monitoring.rules import load_rules
from services.store.local import LocalStore
from services.workspace import open_workspace
from tests.conftest import queued
from tests.pages.conftest import ROOT, USERS, rendered_text, shown

PAGE = "pages/alerts.py"


def inbox(at: AppTest) -> pd.DataFrame:
    return at.dataframe[0].value


def choose(at: AppTest, alert_id: str) -> None:
    at.selectbox(key="alert-choice").set_value(alert_id)
    at.run()


def test_the_demo_has_alerts_and_a_manager_sees_only_their_groups(run_app, app_env: Path) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(app_env)
    everything = list_alerts(store, USERS["admin"])
    mine = list_alerts(store, USERS["manager"])
    assert {a.group for a in everything} > {a.group for a in mine} == set(USERS["manager"].groups)
    at = run_app("manager", PAGE)
    assert not at.exception and not at.error
    table = inbox(at)
    assert set(table["group"]) == set(USERS["manager"].groups)
    assert len(table) == sum(a.status != "resolved" for a in mine)
    assert at.selectbox(key="alert-choice").options  # one option per alert shown
    assert not at.expander or all("Edit the alert rules" not in e.label for e in at.expander)
    text = rendered_text(at)
    for other in {a.group for a in everything} - set(USERS["manager"].groups):
        assert other not in text


def test_admin_sees_every_group_and_the_rules_editor(run_app, app_env: Path) -> None:  # type: ignore[no-untyped-def]
    at = run_app("admin", PAGE)
    assert not at.exception and not at.error
    assert set(inbox(at)["group"]) == {a.group for a in list_alerts(LocalStore(app_env), USERS["admin"])}
    assert any("Edit the alert rules" in e.label for e in at.expander)
    at.number_input(key="rule-cn-count").set_value(4)
    at.text_area(key="rule-cp-phrases").input("end it all\nzorblax\n\n")
    at.button[-1].click()  # the form's submit button comes last
    at.run()
    assert not at.exception and "Rules saved" in at.success[0].value
    rules = load_rules(LocalStore(app_env))
    assert rules.consecutive_negative.count == 4 and rules.crisis_phrases.phrases == ("end it all", "zorblax")
    assert rules.updated_by == USERS["admin"].name


def test_a_bad_phrase_is_refused_by_the_rules_editor(run_app, app_env: Path) -> None:  # type: ignore[no-untyped-def]
    at = run_app("admin", PAGE)
    at.text_area(key="rule-cp-phrases").input("end it all\nab")
    at.button[-1].click()
    at.run()
    assert not at.exception
    assert "phrase 2 needs at least 3 letters or digits" in at.error[0].value
    assert not LocalStore(app_env).exists("alerts/rules.json")


@pytest.mark.parametrize("role", [None, "annotator"])
def test_others_are_refused_and_see_no_alert(run_app, app_env: Path, role: str | None) -> None:  # type: ignore[no-untyped-def]
    at = run_app(role, file=str(ROOT / PAGE))
    assert not at.exception
    assert at.warning or at.error
    assert not at.dataframe and not at.selectbox and not at.metric
    text = rendered_text(at)
    for alert in list_alerts(LocalStore(app_env), USERS["admin"]):
        assert alert.reason not in text


def test_acknowledge_then_resolve_through_the_page(run_app, app_env: Path) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(app_env)
    target = list_alerts(store, USERS["manager"])[0]
    at = run_app("manager", PAGE)
    choose(at, target.id)
    assert "Nobody has acknowledged" in rendered_text(at)
    at.text_input(key=f"alert-note-{target.id}").input("called them this morning")
    at.button(key="alert-ack").click()
    at.run()
    assert not at.exception and shown(at.success[0].value) == "Alert acknowledged."
    history = at.dataframe[-1].value
    assert list(history["status"]) == ["acknowledged"] and list(history["by"]) == ["demo-manager"]
    assert list(history["note"]) == ["called them this morning"]
    # Resolving needs a note.
    at.button(key="alert-resolve").click()
    at.run()
    assert "write a note" in at.error[0].value
    at.text_input(key=f"alert-note-{target.id}").input("back to normal, spoke with HR")
    at.button(key="alert-resolve").click()
    at.run()
    assert not at.exception and shown(at.success[0].value) == "Alert resolved."
    (stored,) = [a for a in list_alerts(store, USERS["manager"]) if a.id == target.id]
    assert stored.status == "resolved" and [c.by for c in stored.history] == ["demo-manager", "demo-manager"]
    assert target.id not in at.selectbox(key="alert-choice").options  # resolved ones are filtered out
    at.multiselect(key="alert-status").set_value(["resolved"])
    at.run()
    assert list(inbox(at)["status"]) == ["resolved"]


def test_filters_and_the_empty_state(run_app, app_env: Path) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(app_env)
    at = run_app("manager", PAGE)
    at.multiselect(key="alert-status").set_value(["resolved"])
    at.run()
    assert "No alerts match these filters" in at.info[0].value  # nothing is resolved in the demo yet
    for alert in list_alerts(store, USERS["manager"]):
        resolve(store, alert.id, USERS["manager"], "handled")
    at = run_app("manager", PAGE)
    assert not at.exception and not at.dataframe
    assert "No open alerts for your groups" in at.info[0].value
    nobody = User("lone-manager", "manager", ("Nobody's group",))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.session_state["pulse_user"] = {"name": nobody.name, "role": "manager", "groups": list(nobody.groups)}
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception and "No open alerts for your groups" in at.info[0].value


def test_filters_come_from_the_address_and_go_back_to_it(run_app, app_env: Path) -> None:  # type: ignore[no-untyped-def]
    """A bookmarked inbox ("critical, Support desk"); values the user may not pick are ignored."""
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=30)
    at.session_state["pulse_user"] = {
        "name": "demo-manager",
        "role": "manager",
        "groups": list(USERS["manager"].groups),
    }
    at.query_params["severity"] = "critical"
    at.query_params["group"] = ["Support desk", "A group that is not theirs"]
    at.run()
    assert not at.exception and not at.error
    assert at.multiselect(key="alert-severity").value == ["critical"]
    assert at.multiselect(key="alert-group").value == ["Support desk"]
    assert set(inbox(at)["severity"]) == {"critical"} and set(inbox(at)["group"]) == {"Support desk"}
    at.multiselect(key="alert-severity").set_value([])
    at.run()
    assert "severity" not in at.query_params and at.query_params["group"] in ("Support desk", ["Support desk"])


NASTY = "<script>alert(1)</script> **bold**"


def test_names_and_messages_are_shown_as_raw_text(run_app, app_env: Path) -> None:  # type: ignore[no-untyped-def]
    ws = open_workspace(load_settings(workspace=app_env))
    rows = pd.DataFrame(
        [
            {
                "participant": NASTY,
                "group": NASTY,
                "time": "2026-11-01T10:00:00Z",
                "text": f"{NASTY} I want to end it all",
            }
        ]
    )
    report = ingest(ws.store, ws.endpoint, rows.to_csv(index=False).encode(), "nasty.csv", threshold=0.6)
    assert report.alerts == 1
    (alert,) = [a for a in list_alerts(ws.store, USERS["admin"]) if a.group == NASTY]
    at = run_app("admin", PAGE)
    choose(at, alert.id)
    assert not at.exception
    assert NASTY in set(inbox(at)["group"])
    checkins = at.dataframe[1].value
    assert checkins["text"].tolist() == [f"{NASTY} I want to end it all"]
    for el in [*at.markdown, *at.caption]:  # markdown elements carry the name escaped, never as markup
        assert "<script>" not in el.value and "**bold**" not in el.value
    assert any(r"\<script\>" in el.value and r"\*\*bold\*\*" in el.value for el in at.caption)


def test_an_annotator_flags_the_message_on_screen_as_urgent(run_app, app_env: Path) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(app_env)
    at = run_app("annotator", "pages/review.py")
    shown = at.text[0].value
    (claim,) = [k for k in store.list("review/claims/") if json.loads(store.get(k))["annotator"] == "demo-annotator"]
    item_id = claim.rsplit("/", 1)[-1].removesuffix(".json")
    item = queued(store)[item_id]
    at.button(key="b-urgent").click()
    at.run()
    assert not at.exception and not at.error
    assert "Flagged as urgent" in at.toast[0].value
    (flagged,) = [a for a in list_alerts(store, USERS["admin"]) if a.rule == "manual"]
    assert flagged.checkin_ids == (item_id,) and flagged.severity == "critical" and flagged.by == "demo-annotator"
    assert (flagged.group, flagged.participant) == (item["group"], item["participant"])
    assert at.text[0].value == shown  # still theirs to label
    at.button(key="b-negative").click()
    at.run()
    assert not at.exception and not at.error
    assert [json.loads(store.get(k))["label"] for k in store.list(f"review/labels/{item_id}/")] == ["negative"]
    # The managers of the group see it among the critical alerts at the top of their inbox.
    manager = User("m", "manager", (item["group"],))
    inbox = list_alerts(store, manager)
    critical = [a.id for a in inbox[: [a.severity for a in inbox].count("critical")]]
    assert flagged.id in critical
