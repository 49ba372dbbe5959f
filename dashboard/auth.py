"""Sign-in and the role guard every page calls first."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime

import streamlit as st
from streamlit.errors import StreamlitAPIException, StreamlitSecretNotFoundError

from dashboard import urlstate
from dashboard.components import escape_markdown
from dashboard.deps import settings, show_error, throttle, workspace
from services.access import policy, sessions
from services.access.audit import try_record
from services.access.users import ROLES, User, demo_users, password_sign_in, user_from_claims
from services.checkins.overview import group_names
from services.errors import PulseError, SignInRefused

_KEY = "pulse_user"
_AUDITED = "pulse_sign_in_audited"
_TOKEN = "pulse_session_token"  # noqa: S105 (a session_state key, not a secret): this browser session's token (the cookie's value)
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]{0,100}")  # what secrets.token_urlsafe gives: safe in a script
NAVIGATING = "pulse_navigating"  # set by app.py while it runs the page its navigation chose
_COOKIE_TODO = "pulse_cookie_todo"  # ("set", token, seconds) or ("clear",): done by `sync_cookie`


def _from_session() -> User | None:
    raw = st.session_state.get(_KEY)
    expires_at = raw.get("expires_at") if isinstance(raw, dict) else None
    if isinstance(expires_at, str) and expires_at <= datetime.now(UTC).isoformat():
        _forget()  # the session expired while the page was open
        return None
    if not isinstance(raw, dict):
        return _from_cookie()
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


def _from_cookie() -> User | None:
    """A reload or a pasted link: the session the browser's cookie names, if it is still alive."""
    token = st.context.cookies.get(sessions.COOKIE)
    if not token:
        return None
    try:
        found = sessions.resume(workspace().store, token)
    except PulseError:
        return None
    if found is None or found.mode != settings().auth_mode:
        st.session_state[_COOKIE_TODO] = ("clear",)
        return None
    _keep(found.user, token, found.expires_at)
    return found.user


def _keep(user: User, token: str, expires_at: datetime) -> None:
    st.session_state[_KEY] = {
        "name": user.name,
        "role": user.role,
        "groups": list(user.groups),
        "expires_at": expires_at.isoformat(),
    }
    st.session_state[_TOKEN] = token


def _forget() -> None:
    token = st.session_state.pop(_TOKEN, None)
    st.session_state.pop(_KEY, None)
    st.session_state.pop(_AUDITED, None)
    if token:
        with contextlib.suppress(PulseError):
            sessions.end(workspace().store, token)
        st.session_state[_COOKIE_TODO] = ("clear",)


def sync_cookie() -> None:
    """Set or clear the session cookie in the browser when sign-in or sign-out asked for it (once).
    The script holds only the cookie (the token), never anything a user typed."""
    todo = st.session_state.pop(_COOKIE_TODO, None)
    if not todo:
        return
    secure = "; Secure" if str(st.context.url or "").startswith("https:") else ""
    value, age = (str(todo[1]), int(todo[2])) if todo[0] == "set" else ("", 0)
    if not _TOKEN_CHARS.fullmatch(value):
        return
    st.html(
        f"<script>document.cookie = '{sessions.COOKIE}={value}; Path=/; Max-Age={age}; SameSite=Strict{secure}';"
        "</script>",
        unsafe_allow_javascript=True,
    )


def _from_oidc() -> User | None:
    """The user of the identity provider's token, derived again on every run: session state is never
    trusted for the role in single sign-on (a tampered `pulse_user` raises nothing)."""
    if not st.user.is_logged_in:
        return None
    config = settings()
    user = user_from_claims(
        st.user.to_dict(),
        role_claim=config.oidc_role_claim,
        roles=config.oidc_roles,
        group_claim=config.oidc_group_claim,
    )
    if user is not None and st.session_state.get(_AUDITED) != user.name:
        st.session_state[_AUDITED] = user.name  # one audit event per session, not per rerun
        try_record(workspace().store, user.name, user.role, "sign_in", "oidc")
    return user


def current_user() -> User | None:
    """The signed-in user, or None."""
    if settings().auth_mode == "oidc":
        return _from_oidc()
    return _from_session()


def signed_in_without_role() -> str | None:
    """Single sign-on only: who is signed in at the identity provider but has no Pulse role."""
    if settings().auth_mode != "oidc" or not st.user.is_logged_in or _from_oidc() is not None:
        return None
    claims = st.user.to_dict()
    return next((str(claims[k]) for k in ("email", "preferred_username", "sub") if claims.get(k)), "someone")


def require_page(page: str) -> User:
    """Stop the page unless the signed-in user's role may open it (`services.access.policy.PAGES`).
    Call it first in every page: Streamlit can run a page file directly, without app.py."""
    if not st.session_state.get(NAVIGATING) and current_user() is None:
        # Streamlit ran this page file directly (a link followed before the server's first run of
        # app.py): sign in through app.py, which then comes back here.
        with contextlib.suppress(StreamlitAPIException):
            st.switch_page("app.py", query_params={**urlstate.carried(), "next": [page]})
    return require_role(*policy.PAGES[page])


def require_role(*roles: str) -> User:
    """Stop the page unless the signed-in user has one of `roles`."""
    user = current_user()
    if user is None:
        st.warning("Please sign in to see this page.")
        # Only reachable when Streamlit ran this page file directly (first visit by URL):
        # then app.py is a known page and the link leads to sign-in in the same tab.
        with contextlib.suppress(StreamlitAPIException):
            st.page_link("app.py", label="Go to the sign-in page", icon=":material/login:")
        st.stop()
    if user.role not in roles:
        st.error(escape_markdown(f"This page is for {' or '.join(roles)} users; you are signed in as {user.role}."))
        st.stop()
    return user  # type: ignore[return-value]  # st.stop() never returns


def not_for_you(page: str) -> None:
    """What a signed-in user sees at the address of a page their role may not open."""
    user = current_user()
    who = " and ".join(f"{r}s" for r in policy.PAGES[page])
    st.title("Not for your role")
    st.error(
        escape_markdown(f"This page is for {who}; you are signed in as {user.role if user else 'nobody'}."),
        icon=":material/lock:",
    )
    st.page_link("pages/home.py", label="Go to Home", icon=":material/home:")


def _remember(user: User, mode: str, *, audited: bool = False) -> None:
    """Signed in: keep the user for this session and, in a cookie, for a reload or a pasted link."""
    hours = settings().session_hours
    token, session = sessions.issue(workspace().store, user, mode, hours=hours)
    _keep(user, token, session.expires_at)
    st.session_state[_COOKIE_TODO] = ("set", token, int(hours * 3600))
    if not audited:
        try_record(workspace().store, user.name, user.role, "sign_in", mode)


def sign_out() -> None:
    """Forget the user, end the session (its cookie is worth nothing after) and show the sign-in page."""
    _forget()
    if settings().auth_mode == "oidc":
        st.logout()  # ends the identity cookie too; the browser is sent through the provider's logout
    else:
        st.rerun()


def _sso_configured() -> bool:
    try:
        return "auth" in st.secrets
    except (FileNotFoundError, StreamlitSecretNotFoundError):  # no secrets file at all
        return False


def no_access_page() -> None:
    """For someone the identity provider knows but Pulse gives no role: say so, politely."""
    who = signed_in_without_role() or "someone"
    st.title("Pulse")
    st.info(
        f"You are signed in as **{escape_markdown(who)}**, but your account has no Pulse role yet. "
        "Ask an admin to add you to the managers', annotators' or admins' group of your organisation's "
        "sign-in (then sign in again).",
        icon=":material/lock:",
    )
    if st.button("Sign out", icon=":material/logout:"):
        sign_out()


def sign_in_page() -> None:
    """The only page shown to someone who is not signed in."""
    st.title("Pulse")
    st.caption("How your people feel, day by day — and a model kept honest by the people who read it.")
    mode = settings().auth_mode
    if mode == "oidc":
        if not _sso_configured():
            st.error(
                "Single sign-on is not configured: add an [auth] section to .streamlit/secrets.toml "
                "(see .streamlit/secrets.toml.example and docs/sso.md)."
            )
            return
        st.write("Sign in with your organisation's account.")
        if st.button("Sign in with single sign-on", type="primary", icon=":material/key:"):
            st.login(settings().oidc_provider or None)
        return
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
            user = password_sign_in(workspace().store, name, password, client=_client(), throttle=throttle())
        except SignInRefused as exc:
            st.error(escape_markdown(exc))
            return
        except PulseError as exc:
            show_error(exc, "ask an admin to check the users file")
            return
        _remember(user, "password", audited=True)
        st.rerun()


def _client() -> str:
    """The address the browser connects from (behind a load balancer: the balancer's, unless it
    passes the client's on; every client then shares one count)."""
    address = st.context.ip_address
    return address if isinstance(address, str) and address else "unknown"
