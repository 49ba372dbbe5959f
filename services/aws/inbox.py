"""An S3 prefix as the inbox of the intake watcher (`services.checkins.intake`): the objects under it,
each with its ETag as its version, listed and read through an injected boto3 S3 client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from services.errors import InboxError

if TYPE_CHECKING:
    from services.config import Settings

_REFUSED = {
    "NoSuchBucket": "the inbox bucket {bucket!r} does not exist (check the s3:// address to watch)",
    "AccessDenied": "access denied to the inbox {where}: the watcher's IAM role needs s3:ListBucket on the "
    "bucket and s3:GetObject on the prefix",
    "403": "access denied to the inbox {where}: the watcher's IAM role needs s3:ListBucket on the bucket and "
    "s3:GetObject on the prefix",
    "NoSuchKey": "{name!r} is no longer in the inbox {where}",
    "404": "{name!r} is no longer in the inbox {where}",
}


def s3_inbox(address: str, settings: Settings) -> S3Inbox:
    """The inbox at `s3://bucket/prefix/`, through the settings' S3 client (region, endpoint URL)."""
    from services.aws.clients import s3_client

    url = urlsplit(address)
    if url.scheme != "s3" or not url.netloc:
        raise InboxError(f"{address!r} is not an S3 address: write s3://bucket/prefix/")
    return S3Inbox(s3_client(settings), url.netloc, url.path)


@dataclass(frozen=True)
class S3Object:
    """An object of an `S3Inbox`: its key below the prefix, ETag, size and last-modified time."""

    name: str
    version: str
    size: int
    modified: datetime


class S3Inbox:
    """The objects under `prefix` in `bucket`. S3 shows an object only once its upload is complete,
    so, unlike a folder, nothing here can be caught half-written."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket = client, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def files(self) -> list[S3Object]:
        found = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    found.append(
                        S3Object(
                            str(obj["Key"])[len(self.prefix) :],
                            str(obj["ETag"]).strip('"'),
                            int(obj["Size"]),
                            obj["LastModified"].astimezone(UTC),
                        )
                    )
        except self._errors() as exc:
            raise self._fail(exc, "") from exc
        return found

    def read(self, name: str) -> bytes:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()
        except self._errors() as exc:
            raise self._fail(exc, name) from exc
        return body

    def _errors(self) -> tuple[type[Exception], ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        return (ClientError, BotoCoreError)

    def _fail(self, exc: Exception, name: str) -> InboxError:
        from botocore.exceptions import ClientError

        if not isinstance(exc, ClientError):
            return InboxError(
                f"cannot reach S3 for the inbox {self.describe()} ({type(exc).__name__}); "
                "check the network and PULSE_AWS_ENDPOINT_URL"
            )
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _REFUSED:
            return InboxError(_REFUSED[code].format(bucket=self.bucket, where=self.describe(), name=name))
        what = f"reading {name!r} in" if name else "listing"
        return InboxError(f"S3 refused {what} the inbox {self.describe()}: {code or status}")
