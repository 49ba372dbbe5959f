"""Continuous intake: a watcher that ingests every check-in file landing in an inbox (a local folder,
`FolderInbox`, or an S3 prefix, `services.aws.inbox.S3Inbox`), each file exactly once.

The record is a marker per file and version in the store, `ingest/intake/<inbox>/<file>.json`:
"pending" once the file is read, then "done" with its batch and counts, or "failed" with the reason
the file cannot be ingested as it is. A file with a done or failed marker is not read again; a file
that changes is a new version, so a new marker, and is read again. A watcher killed mid-file leaves
"pending" and the next pass ingests the file again, which `ingest` makes safe (a batch is named by
its bytes and recorded once). Several watchers may run at once: they meet on the ingest lock and the
later one finds the batch already recorded. Files are marked, never moved or deleted. Markers hold
names, versions, counts and reasons, never message text.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from services.checkins.ingest import IngestReport, ingest
from services.checkins.records import SUFFIXES
from services.config import Settings
from services.errors import InboxError, InvalidUpload, KeyNotFound, PulseError
from services.lifecycle.endpoint import Endpoint
from services.monitoring.alerts import Notifier
from services.monitoring.threshold import effective_threshold
from services.store import keys
from services.store.base import ObjectStore

log = logging.getLogger(__name__)

SETTLE_SECONDS = 2.0
PENDING, DONE, FAILED = "pending", "done", "failed"
COUNTS = ("total_rows", "accepted", "rejected", "already_present", "unrecognized")


class InboxFile(Protocol):
    """A file in an inbox: its name relative to the inbox ("/"-separated), a version that changes
    when the file does, its size and when it was last modified."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def modified(self) -> datetime: ...


class Inbox(Protocol):
    """Where check-in files land: a folder (`FolderInbox`) or an S3 prefix (`services.aws.inbox`)."""

    def describe(self) -> str: ...

    def files(self) -> Sequence[InboxFile]: ...

    def read(self, name: str) -> bytes: ...


def wanted(name: str) -> bool:
    """Whether the inbox file `name` is one to ingest: a type the upload reads, and neither it nor a
    folder above it hidden or temporary (a name starting with "." or "~", as editors and copies leave)."""
    return name.lower().endswith(SUFFIXES) and all(part and part[0] not in ".~" for part in name.split("/"))


@dataclass(frozen=True)
class LandedFile:
    """A file of a `FolderInbox`; its version is its size and modification time in nanoseconds."""

    name: str
    version: str
    size: int
    modified: datetime


class FolderInbox:
    """A local folder (and its subfolders) as an inbox. A file modified less than `settle` seconds
    ago may still be being written: it is left for a later pass."""

    def __init__(self, path: Path | str, *, settle: float = SETTLE_SECONDS, clock: Callable[[], float] = time.time):
        self.path = Path(path).resolve()
        if not self.path.is_dir():
            raise InboxError(f"the inbox folder {self.path} does not exist: create it, or check the path to watch")
        self.settle, self.clock = settle, clock

    def describe(self) -> str:
        return f"local folder {self.path}"

    def files(self) -> list[LandedFile]:
        if not self.path.is_dir():
            raise InboxError(f"the inbox folder {self.path} is gone")
        now = self.clock()
        found = []

        def unreadable(exc: OSError) -> None:
            log.warning("inbox %s: cannot list %s: %s", self.path, exc.filename, exc.strerror)

        for folder, subfolders, names in os.walk(self.path, onerror=unreadable):
            subfolders[:] = sorted(d for d in subfolders if d[0] not in ".~")
            for name in names:
                path = Path(folder) / name
                try:
                    info = path.stat()
                except OSError:  # gone since the folder was listed, or a broken link
                    continue
                if not stat.S_ISREG(info.st_mode) or abs(now - info.st_mtime) < self.settle:
                    continue
                found.append(
                    LandedFile(
                        path.relative_to(self.path).as_posix(),
                        f"{info.st_size}-{info.st_mtime_ns}",
                        info.st_size,
                        datetime.fromtimestamp(info.st_mtime, UTC),
                    )
                )
        return found

    def read(self, name: str) -> bytes:
        try:
            return self.path.joinpath(*name.split("/")).read_bytes()
        except OSError as exc:
            raise InboxError(f"cannot read {name!r} in {self.describe()}: {exc.strerror}") from None


@dataclass(frozen=True)
class Handled:
    """What a pass did with one file: "done" (with the ingest's report), "failed" (the reason: the
    file cannot be ingested as it is) or "pending" (why it is left for the next pass)."""

    name: str
    state: str
    report: IngestReport | None = None
    reason: str = ""

    def line(self) -> str:
        """The one line the command line prints for this file."""
        if self.report is not None:
            again = "already ingested earlier; " if self.report.repeated else ""
            return f"{self.name}: {again}{self.report.summary()}"
        if self.state == FAILED:
            return f"{self.name}: failed: {self.reason}"
        return f"{self.name}: left for the next pass: {self.reason}"


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def marker_prefix(inbox: Inbox) -> str:
    """Where the markers of one inbox live (named by a hash of what the inbox is)."""
    return f"{keys.INGEST_INTAKE}{_digest(inbox.describe(), 12)}/"


def marker_key(inbox: Inbox, file: InboxFile) -> str:
    """The marker of one version of one file."""
    return f"{marker_prefix(inbox)}{_digest(file.name + chr(0) + file.version, 16)}.json"


def read_marker(store: ObjectStore, key: str) -> dict[str, Any] | None:
    """A marker, or None when it is gone or cannot be read (the file is then taken again: safe)."""
    try:
        doc = json.loads(store.get(key))
    except KeyNotFound:
        return None
    except ValueError:
        log.warning("ignoring the unreadable intake marker %s", key)
        return None
    return doc if isinstance(doc, dict) else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Intake:
    """Ingests what lands in `inbox` into the workspace of `store` and `endpoint`, every file once
    (see the module docstring). `on_file` hears of every file a pass took, as soon as it is handled."""

    def __init__(
        self,
        store: ObjectStore,
        endpoint: Endpoint,
        inbox: Inbox,
        *,
        settings: Settings,
        notifier: Notifier | None = None,
        time_format: str | None = None,
        on_file: Callable[[Handled], None] | None = None,
    ) -> None:
        # Both describe themselves as "local folder /path" or "s3://bucket/prefix/". An inbox holding the
        # workspace would read the workspace's own files (its markers among them) as uploads.
        if f"{store.describe().rstrip('/')}/".startswith(f"{inbox.describe().rstrip('/')}/"):
            raise InboxError(f"the inbox {inbox.describe()} holds the workspace: watch a folder or prefix outside it")
        self.store, self.endpoint, self.inbox, self.settings = store, endpoint, inbox, settings
        self.notifier, self.time_format, self.on_file = notifier, time_format, on_file
        self.prefix = marker_prefix(inbox)
        self.host = socket.gethostname()
        self._final: set[str] = set()  # markers this process knows are done or failed: never read again

    def run_once(self, stop: threading.Event | None = None) -> list[Handled]:
        """One pass: every file of the inbox without a done or failed marker is ingested, oldest
        first; once `stop` is set, the pass ends before the next file."""
        files = sorted((f for f in self.inbox.files() if wanted(f.name)), key=lambda f: (f.modified, f.name))
        todo = {marker_key(self.inbox, f): f for f in files}
        self._final.intersection_update(todo)  # forget files no longer in the inbox
        stored = set(self.store.list(self.prefix))
        threshold: float | None = None
        handled = []
        for key, file in todo.items():
            if stop is not None and stop.is_set():
                break
            if key in self._final:
                continue
            previous = read_marker(self.store, key) if key in stored else None
            if previous is not None and previous.get("state") in (DONE, FAILED):
                self._final.add(key)
                continue
            if threshold is None:  # read once per pass: an admin may change it between passes
                threshold = effective_threshold(self.store, self.settings)
            outcome = self._take(file, key, previous or {}, threshold)
            handled.append(outcome)
            if self.on_file is not None:
                self.on_file(outcome)
        return handled

    def watch(
        self, interval: float, stop: threading.Event, *, on_error: Callable[[PulseError], None] | None = None
    ) -> None:
        """Pass after pass, `interval` seconds apart, until `stop` is set. A pass that fails (the
        inbox or the store cannot be reached) goes to `on_error` and the next pass tries again."""
        while not stop.is_set():
            try:
                self.run_once(stop)
            except PulseError as exc:
                log.info("intake pass over %s failed: %s", self.inbox.describe(), exc)
                if on_error is not None:
                    on_error(exc)
            stop.wait(interval)

    def _take(self, file: InboxFile, key: str, previous: dict[str, Any], threshold: float) -> Handled:
        try:
            data = self.inbox.read(file.name)
        except InboxError as exc:  # gone since the listing, or unreadable for now: no marker yet
            return Handled(file.name, PENDING, reason=str(exc))
        seen = str(previous.get("seen_at") or _now())
        attempts = int(previous.get("attempts") or 0) + 1  # more than one: a watcher stopped mid-file
        self._mark(key, file, PENDING, seen_at=seen, attempts=attempts)
        try:
            report = ingest(
                self.store,
                self.endpoint,
                data,
                file.name,
                threshold=threshold,
                max_chars=self.settings.max_text_chars,
                notifier=self.notifier,
                time_format=self.time_format,
            )
        except InvalidUpload as exc:
            self._mark(key, file, FAILED, seen_at=seen, attempts=attempts, reason=exc.message)
            self._final.add(key)
            return Handled(file.name, FAILED, reason=exc.message)
        except PulseError as exc:  # the store, the lock or the endpoint: worth another try
            log.info("intake of %s left for the next pass: %s", file.name, exc)
            self._mark(key, file, PENDING, seen_at=seen, attempts=attempts, reason=f"to be tried again: {exc}")
            return Handled(file.name, PENDING, reason=str(exc))
        # A watcher that waited on the lock for another one finds the batch recorded: the other's
        # marker already says done, and says it first-hand.
        held = read_marker(self.store, key) if report.repeated else None
        if held is None or held.get("state") != DONE:
            self._mark(key, file, DONE, seen_at=seen, attempts=attempts, report=report)
        self._final.add(key)
        return Handled(file.name, DONE, report=report)

    def _mark(
        self,
        key: str,
        file: InboxFile,
        state: str,
        *,
        seen_at: str,
        attempts: int,
        reason: str = "",
        report: IngestReport | None = None,
    ) -> None:
        doc: dict[str, Any] = {
            "inbox": self.inbox.describe(),
            "file": file.name,
            "version": file.version,
            "size": file.size,
            "modified": file.modified.isoformat(),
            "state": state,
            "seen_at": seen_at,
            "updated_at": _now(),
            "host": self.host,
            "pid": os.getpid(),
            "attempts": attempts,
        }
        if reason:
            doc["reason"] = reason
        if report is not None:
            doc.update(batch=report.batch, repeated=report.repeated, **{c: getattr(report, c) for c in COUNTS})
        self.store.put(key, json.dumps(doc, indent=1).encode())


STATUS_COLUMNS = (
    "file",
    "state",
    "rows",
    "accepted",
    "rejected",
    "already present",
    "to review",
    "reason",
    "updated",
    "inbox",
)


def intake_status(store: ObjectStore, *, limit: int = 500) -> pd.DataFrame:
    """The files watchers have seen, newest first (at most `limit`): file, state, counts (when
    done), reason (when failed, or why it waits), when its marker last changed, and the inbox."""
    found = list(store.list(keys.INGEST_INTAKE))
    with ThreadPoolExecutor(max_workers=8) as pool:  # one small GET each, waiting on I/O
        docs = [d for d in pool.map(functools.partial(read_marker, store), found) if d is not None]
    rows = [
        {
            "file": d.get("file"),
            "state": d.get("state"),
            "rows": d.get("total_rows"),
            "accepted": d.get("accepted"),
            "rejected": d.get("rejected"),
            "already present": d.get("already_present"),
            "to review": d.get("unrecognized"),
            "reason": d.get("reason", ""),
            "updated": d.get("updated_at"),
            "inbox": d.get("inbox"),
        }
        for d in docs
    ]
    frame = pd.DataFrame(rows, columns=list(STATUS_COLUMNS))
    for column in ("rows", "accepted", "rejected", "already present", "to review"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")  # empty unless done
    frame["updated"] = pd.to_datetime(frame["updated"], utc=True, errors="coerce")
    return frame.sort_values("updated", ascending=False, kind="stable").head(limit).reset_index(drop=True)
