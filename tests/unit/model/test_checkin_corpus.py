"""Pulse's own check-in corpus: labels, the fixed split, balance, and no gold text anywhere in training."""

from __future__ import annotations

from collections import Counter

import pytest

from services.model.corpus import CHECKIN_PARTS, LABELS, NOT_SENTIMENT, checkin_part, checkins
from services.model.text import loose, preprocess

KINDS = {
    "plain", "short", "long", "typo", "slang", "emoji", "question", "plan", "negation", "mixed", "sarcasm",
    "hyperbole", "crisis_direct", "crisis_indirect", "other_language", "noise", "report",
}  # fmt: skip
PROGRAMS = {"support-desk", "night-nurses", "student-cohort", "peer-support", "engineering-team"}


def key(text: str) -> str:
    """The text as the model sees it, "?"/"!" aside: the gold set's own matching key."""
    return loose(preprocess(text))


def test_every_row_is_well_formed() -> None:
    rows = checkins()
    assert len(rows) >= 2000
    assert {r.label for r in rows} == {*LABELS, NOT_SENTIMENT}
    assert {r.part for r in rows} == set(CHECKIN_PARTS)
    assert {r.program for r in rows} == PROGRAMS
    assert {k for r in rows for k in r.kinds} <= KINDS
    assert all(r.text.strip() for r in rows)
    assert all(r.label == "negative" for r in rows if r.crisis)  # a writer at risk is not having a neutral day


def test_no_message_is_in_the_corpus_twice_even_after_preprocessing() -> None:
    keys = [key(r.text) for r in checkins() if key(r.text)]
    assert [k for k, n in Counter(keys).items() if n > 1] == []


def test_the_gold_part_is_balanced_and_large_enough() -> None:
    gold = checkin_part("gold")
    counts = Counter(r.label for r in gold)
    assert len(gold) >= 500 and set(counts) == set(LABELS)
    assert max(counts.values()) - min(counts.values()) <= len(gold) * 0.02
    assert {r.program for r in gold} == PROGRAMS
    crisis = [r for r in checkin_part("gold", source=None) if r.crisis]
    look_alikes = [r for r in checkin_part("gold", source="crisis") if not r.crisis]
    assert len(crisis) >= 100 and len(look_alikes) >= 50


def test_unclear_messages_are_never_in_a_part_that_trains_or_scores() -> None:
    for part in ("train", "gold"):
        assert all(r.label != NOT_SENTIMENT for r in checkin_part(part, source=None, sentiment_only=False))
    assert any(r.label == NOT_SENTIMENT for r in checkin_part("demo", source=None, sentiment_only=False))


@pytest.mark.parametrize("other", ["train", "demo"])
def test_no_gold_text_in_another_part(other: str) -> None:
    gold = {key(r.text) for r in checkin_part("gold", source=None)}
    assert [r.text for r in checkin_part(other, source=None, sentiment_only=False) if key(r.text) in gold] == []


def test_an_unknown_part_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown part"):
        checkin_part("test")
