"""A store proves it can keep Pulse's guarantees before a workspace opens on it.

Pulse's locks, claims and "stored once" rules are create-if-absent writes (`If-None-Match: *`). A
store that ignores the condition (older MinIO, Ceph RGW, s3rver and others) overwrites instead of
refusing, silently: two annotators get the same item, two promoters both hold the deployment lock.
So the first time a process opens an S3 workspace, it creates a probe key under the prefix and
creates it again; the second create must be refused. A store that accepts it stops the app and the
CLI with `StoreUnsafe`, unless PULSE_STORE_SINGLE_WRITER allows it (one annotator and one admin at a
time; the home page says so). Three requests per process and store, the probe key deleted after.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from typing import TYPE_CHECKING

from services.errors import AlreadyExists, PulseError, StoreUnsafe
from services.store import keys

if TYPE_CHECKING:
    from services.aws.s3 import S3Store

KNOWN_GOOD = (
    "AWS S3, and S3-compatible stores from the release on that honours If-None-Match: * on PutObject "
    "(recent MinIO, Ceph RGW and others: see the store's release notes)"
)
_proven: set[str] = set()
_lock = threading.Lock()


def check_conditional_writes(store: S3Store, *, single_writer: bool = False) -> None:
    """Refuse (`StoreUnsafe`) a store that accepts a create-if-absent of an existing key, unless
    `single_writer`; once per store and process."""
    where = store.describe()
    with _lock:
        if where in _proven:
            return
    problem = _probe(store)
    if problem and not single_writer:
        raise StoreUnsafe(
            f"{where} does not honour conditional writes: {problem}. Pulse needs them so that a review item "
            "goes to one annotator, a check-in is stored once and one deployment runs at a time. Stores known "
            f"to work: {KNOWN_GOOD}. To run anyway with one annotator and one admin at a time, set "
            "PULSE_STORE_SINGLE_WRITER=true (the home page then says so)."
        )
    if not problem:
        with _lock:
            _proven.add(where)


def _probe(store: S3Store) -> str:
    """What the store did wrong, or "" when it refused the second create as it should."""
    key = keys.store_probe_key(secrets.token_hex(8))
    try:
        store.put(key, b"first", if_absent=True)
        try:
            store.put(key, b"second", if_absent=True)
        except AlreadyExists:
            return ""
        return "it accepted a second create-if-absent (If-None-Match: *) of a key that existed, and overwrote it"
    finally:
        with contextlib.suppress(PulseError):
            store.delete(key)
