"""Preprocessing rules of `services.text` (shared by training and scoring)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.model.text import loose, preprocess, stopwords, tokens

ROOT = Path(__file__).resolve().parents[3]
NEGATIONS = ("not", "no", "never", "nor", "nothing", "nobody", "none", "nowhere", "neither")


def test_lowercases_everything() -> None:
    assert preprocess("Hello WORLD Great") == "hello world great"


@pytest.mark.parametrize(
    "url",
    ["http://example.com/a", "https://example.org/path?q=1&r=2", "www.example.net", "HTTPS://EXAMPLE.COM/X"],
)
def test_urls_become_the_url_token(url: str) -> None:
    assert tokens(f"look {url} today") == ["look", "URL", "today"]


def test_url_token_is_distinct_from_the_word_url() -> None:
    # The placeholder is upper case; a typed "URL" is lowercased like every word.
    assert tokens("the URL http://x.io") == ["url", "URL"]


def test_mentions_become_the_user_token() -> None:
    assert tokens("@bob thanks @alice_2") == ["USER", "thanks", "USER"]


def test_an_email_address_is_not_a_mention() -> None:
    assert "USER" not in tokens("mail bob@example.com")


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("😀", "emoji_grinning_face"),
        ("🎉", "emoji_party_popper"),
        ("😢", "emoji_crying_face"),
        ("❤️", "emoji_red_heart"),
        ("👍🏽", "emoji_thumbs_up_medium_skin_tone"),
    ],
)
def test_emoji_become_named_tokens(text: str, token: str) -> None:
    assert tokens(f"today {text}") == ["today", token]


def test_emoji_glued_to_words_are_split_off() -> None:
    assert tokens("great😀day") == ["great", "emoji_grinning_face", "day"]


@pytest.mark.parametrize(
    ("face", "token"),
    [
        (":)", "emosmile"),
        (":-)", "emosmile"),
        (":D", "emosmile"),
        ("XD", "emosmile"),
        (":(", "emosad"),
        (":'(", "emocry"),
        ("<3", "emolove"),
        (";)", "emowink"),
        ("</3", "emobrokenheart"),
    ],
)
def test_emoticons_become_emo_tokens(face: str, token: str) -> None:
    assert tokens(f"day {face}") == ["day", token]


def test_emoticon_glued_to_a_word() -> None:
    assert tokens("good;)") == ["good", "emowink"]


def test_letters_repeated_three_times_or_more_are_squeezed_to_two() -> None:
    assert tokens("sooooo happppy yesss") == ["soo", "happy", "yess"]


def test_two_repeated_letters_are_left_alone() -> None:
    assert tokens("good coffee") == ["good", "coffee"]


def test_digits_are_not_squeezed() -> None:
    assert tokens("scored 1000000 on 2222") == ["scored", "1000000", "2222"]


def test_punctuation_other_than_question_and_exclamation_marks_is_removed() -> None:
    assert tokens("wow... great, fine; (really) e-mail") == ["wow", "great", "fine", "really", "email"]


def test_question_and_exclamation_marks_become_tokens_a_run_of_them_one() -> None:
    assert tokens("wow!!! great, fine. (really?) e-mail") == [
        "wow", "EXCLAIM", "great", "fine", "really", "QUESTION", "email"
    ]  # fmt: skip
    assert tokens("really?!?") == ["really", "QUESTION", "EXCLAIM", "QUESTION"]
    assert tokens("a question? and ! again !") == ["question", "QUESTION", "EXCLAIM", "EXCLAIM"]


def test_the_punctuation_tokens_are_distinct_from_typed_words() -> None:
    assert tokens("Question: exclaim!") == ["question", "exclaim", "EXCLAIM"]


@pytest.mark.parametrize("text", ["!!!", "? ? ?", "?!", "... !!! ..."])
def test_punctuation_alone_leaves_nothing(text: str) -> None:
    assert preprocess(text) == ""


@pytest.mark.parametrize(
    "text",
    ["wow!!! great, fine. (really?) e-mail", "@bob thanks @alice_2!", "why?!? :) http://x.io/?a=1!", "no ? here"],
)
def test_version_1_rules_are_version_2_without_the_punctuation_tokens(text: str) -> None:
    assert preprocess(text, 1) == loose(preprocess(text))
    assert "QUESTION" not in preprocess(text, 1) and "EXCLAIM" not in preprocess(text, 1)


def test_tokens_shorter_than_two_characters_are_dropped() -> None:
    assert tokens("a b c x 5 ok go") == ["ok", "go"]


def test_stopwords_are_dropped() -> None:
    assert tokens("the meeting was about the budget") == ["meeting", "budget"]
    assert {"the", "was", "about"} <= stopwords()


@pytest.mark.parametrize("word", ["not", "no", "never", "nor", "nothing"])
def test_negation_words_are_kept(word: str) -> None:
    assert tokens(f"{word} happy") == [word, "happy"]


def test_negations_survive_upper_case() -> None:
    assert tokens("NOT HAPPY, NOTHING works") == ["not", "happy", "nothing", "works"]


@pytest.mark.parametrize("word", ["don't", "can't", "won't", "isn't", "wasn't", "shouldn't", "ain't", "Don't"])
def test_nt_contractions_become_not(word: str) -> None:
    assert tokens(f"I {word} like it") == ["not", "like"]


@pytest.mark.parametrize("word", ["dont", "cant", "wont", "isnt", "DONT"])
def test_negations_typed_without_apostrophe_become_not(word: str) -> None:
    assert tokens(f"i {word} like it") == ["not", "like"]


@pytest.mark.parametrize("word", ["don’t", "can’t", "won’t", "isn’t"])
def test_contractions_with_a_curly_apostrophe_become_not(word: str) -> None:
    assert tokens(f"I {word} like it") == ["not", "like"]


@pytest.mark.parametrize("text", ["", " ", "   \n\t  ", "\u00a0"])
def test_empty_or_whitespace_text_gives_an_empty_string(text: str) -> None:
    assert preprocess(text) == ""


def test_text_of_only_stopwords_and_short_tokens_gives_an_empty_string() -> None:
    assert preprocess("I am a the of") == ""


def test_html_and_markdown_stay_inert_word_tokens() -> None:
    out = tokens("<script>alert('x')</script> **Bold** _it_ # Title `code` <a href='y'>link</a>")
    assert out == ["script", "alert", "script", "bold", "title", "code", "href", "link"]
    assert all(re.fullmatch(r"\w+", t) for t in out)


def test_preprocess_joins_tokens_with_single_spaces() -> None:
    text = "Sooo happy :)   with the NEW tool,\n@team 🎉"
    assert preprocess(text) == " ".join(tokens(text)) == "soo happy emosmile new tool USER emoji_party_popper"


def test_a_url_never_leaks_its_parts_into_the_tokens() -> None:
    out = tokens("see https://example.com/Secret-Path?token=abc123 today")
    assert out[0] == "see"
    assert out[-1] == "today"
    assert len(out) == 3
    assert not {"example", "com", "secret", "path", "token", "abc123", "https"} & set(out)


def test_the_stopword_list_holds_no_negation() -> None:
    words = stopwords()
    assert len(words) > 50  # the shipped list was read
    assert not set(NEGATIONS) & words
    assert not {w for w in words if w.endswith(("n't", "n’t"))}
    assert not {"dont", "cant", "wont", "isnt", "didnt", "doesnt", "wasnt"} & words


def test_nothing_calls_nltk_download() -> None:
    sources = [*(ROOT / "services").rglob("*.py"), *(ROOT / "dashboard").rglob("*.py"), *(ROOT / "pages").rglob("*.py")]
    sources.append(ROOT / "app.py")
    sources = [p for p in sources if p.is_file()]
    assert len(sources) > 10  # the tree really was scanned
    offenders = [
        str(p.relative_to(ROOT))
        for p in sources
        if re.search(r"nltk\s*\.\s*download|from\s+nltk\s+import\s+download|nltk\.downloader", p.read_text("utf-8"))
    ]
    assert offenders == []


def test_chunk_cache_is_bounded_and_skips_long_chunks(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from services.model import text

    monkeypatch.setattr(text, "_CHUNKS", {})
    monkeypatch.setattr(text, "_CACHE_SIZE", 3)
    blob = "abcdefghij" * 5  # longer than _CACHED_CHUNK_CHARS
    assert len(blob) > text._CACHED_CHUNK_CHARS
    assert text.preprocess(f"happy {blob}") == f"happy {blob}"
    assert blob not in text._CHUNKS and text._CHUNKS["happy"] == "happy"
    assert text.preprocess("the sad dogs barked loudly") == "sad dogs barked loudly"
    assert len(text._CHUNKS) <= 3  # started over when full
    assert text.preprocess("the sad dogs barked loudly") == "sad dogs barked loudly"  # same with a warm cache


def test_prepared_tokens_read_back_as_the_reader_saw_them() -> None:
    from services.model.text import readable

    prepared = preprocess("Quiet on-call 😴 see https://x.example @bob ?!").split()
    assert [readable(t) for t in prepared] == ["quiet", "oncall", "😴", "see", "a link", "a mention", "?", "!"]
    assert readable("emoji_no_such_emoji_name") == "no such emoji name"  # its name when it cannot be drawn
