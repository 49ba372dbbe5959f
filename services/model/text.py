"""Text preprocessing: one function, used both to build training data and to score.

Rules: lowercase; URLs -> URL; @mentions -> USER; emoji and emoticons -> word tokens;
letters repeated 3+ times squeezed to two; "?" -> QUESTION and "!" -> EXCLAIM (a run of them
one token); other punctuation removed; tokens shorter than two characters and stopwords
dropped -- negations are kept and "n't" becomes "not".
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import emoji


@cache
def _tokenizer() -> Any:
    # Imported on first use: nltk takes seconds to import, which every CLI command and the model
    # server would otherwise pay at start. Text is lowercased before tokenizing, so the tokenizer
    # need not test every token for an emoticon to spare its case; phone-number matching is off
    # (slow, and no use for sentiment).
    from nltk.tokenize import TweetTokenizer

    return TweetTokenizer(preserve_case=True, reduce_len=False, match_phone_numbers=False)


_REPEATS = re.compile(r"([^\W\d_])\1{2,}")  # letters only, not digits
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_NON_WORD = re.compile(r"[^\w]+")

# The preprocessing rules have versions, so a dataset is rebuilt by the rules it was built with
# (its manifest records them). 1 dropped "?" and "!" with the rest of the punctuation. 2 keeps
# them as tokens: a question is a strong sign of a neutral message and "!" of a strong feeling
# (the model-quality benchmark compares them). A model trained under 1 and scored under 2 barely
# moves (the new tokens are unknown to it), so live models keep working until retrained.
PREPROCESSING = 2
_PUNCTUATION_WORDS = {"?": "QUESTION", "!": "EXCLAIM"}
_V2_ONLY = frozenset(_PUNCTUATION_WORDS.values())

# Emoticons, looked up in lower case.
_EMOTICONS = {
    "smile": (":)", ":-)", ":]", "=)", ":d", ":-d", "=d", "xd", ":p", ":-p", "(:", "^^", "^_^"),
    "wink": (";)", ";-)", ";d"),
    "sad": (":(", ":-(", ":[", "=(", "):", ":/", ":-/", ":|", ":\\"),
    "cry": (":'(", ":'-(", ";(", "t_t"),
    "love": ("<3", ":*", ":-*"),
    "brokenheart": ("</3",),
}
_EMOTICON_WORD = {face: f"emo{word}" for word, faces in _EMOTICONS.items() for face in faces}

# Contractions whose stem is not the verb with "n't" cut off.
_NEGATED = {"can't": "can", "won't": "will", "shan't": "shall", "ain't": "is"}
# Negations typed without the apostrophe, as people do in quick messages.
_BARE_NEGATIONS = frozenset(
    "dont cant wont isnt arent wasnt werent didnt doesnt hasnt havent hadnt "
    "couldnt shouldnt wouldnt mustnt neednt aint".split()
)


@cache
def stopwords() -> frozenset[str]:
    """The shipped stopword list (negations are not in it)."""
    lines = resources.files("services.model").joinpath("stopwords.txt").read_text("utf-8").splitlines()
    return frozenset(w.strip() for w in lines if w.strip() and not w.startswith("#"))


def _emoji_word(chars: str, data: dict[str, str]) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", data["en"].strip(":").lower()).strip("_")
    return f" emoji_{name} "


def tokens(text: str) -> list[str]:
    """The tokens of `text` after all preprocessing rules."""
    return preprocess(text).split()  # no token holds a space


def preprocess(text: str, version: int = PREPROCESSING) -> str:
    """Normalise a message into the space-separated token string the model sees (by the rules
    of `version`, see PREPROCESSING)."""
    # Curly apostrophes become straight before tokenizing, or "don’t" splits into don / ’ / t.
    text = text.lower().replace("\u2019", "'")
    if "http" in text or "www." in text:  # the regex scan costs more than these two tests
        text = _URL.sub(" httpurl ", text)
    # No token of the tokenizer (nor an emoji) spans whitespace, so each whitespace-separated chunk
    # is tokenized on its own, and a chunk seen before (most words repeat) costs one dict lookup:
    # far faster than tokenizing every message whole, with the same tokens. The loop stays in C
    # (map, `in`, join) unless a chunk is new.
    chunks = text.split()
    parts = list(map(_CHUNKS.get, chunks))
    if None in parts:
        parts = [_chunk_text(c) if p is None else p for p, c in zip(parts, chunks, strict=True)]
    out = " ".join(filter(None, parts))
    if "QUESTION" in out or "EXCLAIM" in out:  # no other token has these capitals
        if version < 2:
            return loose(out)
        if not out.replace("QUESTION", "").replace("EXCLAIM", "").strip():
            return ""  # punctuation alone says nothing readable: left empty, as before
    return out


_READABLE = {"QUESTION": "?", "EXCLAIM": "!", "URL": "a link", "USER": "a mention"}


def readable(token: str) -> str:
    """A prepared token as a reader would recognise it in the message: "?", "!", "a link", "a
    mention", the emoji itself (or its name when it cannot be drawn back), else the word."""
    if token in _READABLE:
        return _READABLE[token]
    if token.startswith("emoji_"):
        name = token.removeprefix("emoji_")
        drawn = emoji.emojize(f":{name}:")
        return drawn if drawn != f":{name}:" else name.replace("_", " ")
    return token


def loose(prepared: str) -> str:
    """A prepared text without the "?" and "!" tokens: by the rules of version 1, and the key on
    which a copy of a gold message with an extra "!" is still a copy."""
    return " ".join(t for t in prepared.split() if t not in _V2_ONLY)


# Chunk -> its tokens joined by spaces ("" when none is kept). Words are short: a chunk longer than
# _CACHED_CHUNK_CHARS (a pasted blob) is tokenized each time rather than held in memory, and the
# cache starts over when full (a cold cache costs one tokenization per distinct chunk).
_CHUNKS: dict[str, str] = {}
_CACHED_CHUNK_CHARS = 40
_CACHE_SIZE = 200_000


def _chunk_text(chunk: str) -> str:
    joined = " ".join(_chunk_tokens(chunk))
    if len(chunk) <= _CACHED_CHUNK_CHARS:
        if len(_CHUNKS) >= _CACHE_SIZE:
            _CHUNKS.clear()
        _CHUNKS[chunk] = joined
    return joined


def _chunk_tokens(chunk: str) -> tuple[str, ...]:
    if not chunk.isascii():  # replace_emoji is slow, so it runs once per distinct chunk
        chunk = emoji.replace_emoji(chunk, replace=_emoji_word)
    chunk = _REPEATS.sub(r"\1\1", chunk)  # within a chunk: a run of letters never spans whitespace
    stop = stopwords()
    out: list[str] = []
    append = out.append
    try:
        raw_tokens = _tokenizer().tokenize(chunk)
    except TimeoutError:  # NLTK's ReDoS guard tripped on a pathological chunk
        raw_tokens = [chunk]
    for tok in raw_tokens:
        if tok in _EMOTICON_WORD:  # before the word path: "xd" is an emoticon
            append(_EMOTICON_WORD[tok])
        elif tok == "httpurl":
            append("URL")
        elif tok.isalnum():  # the common case: a plain word, nothing to strip
            word = "not" if tok in _BARE_NEGATIONS else tok
            if len(word) >= 2 and word not in stop:
                append(word)
        elif tok[0] == "@" and len(tok) > 1:
            append("USER")
        elif tok.startswith("emoji_"):
            append(tok)
        elif tok in _PUNCTUATION_WORDS:  # the tokenizer splits "?!!" into "?", "!", "!"
            word = _PUNCTUATION_WORDS[tok]
            if not out or out[-1] != word:
                append(word)
        else:
            if tok.endswith("n't"):
                pieces = [_NON_WORD.sub("", _NEGATED.get(tok, tok[:-3])), "not"]
            else:
                word = _NON_WORD.sub("", tok).replace("_", "")
                pieces = ["not" if word in _BARE_NEGATIONS else word]
            out.extend(p for p in pieces if len(p) >= 2 and p not in stop)
    return tuple(out)
