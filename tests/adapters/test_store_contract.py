"""One contract, two stores: `LocalStore` in a temporary folder and `S3Store` on moto (server
mode, real HTTP). Every test in the first part runs against both; what only one store can show
(temporary files, folder permissions, the S3 prefix) comes after."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from services.aws.s3 import S3Store
from services.errors import AlreadyExists, InvalidKey, KeyNotFound, StoreError, StoreUnavailable
from services.store import local as local_store
from services.store.base import ObjectStore
from services.store.local import LocalStore

S3_PREFIX = "pulse/ws"


@pytest.fixture(params=["local", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "ws")
    client = request.getfixturevalue("s3_client")
    bucket = request.getfixturevalue("bucket")
    return S3Store(client, bucket, prefix=S3_PREFIX)


def put_all(store: ObjectStore, keys: list[str], data: Callable[[str], bytes] = str.encode) -> None:
    # 10 workers: boto3's default connection pool holds 10 connections.
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda k: store.put(k, data(k)), keys))


# --- put / get ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"hello",
        b"",
        bytes(range(256)),
        b"\xff\xfe\x00\x80 not utf-8 \xc3\x28",
        "ünïcödé 😀\n".encode(),
        b"\r\n\r\n",
        os.urandom(300_000),
    ],
    ids=["ascii", "empty", "all-bytes", "invalid-utf8", "utf8", "crlf", "300k-random"],
)
def test_put_get_round_trip(any_store: ObjectStore, body: bytes) -> None:
    any_store.put("dir/sub/object.bin", body)
    got = any_store.get("dir/sub/object.bin")
    assert isinstance(got, bytes)
    assert got == body


def test_round_trip_top_level_and_unicode_keys(any_store: ObjectStore) -> None:
    any_store.put("top", b"1")
    any_store.put("ünï/日本/😀.json", b"2")
    any_store.put("checkins/date=2024-05-01/part 1.csv", b"3")
    assert any_store.get("top") == b"1"
    assert any_store.get("ünï/日本/😀.json") == b"2"
    assert any_store.get("checkins/date=2024-05-01/part 1.csv") == b"3"


def test_put_overwrites(any_store: ObjectStore) -> None:
    any_store.put("k", b"first, and longer than the second")
    any_store.put("k", b"second")
    assert any_store.get("k") == b"second"
    any_store.put("k", b"")
    assert any_store.get("k") == b""


def test_put_if_absent_creates_a_new_key(any_store: ObjectStore) -> None:
    any_store.put("new/key", b"v1", if_absent=True)
    assert any_store.get("new/key") == b"v1"


def test_put_if_absent_refuses_an_existing_key_and_keeps_its_content(any_store: ObjectStore) -> None:
    any_store.put("taken", b"original")
    with pytest.raises(AlreadyExists, match="taken"):
        any_store.put("taken", b"intruder", if_absent=True)
    assert any_store.get("taken") == b"original"


def test_put_if_absent_after_delete_succeeds(any_store: ObjectStore) -> None:
    any_store.put("k", b"1", if_absent=True)
    any_store.delete("k")
    any_store.put("k", b"2", if_absent=True)
    assert any_store.get("k") == b"2"


def test_put_if_absent_twice_with_the_same_content_still_refuses(any_store: ObjectStore) -> None:
    any_store.put("k", b"same", if_absent=True)
    with pytest.raises(AlreadyExists):
        any_store.put("k", b"same", if_absent=True)


def test_get_missing_key_raises_key_not_found(any_store: ObjectStore) -> None:
    with pytest.raises(KeyNotFound, match="nothing/here"):
        any_store.get("nothing/here")


def test_get_of_a_folder_like_prefix_is_key_not_found(any_store: ObjectStore) -> None:
    any_store.put("folder/child", b"x")
    with pytest.raises(KeyNotFound):
        any_store.get("folder")
    assert any_store.exists("folder") is False


def test_key_not_found_is_a_store_error(any_store: ObjectStore) -> None:
    with pytest.raises(StoreError):
        any_store.get("missing")


# --- exists / delete ---------------------------------------------------------------------


def test_exists(any_store: ObjectStore) -> None:
    assert any_store.exists("a/b") is False
    any_store.put("a/b", b"")
    assert any_store.exists("a/b") is True  # an empty object exists too
    assert any_store.exists("a") is False
    assert any_store.exists("a/bc") is False


def test_delete(any_store: ObjectStore) -> None:
    any_store.put("a/b", b"1")
    any_store.put("a/bc", b"2")
    any_store.delete("a/b")
    assert any_store.exists("a/b") is False
    with pytest.raises(KeyNotFound):
        any_store.get("a/b")
    assert any_store.get("a/bc") == b"2"
    assert list(any_store.list("a/")) == ["a/bc"]


def test_delete_missing_key_is_fine(any_store: ObjectStore) -> None:
    any_store.delete("never/was")
    any_store.put("k", b"1")
    any_store.delete("k")
    any_store.delete("k")
    assert any_store.exists("k") is False


# --- list --------------------------------------------------------------------------------

LIST_KEYS = ["a/bd/e", "b/a/b", "a/x", "ab", "a/b/c", "a/bc", "d/a0", "d/a/b", "d/a-b", "d/é", "d/z", "top"]


LIST_CASES = {
    "": sorted(LIST_KEYS),
    "a/b": ["a/b/c", "a/bc", "a/bd/e"],  # a string prefix, not a folder
    "a/b/": ["a/b/c"],
    "a/": ["a/b/c", "a/bc", "a/bd/e", "a/x"],
    "a": ["a/b/c", "a/bc", "a/bd/e", "a/x", "ab"],
    "d/a": ["d/a-b", "d/a/b", "d/a0"],  # "-" < "/" < "0": string order, not folder-walk order
    "d/": ["d/a-b", "d/a/b", "d/a0", "d/z", "d/é"],
    "to": ["top"],
    "top": ["top"],
    "zzz": [],
    "a/b/c/d/": [],
    "nope/": [],
}


def test_list_returns_exactly_the_keys_under_the_prefix_sorted(any_store: ObjectStore) -> None:
    for key in LIST_KEYS:  # written out of order on purpose
        any_store.put(key, key.encode())
    got = {prefix: list(any_store.list(prefix)) for prefix in LIST_CASES}
    assert got == LIST_CASES


def test_list_of_an_empty_store_is_empty(any_store: ObjectStore) -> None:
    assert list(any_store.list("")) == []
    assert list(any_store.list("a/")) == []


def test_list_reflects_deletes(any_store: ObjectStore) -> None:
    any_store.put("p/1", b"")
    any_store.put("p/2", b"")
    any_store.delete("p/1")
    assert list(any_store.list("p/")) == ["p/2"]


def seed_through_moto(store: S3Store, keys: list[str]) -> None:
    """Write objects straight into the moto backend that the test server answers from.

    The server runs in this process and answers ~100 requests a second whatever the number of
    client threads (measured), so 1,050 PUTs over HTTP would take 10-15 s; seeding the backend
    takes a fraction of that. The listing itself still goes over HTTP.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    assert store.bucket in backend.buckets, "the moto server does not share this process's backend"
    for key in keys:
        backend.put_object(store.bucket, store.prefix + key, key.encode())


def count_list_pages(store: S3Store) -> list[int]:
    pages: list[int] = []

    def after_call(parsed: dict[str, Any], **_: Any) -> None:
        pages.append(len(parsed.get("Contents", [])))

    store.client.meta.events.register("after-call.s3.ListObjectsV2", after_call)
    return pages


def test_list_returns_more_than_one_page(any_store: ObjectStore) -> None:
    """S3 answers at most 1000 keys a page: the store must follow the pages."""
    many = [f"many/{i:05d}" for i in range(1050)]
    others = ["other/0", "manx", "many-x"]
    pages = None
    if isinstance(any_store, S3Store):
        seed_through_moto(any_store, [*many, *others])
        pages = count_list_pages(any_store)
    else:
        put_all(any_store, [*many, *others])
    got = list(any_store.list("many/"))
    assert len(got) == 1050
    assert got == many  # all of them, once each, in order
    if pages is not None:
        assert pages == [1000, 50], "moto should have answered in two pages"
    everything = list(any_store.list(""))
    assert len(everything) == 1053
    assert everything == sorted([*many, *others])


def test_s3_list_follows_continuation_tokens_over_http(s3_client: Any, bucket: str) -> None:
    """The same through real PUTs: pages of 7 keys (MaxKeys injected into each request)."""
    store = S3Store(s3_client, bucket, prefix=S3_PREFIX)
    keys = [f"k/{i:02d}" for i in range(20)]
    put_all(store, keys)
    store.put("l", b"")

    def small_pages(params: dict[str, Any], **_: Any) -> None:
        params["MaxKeys"] = 7

    s3_client.meta.events.register("provide-client-params.s3.ListObjectsV2", small_pages)
    pages = count_list_pages(store)
    assert list(store.list("k/")) == keys
    assert pages == [7, 7, 6]


# --- invalid keys ------------------------------------------------------------------------

BAD_KEYS = ["../x", "/abs", "a/../b", "a//b", "a\\b", "a\x00b", "C:x", "", "..", "a/..", "a/", "a\nb"]
BAD_PREFIXES = [k for k in BAD_KEYS if k not in ("", "a/")] + ["../", "/"]


def not_refused(operation: Callable[[str], Any], keys: list[str]) -> dict[str, str]:
    """The keys `operation` did not refuse with InvalidKey, and what happened instead."""
    out = {}
    for key in keys:
        try:
            operation(key)
        except InvalidKey:
            continue
        except Exception as exc:
            out[key] = repr(exc)
        else:
            out[key] = "no error"
    return out


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda s: s.get, id="get"),
        pytest.param(lambda s: lambda k: s.put(k, b"x"), id="put"),
        pytest.param(lambda s: lambda k: s.put(k, b"x", if_absent=True), id="put-if-absent"),
        pytest.param(lambda s: s.exists, id="exists"),
        pytest.param(lambda s: s.delete, id="delete"),
    ],
)
def test_invalid_keys_are_refused(any_store: ObjectStore, operation: Callable[[ObjectStore], Any]) -> None:
    assert not_refused(operation(any_store), BAD_KEYS) == {}


def test_invalid_list_prefixes_are_refused(any_store: ObjectStore) -> None:
    assert not_refused(lambda p: list(any_store.list(p)), BAD_PREFIXES) == {}


def test_invalid_keys_write_nothing(any_store: ObjectStore, tmp_path: Path) -> None:
    for key in BAD_KEYS:
        with pytest.raises(InvalidKey):
            any_store.put(key, b"escaped")
    assert list(any_store.list("")) == []
    # Nothing landed next to the workspace either (LocalStore's root is tmp_path/"ws").
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "ws") == []


@pytest.mark.parametrize(
    "any_store",
    [
        "local",
        "s3",
    ],
    indirect=True,
)
def test_list_refuses_an_invalid_prefix_when_called(any_store: ObjectStore) -> None:
    with pytest.raises(InvalidKey):
        any_store.list("../x")


# --- concurrency -------------------------------------------------------------------------


def test_concurrent_put_if_absent_has_exactly_one_winner(any_store: ObjectStore) -> None:
    n = 16
    barrier = threading.Barrier(n)

    def attempt(i: int) -> str:
        barrier.wait(timeout=10)
        try:
            any_store.put("race/key", f"writer-{i}".encode(), if_absent=True)
        except AlreadyExists:
            return "lost"
        return f"writer-{i}"

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(attempt, range(n)))
    winners = [r for r in results if r != "lost"]
    assert len(winners) == 1, results
    assert results.count("lost") == n - 1
    assert any_store.get("race/key") == winners[0].encode()
    assert list(any_store.list("race/")) == ["race/key"]


def test_concurrent_puts_of_different_keys_all_land(any_store: ObjectStore) -> None:
    keys = [f"par/{i:03d}" for i in range(24)]
    put_all(any_store, keys, data=lambda k: k.encode() * 100)
    assert list(any_store.list("par/")) == keys
    assert all(any_store.get(k) == k.encode() * 100 for k in keys)


# --- a key and a longer key under it -----------------------------------------------------


@pytest.mark.parametrize(
    "any_store",
    [
        pytest.param(
            "local",
            marks=pytest.mark.xfail(
                strict=True,
                raises=StoreError,
                reason="LocalStore keeps keys as files, so 'a' and 'a/b' cannot both exist; it refuses "
                "with a StoreError naming the conflict (Pulse's key layout never needs both); S3 holds both",
            ),
        ),
        "s3",
    ],
    indirect=True,
)
def test_a_key_and_keys_under_it_can_coexist(any_store: ObjectStore) -> None:
    any_store.put("node", b"leaf")
    any_store.put("node/child", b"child")
    assert any_store.get("node") == b"leaf"
    assert any_store.get("node/child") == b"child"
    assert list(any_store.list("node")) == ["node", "node/child"]


# --- LocalStore only ---------------------------------------------------------------------


def temp_files(root: Path) -> list[Path]:
    """Temp files of the store (its `.tmp/` folder) and any `.tmp-*` beside a key."""
    return [p for p in root.rglob("*") if p.is_file() and (p.name.startswith(".tmp") or ".tmp" in p.parts)]


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ws")
    store.put("a/b", b"1")
    store.put("a/b", b"2")  # overwrite
    store.put("a/c", b"3", if_absent=True)
    with pytest.raises(AlreadyExists):
        store.put("a/c", b"4", if_absent=True)
    store.put("top", b"")
    assert temp_files(tmp_path) == []
    assert sorted(p.relative_to(tmp_path / "ws").as_posix() for p in (tmp_path / "ws").rglob("*") if p.is_file()) == [
        "a/b",
        "a/c",
        "top",
    ]


def test_local_concurrent_if_absent_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ws")

    def attempt(i: int) -> bool:
        try:
            store.put("race", str(i).encode(), if_absent=True)
        except AlreadyExists:
            return False
        return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        wins = list(pool.map(attempt, range(16)))
    assert wins.count(True) == 1
    assert temp_files(tmp_path) == []
    assert [p.name for p in (tmp_path / "ws").iterdir()] == ["race"]


def test_local_list_never_shows_temporary_files(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    store = LocalStore(root)
    store.put("a/real", b"1")
    # What an interrupted write leaves behind: a temp file beside the key, and a stray temp folder.
    (root / "a" / ".tmp-abc123.part").write_bytes(b"half")
    (root / ".tmp-top.part").write_bytes(b"half")
    (root / "a" / ".tmp-dir").mkdir()
    (root / "a" / ".tmp-dir" / "inside").write_bytes(b"x")
    assert list(store.list("")) == ["a/real"]
    assert list(store.list("a/")) == ["a/real"]
    assert list(store.list("a/.tmp")) == []


def test_opening_the_store_removes_the_temp_files_of_writers_that_died(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    LocalStore(root).put("a/b", b"1")
    LocalStore(root).put("a/b", b"2")  # an overwrite goes through the temp folder
    temps = root / ".tmp"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    host = local_store._HOST
    (temps / f"{host}-{int(dead.stdout)}-abc.part").write_bytes(b"message text of a killed writer")
    (temps / f"{host}-{os.getpid()}-def.part").write_bytes(b"a write in progress")
    old = temps / "elsewhere-1-ghi.part"
    old.write_bytes(b"left by another machine long ago")
    os.utime(old, (0, 0))
    store = LocalStore(root)
    assert sorted(p.name for p in temps.iterdir()) == [f"{host}-{os.getpid()}-def.part"]
    assert list(store.list("")) == ["a/b"]


def test_local_store_root_is_resolved(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    store = LocalStore(tmp_path / "real" / ".." / "real")
    store.put("k", b"v")
    assert (tmp_path / "real" / "k").read_bytes() == b"v"
    assert store.root == (tmp_path / "real").resolve()


def test_local_write_into_a_read_only_folder_raises_a_store_error(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    store = LocalStore(root)
    store.put("a/existing", b"1")
    locked = root / "a"
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes")
        with pytest.raises(StoreError) as info:
            store.put("a/new", b"2")
        assert isinstance(info.value, (StoreUnavailable, StoreError))
        assert str(info.value)
        assert "write" in str(info.value)
        with pytest.raises(StoreError):
            store.put("a/existing", b"3")
        assert store.get("a/existing") == b"1"
        assert temp_files(tmp_path) == []
    finally:
        locked.chmod(stat.S_IRWXU)


def test_local_workspace_that_is_a_file_is_unavailable(tmp_path: Path) -> None:
    """Works as root too: the workspace path exists but is a regular file."""
    not_a_folder = tmp_path / "ws"
    not_a_folder.write_bytes(b"oops")
    store = LocalStore(not_a_folder)
    with pytest.raises(StoreUnavailable) as info:
        store.put("a/b", b"1")
    message = str(info.value)
    assert str(not_a_folder) in message
    assert "PULSE_WORKSPACE" in message
    assert not_a_folder.read_bytes() == b"oops"


def test_local_missing_workspace_lists_nothing_and_is_created_on_write(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "not" / "yet")
    assert list(store.list("")) == []
    assert store.exists("k") is False
    store.put("k", b"v")
    assert (tmp_path / "not" / "yet" / "k").read_bytes() == b"v"


# --- S3Store only ------------------------------------------------------------------------


def test_s3_keys_live_under_the_prefix(s3_client: Any, bucket: str) -> None:
    store = S3Store(s3_client, bucket, prefix=S3_PREFIX)
    store.put("a/b", b"1")
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["pulse/ws/a/b"]
    assert s3_client.get_object(Bucket=bucket, Key="pulse/ws/a/b")["Body"].read() == b"1"


def test_s3_does_not_see_keys_outside_its_prefix(s3_client: Any, bucket: str) -> None:
    for key in ["pulse/wsx/a", "pulse/ws", "pulse/other/a", "a", "elsewhere/pulse/ws/a", "pulse/w"]:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"outside")
    store = S3Store(s3_client, bucket, prefix=S3_PREFIX)
    store.put("a", b"inside")
    assert list(store.list("")) == ["a"]
    assert list(store.list("a")) == ["a"]
    assert store.get("a") == b"inside"
    assert store.exists("x/a") is False
    with pytest.raises(KeyNotFound):
        store.get("other/a")
    store.delete("a")
    # Deleting through the store touched nothing outside it.
    assert s3_client.get_object(Bucket=bucket, Key="a")["Body"].read() == b"outside"


@pytest.mark.parametrize("prefix", ["pulse/ws", "/pulse/ws/", "pulse/ws/", "pulse/ws//"])
def test_s3_prefix_forms_are_normalised(s3_client: Any, bucket: str, prefix: str) -> None:
    store = S3Store(s3_client, bucket, prefix=prefix)
    assert store.prefix == "pulse/ws/"
    store.put("k", b"1")
    assert s3_client.get_object(Bucket=bucket, Key="pulse/ws/k")["Body"].read() == b"1"


@pytest.mark.parametrize("prefix", ["", "/"])
def test_s3_empty_prefix_means_the_whole_bucket(s3_client: Any, bucket: str, prefix: str) -> None:
    store = S3Store(s3_client, bucket, prefix=prefix)
    store.put("k", b"1")
    assert s3_client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"1"
    assert list(store.list("")) == ["k"]


@pytest.mark.parametrize("prefix", ["../ws", "a/../b", "a\\b", "p\x00"], ids=repr)
def test_s3_invalid_store_prefix_is_refused(s3_client: Any, prefix: str) -> None:
    with pytest.raises(InvalidKey):
        S3Store(s3_client, "any-bucket", prefix=prefix)


def test_s3_two_prefixes_in_one_bucket_are_separate_stores(s3_client: Any, bucket: str) -> None:
    one = S3Store(s3_client, bucket, prefix="team/one")
    two = S3Store(s3_client, bucket, prefix="team/one-b")
    one.put("k", b"1")
    two.put("k", b"2", if_absent=True)
    assert one.get("k") == b"1"
    assert two.get("k") == b"2"
    assert list(one.list("")) == ["k"]
    assert list(two.list("")) == ["k"]
