"""The admin pages 'Labels & datasets' and 'Model health & costs' (AppTest, private demo workspace)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from services.errors import DatasetError
from services.review.labels import Label, save_label
from services.store.local import LocalStore
from tests.pages.conftest import ROOT, rendered_text, shown

DATA = str(ROOT / "pages" / "admin_data.py")
HEALTH = str(ROOT / "pages" / "admin_health.py")
NASTY = "<script>alert(1)</script> **bold** I feel [fine](javascript:alert(1))"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _label(item: str, text: str, label: str, who: str, minute: int) -> Label:
    return Label(item, text, label, who, (T0 + timedelta(minutes=minute)).isoformat(timespec="microseconds"))


def seed_labels(workspace: Path) -> None:
    """Two annotators, one agreement and one disagreement (on a message holding markup)."""
    store = LocalStore(workspace)
    save_label(store, _label("x1", "what a lovely morning", "positive", "ann", 1))
    save_label(store, _label("x1", "what a lovely morning", "positive", "bob", 2))
    save_label(store, _label("x2", NASTY, "negative", "ann", 3))
    save_label(store, _label("x2", NASTY, "neutral", "bob", 4))
    save_label(store, _label("x3", "so tired of all this", "negative", "ann", 5))


def button(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    return next(b for b in at.button if b.label == label)


def test_admin_sees_what_the_labels_add(run_app, app_env: Path) -> None:  # type: ignore[no-untyped-def]
    seed_labels(app_env)
    at = run_app("admin", file=DATA)
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Labels that count"] == "5" and metrics["Messages labelled"] == "3"
    assert metrics["New since the live model"] == "5"  # the bootstrap model learnt from no label
    assert metrics["Agreement (Cohen's kappa)"] not in ("—", "")
    assert len(at.get("plotly_chart")) >= 2  # labels per class/annotator, next dataset's balance
    text = rendered_text(at)
    assert "kappa" in text and "chance" in text


def test_disagreements_show_message_text_raw(run_app, app_env: Path) -> None:  # type: ignore[no-untyped-def]
    seed_labels(app_env)
    at = run_app("admin", file=DATA)
    assert not at.exception
    tables = [df.value for df in at.dataframe if "message" in df.value.columns]
    assert tables and list(tables[0]["message"]) == [NASTY]  # exactly as typed, in a table cell
    assert list(tables[0]["labels"]) == ["negative, neutral"]
    for el in [*at.markdown, *at.caption, *at.info, *at.success]:
        assert "<script" not in el.value and "javascript:" not in el.value and "**bold**" not in el.value


def test_building_a_dataset_from_the_page(run_app, app_env: Path) -> None:  # type: ignore[no-untyped-def]
    seed_labels(app_env)
    store = LocalStore(app_env)
    assert not [k for k in store.list("datasets/") if k.endswith("manifest.json")]
    at = run_app("admin", file=DATA)
    button(at, "Build dataset version").click()
    at.run()
    assert not at.exception and not at.error
    (manifest_key,) = [k for k in store.list("datasets/") if k.endswith("manifest.json")]
    version = manifest_key.split("/")[1]
    assert store.exists(f"datasets/{version}/train.txt") and store.exists(f"datasets/{version}/validation.txt")
    assert version in shown(at.success[0].value) and "to train on" in at.success[0].value
    assert "1 conflict was settled" in rendered_text(at)
    (conflicts,) = [df.value for df in at.dataframe if "who labelled what" in df.value.columns]
    row = conflicts.iloc[0]
    assert row["message"] == NASTY  # the text itself, for admins (a text column: never markup)
    assert row["who labelled what"] == "ann: negative · bob: neutral" and row["kept"] == "neutral"
    assert row["conflict"] == "annotators disagree" and "latest label (bob)" in row["why"]
    assert not any(c.startswith("text_duplicate") for c in conflicts.columns)
    manifest = json.loads(store.get(manifest_key))
    assert manifest["created_by"] == "demo-admin" and manifest["sources"]["human"] == 3


def test_a_refused_build_says_why_and_what_to_do(run_app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise DatasetError("no training examples for neutral: label some first")

    monkeypatch.setattr("services.lifecycle.datasets.build_dataset", refuse)
    at = run_app("admin", file=DATA)
    button(at, "Build dataset version").click()
    at.run()
    assert not at.exception
    assert "no training examples for neutral" in at.error[0].value and "Review queue" in at.error[0].value


def test_admin_sees_model_health_and_costs(run_app) -> None:  # type: ignore[no-untyped-def]
    at = run_app("admin", file=HEALTH)
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) >= 5  # health, label mix, histogram, review preview, costs
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Check-ins per day (last 7 days)"]) > 5
    assert shown(metrics["Real-time endpoint"]) == "$47.45 / month"  # 730 h x $0.065 x 1
    text = rendered_text(at)
    assert "cheaper" in text and "PULSE_REVIEW_THRESHOLD" in text
    # A dearer instance moves the estimate at once.
    instance = next(n for n in at.number_input if n.label.startswith("Real-time: $ per instance-hour"))
    instance.set_value(0.13)
    at.run()
    assert shown({m.label: m.value for m in at.metric}["Real-time endpoint"]) == "$94.90 / month"


def test_threshold_preview_and_save_with_confirmation(run_app, app_env: Path) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(app_env)
    at = run_app("admin", file=HEALTH)
    before = {m.label: m.value for m in at.metric}["To review per day (last 28 days)"]
    at.slider(key="health_threshold").set_value(0.45)
    at.run()
    after = {m.label: m.value for m in at.metric}["To review per day (last 28 days)"]
    assert float(after) < float(before)  # a lower threshold sends fewer check-ins to review
    button(at, "Save threshold…").click()
    at.run()
    assert not store.exists("settings/review_threshold.json")  # nothing saved before the confirmation
    (ask,) = [w.value for w in at.warning if "Set the review threshold" in w.value]
    assert "to 0.45 (now 0.60)" in ask
    button(at, "Confirm").click()
    at.run()
    assert not at.exception and not at.error
    saved = json.loads(store.get("settings/review_threshold.json"))
    assert saved["threshold"] == 0.45 and saved["set_by"] == "demo-admin" and saved["previous"] == 0.6
    assert "set to 0.45" in shown(at.success[0].value)
    assert "set by demo-admin" in rendered_text(at).replace("\\", "")  # names are markdown-escaped


def test_cancelling_the_save_writes_nothing(run_app, app_env: Path) -> None:  # type: ignore[no-untyped-def]
    at = run_app("admin", file=HEALTH)
    at.slider(key="health_threshold").set_value(0.7)
    at.run()
    button(at, "Save threshold…").click()
    at.run()
    button(at, "Cancel").click()
    at.run()
    assert not at.exception and not [w for w in at.warning if "Set the review threshold" in w.value]
    assert not LocalStore(app_env).exists("settings/review_threshold.json")


@pytest.mark.parametrize("page", [DATA, HEALTH])
@pytest.mark.parametrize("role", [None, "manager", "annotator"])
def test_other_roles_are_refused_and_see_no_data(run_app, app_env: Path, page: str, role: str | None) -> None:  # type: ignore[no-untyped-def]
    seed_labels(app_env)
    at = run_app(role, file=page)
    assert not at.exception
    assert at.error or at.warning
    assert not at.get("plotly_chart") and not at.dataframe and not at.metric and not at.button
    text = rendered_text(at)
    assert "kappa" not in text and "Check-ins per day" not in text and NASTY not in text


def test_an_admin_deletes_a_participant_from_the_data_page(run_app, app_env) -> None:  # type: ignore[no-untyped-def]
    import io

    import pyarrow.parquet as pq

    from services.store.local import LocalStore

    store = LocalStore(app_env)
    key = next(k for k in store.list("checkins/") if k.endswith(".parquet"))
    who = str(pq.read_table(io.BytesIO(store.get(key))).column("participant")[0])
    at = run_app("admin", "pages/admin_data.py")
    form_inputs = [t for t in at.text_input if t.label.startswith(("Participant id", "Type the participant"))]
    form_inputs[0].input(who)
    form_inputs[1].input(who + "x")
    at.button(key="FormSubmitter:delete-participant-Delete their data").click().run()
    assert "nothing was deleted" in at.error[0].value
    form_inputs = [t for t in at.text_input if t.label.startswith(("Participant id", "Type the participant"))]
    form_inputs[0].input(who)
    form_inputs[1].input(who)
    at.button(key="FormSubmitter:delete-participant-Delete their data").click().run()
    assert not at.exception and at.success and "check-ins" in at.success[-1].value
    remaining = [
        p
        for k in store.list("checkins/")
        if k.endswith(".parquet")
        for p in pq.read_table(io.BytesIO(store.get(k))).column("participant").to_pylist()
    ]
    assert who not in remaining and remaining
