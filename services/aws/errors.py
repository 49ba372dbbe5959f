"""What every SageMaker adapter shares: reading a botocore error (its code, message, whether it is
worth another try), saying it in words an admin can act on (`explain`), SageMaker's rules for
resource names and S3 URIs, and the injectable `Sleep` and `Clock` of the adapters that poll."""

from __future__ import annotations

import re
from collections.abc import Callable

Sleep = Callable[[float], None]
Clock = Callable[[], float]

# SageMaker resource names (training jobs, models, endpoint configs, endpoints).
MAX_NAME = 63
NAME_RULE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
S3_URI = re.compile(r"^s3://([^/]+)/(.+)$")

# Error codes worth another look on the next poll: the client's retry policy already gave up
# on them once, but a training job runs for minutes and one lost answer must not fail it.
TRANSIENT = {
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalServerError",
    "InternalError",
}


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore error ("" if it has none)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def error_message(exc: Exception) -> str:
    """The message AWS sent with a botocore error ("" if none)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", "")).strip()


def aws_errors() -> tuple[type[Exception], ...]:
    """The botocore exceptions an AWS call raises (imported here so the local backend never loads botocore)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


def explain(exc: Exception, action: str) -> str:
    """A sentence for a SageMaker control-plane failure: what we tried, what AWS said, what to do.

    Only for control-plane calls (their messages name resources, never message texts)."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return f"cannot reach SageMaker to {action} ({type(exc).__name__}); check the network and credentials"
    code = error_code(exc)
    message = error_message(exc)
    said = f": {message}" if message else ""
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return f"access denied when trying to {action}{said}. The app's IAM role needs the SageMaker permission"
    if code == "ResourceLimitExceeded":
        return f"account quota reached when trying to {action}{said}. Request a quota increase or use another type"
    if code in TRANSIENT:
        return f"SageMaker is throttling or unavailable ({code}) and kept refusing to {action}; try again later"
    if code == "ValidationException":
        return f"SageMaker refused to {action}{said}"
    return f"SageMaker could not {action} ({code or 'error'}){said}"


def not_found(exc: Exception) -> bool:
    """Whether SageMaker said the resource does not exist (it answers ValidationException, not a 404)."""
    return error_code(exc) == "ValidationException" and "could not find" in error_message(exc).lower()


def already_exists(exc: Exception) -> bool:
    """Whether SageMaker refused to create a resource because one of that name exists."""
    message = error_message(exc).lower()
    return error_code(exc) == "ValidationException" and "already exist" in message


def resource_name(*parts: str, suffix: str = "") -> str:
    """A valid SageMaker resource name from `parts` (invalid characters become "-"), cut to 63
    characters; `suffix` (e.g. a timestamp) is kept whole at the end."""
    base = re.sub(r"[^a-zA-Z0-9]+", "-", "-".join(parts)).strip("-")
    room = MAX_NAME - (len(suffix) + 1 if suffix else 0)
    base = base[:room].rstrip("-")
    name = f"{base}-{suffix}" if suffix else base
    if not NAME_RULE.match(name):
        raise ValueError(f"cannot build a SageMaker name from {parts!r}")
    return name


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of an `s3://bucket/key` URI."""
    match = S3_URI.match(uri)
    if not match:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return match.group(1), match.group(2)
