"""The audit page: sign-ins and admin actions appear, filters work, no message text."""

from __future__ import annotations

from pathlib import Path

from services.access.audit import record
from services.review.labels import Label, save_label
from services.store.local import LocalStore
from tests.pages.conftest import rendered_text


def test_a_demo_sign_in_is_recorded_and_shown(run_app, app_env: Path) -> None:  # type: ignore[no-untyped-def]
    at = run_app()
    at.radio[0].set_value("admin")
    at.button[0].click()
    at.run()
    at.switch_page("pages/admin_audit.py")
    at.run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    row = table[table["action"] == "sign in"].iloc[0]
    assert (row["who"], row["role"], row["target"]) == ("demo-admin", "admin", "demo")


def test_labels_and_actions_are_listed_and_filtered_without_text(run_app, app_env: Path) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(app_env)
    secret = "nobody should read this in an audit log"
    save_label(store, Label("item-1", secret, "negative", "ann", "2099-01-01T00:00:00+00:00"))  # future: excluded
    record(store, "alice", "admin", "threshold_changed", "review_threshold", {"from": 0.6, "to": 0.5})
    at = run_app("admin", "pages/admin_audit.py")
    assert not at.exception
    text = rendered_text(at)
    assert "threshold changed" in text and secret not in text
    at.text_input[0].set_value("alice").run()
    assert set(at.dataframe[0].value["who"]) == {"alice"}
    at.multiselect[0].set_value(["rollback"]).run()
    assert at.info and "No event matches" in at.info[0].value
