"""The object store: the same keys in a local directory (the embedded default) and in
an S3 bucket/prefix. Everything Pulse keeps lives here, so app replicas hold no state."""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from services.errors import AlreadyExists, InvalidKey, KeyNotFound, StoreError, StoreUnavailable

if TYPE_CHECKING:
    from services.config import Settings

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


class LocalStore:
    """A workspace directory. Writes go to a temporary file that is then renamed into place."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    def describe(self) -> str:
        return f"local folder {self.root}"

    def _path(self, key: str, *, prefix: bool = False) -> Path:
        return self.root.joinpath(*[p for p in validate_key(key, prefix=prefix).split("/") if p])

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyNotFound(f"no object at {key!r} in {self.describe()}") from None
        except PermissionError as exc:
            raise StoreUnavailable(f"cannot read {key!r}: permission denied in {self.root}") from exc

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        path = self._path(key)
        if path.is_dir():
            raise StoreError(f"{key!r} is a folder of other keys in {self.root}; a local store cannot hold both")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        except (FileExistsError, NotADirectoryError) as exc:
            if self.root.is_dir():
                raise StoreError(
                    f"{key!r} lies under an existing key in {self.root}; a local store cannot hold both"
                ) from None
            raise StoreUnavailable(f"cannot write to {self.root}: it is not a folder. Check PULSE_WORKSPACE.") from exc
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot write to {self.root}: {exc.strerror}. "
                "Check that the workspace folder exists and is writable (PULSE_WORKSPACE)."
            ) from exc
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if if_absent:
                # link() fails if the name exists: an atomic create-if-absent, unlike exists()+rename.
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise AlreadyExists(f"{key!r} already exists") from None
            else:
                tmp.replace(path)
        except OSError as exc:
            raise StoreError(f"could not write {key!r}: {exc.strerror}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[str]:
        validate_key(prefix, prefix=True)
        # Walk only the directory the prefix names, then filter on the rest of it.
        head, _, _ = prefix.rpartition("/")
        base = self._path(head, prefix=True) if head else self.root
        if not base.is_dir():
            return iter(())
        keys = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".tmp-")]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(".tmp-"):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"could not delete {key!r}: {exc.strerror}") from exc


_UNAVAILABLE = {
    "NoSuchBucket": "bucket {bucket!r} does not exist (check PULSE_BUCKET and PULSE_AWS_REGION)",
    "AccessDenied": "access denied to bucket {bucket!r}: the app's IAM role needs s3:GetObject, "
    "s3:PutObject, s3:ListBucket and s3:DeleteObject on it",
    "403": "access denied to bucket {bucket!r}: the app's IAM role needs s3:GetObject, "
    "s3:PutObject, s3:ListBucket and s3:DeleteObject on it",
    "AllAccessDisabled": "all access to bucket {bucket!r} is disabled",
    "InvalidAccessKeyId": "the AWS access key is not valid (check the credentials boto3 finds)",
    "SignatureDoesNotMatch": "the AWS secret key does not match (check the credentials boto3 finds)",
    "ExpiredToken": "the AWS session token has expired: sign in to AWS again",
}


CONFLICT_RETRIES = 4


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3Store:
    """A bucket and prefix on S3, through an injected boto3 S3 client.

    Throttling, 5xx answers and dropped connections are retried with exponential backoff by the
    client's retry policy (see `s3_client`); what still fails becomes a domain error.
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = validate_key(prefix.strip("/") + "/", prefix=True) if prefix.strip("/") else ""

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _fail(self, exc: Exception, key: str) -> StoreError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound"):
                return KeyNotFound(f"no object at {key!r} in {self.describe()}")
            if code in ("PreconditionFailed", "412") or status == 412:
                return AlreadyExists(f"{key!r} already exists")
            if code in _UNAVAILABLE:
                return StoreUnavailable(_UNAVAILABLE[code].format(bucket=self.bucket))
            return StoreError(f"S3 refused the operation on {key!r}: {code or status}")
        return StoreUnavailable(
            f"cannot reach S3 for {self.describe()} ({type(exc).__name__}); "
            "check the network and PULSE_AWS_ENDPOINT_URL"
        )

    def _errors(self) -> tuple[type[Exception], ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        return (ClientError, BotoCoreError)

    def get(self, key: str) -> bytes:
        full = self.prefix + validate_key(key)
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=full)["Body"].read()
        except self._errors() as exc:
            raise self._fail(exc, key) from exc
        return body

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        extra = {"IfNoneMatch": "*"} if if_absent else {}
        full = self.prefix + validate_key(key)
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                self.client.put_object(Bucket=self.bucket, Key=full, Body=data, **extra)
                return
            except self._errors() as exc:
                # S3 answers 409 ConditionalRequestConflict when a conditional write races another
                # write of the same key, and asks for a retry; the standard retry policy skips 409.
                if _code(exc) == "ConditionalRequestConflict" and attempt < CONFLICT_RETRIES:
                    time.sleep(0.05 * 2**attempt * (1 + random.random()))  # jitter
                    continue
                raise self._fail(exc, key) from exc

    def list(self, prefix: str) -> Iterator[str]:
        # Validate now, not on first iteration, like LocalStore.
        return self._list(self.prefix + validate_key(prefix, prefix=True), prefix)

    def _list(self, full: str, prefix: str) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"][len(self.prefix) :]
        except self._errors() as exc:
            raise self._fail(exc, prefix) from exc

    def exists(self, key: str) -> bool:
        # A HEAD answer has no body, so a missing bucket looks like a missing key ("404");
        # a one-key listing tells them apart (and needs only s3:ListBucket).
        full = self.prefix + validate_key(key)
        try:
            page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=full, MaxKeys=1)
        except self._errors() as exc:
            raise self._fail(exc, key) from exc
        return any(obj["Key"] == full for obj in page.get("Contents", []))

    def delete(self, key: str) -> None:
        full = self.prefix + validate_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=full)
        except self._errors() as exc:
            raise self._fail(exc, key) from exc


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


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client with the standard retry policy (backoff on throttling, 5xx, resets)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 6},
        connect_timeout=5,
        read_timeout=30,
    )
    return boto3.client(
        "s3",
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url or None,
        config=config,
    )


def make_store(settings: Settings) -> ObjectStore:
    """The store the settings ask for: a local folder or an S3 bucket/prefix."""
    if settings.backend == "aws":
        return S3Store(s3_client(settings), settings.bucket, settings.prefix)
    return LocalStore(settings.workspace)
