"""The training pipeline on small data: candidates compared by stratified cross-validation over
train + validation (one 20% slice of a few hundred rows is too noisy to choose by), and the
linear model's C among the candidates."""

from __future__ import annotations

import random
from collections import Counter

from services.model.fasttext import fasttext_line
from services.model.params import TrainParams
from services.model.pipeline import (
    FOLDS,
    LINEAR_C_GRID,
    SMALL_DATA,
    candidates_for,
    cross_validated_macro_f1,
    fit_pipeline,
    stratified_folds,
)
from tests.unit.model.test_linear import corpus


def lines(n: int = 6) -> list[str]:
    texts, labels = corpus(n)
    return [fasttext_line(y, t) for t, y in zip(texts, labels, strict=True)]


def test_folds_hold_every_line_once_and_spread_each_label_evenly() -> None:
    rows = lines() + [fasttext_line("neutral", f"the bus came at {i}") for i in range(7)]
    folds = stratified_folds(rows)
    assert len(folds) == FOLDS
    assert sorted(line for fold in folds for line in fold) == sorted(rows)
    for label in ("__label__positive", "__label__negative", "__label__neutral"):
        counts = [Counter(line.split(" ", 1)[0] for line in fold)[label] for fold in folds]
        assert max(counts) - min(counts) <= 1, (label, counts)


def test_cross_validation_scores_what_generalises_not_what_was_memorised() -> None:
    learnable = lines(8)
    shuffled_labels = [line.split(" ", 1)[0] for line in learnable]
    random.Random(3).shuffle(shuffled_labels)
    noise = [f"{y} {line.split(' ', 1)[1]}" for y, line in zip(shuffled_labels, learnable, strict=True)]
    params = TrainParams(family="linear")
    assert cross_validated_macro_f1(learnable, params) > 0.9
    assert cross_validated_macro_f1(noise, params) < 0.75


def test_auto_on_small_data_also_tries_each_linear_c() -> None:
    small = candidates_for(TrainParams(), rows=400)
    assert [p.family for p in small[:2]] == ["fasttext", "linear"]
    assert sorted({p.c for p in small if p.family == "linear"}) == sorted({TrainParams().c, *LINEAR_C_GRID})
    assert all(
        p.family != "linear" or p.c == TrainParams().c for p in candidates_for(TrainParams(), rows=SMALL_DATA + 1)
    )
    assert [p.c for p in candidates_for(TrainParams(family="linear", c=2.0), rows=400)] == [2.0]


def test_small_data_is_compared_by_cross_validation_and_large_by_the_validation_slice() -> None:
    rows = lines()
    notes: list[str] = []
    fitted = fit_pipeline(
        rows, rows[::4], candidates_for(TrainParams(), rows=len(rows)), 0.0, lambda _s, n: notes.append(n)
    )
    assert isinstance(fitted, tuple)
    assert any("cross-validation" in n for n in notes)
    assert len([n for n in notes if n.startswith("candidate")]) == 1 + len({TrainParams().c, *LINEAR_C_GRID})
    notes.clear()
    fit_pipeline(rows, rows[::4], [TrainParams(family="linear")], 0.0, lambda _s, n: notes.append(n))
    assert not any("cross-validation" in n for n in notes)  # one candidate: nothing to choose between
