"""Trends figures are built once per content and shared (dashboard.charts.remembered)."""

from __future__ import annotations

import pandas as pd

from dashboard.charts import FIGURES_KEPT, heatmap_figure, trend_figure
from services.checkins.trends import Heatmap


def series(mean: float = 0.2) -> pd.DataFrame:
    periods = pd.date_range("2026-11-01", periods=10, freq="D")
    return pd.DataFrame(
        {
            "period": periods,
            "count": [3] * 10,
            "mean": [mean] * 10,
            "rolling": [mean] * 10,
            "negative": [0.2] * 10,
            "neutral": [0.3] * 10,
            "positive": [0.5] * 10,
        }
    )


def test_the_same_content_gives_the_same_figure_and_new_content_a_new_one() -> None:
    first = trend_figure(series(), "day")
    assert trend_figure(series(), "day") is first  # an equal frame built again: no second build
    assert trend_figure(series(), "week") is not first
    changed = trend_figure(series(mean=-0.4), "day")
    assert changed is not first
    assert changed.data[0].y[0] == -0.4 and first.data[0].y[0] == 0.2


def test_heatmaps_follow_their_cells_and_participants() -> None:
    cells = pd.DataFrame(
        {"participant": ["a", "b"], "period": pd.to_datetime(["2026-11-01"] * 2), "mean": [0.5, -0.5], "count": [1, 2]}
    )
    periods = pd.Series(pd.date_range("2026-11-01", periods=3, freq="D"))
    one = heatmap_figure(Heatmap(cells, ["b", "a"], 2), periods, "day")
    assert heatmap_figure(Heatmap(cells.copy(), ["b", "a"], 2), periods, "day") is one
    assert heatmap_figure(Heatmap(cells, ["a", "b"], 2), periods, "day") is not one


def test_only_so_many_figures_are_kept() -> None:
    first = trend_figure(series(mean=0.9), "day")
    for n in range(FIGURES_KEPT):
        trend_figure(series(mean=n / 1000), "day")
    assert trend_figure(series(mean=0.9), "day") is not first  # forgotten, built again
