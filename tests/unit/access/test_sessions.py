"""Browser sessions that survive a reload: issued at sign-in, resumed from the cookie's token,
ended by signing out or by time; the store never holds the token itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.access import sessions
from services.access.users import User, add_user
from services.store import keys
from services.store.local import LocalStore

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
MANAGER = User("demo-manager", "manager", ("Night shift",))
PASSWORD = "correct-horse-battery-9"


def at(hours: float):  # type: ignore[no-untyped-def]
    return lambda: NOW + timedelta(hours=hours)


def test_a_session_is_resumed_from_its_token_until_it_expires(store: LocalStore) -> None:
    token, session = sessions.issue(store, MANAGER, "demo", hours=12, clock=at(0))
    assert session.expires_at == NOW + timedelta(hours=12)
    again = sessions.resume(store, token, clock=at(11.9))
    assert again is not None and (again.user, again.mode) == (MANAGER, "demo")
    assert sessions.resume(store, token, clock=at(12)) is None
    assert list(store.list(keys.SESSIONS)) == []  # an expired session is removed when it is seen


def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(store: LocalStore) -> None:
    token, _ = sessions.issue(store, MANAGER, "demo", hours=12, clock=at(0))
    sessions.end(store, token)
    assert sessions.resume(store, token, clock=at(1)) is None
    sessions.end(store, token)  # twice, or a token never issued: nothing happens
    sessions.end(store, "")


def test_the_store_holds_a_hash_of_the_token_never_the_token(store: LocalStore) -> None:
    token, _ = sessions.issue(store, MANAGER, "demo", hours=1, clock=at(0))
    (key,) = list(store.list(keys.SESSIONS))
    assert token not in key and token.encode() not in store.get(key)
    other, _ = sessions.issue(store, MANAGER, "demo", hours=1, clock=at(0))
    assert other != token and len(list(store.list(keys.SESSIONS))) == 2  # each sign-in its own session


@pytest.mark.parametrize("token", ["", "short", "x" * 500, "../../auth/users", None, 42])
def test_a_made_up_or_malformed_token_resumes_nothing(store: LocalStore, token: object) -> None:
    sessions.issue(store, MANAGER, "demo", hours=1, clock=at(0))
    assert sessions.resume(store, token, clock=at(0)) is None  # type: ignore[arg-type]


def test_a_damaged_session_object_resumes_nothing(store: LocalStore) -> None:
    token, _ = sessions.issue(store, MANAGER, "demo", hours=1, clock=at(0))
    (key,) = list(store.list(keys.SESSIONS))
    store.put(key, b'{"name": "x", "role": "superuser", "expires_at": "tomorrow"}')
    assert sessions.resume(store, token, clock=at(0)) is None


def test_password_sessions_follow_the_users_file(store: LocalStore) -> None:
    user = add_user(store, "alice", PASSWORD, "manager", ["Night shift"])
    token, _ = sessions.issue(store, user, "password", hours=12, clock=at(0))
    add_user(store, "alice", PASSWORD, "annotator", [])  # an admin changed her role
    resumed = sessions.resume(store, token, clock=at(1))
    assert resumed is not None and (resumed.user.role, resumed.user.groups) == ("annotator", ())
    store.put(keys.USERS, b"{}")  # and then removed her
    assert sessions.resume(store, token, clock=at(2)) is None
