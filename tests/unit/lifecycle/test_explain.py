"""Why this label: the words that pushed the live model, by leaving one word out."""

from __future__ import annotations

from services.lifecycle.endpoint import LocalEndpoint
from services.lifecycle.explain import why
from services.lifecycle.registry import model_cache_dir
from services.model.prediction import prepare
from services.store.local import LocalStore

MESSAGES = [
    "Slept badly and dreading the ward round, honestly miserable tonight",
    "Lovely quiet shift, really proud of how the team handled the rush",
    "not great today, the queue was brutal",
    "Finished the migration and it went perfectly",
]


def test_a_word_that_flips_the_label_is_in_the_explanation(bootstrap_store: LocalStore) -> None:
    live = LocalEndpoint(bootstrap_store, model_cache_dir(bootstrap_store))
    checked = 0
    for text in MESSAGES:
        reason = why(live, text)
        tokens = prepare(text).split()
        without = [" ".join(tokens[:i] + tokens[i + 1 :]) for i in range(len(tokens))]
        _, scored = live.score(without)
        flips = {tok for tok, p in zip(tokens, scored, strict=True) if p.label != reason.label}
        assert len(reason.words) <= 3
        if flips and len(flips) <= 3:
            assert flips <= set(reason.words), (text, flips, reason)
            checked += 1
    assert checked  # at least one message has a word it cannot keep its label without


def test_a_message_with_no_words_left_explains_nothing(bootstrap_store: LocalStore) -> None:
    reason = why(LocalEndpoint(bootstrap_store, model_cache_dir(bootstrap_store)), "...")
    assert reason.words == [] and reason.version
