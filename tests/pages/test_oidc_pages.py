"""Single sign-on in the app (AppTest's user injection stands in for the identity provider)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from services.access.audit import read_events
from services.store.local import LocalStore
from tests.pages.conftest import APP, ROOT, rendered_text, shown

AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "not-a-real-secret-only-for-tests",
    "client_id": "test-client",
    "client_secret": "not-a-real-secret-only-for-tests",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}


@pytest.fixture
def oidc(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PULSE_AUTH_MODE", "oidc")
    return app_env


def run(claims: dict[str, Any] | None, *, file: str = APP, page: str | None = None, **state: Any) -> AppTest:
    at = AppTest.from_file(file, default_timeout=30)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": False} if claims is None else {"is_logged_in": True, **claims}
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


ADMIN = {"email": "ada@example.org", "cognito:groups": ["pulse-admin"]}
ANNOTATOR = {"email": "ann@example.org", "cognito:groups": "pulse-annotator"}
MANAGER = {"email": "meg@example.org", "cognito:groups": ["pulse-manager"], "custom:pulse_groups": "Support desk"}
NOBODY = {"email": "new.hire@example.org", "cognito:groups": ["everyone"]}


def test_signed_out_sees_only_the_single_sign_on_button(oidc: Path) -> None:
    at = run(None)
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in with single sign-on"]
    assert not at.metric and not at.radio and not at.text_input


def test_without_an_auth_section_the_sign_in_page_says_what_is_missing(oidc: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=30)
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception and "[auth]" in at.error[0].value and not at.button


def test_an_admin_from_the_claims_gets_the_admin_pages_and_the_sign_in_is_audited_once(oidc: Path) -> None:
    at = run(ADMIN)
    assert not at.exception and at.metric
    assert "ada@example.org" in rendered_text(at)
    at.switch_page("pages/admin_models.py")
    at.run()
    assert not at.exception and not at.error
    at.run()
    events = read_events(LocalStore(oidc), actions=["sign_in"])
    assert [(e.actor, e.role, e.target) for e in events] == [("ada@example.org", "admin", "oidc")]


def test_a_manager_gets_the_groups_of_the_claim(oidc: Path) -> None:
    at = run(MANAGER)
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Groups"] == "1"


def test_no_known_role_gets_the_no_access_page_and_nothing_else(oidc: Path) -> None:
    at = run(NOBODY)
    assert not at.exception
    assert r"new\.hire@" in at.info[0].value and "no Pulse role" in at.info[0].value  # escaped
    assert "new.hire@example.org" in shown(at.info[0].value)
    assert not at.metric and not at.dataframe
    for page in ("home.py", "trends.py", "admin_data.py"):
        direct = run(NOBODY, file=str(ROOT / "pages" / page))
        assert direct.warning and not direct.metric and not direct.dataframe, page


def test_tampered_session_state_cannot_raise_a_role(oidc: Path) -> None:
    forged = {"name": "ann@example.org", "role": "admin", "groups": []}
    at = run(ANNOTATOR, file=str(ROOT / "pages" / "admin_models.py"), pulse_user=forged)
    assert not at.exception
    assert at.error and "annotator" in at.error[0].value and not at.dataframe
    signed_out = run(None, file=str(ROOT / "pages" / "admin_models.py"), pulse_user=forged)
    assert signed_out.warning and not signed_out.dataframe
