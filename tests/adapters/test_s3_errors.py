"""How `S3Store` fails: every botocore failure becomes a domain error with a message that says
what to do, and transient failures are retried by the client `s3_client(settings)` builds.

Three ways of making S3 fail, from the most to the least real:
- moto over HTTP (a missing bucket, a key that exists);
- a `before-send` handler that answers in place of the network with a hand-made HTTP response,
  so botocore's real parser and retry policy see it (throttling, 5xx, bodiless HEAD errors);
- `botocore.stub.Stubber`, which replaces the whole call (access denied, expired credentials).
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionClosedError, ReadTimeoutError
from botocore.httpsession import URLLib3Session
from botocore.stub import Stubber

from services.aws.clients import s3_client
from services.aws.s3 import S3Store
from services.config import load_settings
from services.errors import AlreadyExists, KeyNotFound, StoreError, StoreUnavailable
from tests.conftest import free_port

PREFIX = "pulse/ws"
STUB_BUCKET = "pulse-stubbed-bucket"


# --- helpers -----------------------------------------------------------------------------


class _Raw:
    """The `raw` of an AWSResponse: what botocore reads the body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def s3_error_body(code: str, message: str = "x") -> bytes:
    return f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()


class FakeAnswers:
    """A `before-send` handler: answers the first `times` requests itself, then lets them through."""

    def __init__(self, status: int, body: bytes = b"", *, times: int | None = None) -> None:
        self.status = status
        self.body = body
        self.times = times  # None: every time
        self.calls = 0

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        self.calls += 1
        if self.times is None or self.calls <= self.times:
            headers = {"Content-Type": "application/xml"} if self.body else {}
            return AWSResponse(request.url, self.status, headers, _Raw(self.body))
        return None


class AnswerLost:
    """A `before-send` handler: the first request reaches moto and is handled there, then its
    answer is lost (a read timeout), so botocore sends it again; `then` answers the second."""

    def __init__(self, then: FakeAnswers | None = None) -> None:
        self.then = then
        self.calls = 0

    def __call__(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        self.calls += 1
        if self.calls == 1:
            URLLib3Session().send(request)  # signed already: moto stores the object
            raise ReadTimeoutError(endpoint_url=request.url)
        return self.then(request, **kwargs) if self.then is not None else None


class CountRequests:
    """A `before-send` handler that only counts what reaches the network."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, **_: Any) -> None:
        self.calls += 1


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff delays botocore asks for between attempts, recorded instead of slept.

    `botocore.endpoint` uses its `time` module only for that sleep (endpoint.py, `_needs_retry`).
    """
    recorded: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=recorded.append))
    return recorded


@pytest.fixture
def settings_client(moto_endpoint: str, bucket: str, tmp_path: Path) -> Any:
    """The client Pulse itself builds, pointed at moto."""
    settings = load_settings(
        secrets_file=tmp_path / "no-secrets.toml",
        backend="aws",
        bucket=bucket,
        prefix=PREFIX,
        aws_endpoint_url=moto_endpoint,
    )
    return s3_client(settings)


@pytest.fixture
def stubbed() -> Iterator[tuple[S3Store, Stubber]]:
    client = boto3.client("s3", region_name="us-east-1")
    store = S3Store(client, STUB_BUCKET, prefix=PREFIX)
    with Stubber(client) as stubber:
        yield store, stubber


def assert_domain_error(exc: BaseException) -> None:
    assert isinstance(exc, StoreError)
    assert not isinstance(exc, (ClientError, BotoCoreError))


# --- a missing bucket (moto) -------------------------------------------------------------


@pytest.fixture
def missing_bucket_store(s3_client: Any) -> S3Store:
    return S3Store(s3_client, f"pulse-no-such-bucket-{free_port()}", prefix=PREFIX)


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda s: s.get("k"), id="get"),
        pytest.param(lambda s: s.put("k", b"v"), id="put"),
        pytest.param(lambda s: s.put("k", b"v", if_absent=True), id="put-if-absent"),
        pytest.param(lambda s: list(s.list("")), id="list"),
        pytest.param(lambda s: s.delete("k"), id="delete"),
    ],
)
def test_missing_bucket_is_unavailable_and_named(missing_bucket_store: S3Store, operation: Any) -> None:
    with pytest.raises(StoreUnavailable) as info:
        operation(missing_bucket_store)
    message = str(info.value)
    assert repr(missing_bucket_store.bucket) in message
    assert "does not exist" in message
    assert "PULSE_BUCKET" in message
    assert isinstance(info.value.__cause__, ClientError)


def test_missing_bucket_exists_is_unavailable(missing_bucket_store: S3Store) -> None:
    with pytest.raises(StoreUnavailable, match=missing_bucket_store.bucket):
        missing_bucket_store.exists("k")


# --- access denied and bad credentials (Stubber) -----------------------------------------


@pytest.mark.parametrize(
    ("method", "call", "params"),
    [
        ("get_object", lambda s: s.get("k"), {"Bucket": STUB_BUCKET, "Key": "pulse/ws/k"}),
        ("put_object", lambda s: s.put("k", b"v"), {"Bucket": STUB_BUCKET, "Key": "pulse/ws/k", "Body": b"v"}),
        (
            "put_object",
            lambda s: s.put("k", b"v", if_absent=True),
            {"Bucket": STUB_BUCKET, "Key": "pulse/ws/k", "Body": b"v", "IfNoneMatch": "*"},
        ),
        ("list_objects_v2", lambda s: list(s.list("a/")), {"Bucket": STUB_BUCKET, "Prefix": "pulse/ws/a/"}),
        ("delete_object", lambda s: s.delete("k"), {"Bucket": STUB_BUCKET, "Key": "pulse/ws/k"}),
        (
            "list_objects_v2",
            lambda s: s.exists("k"),
            {"Bucket": STUB_BUCKET, "Prefix": "pulse/ws/k", "MaxKeys": 1},
        ),
    ],
    ids=["get", "put", "put-if-absent", "list", "delete", "exists"],
)
def test_access_denied_is_unavailable(
    stubbed: tuple[S3Store, Stubber], method: str, call: Any, params: dict[str, Any]
) -> None:
    store, stubber = stubbed
    stubber.add_client_error(
        method,
        service_error_code="AccessDenied",
        service_message="Access Denied",
        http_status_code=403,
        expected_params=params,
    )
    with pytest.raises(StoreUnavailable) as info:
        call(store)
    stubber.assert_no_pending_responses()
    message = str(info.value)
    assert "access denied" in message
    assert repr(STUB_BUCKET) in message
    assert "s3:GetObject" in message  # says which permissions to grant
    assert_domain_error(info.value)


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("InvalidAccessKeyId", "access key"),
        ("SignatureDoesNotMatch", "secret key"),
        ("ExpiredToken", "expired"),
        ("AllAccessDisabled", STUB_BUCKET),
        ("NoSuchBucket", STUB_BUCKET),
    ],
)
def test_credential_and_bucket_errors_are_unavailable(stubbed: tuple[S3Store, Stubber], code: str, hint: str) -> None:
    store, stubber = stubbed
    stubber.add_client_error("get_object", service_error_code=code, http_status_code=403)
    with pytest.raises(StoreUnavailable, match=hint):
        store.get("k")


def test_unknown_refusal_is_a_plain_store_error(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error("get_object", service_error_code="InvalidObjectState", http_status_code=403)
    with pytest.raises(StoreError) as info:
        store.get("archived/k")
    assert type(info.value) is StoreError
    assert "InvalidObjectState" in str(info.value)
    assert "archived/k" in str(info.value)


def test_no_such_key_is_key_not_found(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
    with pytest.raises(KeyNotFound, match="'gone'"):
        store.get("gone")


def test_bodiless_403_is_access_denied(s3_client: Any, bucket: str) -> None:
    store = S3Store(s3_client, bucket, prefix=PREFIX)
    s3_client.meta.events.register("before-send.s3.ListObjectsV2", FakeAnswers(403))
    with pytest.raises(StoreUnavailable, match="access denied"):
        store.exists("k")


# --- create-if-absent --------------------------------------------------------------------


def test_precondition_failed_is_already_exists(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error(
        "put_object",
        service_error_code="PreconditionFailed",
        service_message="At least one of the pre-conditions you specified did not hold",
        http_status_code=412,
        expected_params={"Bucket": STUB_BUCKET, "Key": "pulse/ws/k", "Body": b"v", "IfNoneMatch": "*"},
    )
    with pytest.raises(AlreadyExists, match="'k'"):
        store.put("k", b"v", if_absent=True)
    stubber.assert_no_pending_responses()


def test_status_412_without_a_code_is_already_exists(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error("put_object", service_error_code="", http_status_code=412)
    with pytest.raises(AlreadyExists):
        store.put("k", b"v", if_absent=True)


def test_plain_put_does_not_send_if_none_match(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    # Stubber compares the parameters exactly: an IfNoneMatch here would fail the call.
    stubber.add_response("put_object", {}, {"Bucket": STUB_BUCKET, "Key": "pulse/ws/k", "Body": b"v"})
    store.put("k", b"v")
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("taken", [True, False], ids=["key-taken", "key-free"])
def test_conditional_request_conflict_is_retried(s3_client: Any, bucket: str, taken: bool) -> None:
    store = S3Store(s3_client, bucket, prefix=PREFIX)
    if taken:
        store.put("k", b"first")
    conflict = FakeAnswers(409, s3_error_body("ConditionalRequestConflict"), times=1)
    s3_client.meta.events.register("before-send.s3.PutObject", conflict)
    if taken:
        with pytest.raises(AlreadyExists):
            store.put("k", b"second", if_absent=True)
        assert store.get("k") == b"first"
    else:
        store.put("k", b"second", if_absent=True)
        assert store.get("k") == b"second"


def test_a_retried_create_if_absent_that_had_landed_succeeds(s3_client: Any, bucket: str, sleeps: list[float]) -> None:
    """The retry meets our own object (412): read back, the same bytes, so the write succeeded."""
    store = S3Store(s3_client, bucket, prefix=PREFIX)
    lost, reads = AnswerLost(), CountRequests()
    s3_client.meta.events.register("before-send.s3.PutObject", lost)
    s3_client.meta.events.register("before-send.s3.GetObject", reads)
    store.put("k", b"v", if_absent=True)
    assert lost.calls == 2 and reads.calls == 1
    assert store.get("k") == b"v"


def test_a_retried_create_if_absent_meeting_other_bytes_is_already_exists(
    s3_client: Any, bucket: str, sleeps: list[float]
) -> None:
    store = S3Store(s3_client, bucket, prefix=PREFIX)
    store.put("k", b"theirs")
    lost = AnswerLost()
    s3_client.meta.events.register("before-send.s3.PutObject", lost)
    with pytest.raises(AlreadyExists, match="'k'"):
        store.put("k", b"ours", if_absent=True)
    assert lost.calls == 2
    assert store.get("k") == b"theirs"


def test_a_conflict_retry_that_meets_its_own_landed_write_succeeds(
    s3_client: Any, bucket: str, sleeps: list[float]
) -> None:
    """Our own 409 loop: the write lands, its answer is lost, botocore's retry is answered 409,
    and our next attempt (botocore's first for it) is refused 412 by the object we stored."""
    store = S3Store(s3_client, bucket, prefix=PREFIX)
    lost = AnswerLost(then=FakeAnswers(409, s3_error_body("ConditionalRequestConflict"), times=1))
    s3_client.meta.events.register("before-send.s3.PutObject", lost)
    store.put("k", b"v", if_absent=True)
    assert lost.calls == 3
    assert store.get("k") == b"v"


def test_a_first_attempt_412_is_not_read_back(s3_client: Any, bucket: str) -> None:
    """A refusal of the first attempt is a genuine conflict, even with the same bytes: no GetObject."""
    store = S3Store(s3_client, bucket, prefix=PREFIX)
    store.put("k", b"v")
    reads = CountRequests()
    s3_client.meta.events.register("before-send.s3.GetObject", reads)
    with pytest.raises(AlreadyExists):
        store.put("k", b"v", if_absent=True)
    assert reads.calls == 0


@pytest.mark.parametrize(
    ("read_back", "raised"),
    [
        pytest.param(("NoSuchKey", 404), AlreadyExists, id="deleted-in-between"),
        pytest.param(("AccessDenied", 403), StoreUnavailable, id="read-refused"),
    ],
)
def test_a_read_back_that_fails(
    stubbed: tuple[S3Store, Stubber], read_back: tuple[str, int], raised: type[StoreError]
) -> None:
    store, stubber = stubbed
    stubber.add_client_error(
        "put_object", "PreconditionFailed", http_status_code=412, response_meta={"RetryAttempts": 1}
    )
    code, status = read_back
    stubber.add_client_error("get_object", code, http_status_code=status)
    with pytest.raises(raised):
        store.put("k", b"v", if_absent=True)
    stubber.assert_no_pending_responses()


def test_a_retried_empty_create_if_absent_is_not_read_back(stubbed: tuple[S3Store, Stubber]) -> None:
    """Empty bytes (a takeover marker) read the same whoever wrote them: the refusal stays a conflict."""
    store, stubber = stubbed
    stubber.add_client_error(
        "put_object", "PreconditionFailed", http_status_code=412, response_meta={"RetryAttempts": 2}
    )
    with pytest.raises(AlreadyExists):
        store.put("k", b"", if_absent=True)  # a GetObject here would fail: nothing stubbed for it
    stubber.assert_no_pending_responses()


# --- an endpoint nobody answers ----------------------------------------------------------


@pytest.fixture
def unreachable_store() -> S3Store:
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{free_port()}",  # bound, released: nothing listens there
        config=Config(connect_timeout=1, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 1}),
    )
    return S3Store(client, "pulse-unreachable", prefix=PREFIX)


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda s: s.get("k"), id="get"),
        pytest.param(lambda s: s.put("k", b"v"), id="put"),
        pytest.param(lambda s: s.put("k", b"v", if_absent=True), id="put-if-absent"),
        pytest.param(lambda s: list(s.list("")), id="list"),
        pytest.param(lambda s: s.exists("k"), id="exists"),
        pytest.param(lambda s: s.delete("k"), id="delete"),
    ],
)
def test_unreachable_endpoint_is_unavailable(unreachable_store: S3Store, operation: Any) -> None:
    with pytest.raises(StoreUnavailable) as info:
        operation(unreachable_store)
    message = str(info.value)
    assert "cannot reach S3" in message
    assert "s3://pulse-unreachable/pulse/ws/" in message
    assert "PULSE_AWS_ENDPOINT_URL" in message
    assert "EndpointConnectionError" in message
    assert isinstance(info.value.__cause__, BotoCoreError)


def test_unreachable_endpoint_with_the_app_client_retries_then_is_unavailable(
    tmp_path: Path, sleeps: list[float]
) -> None:
    settings = load_settings(
        secrets_file=tmp_path / "no-secrets.toml",
        backend="aws",
        bucket="pulse-unreachable",
        aws_endpoint_url=f"http://127.0.0.1:{free_port()}",
    )
    client = s3_client(settings)
    attempts = CountRequests()
    client.meta.events.register("before-send.s3.GetObject", attempts)
    with pytest.raises(StoreUnavailable, match="cannot reach S3"):
        S3Store(client, settings.bucket).get("k")
    # Config(retries={"max_attempts": 6}) counts retries: 1 attempt + 6 retries.
    assert attempts.calls == 7
    assert len(sleeps) == 6


# --- transient failures: retried by the client s3_client(settings) builds -----------------


def test_throttling_is_retried_until_it_passes(
    settings_client: Any, s3_client: Any, bucket: str, sleeps: list[float]
) -> None:
    store = S3Store(settings_client, bucket, prefix=PREFIX)
    slow_down = FakeAnswers(503, s3_error_body("SlowDown", "Please reduce your request rate."), times=2)
    settings_client.meta.events.register("before-send.s3.PutObject", slow_down)
    store.put("checkins/k", b"payload")
    assert slow_down.calls == 3  # two fake 503s, then the real request to moto
    assert s3_client.get_object(Bucket=bucket, Key="pulse/ws/checkins/k")["Body"].read() == b"payload"
    # Backed off between attempts: throttling backoff is rand(0, 1) * 2**i seconds.
    assert len(sleeps) == 2
    assert all(0 <= delay <= 2**i for i, delay in enumerate(sleeps)), sleeps


def test_throttled_create_if_absent_is_retried(settings_client: Any, bucket: str, sleeps: list[float]) -> None:
    store = S3Store(settings_client, bucket, prefix=PREFIX)
    slow_down = FakeAnswers(503, s3_error_body("SlowDown"), times=2)
    settings_client.meta.events.register("before-send.s3.PutObject", slow_down)
    store.put("k", b"1", if_absent=True)
    assert slow_down.calls == 3
    with pytest.raises(AlreadyExists):  # the retried request really carried If-None-Match
        store.put("k", b"2", if_absent=True)
    assert store.get("k") == b"1"


def test_server_errors_on_get_are_retried(settings_client: Any, bucket: str, sleeps: list[float]) -> None:
    store = S3Store(settings_client, bucket, prefix=PREFIX)
    store.put("k", b"stored")
    internal = FakeAnswers(500, s3_error_body("InternalError", "We encountered an internal error."), times=3)
    settings_client.meta.events.register("before-send.s3.GetObject", internal)
    assert store.get("k") == b"stored"
    assert internal.calls == 4
    assert len(sleeps) == 3


def test_dropped_connections_are_retried(settings_client: Any, bucket: str, sleeps: list[float]) -> None:
    store = S3Store(settings_client, bucket, prefix=PREFIX)
    store.put("k", b"stored")
    calls = 0

    def drop_first(request: Any, **_: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionClosedError(endpoint_url=request.url)

    settings_client.meta.events.register("before-send.s3.GetObject", drop_first)
    assert store.get("k") == b"stored"
    assert calls == 2
    assert len(sleeps) == 1


def test_throttling_that_never_stops_becomes_a_domain_error(
    settings_client: Any, s3_client: Any, bucket: str, sleeps: list[float]
) -> None:
    store = S3Store(settings_client, bucket, prefix=PREFIX)
    slow_down = FakeAnswers(503, s3_error_body("SlowDown"))
    settings_client.meta.events.register("before-send.s3.PutObject", slow_down)
    with pytest.raises(StoreError) as info:
        store.put("k", b"v")
    assert_domain_error(info.value)
    assert "'k'" in str(info.value)
    assert "SlowDown" in str(info.value)
    assert isinstance(info.value.__cause__, ClientError)
    # Config(retries={"max_attempts": 6}) counts retries: 1 attempt + 6 retries, then give up.
    assert slow_down.calls == 7
    assert len(sleeps) == 6
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_server_errors_that_never_stop_on_list_become_a_domain_error(
    settings_client: Any, bucket: str, sleeps: list[float]
) -> None:
    store = S3Store(settings_client, bucket, prefix=PREFIX)
    unavailable = FakeAnswers(503, s3_error_body("ServiceUnavailable"))
    settings_client.meta.events.register("before-send.s3.ListObjectsV2", unavailable)
    with pytest.raises(StoreError) as info:
        list(store.list(""))
    assert_domain_error(info.value)
    assert unavailable.calls == 7


def test_client_errors_are_not_retried(settings_client: Any, bucket: str, sleeps: list[float]) -> None:
    """A 4xx that is not throttling is final: no retry, no backoff."""
    store = S3Store(settings_client, bucket, prefix=PREFIX)
    attempts = CountRequests()
    settings_client.meta.events.register("before-send.s3.GetObject", attempts)
    with pytest.raises(KeyNotFound):
        store.get("missing")
    assert attempts.calls == 1
    assert sleeps == []


def test_app_client_uses_the_configured_endpoint_and_region(settings_client: Any, moto_endpoint: str) -> None:
    assert settings_client.meta.endpoint_url == moto_endpoint
    assert settings_client.meta.region_name == "us-east-1"
    retries = settings_client.meta.config.retries
    assert retries["mode"] == "standard"
    assert retries["total_max_attempts"] == 7
