"""Browser sessions that survive a reload, for demo and password sign-in (single sign-on keeps
Streamlit's own identity cookie).

Signing in issues a random token; the browser keeps it in a cookie and the store keeps only its
SHA-256, under `auth/sessions/<hash>.json`, with the user and when the session expires. A reload or
a pasted link sends the cookie back and `resume` finds the user again; signing out or expiry ends
the session on the server, so a copied cookie is worth nothing after that. For password sign-in the
user is read again from the users file on every resume: a removed user, or one whose role or groups
changed, does not carry the old ones into a new page load.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.access.users import ROLES, User, lookup
from services.errors import KeyNotFound
from services.store import keys
from services.store.base import ObjectStore

COOKIE = "pulse_session"
TOKEN_BYTES = 32


@dataclass(frozen=True)
class Session:
    user: User
    mode: str  # "demo" or "password"
    expires_at: datetime


def _key(token: str) -> str:
    return keys.session_key(hashlib.sha256(token.encode()).hexdigest())


def _now(clock: Callable[[], datetime] | None) -> datetime:
    return (clock or (lambda: datetime.now(UTC)))()


def issue(
    store: ObjectStore, user: User, mode: str, *, hours: float, clock: Callable[[], datetime] | None = None
) -> tuple[str, Session]:
    """A new session for `user`, `hours` long: the token for the cookie, and the session."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session = Session(user, mode, _now(clock) + timedelta(hours=hours))
    body = {
        "name": user.name,
        "role": user.role,
        "groups": list(user.groups),
        "mode": mode,
        "expires_at": session.expires_at.isoformat(),
    }
    store.put(_key(token), json.dumps(body).encode(), if_absent=True)
    return token, session


def resume(store: ObjectStore, token: str, *, clock: Callable[[], datetime] | None = None) -> Session | None:
    """The session `token` names, or None when there is none, it expired (then it is removed), it
    is malformed, or (password mode) its user is no longer in the users file."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return None
    try:
        data = json.loads(store.get(_key(token)))
        expires_at = datetime.fromisoformat(str(data["expires_at"]))
        user = User(str(data["name"]), str(data["role"]), tuple(str(g) for g in data.get("groups", [])))
        mode = str(data["mode"])
    except (KeyNotFound, ValueError, KeyError, TypeError):
        return None
    if expires_at <= _now(clock) or user.role not in ROLES:
        end(store, token)
        return None
    if mode == "password":
        current = lookup(store, user.name)
        if current is None:
            end(store, token)
            return None
        user = current
    return Session(user, mode, expires_at)


def end(store: ObjectStore, token: str) -> None:
    """End the session `token` names (signing out); nothing happens when there is none."""
    if isinstance(token, str) and token:
        store.delete(_key(token))
