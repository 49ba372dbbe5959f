"""Crisis language: the three signals (phrase list, shipped patterns, learned signal), the contexts
the patterns leave alone, and what a finding may say (never the words)."""

from __future__ import annotations

import pytest

from services.model.corpus import checkin_part
from services.model.text import loose, preprocess
from services.monitoring.crisis import (
    LEARNED_CRITICAL,
    Finding,
    find_crisis,
    learned_signal,
    matching_pattern,
    patterns,
)
from services.monitoring.rules import default_phrases

PHRASES = default_phrases()


def signal(text: str, **kw: object) -> str | None:
    (found,) = find_crisis([text], PHRASES, **kw)  # type: ignore[arg-type]
    return None if found is None else found.signal


def test_explicit_words_are_the_phrase_lists() -> None:
    assert signal("honestly I want to kill myself") == "phrase list"


@pytest.mark.parametrize(
    "text",
    [
        "I don't know how much longer I can keep doing this",  # the demo message
        "Everyone would be better off if I just wasn't around.",
        "gave my guitar to my brother today. won't be needing it",
        "Lately I go to sleep hoping I won't wake up.",
        "no one would even notice if I was gone",
        "I'm a burden on everyone at home",
    ],
)
def test_indirect_warning_signs_are_found_by_the_patterns(text: str) -> None:
    assert (signal(text, learned=False) or "").startswith("pattern: ")


@pytest.mark.parametrize(
    "text",
    [
        "I spent a long time feeling like a burden to everyone. Tonight my brother rang me for advice.",
        "A patient told me she wished she wouldn't wake up; I stayed with her and called the liaison team.",
        "Started the day anxious, ended it celebrating with the group 🍻",
        "Fixed it and wrote a note in the README so nobody else falls into it.",
        "Don't know how much longer I can keep doing this rota.",
    ],
)
def test_the_patterns_leave_the_past_other_peoples_words_and_figures_of_speech_alone(text: str) -> None:
    assert matching_pattern(text) is None


def test_a_pattern_in_a_later_sentence_still_counts_after_a_safe_one() -> None:
    assert matching_pattern("I used to love this job. Now I'm just a burden on the team.") is not None


def test_every_pattern_is_a_valid_named_expression() -> None:
    assert len(patterns()) >= 15
    assert all(p.name and p.regex.pattern for p in patterns())


def test_the_learned_signal_reads_crisis_language_it_was_not_taught_word_for_word() -> None:
    crisis, ordinary = (
        "i just want everything to be over. i'm so tired of being here",
        "Lovely walk at lunch, then a quiet afternoon",
    )
    low, high = learned_signal().scores([ordinary, crisis])
    assert high > low and high >= 0.5


def test_the_learned_signal_never_trains_on_gold() -> None:
    """It is trained on the train part only: no gold message, even after preprocessing."""
    train = {loose(preprocess(r.text)) for r in checkin_part("train", source=None, sentiment_only=False)}
    assert not train & {loose(preprocess(r.text)) for r in checkin_part("gold", source=None, sentiment_only=False)}


def test_a_finding_names_the_signal_never_the_words() -> None:
    texts = ["i want to end it all tonight", "Everyone would be better off without me."]
    for text, found in zip(texts, find_crisis(texts, PHRASES), strict=True):
        assert found is not None and text.lower()[:12] not in found.reason.lower()


def test_nothing_is_found_in_ordinary_days_and_an_empty_batch_is_fine() -> None:
    assert find_crisis([], PHRASES) == []
    assert find_crisis(["Closed 30 tickets, nice team lunch.", "Handover at 7, four admissions."], PHRASES) == [
        None,
        None,
    ]


def test_what_only_the_learned_signal_finds_less_surely_is_a_warning_to_read_today() -> None:
    unsure, sure = Finding("learned signal", LEARNED_CRITICAL - 0.1), Finding("learned signal", LEARNED_CRITICAL)
    assert not unsure.critical and "read it today" in unsure.reason
    assert sure.critical and Finding("pattern: feeling a burden").critical and Finding("phrase list").critical
