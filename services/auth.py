"""Users and roles. Sign-in modes: `demo` (pick a role; refused in production) and `password`
(a users file in the store, `auth/users.json`, holding bcrypt hashes only)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache

import bcrypt

from services.errors import AuthError, KeyNotFound
from services.storage import ObjectStore

ROLES = ("manager", "annotator", "admin")
USERS_KEY = "auth/users.json"
MIN_PASSWORD = 12
_BCRYPT = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class User:
    """A signed-in person. Managers see only `groups`; admins see every group."""

    name: str
    role: str
    groups: tuple[str, ...] = field(default_factory=tuple)

    def sees_all_groups(self) -> bool:
        return self.role == "admin"

    def can_see_group(self, group: str) -> bool:
        return self.sees_all_groups() or group in self.groups


# The demo manager looks after the demo's two groups whose mood is getting worse.
DEMO_MANAGER_GROUPS = ("Support desk", "Night shift")


def demo_users(groups: list[str]) -> dict[str, User]:
    """The users offered by demo sign-in: one per role. The manager gets the demo's struggling
    groups when the workspace has them, else its first two groups."""
    managed = [g for g in DEMO_MANAGER_GROUPS if g in groups] or groups[:2]
    return {
        "manager": User("demo-manager", "manager", tuple(managed)),
        "annotator": User("demo-annotator", "annotator"),
        "admin": User("demo-admin", "admin"),
    }


def check_password(password: str) -> None:
    """Refuse passwords that are easy to guess."""
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(set(password)) < 5 or password.lower() in ("passwordpassword", "123456789012"):
        raise AuthError("the password is too easy to guess")


def _load(store: ObjectStore) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(store.get(USERS_KEY))
    except KeyNotFound:
        return {}
    except json.JSONDecodeError as exc:
        raise AuthError(f"{USERS_KEY} is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise AuthError(f"{USERS_KEY} must map user names to entries")
    for name, entry in data.items():
        if not isinstance(entry, dict) or entry.get("role") not in ROLES:
            raise AuthError(f"{USERS_KEY}: user {name!r} needs a role, one of {', '.join(ROLES)}")
        if not _BCRYPT.match(str(entry.get("password_hash", ""))):
            raise AuthError(
                f"{USERS_KEY}: user {name!r} has no bcrypt password hash (a plain-text password is refused); "
                "set one with `python -m services.cli add-user`"
            )
    return data


def add_user(store: ObjectStore, name: str, password: str, role: str, groups: list[str]) -> User:
    """Create or update a user in the users file (password stored as a bcrypt hash)."""
    if not _NAME.fullmatch(name):
        raise AuthError("user names are 1-64 letters, digits, '.', '_', '@' or '-'")
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    check_password(password)
    users = _load(store)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    user = User(name, role, tuple(groups))
    users[name] = {"password_hash": hashed, "role": role, "groups": list(groups)}
    store.put(USERS_KEY, json.dumps(users, indent=2).encode())
    return user


def known_user_names(store: ObjectStore) -> set[str]:
    """The names in the users file."""
    return set(_load(store))


@cache
def _dummy_hash() -> bytes:
    # Checked against when the user name is unknown, so a wrong name costs as long as a wrong password.
    return bcrypt.hashpw(b"pulse-dummy-password", bcrypt.gensalt())


def verify(store: ObjectStore, name: str, password: str) -> User | None:
    """The user if name and password match, else None."""
    entry = _load(store).get(name)
    if entry is None:
        bcrypt.checkpw(password.encode(), _dummy_hash())
        return None
    if not bcrypt.checkpw(password.encode(), str(entry["password_hash"]).encode()):
        return None
    groups = entry.get("groups") or []
    return User(name, str(entry["role"]), tuple(str(g) for g in groups) if isinstance(groups, list) else ())
