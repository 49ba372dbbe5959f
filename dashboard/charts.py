"""Plotly figures of the trends page. Names from people go through `plot_text`: plotly reads a
few HTML tags in labels, and a name must show as typed."""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, ParamSpec

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from services.checkins.trends import Heatmap

P = ParamSpec("P")
FIGURES_KEPT = 64  # figures remembered across sessions (a few per manager and filter combination)
_figures: OrderedDict[Hashable, go.Figure] = OrderedDict()
_figures_lock = threading.Lock()


def _fingerprint(value: Any) -> Hashable:
    """What a figure depends on in `value`: the content of frames (a hash), not their identity."""
    if isinstance(value, pd.DataFrame | pd.Series):
        digest = hashlib.sha256(pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes()).hexdigest()
        names = tuple(value.columns) if isinstance(value, pd.DataFrame) else value.name
        return (type(value).__name__, names, digest)
    if isinstance(value, Heatmap):
        return ("Heatmap", _fingerprint(value.cells), tuple(value.participants), value.total)
    return value


def remembered(build: Callable[P, go.Figure]) -> Callable[P, go.Figure]:
    """Build a figure once per content: building one with plotly took 7-25 ms, a third of a Trends
    run, and every refresh and every session on the same filters asks for the same figures. The
    figure returned is shared: callers hand it to `st.plotly_chart` and never change it."""

    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> go.Figure:
        key = (build.__name__, *map(_fingerprint, args), *sorted((k, _fingerprint(v)) for k, v in kwargs.items()))
        with _figures_lock:
            if key in _figures:
                _figures.move_to_end(key)
                return _figures[key]
        fig = build(*args, **kwargs)
        with _figures_lock:
            _figures[key] = fig
            while len(_figures) > FIGURES_KEPT:
                _figures.popitem(last=False)
        return fig

    return wrapper


COLORS = {"negative": "#e8590c", "neutral": "#adb5bd", "positive": "#2b8a3e"}
SENTIMENT_SCALE = [[0.0, "#c92a2a"], [0.35, "#ffa94d"], [0.5, "#f1f3f5"], [0.65, "#8ce99a"], [1.0, "#2b8a3e"]]


def plot_text(text: str) -> str:
    """`text` as literal characters in a plotly label (its entities are decoded, its tags are not run)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@remembered
def trend_figure(frame: pd.DataFrame, granularity: str) -> go.Figure:
    """Mean sentiment and its rolling average, the share of each label, and the check-ins per period."""
    per = "day" if granularity == "day" else "week"
    window = "7 days" if granularity == "day" else "4 weeks"
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        row_heights=[0.42, 0.36, 0.22],
        subplot_titles=("Mean sentiment", "Share of check-ins by the model's label", f"Check-ins per {per}"),
    )
    fig.add_trace(
        go.Scatter(
            x=frame["period"],
            y=frame["mean"],
            name=f"mean per {per}",
            mode="lines+markers",
            line={"color": "#868e96", "width": 1},
            marker={"size": 4},
            hovertemplate="%{x|%a %d %b %Y}: %{y:+.2f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=frame["period"],
            y=frame["rolling"],
            name=f"rolling average ({window})",
            mode="lines",
            line={"color": "#1c7ed6", "width": 3},
            hovertemplate="%{x|%a %d %b %Y}: %{y:+.2f}<extra>rolling</extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_hline(y=0, line={"color": "#ced4da", "width": 1, "dash": "dot"}, row=1, col=1)
    for label in ("negative", "neutral", "positive"):
        fig.add_trace(
            go.Bar(
                x=frame["period"],
                y=frame[label],
                name=label,
                marker_color=COLORS[label],
                hovertemplate="%{x|%d %b %Y}: %{y:.0%}<extra>" + label + "</extra>",
            ),
            row=2,
            col=1,
        )
    fig.add_trace(
        go.Bar(
            x=frame["period"],
            y=frame["count"],
            name="check-ins",
            marker_color="#4c6ef5",
            showlegend=False,
            hovertemplate="%{x|%d %b %Y}: %{y:,} check-ins<extra></extra>",
        ),
        row=3,
        col=1,
    )
    fig.update_layout(
        barmode="stack",
        bargap=0.1,
        height=620,
        margin={"l": 10, "r": 10, "t": 70, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.06, "x": 0, "title": ""},
        hovermode="x",
    )
    # Zoomed to the data (at least -0.25..+0.25, 0 always in view) so a slow drift is visible.
    values = pd.concat([frame["mean"], frame["rolling"]]).dropna()
    low = max(-1.0, min(-0.25, float(values.min()) - 0.05)) if len(values) else -1.0
    high = min(1.0, max(0.25, float(values.max()) + 0.05)) if len(values) else 1.0
    fig.update_yaxes(range=[low, high], zeroline=False, tickformat="+.1f", row=1, col=1)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=2, col=1)
    fig.update_yaxes(rangemode="tozero", row=3, col=1)
    return fig


@remembered
def heatmap_figure(heat: Heatmap, periods: pd.Series, granularity: str) -> go.Figure:
    """Participants (rows, lowest mean sentiment at the top) x every period of the range (empty
    cells: no check-in), coloured by mean sentiment."""
    cells = heat.cells.assign(period=pd.to_datetime(heat.cells["period"]))
    columns = pd.DatetimeIndex(pd.to_datetime(periods))
    grid = cells.pivot(index="participant", columns="period", values="mean").reindex(heat.participants, columns=columns)
    counts = cells.pivot(index="participant", columns="period", values="count")
    counts = counts.reindex(heat.participants, columns=columns)
    labels = [plot_text(p) for p in heat.participants]
    when = "%a %d %b %Y" if granularity == "day" else "week of %d %b %Y"
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=grid.columns,
            y=labels,
            customdata=counts.to_numpy(),
            zmin=-1,
            zmax=1,
            zmid=0,
            colorscale=SENTIMENT_SCALE,
            xgap=1,
            ygap=1,
            colorbar={"title": {"text": "mean<br>sentiment"}, "thickness": 12},
            hoverinfo="skip",  # the points below answer hovers and clicks
        )
    )
    # Plotly heatmaps send no selection events to Streamlit: an invisible point on each filled cell
    # carries the hover text and the click that opens the participant's check-ins.
    filled = grid.stack().dropna()
    rows = {p: i for i, p in enumerate(heat.participants)}
    fig.add_trace(
        go.Scatter(
            x=filled.index.get_level_values(1),
            y=[labels[rows[p]] for p in filled.index.get_level_values(0)],
            mode="markers",
            marker={"size": 14, "opacity": 0, "symbol": "square"},
            customdata=[
                [rows[p], int(counts.loc[p, t]), float(v)] for (p, t), v in zip(filled.index, filled, strict=True)
            ],
            hovertemplate="%{y}<br>%{x|"
            + when
            + "}<br>mean %{customdata[2]:+.2f} over %{customdata[1]} check-in(s)<br>click to read them<extra></extra>",
            showlegend=False,
        )
    )
    fig.update_layout(
        height=max(260, 120 + 22 * len(labels)),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        yaxis={"autorange": "reversed", "type": "category"},
        plot_bgcolor="#f8f9fa",
        clickmode="event+select",
        dragmode=False,
    )
    return fig


def clicked_participant(heat: Heatmap, event: Any) -> str | None:
    """The participant of the heatmap cell a user clicked (`st.plotly_chart`'s selection), or None."""
    try:
        points = event["selection"]["points"]
        row = int(points[0]["customdata"][0])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return heat.participants[row] if 0 <= row < len(heat.participants) else None
