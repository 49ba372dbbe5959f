"""Password sign-in resists guessing: a growing delay, then a timed lockout, per name and per client
address, the same answers for unknown names, lockouts in the audit log, lifted from the CLI."""

from __future__ import annotations

import pytest

from services.access.audit import read_events
from services.access.throttle import Limits, Throttle
from services.access.users import add_user, password_sign_in
from services.cli import main
from services.errors import SignInRefused
from services.store.local import LocalStore

PASSWORD = "correct horse battery"
LIMITS = Limits(max_failures=4, lockout_seconds=600, delay_seconds=1.0, client_max_failures=10)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(store: LocalStore, clock: Clock) -> Throttle:
    add_user(store, "alice", PASSWORD, "manager", ["Support desk"])
    return Throttle(store, LIMITS, clock=clock)


def attempt(store: LocalStore, throttle: Throttle, name: str, password: str, client: str = "10.0.0.1") -> str:
    """'ok', or the message the sign-in page shows."""
    try:
        password_sign_in(store, name, password, client=client, throttle=throttle)
    except SignInRefused as exc:
        return str(exc)
    return "ok"


def test_each_failure_makes_the_next_attempt_wait_longer(store: LocalStore, throttle: Throttle, clock: Clock) -> None:
    subject = throttle.subject("user", "alice")
    waits = []
    for _ in range(3):
        assert attempt(store, throttle, "alice", "wrong password!") == "Unknown user name or wrong password."
        waits.append(throttle.standing(subject).wait_seconds)
        clock.now += waits[-1]  # wait it out
    assert waits == [1.0, 2.0, 4.0]


def test_an_attempt_during_the_wait_is_refused_unchecked_and_not_counted(
    store: LocalStore, throttle: Throttle, clock: Clock
) -> None:
    attempt(store, throttle, "alice", "wrong password!")
    clock.now += 0.5
    assert attempt(store, throttle, "alice", PASSWORD) == "Too many failed attempts: wait 0 s before trying again."
    assert throttle.standing(throttle.subject("user", "alice")).failures == 1
    clock.now += 0.5
    assert attempt(store, throttle, "alice", PASSWORD) == "ok"


def test_too_many_failures_lock_the_name_for_the_window(store: LocalStore, throttle: Throttle, clock: Clock) -> None:
    messages = []
    for _ in range(LIMITS.max_failures):
        messages.append(attempt(store, throttle, "alice", "wrong password!"))
        clock.now += 60  # past every delay
    assert messages[-1] == (
        "Unknown user name or wrong password. Too many failed attempts: sign-in is locked for 10 min."
    )
    # The right password does not get through while the lock lasts...
    assert attempt(store, throttle, "alice", PASSWORD).startswith("Sign-in is locked after too many failed attempts")
    # ...and does once the window has passed since the failure that locked it.
    clock.now += LIMITS.lockout_seconds
    assert attempt(store, throttle, "alice", PASSWORD) == "ok"


def test_unknown_names_get_exactly_the_answers_of_a_known_name(
    store: LocalStore, throttle: Throttle, clock: Clock
) -> None:
    def run(name: str) -> list[str]:
        out = []
        for step in range(LIMITS.max_failures + 2):
            out.append(attempt(store, throttle, name, "wrong password!", client=f"client-of-{name}"))
            clock.now += 0.5 if step % 2 else 30
        return out

    assert run("alice") == run("nobody-by-this-name")


def test_a_success_starts_the_count_again(store: LocalStore, throttle: Throttle, clock: Clock) -> None:
    for _ in range(LIMITS.max_failures - 1):
        attempt(store, throttle, "alice", "wrong password!")
        clock.now += 60
    assert attempt(store, throttle, "alice", PASSWORD) == "ok"
    assert throttle.standing(throttle.subject("user", "alice")).failures == 0
    assert attempt(store, throttle, "alice", "wrong password!") == "Unknown user name or wrong password."


def test_one_client_trying_many_names_is_locked_too(store: LocalStore, throttle: Throttle, clock: Clock) -> None:
    guesser = throttle.subject("client", "10.9.9.9")
    for n in range(LIMITS.client_max_failures):
        assert attempt(store, throttle, f"guess-{n}", "wrong password!", client="10.9.9.9").startswith("Unknown")
        clock.now += throttle.standing(guesser).wait_seconds if n < LIMITS.client_max_failures - 1 else 1
    # alice's own count is clean, but the address that guessed is locked
    assert attempt(store, throttle, "alice", PASSWORD, client="10.9.9.9").startswith("Sign-in is locked")
    assert attempt(store, throttle, "alice", PASSWORD, client="10.0.0.2") == "ok"


def test_replicas_share_the_count(store: LocalStore, throttle: Throttle, clock: Clock) -> None:
    other = Throttle(store, LIMITS, clock=clock)  # another app replica on the same store
    attempt(store, throttle, "alice", "wrong password!")
    clock.now += 5
    attempt(store, other, "alice", "wrong password!")
    assert other.standing(other.subject("user", "alice")).failures == 2
    assert throttle.standing(throttle.subject("user", "alice")).wait_seconds == 2.0  # the second delay
    clock.now += 2
    assert attempt(store, throttle, "alice", PASSWORD) == "ok"


def test_lockouts_are_audited_under_the_name_only_when_it_is_a_user(
    store: LocalStore, throttle: Throttle, clock: Clock
) -> None:
    for name in ("alice", "typed-a-password-here"):
        for _ in range(LIMITS.max_failures):
            attempt(store, throttle, name, "wrong password!", client=f"c-{name}")
            clock.now += 60
    locked = read_events(store, actions=["sign_in_locked"])
    assert sorted(e.actor for e in locked) == ["alice", "unknown"]
    assert {e.details["scope"] for e in locked} == {"user"}
    assert all(e.details["failures"] == LIMITS.max_failures for e in locked)


def test_an_admin_lifts_a_lockout_from_the_cli(
    store: LocalStore, throttle: Throttle, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(LIMITS.max_failures):
        attempt(store, throttle, "alice", "wrong password!")
        clock.now += 60
    assert attempt(store, throttle, "alice", PASSWORD).startswith("Sign-in is locked")
    assert main(["unlock", "alice", "--workspace", str(store.root)]) == 0
    assert "lifted" in capsys.readouterr().out
    assert attempt(store, throttle, "alice", PASSWORD) == "ok"
    assert [e.target for e in read_events(store, actions=["sign_in_unlocked"])] == ["alice"]


def test_failure_records_hold_no_name_and_old_ones_are_deleted(
    store: LocalStore, throttle: Throttle, clock: Clock
) -> None:
    attempt(store, throttle, "alice", "wrong password!")
    keys = list(store.list("auth/attempts/"))
    assert keys and not any("alice" in k or "10.0.0.1" in k for k in keys)
    clock.now += LIMITS.lockout_seconds + 1
    attempt(store, throttle, "alice", "wrong password!")
    user_records = [k for k in store.list("auth/attempts/") if k.split("/")[2].startswith("user-")]
    assert len(user_records) == 1  # the older failure no longer counts, and its record is gone


def test_short_passwords_are_refused_by_add_user(store: LocalStore) -> None:
    from services.errors import AuthError

    with pytest.raises(AuthError, match="at least 12 characters"):
        add_user(store, "bob", "short", "annotator", [])
