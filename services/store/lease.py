"""A lock held in the store, for work that must run once across processes and replicas (a
deployment, a training run, an annotator's claim on a review item).

Taking the lock is a create-if-absent write. A lock whose holder died (its caller's `alive` says so)
is taken over through a marker created if absent for that lock's token, so of several contenders
exactly one wins; release deletes the lock only while it is still ours (its token).
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.errors import AlreadyExists, KeyNotFound, PulseError
from services.store.base import ObjectStore


@functools.cache
def this_machine() -> str:
    """This machine and process namespace: where a pid can be checked with `process_alive` (two
    containers on one host may share a host name but never a pid namespace)."""
    try:
        namespace = Path("/proc/self/ns/pid").stat().st_ino
    except OSError:
        namespace = 0
    return f"{socket.gethostname()}/{namespace}"


def process_alive(pid: int) -> bool:
    """Whether a process of this machine is running (a lock holder's, a temp file's writer)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def read_json(store: ObjectStore, key: str) -> dict[str, Any] | None:
    """The JSON object at `key` (a lock, a record), or None when there is none."""
    try:
        data = json.loads(store.get(key))
    except KeyNotFound:
        return None
    if not isinstance(data, dict):
        raise PulseError(f"{key} is not a JSON object")
    return data


def acquire(
    store: ObjectStore,
    key: str,
    body: Callable[[], bytes],
    *,
    takeovers: str,
    alive: Callable[[dict[str, Any]], bool],
    busy: Callable[[dict[str, Any]], PulseError],
    contested: PulseError,
    churning: PulseError,
    read: Callable[[ObjectStore, str], dict[str, Any] | None] = read_json,
) -> dict[str, Any] | None:
    """Write `body()` at `key` unless a live lock is there (then raise `busy(lock)`). Returns the
    expired lock this call took over, or None when the lock was free. `contested`: another caller
    won the takeover; `churning`: the lock kept changing hands while we looked. `read` reads the
    lock found there (one that cannot be parsed should come back as an expired lock with a token)."""
    for _ in range(3):
        try:
            store.put(key, body(), if_absent=True)
            return None
        except AlreadyExists:
            pass
        held = read(store, key)
        if held is None:
            continue  # released between our two calls: try again
        if alive(held):
            raise busy(held)
        try:  # expired: its holder died. One contender per expired token wins the takeover.
            # The marker's bytes are this contender's own, so a retried write of it that S3 refuses
            # can be read back and told apart from a rival's (`S3Store.put`).
            marker = secrets.token_hex(16).encode()
            store.put(f"{takeovers}{held.get('token', held.get('since'))}", marker, if_absent=True)
        except AlreadyExists:
            raise contested from None
        store.put(key, body())
        return held
    raise churning


def holds(store: ObjectStore, key: str, token: str) -> bool:
    held = read_json(store, key)
    return held is not None and held.get("token") == token


def release(store: ObjectStore, key: str, token: str) -> None:
    """Delete the lock if it is still the one with `token` (never someone else's takeover)."""
    if holds(store, key, token):
        store.delete(key)
