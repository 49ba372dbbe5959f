"""What every model family gives and takes: the label set, a `Prediction`, the `Model` protocol,
and the one way a message is prepared for a model."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from services.model.text import preprocess

LABELS = ("negative", "neutral", "positive")


PREFIX = "__label__"


@dataclass(slots=True)  # not frozen: frozen dataclasses are slower to build, and ingest builds many
class Prediction:
    """What the model thinks of one message. Treat it as read-only."""

    label: str
    confidence: float
    probs: dict[str, float] = field(default_factory=dict)

    @property
    def margin(self) -> float:
        """Gap between the two most likely labels (small = unsure)."""
        top = [*sorted(self.probs.values(), reverse=True), 0.0, 0.0]
        return top[0] - top[1]


# An empty message tells the model nothing: it always goes to a human.
UNREADABLE = Prediction("neutral", 0.0, dict.fromkeys(LABELS, 0.0))


def score_readable(prepared: Sequence[str], score: Callable[[list[str]], list[Prediction]]) -> list[Prediction]:
    """`score` the non-empty prepared texts in one batch; an empty one is `UNREADABLE`."""
    out: list[Prediction] = [UNREADABLE] * len(prepared)
    idx = [i for i, p in enumerate(prepared) if p]
    if idx:
        with gc_paused():
            scored = score([prepared[i] for i in idx])
        for i, prediction in zip(idx, scored, strict=True):
            out[i] = prediction
    return out


# How a model expects its text prepared (its card's `preprocessing`): Pulse's own rules, or what a
# model trained elsewhere saw: lower-cased words, or the words as written (whitespace collapsed).
PULSE_PREPROCESSING = "pulse-v2"
PREPROCESSINGS = (PULSE_PREPROCESSING, "lowercase", "none")


def prepare(text: str, max_chars: int = 2000, preprocessing: str = PULSE_PREPROCESSING) -> str:
    """What the model sees of a message: its first `max_chars` characters, preprocessed as the
    model expects (one line of space-separated tokens)."""
    if preprocessing == PULSE_PREPROCESSING:
        return preprocess(text[:max_chars])
    if preprocessing == "lowercase":
        return " ".join(text[:max_chars].lower().split())
    if preprocessing == "none":
        return " ".join(text[:max_chars].split())
    raise ValueError(f"unknown preprocessing {preprocessing!r}; one of {', '.join(PREPROCESSINGS)}")


def apply_temperature(dist: dict[str, float], temperature: float) -> dict[str, float]:
    """Soften (T > 1) or sharpen (T < 1) a probability distribution: p_i ** (1/T), renormalised."""
    if temperature == 1.0:
        return dist
    powered = {k: max(v, 1e-12) ** (1.0 / temperature) for k, v in dist.items()}
    total = sum(powered.values())
    return {k: v / total for k, v in powered.items()}


def temper_rows(dist: Any, temperature: float) -> Any:
    """`apply_temperature` for a matrix of probability rows."""
    if temperature == 1.0:
        return dist
    import numpy as np

    powered = np.maximum(dist, 1e-12) ** (1.0 / temperature)
    return powered / powered.sum(axis=1, keepdims=True)


def predictions(dist: Any) -> list[Prediction]:
    """One `Prediction` per row of a probability matrix whose columns are LABELS."""
    best, rows = dist.argmax(axis=1).tolist(), dist.tolist()
    neg, neu, pos = LABELS
    return [
        Prediction(LABELS[b], row[b], {neg: row[0], neu: row[1], pos: row[2]})
        for b, row in zip(best, rows, strict=True)
    ]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Build many small objects without the cycle collector. Scoring a large batch allocates
    containers by the million, which set off the collector again and again over everything alive
    in the process; none of them can form a cycle."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def prepare_all(texts: Sequence[str], max_chars: int, preprocessing: str = PULSE_PREPROCESSING) -> list[str]:
    """`prepare` for a batch."""
    with gc_paused():
        return [prepare(t, max_chars, preprocessing) for t in texts]


class Model(Protocol):
    """What every model family offers: fastText (`SentimentModel`) and linear (`LinearModel`)."""

    family: str
    temperature: float
    max_chars: int
    preprocessing: str  # one of PREPROCESSINGS: how `predict` prepares raw texts

    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...

    def predict_prepared(self, prepared: Sequence[str]) -> list[Prediction]: ...

    def with_temperature(self, temperature: float) -> Model: ...

    def save(self, path: Path) -> None: ...
