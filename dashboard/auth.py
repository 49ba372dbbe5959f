"""Sign-in and the role guard every page calls first."""

from __future__ import annotations

import contextlib

import streamlit as st
from streamlit.errors import StreamlitAPIException

from dashboard.deps import settings, show_error, workspace
from services.audit import try_record
from services.auth import ROLES, User, demo_users, known_user_names, verify
from services.errors import PulseError
from services.overview import group_names

_KEY = "pulse_user"


def _from_session() -> User | None:
    raw = st.session_state.get(_KEY)
    if not isinstance(raw, dict):
        return None
    name, role, groups = raw.get("name"), raw.get("role"), raw.get("groups", ())
    valid = (
        isinstance(name, str)
        and role in ROLES
        and isinstance(groups, list | tuple)
        and all(isinstance(g, str) for g in groups)
    )
    if not valid:  # tampered or stale: forget it rather than guess
        st.session_state.pop(_KEY, None)
        return None
    return User(str(name), str(role), tuple(groups))


def current_user() -> User | None:
    """The signed-in user, or None."""
    return _from_session()


def require_role(*roles: str) -> User:
    """Stop the page unless the signed-in user has one of `roles`. Call it first in every page."""
    user = _from_session()
    if user is None:
        st.warning("Please sign in to see this page.")
        # Only reachable when Streamlit ran this page file directly (first visit by URL):
        # then app.py is a known page and the link leads to sign-in in the same tab.
        with contextlib.suppress(StreamlitAPIException):
            st.page_link("app.py", label="Go to the sign-in page", icon=":material/login:")
        st.stop()
    if user.role not in roles:
        st.error(f"This page is for {' or '.join(roles)} users; you are signed in as {user.role}.")
        st.stop()
    return user  # type: ignore[return-value]  # st.stop() never returns


def _remember(user: User, mode: str) -> None:
    st.session_state[_KEY] = {"name": user.name, "role": user.role, "groups": list(user.groups)}
    try_record(workspace().store, user.name, user.role, "sign_in", mode)


def sign_out() -> None:
    st.session_state.pop(_KEY, None)


def sign_in_page() -> None:
    """The only page shown to someone who is not signed in."""
    st.title("Pulse")
    st.caption("How your people feel, day by day — and a model kept honest by the people who read it.")
    mode = settings().auth_mode
    if mode == "demo":
        st.info("Demo sign-in: pick a role to explore the demo workspace. Not for real data.")
        try:
            groups = group_names(workspace().store)
        except PulseError as exc:
            show_error(exc, "check PULSE_WORKSPACE or build the demo with `make run`")
            groups = []
        users = demo_users(groups)
        role = st.radio(
            "Sign in as",
            ROLES,
            format_func=lambda r: {
                "manager": "Manager — trends and alerts for my groups",
                "annotator": "Annotator — label messages the model is unsure about",
                "admin": "Admin — data, models and deployments",
            }[r],
        )
        if st.button("Sign in", type="primary"):
            _remember(users[role], "demo")
            st.rerun()
        return
    with st.form("sign-in"):
        name = st.text_input("User name")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            user = verify(workspace().store, name.strip(), password)
        except PulseError as exc:
            show_error(exc, "ask an admin to check the users file")
            return
        if user is None:
            # The name is recorded only when it is a known user's: a typo'd name may be a password.
            known = name.strip() in known_user_names(workspace().store)
            try_record(workspace().store, name.strip() if known else "unknown", "", "sign_in_refused", "password")
            st.error("Unknown user name or wrong password.")
            return
        _remember(user, "password")
        st.rerun()
