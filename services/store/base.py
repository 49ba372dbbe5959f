"""The object store's contract: what every store offers (`ObjectStore`), which keys are valid, and
the workspace's secrets kept in it. The local folder is `services.store.local`; S3 is
`services.aws.s3`."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from services.errors import AlreadyExists, InvalidKey, KeyNotFound

if TYPE_CHECKING:
    pass


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (\x85 is a line break)


MAX_KEY_LENGTH = 1024


def validate_key(key: str, *, prefix: bool = False) -> str:
    """Return `key` if it is a plain relative path inside the store, else raise `InvalidKey`.

    A prefix (for listing) may be empty or end with "/"; a key may not.
    """
    if not isinstance(key, str):
        raise InvalidKey(f"key must be text, got {type(key).__name__}")
    if not key and prefix:
        return key
    shown = key.encode("unicode_escape").decode("ascii")[:80]
    if not key:
        raise InvalidKey("key is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"key is longer than {MAX_KEY_LENGTH} characters")
    if _CONTROL.search(key):
        raise InvalidKey(f"key contains control characters: {shown!r}")
    if key.startswith("/") or "\\" in key or re.match(r"^[A-Za-z]:", key):
        raise InvalidKey(f"key must be a relative path with '/' separators: {shown!r}")
    parts = key.split("/")
    if prefix and parts[-1] == "":
        parts = parts[:-1]
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidKey(f"key has an empty, '.' or '..' segment: {shown!r}")
    return key


class ObjectStore(Protocol):
    """Where Pulse keeps everything: check-ins, review items, labels, datasets, models."""

    def get(self, key: str) -> bytes: ...

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> None: ...

    def list(self, prefix: str) -> Iterator[str]: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def describe(self) -> str: ...

    def arrow_files(self, prefix: str) -> ArrowFiles:
        """Where the objects under `prefix` can be read in bulk by pyarrow (Parquet scans)."""
        ...


@dataclass(frozen=True)
class ArrowFiles:
    """A store's objects as pyarrow sees them: a `pyarrow.fs.FileSystem`, the path of a prefix on
    it, and what tells two stores apart (the same bucket name on two servers, say)."""

    filesystem: Any
    base: str
    identity: str


def workspace_secret(store: ObjectStore, key: str) -> bytes:
    """A random 32-byte secret kept in the store under `key`, created once (create-if-absent, so
    every replica ends up with the same one). Readable only by whoever can read the store itself."""
    try:
        return store.get(key)
    except KeyNotFound:
        pass
    with contextlib.suppress(AlreadyExists):  # another replica made it first: use theirs
        store.put(key, secrets.token_bytes(32), if_absent=True)
    return store.get(key)
