"""`validate_key`: the one gate between a caller's key and a path or S3 key."""

from __future__ import annotations

import pytest

from services.errors import InvalidKey, StoreError
from services.store.base import MAX_KEY_LENGTH, validate_key

VALID_KEYS = [
    "a",
    "a.txt",
    "checkins/date=2024-05-01/part-0001.parquet",
    "models/v3/card.json",
    "a/b/c/d/e/f",
    "..a",  # dots inside a segment are not traversal
    "a..",
    "a/.hidden",
    "a/b..c",
    "with space/and-dash_underscore",
    "ünïcödé/日本語/😀.json",
    "C/x",  # a drive-like first segment without the colon is fine
    "ab:c",  # a colon that does not follow a single drive letter
    "a/C:x",  # a drive-like later segment is harmless
    "1:x",  # only letters make a drive
    "x" * MAX_KEY_LENGTH,
]

INVALID_KEYS = [
    "",
    "../x",
    "..",
    ".",
    "./x",
    "a/../b",
    "a/..",
    "a/./b",
    "/abs",
    "//abs",
    "a//b",
    "a/",  # a key may not end with "/" (only a prefix may)
    "a\\b",
    "\\\\server\\share",
    "a\x00b",
    "C:x",
    "c:/x",
    "C:\\x",
    "a\nb",
    "a\rb",
    "a\tb",
    "a\x1fb",
    "a\x7fb",
    "x" * (MAX_KEY_LENGTH + 1),
]


@pytest.mark.parametrize("key", VALID_KEYS)
def test_valid_keys_are_returned_unchanged(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize("key", VALID_KEYS)
def test_valid_keys_are_also_valid_prefixes(key: str) -> None:
    assert validate_key(key, prefix=True) == key


@pytest.mark.parametrize("prefix", ["", "a/", "a", "a/b", "a/b/", "checkins/date=2024-05-01/", "a/bc"])
def test_valid_prefixes(prefix: str) -> None:
    assert validate_key(prefix, prefix=True) == prefix


@pytest.mark.parametrize("key", INVALID_KEYS, ids=repr)
def test_invalid_keys_raise_invalid_key(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)


@pytest.mark.parametrize(
    "prefix", [k for k in INVALID_KEYS if k not in ("", "a/")] + ["/", "a//", "../", "a/../"], ids=repr
)
def test_invalid_prefixes_raise_invalid_key(prefix: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(prefix, prefix=True)


def test_invalid_key_is_a_store_error() -> None:
    # Pages catch StoreError; an invalid key must not slip past them as something else.
    with pytest.raises(StoreError):
        validate_key("../x")


@pytest.mark.parametrize("value", [None, b"a/b", 3, ["a"]], ids=repr)
def test_non_text_keys_are_refused(value: object) -> None:
    with pytest.raises(InvalidKey, match="must be text"):
        validate_key(value)  # type: ignore[arg-type]


def test_key_at_the_length_limit_is_accepted_and_one_more_is_not() -> None:
    assert len(validate_key("a/" + "b" * (MAX_KEY_LENGTH - 2))) == MAX_KEY_LENGTH
    with pytest.raises(InvalidKey, match=str(MAX_KEY_LENGTH)):
        validate_key("a/" + "b" * (MAX_KEY_LENGTH - 1))


def test_length_limit_counts_characters() -> None:
    # 1024 characters of 4 UTF-8 bytes each: the rule is about characters.
    assert validate_key("😀" * MAX_KEY_LENGTH) == "😀" * MAX_KEY_LENGTH


def test_empty_key_message() -> None:
    with pytest.raises(InvalidKey, match="empty"):
        validate_key("")


@pytest.mark.parametrize(
    ("key", "escape"),
    [
        ("a\x00b", "\\x00"),
        ("a\nb", "\\n"),
        ("a\rb", "\\r"),
        ("a\tb", "\\t"),
        ("a\x1bb", "\\x1b"),
        ("a\x7fb", "\\x7f"),
    ],
    ids=repr,
)
def test_control_character_message_escapes_the_key(key: str, escape: str) -> None:
    with pytest.raises(InvalidKey) as info:
        validate_key(key)
    message = str(info.value)
    assert "control characters" in message
    # The raw character never reaches a log line or a page; a visible escape of it does.
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in message), message
    assert escape in message, message


def test_message_names_the_offending_key_escaped_and_shortened() -> None:
    key = "../" + "x" * 500
    with pytest.raises(InvalidKey) as info:
        validate_key(key)
    message = str(info.value)
    assert "'../xxx" in message
    assert len(message) < 200  # the key is cut, not dumped whole


def test_escaped_message_for_non_ascii_key_stays_ascii() -> None:
    with pytest.raises(InvalidKey) as info:
        validate_key("é/../\x85x")
    assert str(info.value).isascii()
