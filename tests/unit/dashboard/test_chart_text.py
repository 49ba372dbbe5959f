"""Names from people reach plotly figures as text: plotly reads `<b>`, `<a href>`, `<br>` and a few
other tags in labels, hover text and annotations, so every such string goes through `plot_text`."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go

from dashboard.admin_charts import health_figure, label_bars, mix_figure
from dashboard.admin_jobs import confusion_figure
from dashboard.charts import heatmap_figure, plot_text
from services.checkins.trends import Heatmap

PAYLOAD = '<a href="http://127.0.0.1:9/x">PLINK</a><b>PBOLD</b><img src=x>'


def raw_payload_in(fig: go.Figure) -> list[str]:
    """Strings of the figure (data, layout, annotations) that hold the payload's tags unescaped."""
    text = json.dumps(fig.to_plotly_json(), default=str)
    return [tag for tag in ("<a href", "<b>PBOLD", "<img") if tag in text]


def test_plot_text_shows_tags_as_characters() -> None:
    assert plot_text("<b>x</b> & y") == "&lt;b&gt;x&lt;/b&gt; &amp; y"


def test_a_participant_named_like_markup_stays_text_in_the_heatmap() -> None:
    cells = pd.DataFrame(
        {"participant": [PAYLOAD], "period": pd.to_datetime(["2026-11-01"]), "mean": [-0.5], "count": [2]}
    )
    periods = pd.Series(pd.date_range("2026-11-01", periods=2, freq="D"))
    fig = heatmap_figure(Heatmap(cells, [PAYLOAD], 1), periods, "day")
    assert not raw_payload_in(fig)
    assert plot_text(PAYLOAD) in list(fig.data[0].y)


def test_an_annotator_named_like_markup_stays_text_in_the_label_bars() -> None:
    fig = label_bars({"negative": 3, "positive": 1}, {PAYLOAD: {"negative": 3, "positive": 1}})
    assert not raw_payload_in(fig)


def test_a_model_version_named_like_markup_stays_text_in_the_health_figures() -> None:
    days = pd.date_range("2026-11-01", periods=4, freq="D")
    daily = pd.DataFrame(
        {
            "date": days,
            "checkins": [10, 12, 9, 11],
            "unrecognized_share": [0.3, 0.2, 0.25, 0.3],
            "mean_confidence": [0.7, 0.72, 0.69, 0.7],
            "drift": [0.05, 0.1, 0.08, 0.07],
            "model_version": ["m1", "m1", PAYLOAD, PAYLOAD],
            "share_negative": [0.2] * 4,
            "share_neutral": [0.3] * 4,
            "share_positive": [0.5] * 4,
        }
    )
    assert not raw_payload_in(health_figure(daily))
    training = {PAYLOAD: {"negative": 0.3, "neutral": 0.3, "positive": 0.4}}
    assert not raw_payload_in(mix_figure(daily, training))


def test_a_title_named_like_markup_stays_text_in_the_confusion_matrix() -> None:
    assert not raw_payload_in(confusion_figure([[1, 0, 0], [0, 1, 0], [0, 0, 1]], PAYLOAD))
