"""Why the model gave a message its label: the few words whose removal costs that label the most
probability (leave one word out), for any family and any endpoint. Shown as plain text beside the
message on the review page, so an annotator sees what the model leant on without reading it as a
verdict."""

from __future__ import annotations

from dataclasses import dataclass

from services.lifecycle.endpoint import Endpoint
from services.model.prediction import prepare
from services.model.text import readable

MAX_WORDS = 60  # longer messages: the first 60 prepared words are weighed (one scoring call in all)
MIN_DROP = 0.02  # a word whose removal moves the label's probability less than this explains nothing


@dataclass(frozen=True)
class Why:
    version: str  # the model that was asked
    label: str  # its label for the whole message
    words: list[str]  # at most `top`, strongest first; empty when no single word weighs


def why(endpoint: Endpoint, text: str, *, max_chars: int = 2000, top: int = 3) -> Why:
    """The `top` words that pushed the live model to its label for `text` (one scoring call)."""
    tokens = prepare(text, max_chars, endpoint.preprocessing()).split()[:MAX_WORDS]
    variants = [" ".join(tokens)] + [" ".join(tokens[:i] + tokens[i + 1 :]) for i in range(len(tokens))]
    version, scored = endpoint.score(variants)
    label, base = scored[0].label, scored[0].confidence
    drops: dict[str, float] = {}
    for token, p in zip(tokens, scored[1:], strict=True):
        drop = base - p.probs.get(label, 0.0)
        shown = readable(token)
        if drop >= MIN_DROP and drop > drops.get(shown, 0.0):
            drops[shown] = drop
    words = sorted(drops, key=lambda w: -drops[w])[:top]
    return Why(version=version, label=label, words=words)
