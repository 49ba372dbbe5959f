"""One ingest at a time decides which check-ins are new: the ingest lock.

A check-in is stored once in the whole workspace, whatever file or day it came in. Deciding that
("is this id already stored?") and storing the new rows must not interleave with another ingest
doing the same, so every ingest holds this lock (`services.store.lease`) from reading the stored ids
to writing its batch record; a second ingest waits for it. A holder that died is recognised at once
on its own machine (its process is gone) and elsewhere when its lease runs out; a long ingest
renews the lease as it goes.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from services.errors import IngestBusy
from services.store import keys, lease
from services.store.base import ObjectStore

LEASE = timedelta(minutes=2)
RENEW_EVERY = timedelta(seconds=20)
WAIT_SECONDS = 900.0


def _alive(held: dict[str, Any]) -> bool:
    if (
        held.get("host") == lease.this_machine()
        and isinstance(held.get("pid"), int)
        and not lease.process_alive(held["pid"])
    ):
        return False
    try:
        renewed = datetime.fromisoformat(str(held.get("renewed_at")))
    except ValueError:
        return False
    return datetime.now(UTC) - renewed < LEASE


class IngestLock:
    """`with IngestLock(store, batch):` waits for the lock (up to `wait` seconds), holds it, and
    releases it; `renew()` keeps it while a long ingest runs."""

    def __init__(self, store: ObjectStore, batch: str, *, wait: float = WAIT_SECONDS) -> None:
        self.store, self.batch, self.wait = store, batch, wait
        self.token = secrets.token_hex(8)
        self.renewed = datetime.min.replace(tzinfo=UTC)

    def _body(self) -> bytes:
        self.renewed = datetime.now(UTC)
        body = {
            "batch": self.batch,
            "host": lease.this_machine(),
            "pid": os.getpid(),
            "renewed_at": self.renewed.isoformat(),
            "token": self.token,
        }
        return json.dumps(body).encode()

    def __enter__(self) -> IngestLock:
        deadline = time.monotonic() + self.wait
        pause = 0.05
        while True:
            try:
                lease.acquire(
                    self.store,
                    keys.INGEST_LOCK,
                    self._body,
                    takeovers=keys.INGEST_LOCK_TAKEOVERS,
                    alive=_alive,
                    busy=lambda held: IngestBusy(
                        f"another ingest (batch {held.get('batch')}) has been running for longer than "
                        f"{self.wait:.0f} s; try again when it has finished"
                    ),
                    contested=IngestBusy("another ingest is taking over an expired ingest lock"),
                    churning=IngestBusy("the ingest lock is changing hands too fast"),
                )
                return self
            except IngestBusy:
                if time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def renew(self) -> None:
        """Push the lease forward if the last renewal is a while ago and the lock is still ours."""
        if datetime.now(UTC) - self.renewed < RENEW_EVERY:
            return
        if not lease.holds(self.store, keys.INGEST_LOCK, self.token):
            raise IngestBusy("this ingest's lock was taken over while it ran (was it paused?); run it again")
        self.store.put(keys.INGEST_LOCK, self._body())

    def __exit__(self, *exc: object) -> None:
        lease.release(self.store, keys.INGEST_LOCK, self.token)
