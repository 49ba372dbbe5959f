"""AppTest helpers: run the real app (or one page file) against a private demo workspace."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from services.access.users import User, demo_users
from services.demo import GROUPS

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGE_FILES = sorted(p.name for p in (ROOT / "pages").glob("*.py"))
USERS = demo_users([g.name for g in GROUPS])


def session_user(user: User) -> dict[str, object]:
    return {"name": user.name, "role": user.role, "groups": list(user.groups)}


@pytest.fixture
def app_env(workspace_copy: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the app at a private demo workspace and start from empty Streamlit caches."""
    monkeypatch.setenv("PULSE_WORKSPACE", str(workspace_copy))
    monkeypatch.chdir(ROOT)
    st.cache_data.clear()
    st.cache_resource.clear()
    return workspace_copy


@pytest.fixture
def run_app(app_env: Path) -> Callable[..., AppTest]:
    def run(role: str | None = None, page: str | None = None, *, file: str = APP) -> AppTest:
        at = AppTest.from_file(file, default_timeout=30)
        if role is not None:
            at.session_state["pulse_user"] = session_user(USERS[role])
        at.run()
        if page is not None:
            at.switch_page(page)
            at.run()
        return at

    return run


def shown(markdown: object) -> str:
    """What a person reads of Markdown built with `escape_markdown`: its escapes and word joiners gone."""
    return re.sub(r"\\(.)", r"\1", str(markdown)).replace("\u2060", "")


def rendered_text(at: AppTest) -> str:
    """Everything a user could read on the page, as one string (for leak checks)."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "text", "info", "warning", "error", "success"):
        parts.extend(str(el.value) for el in getattr(at, kind))
    parts.extend(f"{m.label} {m.value}" for m in at.metric)
    for df in at.dataframe:
        parts.append(df.value.to_csv())
    return "\n".join(parts)
