"""Security as a browser sees it: an annotator who types an admin page's URL sees no admin data,
and signing out returns to the sign-in page."""

from __future__ import annotations

from tests.e2e.conftest import shot
from tests.e2e.test_browser import _sign_in

ADMIN_PAGES = ("admin_models", "admin_data", "admin_training", "admin_health", "admin_audit", "upload")


def test_an_annotator_opening_admin_urls_sees_no_admin_data(page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, app_url, "Annotator — label")
    page.get_by_role("link", name="Review queue").wait_for()
    sidebar = page.inner_text("[data-testid=stSidebar]")
    assert "Models & deploy" not in sidebar and "Audit log" not in sidebar
    for name in ADMIN_PAGES:
        page.goto(f"{app_url}/{name}")
        # A typed URL opens a new session, signed in again from the session cookie: the page says
        # whose it is and shows none of it.
        page.get_by_text("This page is for admins; you are signed in as annotator.").wait_for()
        body = page.inner_text("body")
        for marker in (
            "Promote",
            "Build dataset version",
            "Start training",
            "Review threshold",
            "Audit log",
            "Check-ins file",
        ):
            assert marker not in body, (name, marker)
        assert not page.locator("[data-testid=stDataFrame]").count(), name
    shot(page, "security-annotator-admin-url")


def test_sign_out_returns_to_the_sign_in_page(page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, app_url, "Admin — data")
    page.get_by_text("Check-ins per day").wait_for()
    page.locator("[data-testid=stSidebar]").get_by_role("button", name="Sign out").click()
    page.get_by_text("Sign in as").wait_for()
    assert "Check-ins per day" not in page.inner_text("body")
    shot(page, "security-signed-out")
