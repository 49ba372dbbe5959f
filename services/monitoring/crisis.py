"""Crisis language: which check-ins raise a critical alert at once, whatever the model's label.

Three signals; any one is enough:
- the phrase list (`Rules.crisis_phrases.phrases`, edited by admins on the Alerts page): explicit words
  ("kill myself", "suicidal"), matched on whole words whatever the spelling (`rules.normalise`);
- the shipped patterns (`crisis_patterns.txt`): indirect language that suicide-prevention practice
  knows as warning signs (wishing not to wake up, being a burden, no one would notice, saying goodbye,
  giving things away, no way out), written as regular expressions over the normalised text;
- a learned signal: logistic regression over word and character n-grams, trained on the crisis
  part of Pulse's check-in corpus (`services/model/data/checkins/`, the train part only: crisis
  messages against every-day check-ins and look-alikes such as "this rota is killing me"). It is
  trained in the process on first use (deterministic, about a second) and never sees the gold part.

A missed crisis is the worst thing Pulse can do, so the learned signal's threshold leans towards
recall, and what it alone finds with less certainty is raised as a warning rather than left out.
tests/benchmarks/test_crisis_detection.py reports recall on the corpus's crisis gold part and false
alarms per 1,000 ordinary check-ins, signal by signal. Message text never leaves this module:
a finding names the signal, never the words.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from services.model.corpus import checkin_part
from services.monitoring.rules import crisis_matcher, normalise

# The learned signal raises an alert at or above LEARNED_THRESHOLD; below LEARNED_CRITICAL the alert is
# a warning ("possible crisis language: read it today"), at or above it critical, like the phrase list
# and the patterns. On the corpus's gold part (tests/benchmarks/test_crisis_detection.py), a single
# threshold of 0.8 catches 0.82 of crisis messages at 8.7 false alarms per 1,000 ordinary check-ins and
# one of 0.6 catches 0.94 at 17.5: the warning tier keeps the recall without crying wolf as loudly.
LEARNED_THRESHOLD = 0.6
LEARNED_CRITICAL = 0.8


@dataclass(frozen=True)
class Pattern:
    name: str  # what it looks for, in words an alert can show ("feeling a burden")
    regex: re.Pattern[str]


@dataclass(frozen=True)
class Finding:
    """Why a check-in reads as crisis language: the signal, and for the learned one its score."""

    signal: str  # "phrase list", "pattern: <name>" or "learned signal"
    score: float = 1.0

    @property
    def critical(self) -> bool:
        return self.signal != "learned signal" or self.score >= LEARNED_CRITICAL

    @property
    def reason(self) -> str:
        if self.signal != "learned signal":
            return f"a check-in holds crisis or self-harm language ({self.signal})"
        if self.critical:
            return f"a check-in reads as crisis language to the learned crisis signal ({self.score:.2f})"
        return f"possible crisis language, by the learned crisis signal ({self.score:.2f}): read it today"


@functools.cache
def patterns() -> tuple[Pattern, ...]:
    """The shipped patterns (services/monitoring/crisis_patterns.txt): `name: regex` a line."""
    text = resources.files("services.monitoring").joinpath("crisis_patterns.txt").read_text("utf-8")
    out = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, regex = line.partition(":")
            out.append(Pattern(name.strip(), re.compile(regex.strip())))
    return tuple(out)


# A sentence that tells of the past from a safe place, or reports someone else's words, is not the
# writer's crisis now ("I spent a long time feeling like a burden", "a patient told me she wished she
# wouldn't wake up"): the shipped patterns do not fire on it. The phrase list fires whatever the context.
_NOT_NOW = re.compile(
    r"\b(used to|spent (a long time|years|months)|there was a (time|winter|year|period|point)|back (then|when)|"
    r"(a|one|two|three|\d+) (years?|months?) (ago|free|clean|since)|last (year|winter|spring|summer|autumn)|"
    r"free of|since i last|in recovery|not anymore|no longer)\b|"
    r"\b(he|she|they|patient|colleague|client|customer|caller|friend|resident|student|mate) "
    r"(told me|said|says|mentioned|admitted|disclosed|was saying|keeps saying)\b"
)
_SENTENCE = re.compile(r"(?<=[.!?;\n])\s+|\n+")


def matching_pattern(text: str) -> str | None:
    """The name of the first shipped pattern one of `text`'s sentences holds (not one told of the
    past or reported from someone else), or None."""
    for sentence in _SENTENCE.split(text):
        norm = normalise(sentence)
        if not norm or _NOT_NOW.search(norm):
            continue
        for pattern in patterns():
            if pattern.regex.search(norm):
                return pattern.name
    return None


class LearnedSignal:
    """P(crisis) for texts, from a logistic regression trained on the corpus's crisis train part."""

    def __init__(self, texts: Sequence[str], crisis: Sequence[bool]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_union

        self._features: Any = make_union(
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, preprocessor=normalise),
            TfidfVectorizer(
                analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2, preprocessor=normalise
            ),
        )
        self._model: Any = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
        self._model.fit(self._features.fit_transform(list(texts)), [int(c) for c in crisis])

    def scores(self, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        return [float(p) for p in self._model.predict_proba(self._features.transform(list(texts)))[:, 1]]


@functools.cache
def learned_signal() -> LearnedSignal:
    """The learned signal, trained once per process on the corpus's train part."""
    rows = checkin_part("train", source=None, sentiment_only=False)
    return LearnedSignal([r.text for r in rows], [r.crisis for r in rows])


def find_crisis(
    texts: Sequence[str], phrases: Sequence[str], *, learned: bool = True, threshold: float = LEARNED_THRESHOLD
) -> list[Finding | None]:
    """For each text, the first signal that reads it as crisis language (phrase list, then the shipped
    patterns, then the learned signal), or None."""
    matcher = crisis_matcher(tuple(phrases))
    found: list[Finding | None] = []
    for text in texts:
        if matcher is not None and matcher.search(normalise(str(text))):
            found.append(Finding("phrase list"))
        elif (pattern := matching_pattern(str(text))) is not None:
            found.append(Finding(f"pattern: {pattern}"))
        else:
            found.append(None)
    rest = [i for i, f in enumerate(found) if f is None]
    if learned and rest:
        for i, score in zip(rest, learned_signal().scores([str(texts[i]) for i in rest]), strict=True):
            if score >= threshold:
                found[i] = Finding("learned signal", round(score, 2))
    return found
