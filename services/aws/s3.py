"""The store on an S3 bucket/prefix (AWS or an S3-compatible server), through an injected boto3 client."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from services.errors import AlreadyExists, KeyNotFound, StoreError, StoreUnavailable
from services.store.base import ArrowFiles, validate_key

if TYPE_CHECKING:
    pass


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


def _retried(exc: Exception) -> bool:
    """Whether botocore's retry policy sent the request more than once before this answer."""
    response = getattr(exc, "response", None) or {}
    return bool(response.get("ResponseMetadata", {}).get("RetryAttempts", 0))


class S3Store:
    """A bucket and prefix on S3, through an injected boto3 S3 client.

    Throttling, 5xx answers and dropped connections are retried with exponential backoff by the
    client's retry policy (see `s3_client`); what still fails becomes a domain error. A retried
    create-if-absent write refused because an earlier attempt of it landed counts as written.
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = validate_key(prefix.strip("/") + "/", prefix=True) if prefix.strip("/") else ""

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def arrow_files(self, prefix: str) -> ArrowFiles:
        """pyarrow's own S3 client, pointed where the boto3 client points (credentials: the default chain)."""
        endpoint = str(self.client.meta.endpoint_url)
        filesystem = _arrow_s3(str(self.client.meta.region_name or "us-east-1"), endpoint)
        base = f"{self.bucket}/{self.prefix}{validate_key(prefix, prefix=True)}".rstrip("/")
        return ArrowFiles(filesystem, base, f"{self.describe()} via {endpoint}")

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
                error = self._fail(exc, key)
                if isinstance(error, AlreadyExists) and (attempt > 0 or _retried(exc)) and self._landed(key, data):
                    return
                raise error from exc

    def _landed(self, key: str, data: bytes) -> bool:
        """Whether a retried create-if-absent write that S3 refused had in fact landed: an earlier
        attempt may have been stored although its answer was lost (a read timeout, a reset), and
        the retry then meets our own object. The same bytes at `key` say so; a genuine conflict on
        the first attempt is never read back."""
        if not data:
            # An empty body (a lease's takeover marker) reads the same whoever wrote it: it cannot
            # tell our write from a rival's, so the refusal stays a conflict.
            return False
        try:
            return self.get(key) == data
        except KeyNotFound:
            # Something held the key when the retry arrived and is gone now: whether it was ours
            # is unknown, and writing again could bring back an object someone deleted (a
            # released lease). Report the conflict; callers read the key again and decide.
            return False

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


@functools.cache
def _arrow_s3(region: str, endpoint: str) -> Any:
    import pyarrow.fs as pafs

    url = urlsplit(endpoint)
    if (url.hostname or "").endswith(".amazonaws.com"):
        return pafs.S3FileSystem(region=region)
    return pafs.S3FileSystem(region=region, endpoint_override=url.netloc, scheme=url.scheme or "https")
