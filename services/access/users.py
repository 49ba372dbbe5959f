"""Users and roles. Sign-in modes: `demo` (pick a role; refused in production) and `password`
(a users file in the store, `auth/users.json`, holding bcrypt hashes only)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

import bcrypt

from services.access import audit
from services.access.throttle import Throttle
from services.errors import AuthError, KeyNotFound, SignInRefused
from services.store import keys
from services.store.base import ObjectStore

ROLES = ("manager", "annotator", "admin")
USERS_KEY = keys.USERS
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


WRONG = "Unknown user name or wrong password."


def _wait(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def password_sign_in(store: ObjectStore, name: str, password: str, *, client: str, throttle: Throttle) -> User:
    """The user whose name and password these are, or `SignInRefused` with what to tell them.

    Each failure makes the next attempt wait longer, for that name and for that client address; too
    many lock them for the lockout window (audited). Unknown names get exactly the answers a known
    name with a wrong password gets. A success starts the name's count again."""
    name = name.strip()
    subjects = {"user": throttle.subject("user", name), "client": throttle.subject("client", client or "unknown")}
    wait, locked = throttle.wait_seconds(*subjects.values())
    if wait > 0:
        if locked:
            raise SignInRefused(
                f"Sign-in is locked after too many failed attempts: try again in {_wait(wait)}, "
                "or ask an admin to lift the lock."
            )
        raise SignInRefused(f"Too many failed attempts: wait {_wait(wait)} before trying again.")
    user = verify(store, name, password)
    # The name is recorded only when it is a known user's: a typo'd name may be a password.
    target = name if user is not None or name in known_user_names(store) else "unknown"
    if user is None:
        audit.try_record(store, target, "", "sign_in_refused", "password")
        message = WRONG
        for scope, subject in subjects.items():
            after = throttle.failed(subject)
            if after.locked:  # this failure locked it: attempts while locked are refused before counting
                minutes = round(throttle.limits.lockout_seconds / 60, 1)
                details = {"scope": scope, "failures": after.failures, "minutes": minutes}
                audit.try_record(store, target, "", "sign_in_locked", "password", details)
                message = f"{WRONG} Too many failed attempts: sign-in is locked for {_wait(after.wait_seconds)}."
        raise SignInRefused(message)
    throttle.clear(subjects["user"])  # not the client's: one known password must not reset a guesser
    audit.try_record(store, user.name, user.role, "sign_in", "password")
    return user


def verify(store: ObjectStore, name: str, password: str) -> User | None:
    """The user if name and password match, else None."""
    entry = _load(store).get(name)
    if entry is None:
        bcrypt.checkpw(password.encode(), _dummy_hash())
        return None
    if not bcrypt.checkpw(password.encode(), str(entry["password_hash"]).encode()):
        return None
    return _user(name, entry)


def lookup(store: ObjectStore, name: str) -> User | None:
    """The user `name` of the users file as it is now (role and groups), or None."""
    entry = _load(store).get(name)
    return None if entry is None else _user(name, entry)


def _user(name: str, entry: dict[str, object]) -> User:
    groups = entry.get("groups") or []
    return User(name, str(entry["role"]), tuple(str(g) for g in groups) if isinstance(groups, list) else ())


# ------------------------------------------------------------------------- single sign-on (OIDC)

# When the role claim names several Pulse roles, the first of these wins: an admin who is also in
# the managers' group is an admin. Between manager and annotator, manager (they are given groups).
ROLE_PRECEDENCE = ("admin", "manager", "annotator")
_MAX_NAME = 128
_MAX_GROUPS = 200


def claim_values(value: object, separators: str = r"[,\s]+") -> list[str]:
    """A claim as a list of strings, whatever shape the provider sent: a list, a JSON list in a
    string, or a string split on `separators` (commas and spaces by default). Anything else
    (numbers, objects, None) is empty."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list):
                return claim_values(parsed, separators)
        return [part.strip() for part in re.split(separators, text) if part.strip()]
    if isinstance(value, list | tuple):
        return [item.strip() for item in value if isinstance(item, str) and item.strip()]
    return []


def user_from_claims(
    claims: Mapping[str, object],
    *,
    role_claim: str,
    roles: Mapping[str, str],
    group_claim: str,
) -> User | None:
    """The Pulse user for an ID token's claims, or None when no claim value maps to a role (or the
    token names nobody). Managers get the groups listed in `group_claim`."""
    name = next(
        (str(claims[k]).strip() for k in ("email", "preferred_username", "sub") if isinstance(claims.get(k), str)),
        "",
    )
    if not name or len(name) > _MAX_NAME or not name.isprintable():
        return None
    granted = {roles[v] for v in claim_values(claims.get(role_claim)) if v in roles and roles[v] in ROLES}
    role = next((r for r in ROLE_PRECEDENCE if r in granted), None)
    if role is None:
        return None
    groups: tuple[str, ...] = ()
    if role == "manager":
        # group names hold spaces ("Support desk"): a string of them splits on commas only
        wanted = claim_values(claims.get(group_claim), separators=",")
        groups = tuple(dict.fromkeys(g[:100] for g in wanted if g.isprintable()))[:_MAX_GROUPS]
    return User(name, role, groups)
