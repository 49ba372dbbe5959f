"""Hostile data as a browser sees it: Markdown, HTML, KaTeX, directives, links and formulas in
message texts, participant ids and group names, on every page each role may open (every order of the
review page, the trends drill-down, each alert, an upload that fails), in Debian's chromium.

Fails on any request to a host other than the app's (an image or link fetched from an address
chosen by uploaded data), on any dialog, and on any element built from a payload: an image, bold
text, a heading, a link, KaTeX, coloured text, an icon."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest
from playwright.sync_api import expect

from services.access.users import add_user
from services.checkins.ingest import ingest
from services.config import load_settings
from services.review.batches import leave
from services.store.local import LocalStore
from services.workspace import open_workspace
from tests.conftest import queued
from tests.e2e.conftest import settled, shot, start_app

HOST = "127.0.0.1:9"  # nothing listens there: a request to it is the failure, not its answer


def markup(tag: str) -> str:
    """Markdown a careless page would render: a heading, an image, bold, coloured text, KaTeX."""
    return f"# PHEAD{tag} ![PIMG{tag}](http://{HOST}/{tag}.png) **PBOLD{tag}** :red[PRED{tag}] $x^2$ PKATEX{tag}"


def links(tag: str) -> str:
    """Links a careless page would make: a spreadsheet formula's URL, raw HTML, autolinks, an icon."""
    return (
        f'=HYPERLINK("http://{HOST}/h{tag}","PHL{tag}") <img src=http://{HOST}/i{tag}.png> '
        f"[PLINK{tag}](javascript:alert(1)) www.evil.example a@evil.example :material/warning:"
    )


GROUPS = (markup("G"), links("G"))
PARTICIPANTS = (markup("P"), links("P"))
TEXT = f"I want to end my life\n{markup('T')}\n{links('T')}\n# PHEAD2T <script>alert(2)</script>"
MARKERS = ["PHEAD", "PIMG", "PBOLD", "PRED", "PHL", "PLINK", "PKATEX", HOST, "evil.example", "www.evil", "a@evil"]
PASSWORD = "correct horse battery staple"
FIND_BUILT = """(markers) => {
    const bad = [];
    const md = '[data-testid=stMarkdownContainer] ';
    const built = 'img,strong,b,em,h1,h2,h3,h4,h5,h6,a,blockquote,del,li,code,.stMarkdownColoredText,'
        + md + '[style*="color"],' + md + '[data-testid=stIconMaterial],tspan[style*="font-weight"],svg a';
    // Built from a payload: the element's text starts where the payload's syntax ended ("**PBOLD"
    // made <strong>PBOLD</strong>; a page that shows the payload in bold shows "**PBOLD" in it), or
    // it points at an address the payload chose.
    for (const el of document.querySelectorAll(built)) {
        const text = (el.textContent || '').replace(/\u2060/g, '').trim();
        const target = (el.getAttribute('src') || '') + ' ' + (el.getAttribute('href') || '');
        if (markers.some((m) => text.startsWith(m) || target.includes(m))) {
            bad.push(el.tagName.toLowerCase() + ': ' + text.slice(0, 60) + ' ' + target.slice(0, 60));
        }
    }
    for (const el of document.querySelectorAll('.katex, .katex-html, math')) {
        bad.push('katex: ' + el.textContent.slice(0, 60));
    }
    return bad;
}"""


@dataclass
class Watch:
    """What the browser did that it must not: requests elsewhere, dialogs, elements from payloads."""

    app: str
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    built: list[str] = field(default_factory=list)

    def request(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != self.app:
            self.requests.append(url)

    def check(self, page, where: str) -> None:  # type: ignore[no-untyped-def]
        settled(page)
        self.built += [f"{where}: {b}" for b in page.evaluate(FIND_BUILT, MARKERS)]


@pytest.fixture
def hostile_app(workspace_copy: Path) -> Iterator[tuple[str, LocalStore]]:
    """The demo workspace plus check-ins whose text, participant and group are payloads (all sent to
    review, the crisis phrase raising alerts), password sign-in with a manager of the payload groups."""
    ws = open_workspace(load_settings(workspace=workspace_copy))
    yesterday = datetime.now(UTC) - timedelta(days=1)
    rows = [
        {"participant": p, "group": g, "time": (yesterday - timedelta(hours=h)).isoformat(), "text": f"{TEXT} {h}"}
        for h, (p, g) in enumerate([(PARTICIPANTS[0], GROUPS[0]), (PARTICIPANTS[1], GROUPS[1])] * 2)
    ]
    report = ingest(ws.store, ws.endpoint, pd.DataFrame(rows).to_csv(index=False).encode(), "h.csv", threshold=0.999)
    assert report.accepted == len(rows) and report.alerts
    store = LocalStore(workspace_copy)
    for item_id, item in queued(store).items():  # the queue holds the payload items only
        if "PBOLD" not in json.dumps(item):
            leave(store, item_id, "not this test's")
    add_user(store, "pw-admin", PASSWORD, "admin", [])
    add_user(store, "pw-annotator", PASSWORD, "annotator", [])
    add_user(store, "pw-manager", PASSWORD, "manager", [*GROUPS, "Support desk"])
    proc, url = start_app(workspace_copy, {"PULSE_AUTH_MODE": "password"})
    try:
        yield url, store
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def sign_in(page, url: str, name: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url)
    page.get_by_label("User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.locator("[data-testid=stSidebar]").get_by_role("link", name="Home").wait_for()
    settled(page)


def open_page(page, title: str) -> None:  # type: ignore[no-untyped-def]
    page.locator("[data-testid=stSidebar]").get_by_role("link", name=title).click()
    settled(page)


def pick(page, combobox: str, option: re.Pattern[str]) -> bool:  # type: ignore[no-untyped-def]
    """Choose the first option of a select box that matches; False if none does."""
    box = page.get_by_role("combobox", name=combobox, exact=True)
    box.scroll_into_view_if_needed()
    box.click()
    choice = page.get_by_role("option", name=option)
    if not choice.count():
        page.keyboard.press("Escape")
        return False
    choice.first.click()
    settled(page)
    return True


PAYLOAD_OPTION = [re.compile("PBOLDG|PBOLDP"), re.compile("PHLG|PHLP")]
ROLES = {
    "pw-manager": ["Home", "Trends", "Alerts"],
    "pw-annotator": ["Home", "Review queue"],
    "pw-admin": [
        "Home",
        "Trends",
        "Alerts",
        "Review queue",
        "Upload check-ins",
        "Labels & datasets",
        "Training",
        "Models & deploy",
        "Model health & costs",
        "Audit log",
    ],
}


def visit(page, title: str, watch: Watch, who: str, shown: list[str]) -> None:  # type: ignore[no-untyped-def]
    open_page(page, title)
    where = f"{who} {title}"
    watch.check(page, where)
    if title == "Review queue":
        shown.append(page.inner_text("[data-testid=stMain]"))
        for order in ("Oldest first", "Random (spot check)", "Least sure first"):
            page.get_by_text(order, exact=True).click()
            watch.check(page, f"{where} {order}")
        page.get_by_text("By group", exact=True).click()
        settled(page)
        for option in PAYLOAD_OPTION:
            if pick(page, "Group", option):
                watch.check(page, f"{where} by group {option.pattern}")
                shown.append(page.inner_text("[data-testid=stMain]"))
    elif title == "Trends":
        for option in PAYLOAD_OPTION:
            if pick(page, "Group", option):
                watch.check(page, f"{where} heatmap {option.pattern}")
                if pick(page, "Read the check-ins of", option):
                    watch.check(page, f"{where} drill-down {option.pattern}")
                    shown.append(page.inner_text("[data-testid=stMain]"))
    elif title == "Alerts":
        for option in PAYLOAD_OPTION:
            if pick(page, "Open an alert", option):
                watch.check(page, f"{where} alert {option.pattern}")
                shown.append(page.inner_text("[data-testid=stMain]"))
    elif title == "Upload check-ins":
        for name, body in (
            (f"x![FN](http://{HOST}/fn.png)**FNBOLD**PBOLDF.csv", "participant,group,time,text\nA,B,2026-11-01,hi\n"),
            ("header.csv", f"participant,group,time,![HDR](http://{HOST}/hdr.png)**HDRBOLD**PBOLDH\nA,B,C,D\n"),
        ):
            page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(
                files=[{"name": name, "mimeType": "text/csv", "buffer": body.encode()}]
            )
            page.locator("[data-testid=stFileUploader]").get_by_text(name[-10:]).wait_for()
            settled(page)
            result = page.locator("[data-testid=stAlert]").first
            before = result.inner_text() if result.count() else None  # the previous upload's result
            page.get_by_role("button", name="Score and add to the workspace").click()
            result.wait_for()
            if before is not None:
                expect(result).not_to_have_text(before)  # this upload's, not the one still on screen
            settled(page)  # under load the old result panel can still be on screen when the first alert changes
            watch.check(page, f"{where} upload {name[:12]}")
            shown.append(page.inner_text("[data-testid=stMain]"))


def test_no_payload_becomes_markup_a_request_or_a_dialog_anywhere(browser, hostile_app) -> None:  # type: ignore[no-untyped-def]
    url, _store = hostile_app
    watch = Watch(urlsplit(url).netloc)
    shown: list[str] = []
    for who, titles in ROLES.items():
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        page.on("request", lambda r: watch.request(r.url))
        page.on("dialog", lambda d: (watch.dialogs.append(d.message), d.dismiss()))
        try:
            sign_in(page, url, who)
            watch.check(page, f"{who} sign-in")
            for title in titles:
                visit(page, title, watch, who, shown)
                if title in ("Review queue", "Trends", "Alerts"):
                    shot(page, f"hostile-{who}-{title.split()[0].lower()}")
        except Exception:
            shot(page, "failed-hostile-data")  # the page as it was, beside the report
            raise
        finally:
            ctx.close()
    assert watch.requests == [], watch.requests
    assert watch.dialogs == [], watch.dialogs
    assert watch.built == [], "\n".join(watch.built)
    # The payloads were on screen, as the characters people typed.
    text = "\n".join(shown).replace("\u2060", "")
    assert "**PBOLDT**" in text and "# PHEAD2T <script>alert(2)</script>" in text  # the message, verbatim
    assert "**PBOLDG**" in text and ":red[PREDG]" in text  # a group name, literally
    assert '=HYPERLINK("http://127.0.0.1:9/hP","PHLP")' in text  # a participant id, literally
    assert "**HDRBOLD**PBOLDH" in text  # an upload's header, in its error message
