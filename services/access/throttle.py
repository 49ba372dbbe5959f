"""Password sign-in that resists guessing: after each failed attempt the next one must wait longer
(1 s, 2 s, 4 s, ... up to a minute), and after too many failures within the lockout window the name
(or the client address) is locked for that window. Unknown names are throttled exactly like known
ones, so the answers never tell whether a name exists.

The record lives in the store, so every app replica sees the same count:

    auth/attempts/<subject>/<microseconds>-<random>   one empty object per failed attempt (append-only)
    auth/attempts/<subject>/cleared.json              when the count last started again (a sign-in, an unlock)

`<subject>` is a keyed hash of the user name (or of the client address), never the name itself: a
user name field sometimes receives a password.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.errors import KeyNotFound
from services.store import keys
from services.store.base import ObjectStore, workspace_secret

if TYPE_CHECKING:
    from services.config import Settings

PREFIX = keys.SIGN_IN_ATTEMPTS
KEY = keys.THROTTLE_KEY
MAX_DELAY_SECONDS = 60.0


@dataclass(frozen=True)
class Limits:
    """How sign-in attempts are throttled (from the `signin_*` settings)."""

    max_failures: int = 5  # failures of one name within `lockout_seconds` that lock it
    lockout_seconds: float = 15 * 60
    delay_seconds: float = 1.0  # the wait after the first failure; it doubles with each one after
    client_max_failures: int = 20  # the same for one client address, whatever names it tries

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_failures=settings.signin_max_failures,
            lockout_seconds=settings.signin_lockout_minutes * 60,
            delay_seconds=settings.signin_delay_seconds,
            client_max_failures=settings.signin_client_max_failures,
        )


@dataclass(frozen=True)
class Standing:
    """What the record says of one subject now."""

    failures: int  # recent failures that count
    wait_seconds: float  # until the next attempt may be made (0: now)
    locked: bool  # the wait is a lockout, not a delay


class Throttle:
    """Counts failed sign-ins per user name and per client address. `clock` is injected for tests."""

    def __init__(self, store: ObjectStore, limits: Limits, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.limits = limits
        self.clock = clock
        self._key = workspace_secret(store, KEY)

    def subject(self, kind: str, value: str) -> str:
        """The store segment for a user name ("user") or a client address ("client")."""
        digest = hmac.new(self._key, value.strip().casefold().encode("utf-8", "replace"), hashlib.sha256)
        return f"{kind}-{digest.hexdigest()[:24]}"

    def standing(self, subject: str) -> Standing:
        now = self.clock()
        limit = self.limits.client_max_failures if subject.startswith("client-") else self.limits.max_failures
        since = max(self._cleared_at(subject), now - self.limits.lockout_seconds)
        failures = sorted(t for t in self._failure_times(subject) if t > since)
        if not failures:
            return Standing(0, 0.0, False)
        n = len(failures)
        if n >= limit:
            return Standing(n, max(0.0, failures[-1] + self.limits.lockout_seconds - now), True)
        delay = min(MAX_DELAY_SECONDS, self.limits.delay_seconds * 2 ** (n - 1))
        return Standing(n, max(0.0, failures[-1] + delay - now), False)

    def wait_seconds(self, *subjects: str) -> tuple[float, bool]:
        """The longest wait among `subjects`, and whether it is a lockout."""
        standings = [self.standing(s) for s in subjects]
        worst = max(standings, key=lambda s: (s.wait_seconds, s.locked))
        return worst.wait_seconds, worst.locked and worst.wait_seconds > 0

    def failed(self, subject: str) -> Standing:
        """Record one failed attempt; the standing after it (locked: this failure locked the subject).
        Records too old to count any more are deleted on the way."""
        now = self.clock()
        self.store.put(f"{PREFIX}{subject}/{int(now * 1_000_000):020d}-{secrets.token_hex(4)}", b"", if_absent=True)
        for key, at in self._failures(subject).items():
            if at < now - self.limits.lockout_seconds:
                self.store.delete(key)
        return self.standing(subject)

    def clear(self, subject: str) -> Standing:
        """Start the count again (a successful sign-in, or an admin lifting a lockout); the standing before."""
        before = self.standing(subject)
        # cleared.json first: a failure written meanwhile by another replica is older than it either way.
        self.store.put(f"{PREFIX}{subject}/cleared.json", json.dumps({"at": self.clock()}).encode())
        for key in self._failures(subject):
            self.store.delete(key)
        return before

    def _failure_times(self, subject: str) -> list[float]:
        return list(self._failures(subject).values())

    def _failures(self, subject: str) -> dict[str, float]:
        """Key -> time of each recorded failure (the time is in the key: no object is read)."""
        prefix = f"{PREFIX}{subject}/"
        out = {}
        for key in self.store.list(prefix):
            stamp = key.removeprefix(prefix).split("-", 1)[0]
            if stamp.isdigit():
                out[key] = int(stamp) / 1_000_000
        return out

    def _cleared_at(self, subject: str) -> float:
        try:
            at = json.loads(self.store.get(f"{PREFIX}{subject}/cleared.json")).get("at", 0.0)
        except (KeyNotFound, ValueError, AttributeError):
            return 0.0
        return float(at) if isinstance(at, int | float) else 0.0
