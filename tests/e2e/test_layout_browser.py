"""Every page of every role at 1280, 1400 and 1920 px: nothing wider than the window, no chip hidden.

Each page is opened once per role and the window resized, so the three screenshots of a page show the
same data. They go to artifacts/layout/<role>-<page>-<width>.png to be looked at; the checks below are
the faults people met at 1400 px (cut table columns, group chips folded away behind "+4")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import settled, start_app

LAYOUT = ROOT / "artifacts" / "layout"
WIDTHS = (1280, 1400, 1920)
ROLES = {
    "manager": ("Manager — trends", ["", "trends", "alerts"]),
    "annotator": ("Annotator — label", ["", "review"]),
    "admin": (
        "Admin — data",
        [
            "",
            "upload",
            "trends",
            "alerts",
            "review",
            "admin_data",
            "admin_training",
            "admin_models",
            "admin_health",
            "admin_audit",
        ],
    ),
}

# The main column's content wider than the main column itself: something is cut off or needs a
# sideways scroll of the whole page. Tables scroll inside themselves by design (a data frame's own
# scroll bar is fine), so only the page's main block is measured.
_OVERFLOW = """() => {
  const main = document.querySelector('[data-testid=stMain]') || document.querySelector('section.main');
  const block = document.querySelector('[data-testid=stMainBlockContainer]');
  const page = document.scrollingElement;
  return {main: main ? main.scrollWidth - main.clientWidth : 0,
          page: page.scrollWidth - page.clientWidth,
          block: block ? block.scrollWidth - block.clientWidth : 0};
}"""

_HEIGHT = """() => {
  const main = document.querySelector('[data-testid=stMain]');
  return Math.max(900, main ? main.scrollHeight : 0, document.scrollingElement.scrollHeight);
}"""

# A data frame whose columns run past its right edge: the reader has to find its sideways scroll bar to
# see the last columns (named by their header row's text).
_CUT_TABLES = """() => Array.from(document.querySelectorAll('[data-testid=stDataFrame]'))
  .filter(el => { const s = el.querySelector('.dvn-scroller'); return s && s.scrollWidth - s.clientWidth > 2; })
  .map(el => Array.from(el.querySelectorAll('[role=columnheader]')).map(h => h.innerText).join(', ').slice(0, 80))"""

# A multiselect folds chips it has no room for into "+N"; a filter whose choices are hidden is one a
# manager cannot read at a glance.
_FOLDED_CHIPS = """() => Array.from(document.querySelectorAll('[data-testid=stMultiSelect]'))
  .filter(el => /\\+\\s*\\d+/.test(el.innerText)).map(el => el.innerText.slice(0, 80))"""


@pytest.fixture(scope="module")
def layout_url(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo with a dataset version built, so Training shows its form; one server for every role."""
    import shutil

    from services.config import load_settings
    from services.lifecycle.datasets import build_dataset
    from services.workspace import open_workspace

    root = tmp_path_factory.mktemp("layout") / "demo"
    shutil.copytree(demo_dir, root)
    build_dataset(open_workspace(load_settings(workspace=root)).store, by="layout test")
    proc, url = start_app(root)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.parametrize("role", list(ROLES))
def test_every_page_fits_at_three_widths(role: str, layout_url: str, browser) -> None:  # type: ignore[no-untyped-def]
    label, pages = ROLES[role]
    LAYOUT.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    problems: list[str] = []
    try:
        page.goto(layout_url)
        page.get_by_text("Sign in as").wait_for()
        page.get_by_text(label).click()
        page.get_by_role("button", name="Sign in").click()
        page.locator("[data-testid=stSidebar]").get_by_role("link").first.wait_for()
        settled(page)
        for name in pages:
            page.set_viewport_size({"width": WIDTHS[0], "height": 900})
            page.goto(f"{layout_url}/{name}")
            page.locator("[data-testid=stSidebar]").get_by_role("link").first.wait_for()
            settled(page)
            page.wait_for_timeout(800)  # charts and data frames draw after the script run
            assert not page.get_by_text("Page not found").count(), f"{role}/{name or 'home'}: page not found"
            assert not page.locator("[data-testid=stException]").count(), f"{role}/{name or 'home'}: exception"
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                page.wait_for_timeout(600)  # the app redraws charts and tables to the new width
                # Streamlit scrolls its main column, not the document: a window as tall as that column
                # is what makes the screenshot show the whole page.
                page.set_viewport_size({"width": width, "height": min(page.evaluate(_HEIGHT), 8000)})
                page.wait_for_timeout(300)
                where = f"{role}/{name or 'home'} at {width} px"
                page.screenshot(path=str(LAYOUT / f"{role}-{name or 'home'}-{width}.png"), full_page=True)
                over = page.evaluate(_OVERFLOW)
                if max(over.values()) > 2:
                    problems.append(f"{where}: content wider than the window by {over}")
                cut = page.evaluate(_CUT_TABLES)
                if cut:
                    problems.append(f"{where}: {len(cut)} table(s) wider than their box: {cut}")
                folded = page.evaluate(_FOLDED_CHIPS)
                if folded:
                    problems.append(f"{where}: filter chips folded away: {folded}")
    finally:
        ctx.close()
    assert not problems, "\n".join(problems)
