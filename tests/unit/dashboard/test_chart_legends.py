"""What a legend and a card say in words: one name per series, hyperparameters as people read them."""

from __future__ import annotations

import pandas as pd

from dashboard.admin_charts import review_preview_figure
from services.model.params import TrainParams, describe_params

DAYS = pd.DataFrame({"date": pd.date_range("2026-11-01", periods=3, freq="D"), "to_review": [1, 4, 2]})


def legend(fig) -> list[str]:  # type: ignore[no-untyped-def]
    return [trace.name for trace in fig.data]


def test_the_preview_at_the_threshold_in_force_is_one_series_named_once() -> None:
    assert legend(review_preview_figure(DAYS, DAYS, 0.6, 0.6)) == ["at 0.60 (in force)"]


def test_a_moved_preview_is_drawn_against_the_threshold_in_force() -> None:
    fewer = DAYS.assign(to_review=[0, 2, 1])
    assert legend(review_preview_figure(fewer, DAYS, 0.5, 0.6)) == ["at 0.50 (preview)", "at 0.60 (in force)"]


def test_a_cards_hyperparameters_read_as_words() -> None:
    shown = describe_params(TrainParams(c=0.1).used_by("linear"))
    assert shown == {"Model family": "linear", "Regularisation C": "0.1", "Balance classes": "no"}
    fasttext = describe_params(TrainParams().used_by("fasttext"))
    assert fasttext["Hash buckets"] == "100,000" and fasttext["Learning rate"] == "0.5"
    assert not any("_" in name for name in fasttext)


def test_a_parameter_this_version_does_not_know_is_shown_as_stored() -> None:
    assert describe_params({"family": "future", "warmup_steps": 10}) == {"Model family": "future", "warmup_steps": "10"}
