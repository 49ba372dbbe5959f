"""Every page as every role (and no role), the home page's content, and the upload page."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from services.review.agreement import needs_two
from services.review.labeling import LabelingService
from services.review.labels import labels_for_item
from services.store.local import LocalStore
from tests.conftest import queued
from tests.pages.conftest import APP, PAGE_FILES, ROOT, rendered_text, shown

ALLOWED = {
    "home.py": {"manager", "annotator", "admin"},
    "trends.py": {"manager", "admin"},
    "alerts.py": {"manager", "admin"},
    "review.py": {"annotator", "admin"},
    "upload.py": {"admin"},
    "admin_data.py": {"admin"},
    "admin_training.py": {"admin"},
    "admin_models.py": {"admin"},
    "admin_health.py": {"admin"},
    "admin_audit.py": {"admin"},
}


def test_every_page_file_is_in_the_access_table() -> None:
    assert set(PAGE_FILES) == set(ALLOWED)


def test_signed_out_app_shows_only_sign_in(run_app) -> None:  # type: ignore[no-untyped-def]
    at = run_app()
    assert not at.exception
    assert [r.label for r in at.radio] == ["Sign in as"]
    assert not at.metric
    assert "Check-ins" not in rendered_text(at)


def test_demo_sign_in_then_home(run_app) -> None:  # type: ignore[no-untyped-def]
    at = run_app()
    at.radio[0].set_value("admin")
    at.button[0].click()
    at.run()
    assert not at.exception
    assert at.session_state["pulse_user"]["role"] == "admin"
    labels = {m.label: m.value for m in at.metric}
    assert int(labels["Check-ins"].replace(",", "")) > 1000
    assert int(labels["Groups"]) == 6


@pytest.mark.parametrize("page", PAGE_FILES)
@pytest.mark.parametrize("role", [None, "manager", "annotator", "admin"])
def test_page_file_run_directly_guards_its_role(run_app, page: str, role: str | None) -> None:  # type: ignore[no-untyped-def]
    """Streamlit can run a file of pages/ directly (first visit by URL): the page must guard itself."""
    at = run_app(role, file=str(ROOT / "pages" / page))
    assert not at.exception
    text = rendered_text(at)
    if role in ALLOWED[page]:
        assert not at.error, text
    else:
        assert at.warning or at.error
        assert not at.metric and not at.dataframe and not at.file_uploader
        assert "Check-ins" not in text


@pytest.mark.parametrize("role", ["manager", "annotator", "admin"])
def test_navigation_lists_only_the_role_pages(run_app, role: str) -> None:  # type: ignore[no-untyped-def]
    at = run_app(role)
    assert not at.exception
    for page, roles in ALLOWED.items():
        if role in roles:
            at.switch_page(f"pages/{page}")
            at.run()
            assert not at.exception and not at.error
        else:
            # Navigation refuses the page; if Streamlit still resolves the path (it can once
            # pages/ was discovered), the page's own guard must hold.
            try:
                at.switch_page(f"pages/{page}")
            except ValueError:
                continue
            at.run()
            assert at.error and not at.metric and not at.dataframe and not at.file_uploader


def test_manager_home_counts_only_their_groups(run_app, app_env) -> None:  # type: ignore[no-untyped-def]
    admin = {m.label: m.value for m in run_app("admin").metric}
    manager_at = run_app("manager")
    manager = {m.label: m.value for m in manager_at.metric}
    assert manager["Groups"] == "2"
    assert int(manager["Check-ins"].replace(",", "")) < int(admin["Check-ins"].replace(",", ""))
    store = LocalStore(app_env)
    items = list(queued(store).values())
    assert int(admin["Review queue"].replace(",", "")) == len(items)
    mine = [i for i in items if i["group"] in manager_at.session_state["pulse_user"]["groups"]]
    assert 0 < int(manager["Review queue"].replace(",", "")) == len(mine) < len(items)


def test_tampered_session_user_is_signed_out(app_env) -> None:  # type: ignore[no-untyped-def]
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["pulse_user"] = {"name": "x", "role": "superuser", "groups": []}
    at.run()
    assert not at.exception
    assert [r.label for r in at.radio] == ["Sign in as"]


def test_bad_setting_stops_the_app_with_its_name(app_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PULSE_BACKEND", "ftp")
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert "PULSE_BACKEND" in shown(at.error[0].value) and "'local'" in shown(at.error[0].value)


def _upload(run_app, name: str, data: bytes) -> AppTest:  # type: ignore[no-untyped-def]
    at = run_app("admin", "pages/upload.py")
    at.file_uploader[0].upload(name, data, "text/csv")
    at.run()
    at.button[0].click()
    at.run()
    return at


def test_upload_scores_and_reports(run_app, app_env) -> None:  # type: ignore[no-untyped-def]
    rows = "participant,group,time,text\nann,Platform team,2026-11-01T09:00:00Z,I feel great today\n"
    rows += "bob,Platform team,2026-11-01T09:05:00Z,\n"
    at = _upload(run_app, "week.csv", rows.encode())
    assert not at.exception
    assert "week.csv: 1 check-in added" in shown(at.success[0].value)
    figures = {m.label: m.value for m in at.metric}
    assert figures["Rows in the file"] == "2" and figures["Accepted"] == "1" and figures["Set aside"] == "1"
    shares = at.dataframe[0].value
    assert list(shares["label"]) == ["negative", "neutral", "positive"] and shares["check-ins"].sum() == 1
    table = at.dataframe[-1].value
    assert list(table["reason"]) == ["text is empty"] and list(table["row"]) == [2]
    assert "ingest/" not in rendered_text(at)  # counts and reasons, never a store key
    store = LocalStore(app_env)
    manifest = [json.loads(store.get(k)) for k in store.list("ingest/batches/") if "week.csv" in store.get(k).decode()]
    assert manifest and manifest[0]["accepted"] == 1


def test_an_upload_with_no_good_row_shows_every_row_and_its_reason(run_app) -> None:  # type: ignore[no-untyped-def]
    rows = "participant,group,time,text\nann,Platform team,2026-11-01T09:00:00Z,\nbob,,2026-11-01T09:05:00Z,hi\n"
    at = _upload(run_app, "none.csv", rows.encode())
    assert not at.exception
    assert "no row of 'none.csv' could be accepted (2 rejected)" in shown(at.error[0].value)
    assert list(at.dataframe[-1].value["reason"]) == ["text is empty", "group is empty"]
    assert "ingest/" not in rendered_text(at)


def test_the_upload_page_states_the_time_rule_and_offers_a_sample(run_app) -> None:  # type: ignore[no-untyped-def]
    from services.checkins.upload import parse_upload

    at = run_app("admin", "pages/upload.py")
    assert "A time without a zone is read as UTC" in shown(rendered_text(at))
    (sample,) = [b for b in at.get("download_button") if "Sample" in str(b.proto.label)]
    from services.checkins.exports import sample_csv

    parsed = parse_upload(sample_csv(), "sample.csv")  # the sample itself is accepted whole
    assert len(parsed.checkins) == parsed.total_rows == 5 and not parsed.rejected
    assert sample is not None


def test_upload_of_unreadable_file_says_what_is_wrong(run_app) -> None:  # type: ignore[no-untyped-def]
    at = _upload(run_app, "bad.csv", b"who;what\nx;y\n")
    assert not at.exception
    assert "missing required column" in at.error[0].value


def test_messages_render_as_text_not_markup(run_app, app_env) -> None:  # type: ignore[no-untyped-def]
    """A check-in or name holding HTML/markdown must never become markup anywhere on the page."""
    nasty = "<img src=x onerror=alert(1)> **bold** [link](javascript:alert(1))"
    frame = pd.DataFrame(
        [{"participant": nasty, "group": "Platform team", "time": "2026-11-01T10:00:00Z", "text": nasty}]
    )
    at = _upload(run_app, "nasty.csv", frame.to_csv(index=False).encode())
    assert not at.exception
    for el in at.markdown:  # nothing the user sent is interpreted as markdown/HTML
        assert "onerror" not in el.value and "javascript:" not in el.value
    home = run_app("admin")
    assert not home.exception


def test_password_sign_in(app_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from services.access.users import add_user

    add_user(LocalStore(app_env), "maria", "correct horse battery", "manager", ["Support desk"])
    monkeypatch.setenv("PULSE_AUTH_MODE", "password")
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.radio  # no role picker outside demo mode
    at.text_input[0].input("maria")
    at.text_input[1].input("wrong password!!")
    at.button[0].click()
    at.run()
    assert "wrong password" in at.error[0].value
    assert "pulse_user" not in at.session_state
    at.text_input[1].input("correct horse battery")
    at.button[0].click()
    at.run()
    assert "wait 1 s before trying again" in at.error[0].value  # right, but too soon after a failure
    assert "pulse_user" not in at.session_state
    time.sleep(1.0)
    at.button[0].click()
    at.run()
    assert not at.exception
    kept = at.session_state["pulse_user"]
    assert {k: kept[k] for k in ("name", "role", "groups")} == {
        "name": "maria",
        "role": "manager",
        "groups": ["Support desk"],
    }
    assert kept["expires_at"] > datetime.now(UTC).isoformat()  # a session of PULSE_SESSION_HOURS
    assert {m.label: m.value for m in at.metric}["Groups"] == "1"


def test_missing_bucket_is_reported_not_crashed(app_env, monkeypatch, moto_endpoint) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PULSE_BACKEND", "aws")
    monkeypatch.setenv("PULSE_BUCKET", "no-such-bucket-here")
    monkeypatch.setenv("PULSE_AWS_ENDPOINT_URL", moto_endpoint)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["pulse_user"] = {"name": "a", "role": "admin", "groups": []}
    at.run()
    assert not at.exception
    assert "no-such-bucket-here" in shown(at.error[0].value) and "does not exist" in at.error[0].value


def test_review_labels_from_the_buttons_and_the_queue_shrinks(run_app, app_env) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(app_env)
    before = len(queued(store))
    at = run_app("annotator", "pages/review.py")
    assert not at.exception and not at.error
    shown = at.text[0].value
    # The item on screen is the one the annotator holds a claim on (texts can repeat in the demo).
    (claim,) = [k for k in store.list("review/claims/") if json.loads(store.get(k))["annotator"] == "demo-annotator"]
    item = queued(store)[claim.rsplit("/", 1)[-1].removesuffix(".json")]
    assert item["text"] == shown
    assert item["participant"] not in rendered_text(at)  # a pseudonym, never the participant
    at.button(key="b-negative").click()
    at.run()
    assert not at.exception and not at.error
    stays = needs_two(item["id"], 0.05)  # a double-label item waits for a second annotator
    assert len(queued(store)) == before - (0 if stays else 1)
    labels = [json.loads(store.get(k)) for k in store.list(f"review/labels/{item['id']}/")]
    assert [(lab["label"], lab["annotator"]) for lab in labels] == [("negative", "demo-annotator")]
    held = [k for k in store.list("review/claims/") if json.loads(store.get(k))["annotator"] == "demo-annotator"]
    assert len(held) == 1 and held[0] != claim  # the next message is on screen, claimed
    # Undo takes the label back and shows the same message again.
    undo = next(b for b in at.button if b.label == "Undo")
    undo.click()
    at.run()
    assert not at.exception
    assert at.text[0].value == shown
    # ... and it can be labelled again, differently.
    at.button(key="b-positive").click()
    at.run()
    assert not at.exception and not at.error
    assert [lab.label for _, lab in labels_for_item(store, item["id"])] == ["positive"]


def test_a_key_that_reaches_the_card_before_saves_nothing_and_says_so(run_app, app_env) -> None:  # type: ignore[no-untyped-def]
    """A key pressed while the next card is still being drawn reaches the buttons of the card just
    labelled: nothing is saved, and the annotator reads why instead of 'you do not hold it'."""
    store = LocalStore(app_env)
    at = run_app("annotator", "pages/review.py")
    (claim,) = [k for k in store.list("review/claims/") if json.loads(store.get(k))["annotator"] == "demo-annotator"]
    item_id = claim.rsplit("/", 1)[-1].removesuffix(".json")
    at.session_state["review_last"] = item_id  # as if this card's buttons were those of the one just done
    at.button(key="b-negative").click()
    at.run()
    assert not at.exception and not at.error
    assert labels_for_item(store, item_id) == []
    assert "reached the message before this one" in shown(at.toast[0].value)


def test_review_by_group_shows_only_that_groups_messages(run_app, app_env) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(app_env)
    at = run_app("annotator", "pages/review.py")
    at.segmented_control[0].set_value("group")
    at.run()
    assert not at.exception and not at.error
    (picker,) = [s for s in at.selectbox if s.label == "Group"]
    groups = picker.options
    assert len(groups) >= 2 and all("waiting)" in g for g in groups)
    first = next(iter(LabelingService(store).queue_groups()))
    other = next(g for g in picker.options if not g.startswith(first + " ("))
    picker.set_value(other)
    at.run()
    assert not at.exception and not at.error
    held = [k for k in store.list("review/claims/") if json.loads(store.get(k))["annotator"] == "demo-annotator"]
    assert len(held) == 1  # the first group's item went back to the queue
    shown_group = other.rsplit(" (", 1)[0]
    assert queued(store)[held[0].rsplit("/", 1)[-1].removesuffix(".json")]["group"] == shown_group


def test_review_card_says_which_words_weigh_most(run_app) -> None:  # type: ignore[no-untyped-def]
    at = run_app("annotator", "pages/review.py")
    for _ in range(12):  # the least sure first can be noise ("...."), which has no words to weigh
        why = [c.value for c in at.caption if "What weighs most for" in c.value]
        if why:
            break
        next(b for b in at.button if b.label == "Skip").click()
        at.run()
    assert why, "no card explained its label"
    words = why[0].replace("\\", "").split("(live model)", 1)[1].lstrip(":\u2060 ").split(", ")
    shown = at.text[0].value.lower()
    assert 1 <= len(words) <= 3 and all(w in shown or w in ("?", "!", "a link", "a mention") for w in words)


def test_the_models_guess_can_be_hidden_from_annotators(run_app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """PULSE_REVIEW_SHOW_GUESS=false: no label, confidence or leaning words that could anchor the annotator."""
    shown_with = rendered_text(run_app("annotator", "pages/review.py"))
    assert "model says" in shown_with
    monkeypatch.setenv("PULSE_REVIEW_SHOW_GUESS", "false")
    st.cache_resource.clear()
    at = run_app("annotator", "pages/review.py")
    assert not at.exception and not at.error and at.text
    page = rendered_text(at)
    assert "model says" not in page and "sure)" not in page and "What weighs most" not in page
    assert "written by" in page or "the same text in" in page


def test_the_upload_page_shows_the_automatic_intake(run_app, app_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Before any watcher ran, how to turn it on; after a pass, every file it saw with its state and reason."""
    from services.checkins.intake import FolderInbox, Intake
    from services.config import load_settings
    from services.workspace import open_workspace

    before = run_app("admin", "pages/upload.py")
    assert not before.exception
    assert "python -m services.cli ingest --watch FOLDER" in shown(rendered_text(before))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "week.csv").write_bytes(b"participant,group,time,text\nann,Platform team,2026-11-01T09:00:00Z,fine\n")
    (inbox / "bad.csv").write_bytes(b"who;what\nx;y\n")
    ws = open_workspace(load_settings())
    Intake(ws.store, ws.endpoint, FolderInbox(inbox, settle=0), settings=ws.settings).run_once()
    st.cache_data.clear()
    at = run_app("admin", "pages/upload.py")
    assert not at.exception
    table = at.dataframe[-1].value
    assert sorted(zip(table["file"], table["state"], strict=True)) == [("bad.csv", "failed"), ("week.csv", "done")]
    rows = table.set_index("file")
    assert rows.loc["week.csv", "accepted"] == 1 and "missing required column(s)" in rows.loc["bad.csv", "reason"]
    assert "1 done, 0 pending (being read, or waiting for the next pass), 1 failed" in shown(rendered_text(at))
    assert "ingest/" not in rendered_text(at)  # names, counts and reasons, never a store key
