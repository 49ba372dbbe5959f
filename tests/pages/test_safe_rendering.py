"""Injection payloads in messages, participant ids and group names, on every page as every role
that may open it: shown as text (dataframes, st.text, escaped markdown), never as markup."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from services.checkins.ingest import ingest
from services.config import load_settings
from services.review.batches import leave
from services.store.local import LocalStore
from services.workspace import open_workspace
from tests.conftest import queued
from tests.pages.test_pages import ALLOWED

PAYLOADS = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[link](javascript:alert(1))",
    "**bold**",
)
MESSAGE = "I want to end my life " + " ".join(PAYLOADS)  # a crisis phrase: it raises an alert too
PARTICIPANT = "eve <img src=x onerror=alert(2)> **p**"
GROUP = "Support desk"  # the demo manager's group, so the manager sees these rows too
EVIL_GROUP = "<script>g()</script> [g](javascript:g()) **G**"
# Elements whose value Streamlit renders as markdown: a payload may only appear escaped there.
MARKDOWN_KINDS = ("markdown", "caption", "title", "header", "subheader", "info", "warning", "error", "success")
# A marker counts when it is not backslash-escaped ("\\<script" is escaped markdown: shown literally).
RAW_MARKERS = [re.compile(r"(?<!\\)" + re.escape(m)) for m in ("<script", "<img", "](javascript:", "**bold**", "**p**")]
# Text escaped twice: the reader sees the first escape's backslashes ("2026\\-12\\-04").
TWICE_ESCAPED = re.compile(r"\\\\\\[-.:()!_*]")


@pytest.fixture
def nasty_workspace(app_env: Path) -> Path:
    ws = open_workspace(load_settings(workspace=app_env))
    rows = [
        {"participant": PARTICIPANT, "group": GROUP, "time": "2026-11-20T09:00:00Z", "text": MESSAGE},
        {"participant": PARTICIPANT, "group": GROUP, "time": "2026-11-21T09:00:00Z", "text": MESSAGE},
        {"participant": "p-evil-group", "group": EVIL_GROUP, "time": "2026-11-21T10:00:00Z", "text": MESSAGE},
    ]
    data = pd.DataFrame(rows).to_csv(index=False).encode()
    report = ingest(ws.store, ws.endpoint, data, "nasty.csv", threshold=0.999)  # all of them to review
    assert report.accepted == 3 and report.alerts
    return app_env


def check_no_markup(at: AppTest, where: str) -> None:
    assert not at.exception, where
    for kind in MARKDOWN_KINDS:
        for el in getattr(at, kind):
            value = str(el.value)
            for marker in RAW_MARKERS:
                assert not marker.search(value), (
                    f"{where}: {kind} renders {marker.pattern!r} as markup: {value[:200]!r}"
                )
            assert not TWICE_ESCAPED.search(value), f"{where}: {kind} shows escapes as backslashes: {value[:200]!r}"


def shown_as_text(at: AppTest) -> str:
    parts = [str(el.value) for el in at.text]
    parts += [df.value.to_csv() for df in at.dataframe]
    return "\n".join(parts)


CASES = [(page, role) for page, roles in sorted(ALLOWED.items()) for role in sorted(roles)]


@pytest.mark.parametrize(("page", "role"), CASES)
def test_no_page_renders_user_text_as_markup(run_app, nasty_workspace: Path, page: str, role: str) -> None:  # type: ignore[no-untyped-def]
    at = run_app(role, f"pages/{page}")
    check_no_markup(at, f"{page} as {role}")


def test_the_review_page_shows_the_message_verbatim(run_app, nasty_workspace: Path) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(nasty_workspace)
    for item_id, item in queued(store).items():  # leave only the nasty items in the queue
        if item["text"] != MESSAGE:
            leave(store, item_id, "not this test's")
    at = run_app("annotator", "pages/review.py")
    check_no_markup(at, "review")
    assert MESSAGE in shown_as_text(at)
    assert PARTICIPANT not in shown_as_text(at)  # annotators see a pseudonym


def test_the_trends_drill_down_shows_the_message_verbatim(run_app, nasty_workspace: Path) -> None:  # type: ignore[no-untyped-def]
    at = run_app("manager", "pages/trends.py")
    check_no_markup(at, "trends")
    at.selectbox(key="trend_heat_group").set_value(GROUP).run()
    person = [s for s in at.selectbox if PARTICIPANT in [str(o) for o in s.options]]
    assert person, "the participant is listed (as text) for the drill-down"
    person[0].set_value(PARTICIPANT).run()
    check_no_markup(at, "trends drill-down")
    assert MESSAGE in shown_as_text(at)


def test_the_alert_inbox_names_the_group_as_text(run_app, nasty_workspace: Path) -> None:  # type: ignore[no-untyped-def]
    at = run_app("admin", "pages/alerts.py")
    check_no_markup(at, "alerts")
    assert EVIL_GROUP in shown_as_text(at)
