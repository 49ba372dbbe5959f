"""Plotly figures of the admin pages (labels & datasets, model health & costs). Names from people
go through `plot_text`: plotly reads a few HTML tags in labels, and a name must show as typed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.charts import COLORS, plot_text
from services.model.prediction import LABELS
from services.monitoring.costs import CostEstimate, Prices, Volume, estimate

DECISION_COLORS = {**COLORS, "unclear": "#845ef7"}
LINE = "#1c7ed6"
REVIEW = "#e8590c"
MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}


def _legend(fig: go.Figure, y: float = 1.12) -> None:
    fig.update_layout(legend={"orientation": "h", "y": y, "x": 0, "title": ""})


def label_bars(per_class: dict[str, int], per_annotator: dict[str, dict[str, int]]) -> go.Figure:
    """Items per winning label, and labels per annotator stacked by decision."""
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.4, 0.6],
        subplot_titles=("Items by the label that counts", "Labels given, per annotator"),
        horizontal_spacing=0.12,
    )
    decisions = list(per_class)
    fig.add_trace(
        go.Bar(
            x=decisions,
            y=[per_class[d] for d in decisions],
            marker_color=[DECISION_COLORS.get(d, "#868e96") for d in decisions],
            text=[per_class[d] for d in decisions],
            textposition="outside",
            cliponaxis=False,
            showlegend=False,
            hovertemplate="%{x}: %{y:,} items<extra></extra>",
        ),
        row=1,
        col=1,
    )
    people = list(per_annotator)
    names = [plot_text(p) for p in people]
    for d in decisions:
        fig.add_trace(
            go.Bar(
                y=names,
                x=[per_annotator[p].get(d, 0) for p in people],
                name=d,
                orientation="h",
                marker_color=DECISION_COLORS.get(d, "#868e96"),
                hovertemplate="%{y}: %{x:,} " + d + "<extra></extra>",
            ),
            row=1,
            col=2,
        )
    fig.update_layout(
        barmode="stack",
        height=max(300, 160 + 28 * len(people)),
        margin={**MARGIN, "b": 40},
        legend={"orientation": "h", "y": -0.12, "x": 0.42, "title": "", "traceorder": "normal"},
    )
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(type="category", autorange="reversed", row=1, col=2)
    return fig


def class_balance_figure(next_counts: dict[str, int], live_counts: dict[str, int] | None) -> go.Figure:
    """Share of each class in the training rows of the next dataset version, beside the live model's."""
    fig = go.Figure()
    series = [("next dataset version", next_counts, "#1c7ed6")]
    if live_counts:
        series.append(("live model's training data", live_counts, "#adb5bd"))
    for name, counts, color in series:
        total = sum(counts.values()) or 1
        fig.add_trace(
            go.Bar(
                x=list(LABELS),
                y=[counts.get(c, 0) / total for c in LABELS],
                name=name,
                marker_color=color,
                text=[f"{counts.get(c, 0):,}" for c in LABELS],
                textposition="outside",
                cliponaxis=False,
                hovertemplate="%{x}: %{y:.0%} (%{text} rows)<extra>" + name + "</extra>",
            )
        )
    fig.update_layout(barmode="group", height=300, margin=MARGIN, yaxis={"tickformat": ".0%", "rangemode": "tozero"})
    _legend(fig)
    return fig


def _version_changes(daily: pd.DataFrame) -> list[tuple[pd.Timestamp, str]]:
    """(first day, version) for each day whose main model version differs from the day before."""
    versions = daily["model_version"].astype(str)
    changed = versions.ne(versions.shift())
    return [(d, v) for d, v in zip(daily["date"][changed], versions[changed], strict=True)][1:]


def _mark_versions(fig: go.Figure, daily: pd.DataFrame, rows: int | None = None) -> None:
    """A dashed line (in each of `rows` stacked subplots, or the one plot) where the model changed."""
    line = {"color": "#495057", "width": 1, "dash": "dash"}
    for day, version in _version_changes(daily):
        if rows is None:
            fig.add_vline(x=day, line=line)
        for row in range(1, (rows or 0) + 1):
            fig.add_vline(x=day, line=line, row=row, col=1)
        fig.add_annotation(
            x=day,
            y=1.0,
            yref="paper",
            text=f"model {plot_text(version)}",
            showarrow=False,
            xanchor="left",
            font={"size": 10},
        )


def health_figure(daily: pd.DataFrame) -> go.Figure:
    """Check-ins per day; unrecognized share and mean confidence; drift per day (with its 7-day
    mean). Dashed lines mark the days another model version took over."""
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.28, 0.4, 0.32],
        subplot_titles=(
            "Check-ins per day",
            "Unrecognized share and mean confidence",
            "Drift of the predicted labels from the training mix (Jensen–Shannon distance)",
        ),
    )
    fig.add_trace(
        go.Bar(
            x=daily["date"],
            y=daily["checkins"],
            name="check-ins",
            marker_color="#4c6ef5",
            showlegend=False,
            hovertemplate="%{x|%a %d %b}: %{y:,} check-ins<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=daily["date"],
            y=daily["unrecognized_share"],
            name="unrecognized (sent to review)",
            mode="lines+markers",
            marker={"size": 4},
            line={"color": REVIEW},
            hovertemplate="%{x|%a %d %b}: %{y:.0%} unrecognized<extra></extra>",
        ),
        row=2,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=daily["date"],
            y=daily["mean_confidence"],
            name="mean confidence",
            mode="lines+markers",
            marker={"size": 4},
            line={"color": LINE},
            hovertemplate="%{x|%a %d %b}: mean confidence %{y:.2f}<extra></extra>",
        ),
        row=2,
        col=1,
    )
    drift = pd.to_numeric(daily["drift"], errors="coerce")
    fig.add_trace(
        go.Scatter(
            x=daily["date"],
            y=drift,
            name="drift per day",
            mode="markers",
            marker={"size": 5, "color": "#868e96"},
            hovertemplate="%{x|%a %d %b}: %{y:.2f}<extra>drift that day</extra>",
        ),
        row=3,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=daily["date"],
            y=drift.rolling(7, min_periods=3).mean(),
            name="drift, 7-day mean",
            mode="lines",
            line={"color": "#5f3dc4", "width": 3},
            hovertemplate="%{x|%a %d %b}: %{y:.2f}<extra>7-day mean</extra>",
        ),
        row=3,
        col=1,
    )
    for level, text in ((0.1, "small"), (0.2, "large")):
        fig.add_hline(
            y=level,
            line={"color": "#ced4da", "width": 1, "dash": "dot"},
            annotation_text=f"{text} shift above {level}",
            annotation_position="top left",
            annotation_font_size=10,
            row=3,
            col=1,
        )
    _mark_versions(fig, daily, 3)
    fig.update_layout(height=680, margin=MARGIN, hovermode="x", bargap=0.1)
    _legend(fig, 1.08)
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=2, col=1)
    top = float(np.nanmax(drift.to_numpy())) if drift.notna().any() else 0.3
    fig.update_yaxes(range=[0, max(0.3, top * 1.1)], row=3, col=1)
    return fig


def mix_figure(daily: pd.DataFrame, training: dict[str, dict[str, float]]) -> go.Figure:
    """Each predicted label's share (7-day rolling, weighted by volume; faint dots: single days)
    against the share it had in the training data of the model version that scored the day."""
    fig = go.Figure()
    n = daily["checkins"].astype(float)
    for label in LABELS:
        share = daily[f"share_{label}"].astype(float)
        rolling = (share * n).rolling(7, min_periods=1).sum() / n.rolling(7, min_periods=1).sum()
        color = COLORS[label]
        fig.add_trace(
            go.Scatter(
                x=daily["date"],
                y=share,
                mode="markers",
                marker={"size": 4, "color": color, "opacity": 0.35},
                showlegend=False,
                hovertemplate="%{x|%a %d %b}: %{y:.0%}<extra>" + label + " that day</extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=daily["date"],
                y=rolling,
                mode="lines",
                name=f"{label} (7-day)",
                line={"color": color, "width": 3},
                hovertemplate="%{x|%a %d %b}: %{y:.0%}<extra>" + label + ", 7 days</extra>",
            )
        )
        trained = daily["model_version"].map(lambda v, c=label: training.get(str(v), {}).get(c, np.nan))
        if trained.notna().any():
            fig.add_trace(
                go.Scatter(
                    x=daily["date"],
                    y=trained,
                    mode="lines",
                    name=f"{label} in training",
                    line={"color": color, "width": 2, "dash": "dash", "shape": "hv"},
                    hovertemplate="%{y:.0%}<extra>" + label + " in the training data</extra>",
                )
            )
    _mark_versions(fig, daily)
    fig.update_layout(height=380, margin=MARGIN, yaxis={"tickformat": ".0%", "range": [0, 1]}, hovermode="x")
    _legend(fig, 1.16)
    return fig


def confidence_histogram(confidence: pd.Series, threshold: float, current: float) -> go.Figure:
    """How confident the model was, with the check-ins below `threshold` (to review) in orange."""
    values = confidence.to_numpy(dtype=float)
    bins = {"start": 0.0, "end": 1.0, "size": 0.025}
    fig = go.Figure()
    for name, part, color in (
        ("to review", values[values < threshold], REVIEW),
        ("recognized", values[values >= threshold], LINE),
    ):
        fig.add_trace(
            go.Histogram(
                x=part,
                xbins=bins,
                name=name,
                marker_color=color,
                hovertemplate="confidence %{x}: %{y:,} check-ins<extra>" + name + "</extra>",
            )
        )
    # The higher line's label goes to its right, the lower one's to its left: they never overlap.
    fig.add_vline(
        x=threshold,
        line={"color": "#212529", "width": 2},
        annotation_text=f"preview {threshold:.2f}",
        annotation_position="top right" if threshold >= current else "top left",
    )
    if abs(current - threshold) > 1e-9:
        fig.add_vline(
            x=current,
            line={"color": "#868e96", "width": 1, "dash": "dash"},
            annotation_text=f"in force {current:.2f}",
            annotation_position="top left" if threshold > current else "top right",
        )
    fig.update_layout(
        barmode="stack",
        bargap=0.05,
        height=320,
        margin=MARGIN,
        xaxis={"title": "model confidence", "range": [0, 1]},
        yaxis={"title": "check-ins"},
    )
    _legend(fig)
    return fig


def review_preview_figure(preview: pd.DataFrame, in_force: pd.DataFrame, threshold: float, current: float) -> go.Figure:
    """Check-ins per day that would go to review at `threshold`, against the threshold in force."""
    same = abs(current - threshold) < 1e-9  # nothing moved yet: one series, named once
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=preview["date"],
            y=preview["to_review"],
            name=f"at {threshold:.2f}" + (" (in force)" if same else " (preview)"),
            marker_color=REVIEW,
            hovertemplate="%{x|%a %d %b}: %{y:,} to review<extra>at " + f"{threshold:.2f}" + "</extra>",
        )
    )
    if not same:
        fig.add_trace(
            go.Scatter(
                x=in_force["date"],
                y=in_force["to_review"],
                name=f"at {current:.2f} (in force)",
                mode="lines",
                line={"color": "#495057", "width": 2, "shape": "hv"},
                hovertemplate="%{x|%a %d %b}: %{y:,} to review<extra>in force</extra>",
            )
        )
    fig.update_layout(height=320, margin=MARGIN, yaxis={"title": "check-ins to review", "rangemode": "tozero"})
    _legend(fig)
    return fig


def cost_figure(prices: Prices, volume: Volume, messages_per_request: int, now: CostEstimate) -> go.Figure:
    """Monthly cost of both options from 1 to 10 million check-ins a day (log scale), with today's
    volume and the break-even marked."""
    per_day = np.logspace(0, 7, 120)
    chars = volume.chars_per_message
    curve = [estimate(prices, Volume(float(v), chars), messages_per_request) for v in per_day]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=per_day,
            y=[c.realtime for c in curve],
            name="real-time endpoint",
            line={"color": LINE, "width": 3},
            hovertemplate="%{x:,.0f}/day: $%{y:,.2f} a month<extra>real-time</extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=per_day,
            y=[c.serverless for c in curve],
            name="serverless",
            line={"color": REVIEW, "width": 3},
            hovertemplate="%{x:,.0f}/day: $%{y:,.2f} a month<extra>serverless</extra>",
        )
    )
    # On a log axis a shape takes data values but an annotation takes their log10: draw them apart.
    marks = [(volume.messages_per_day, f"now: {volume.messages_per_day:,.0f}/day", "#212529", "solid", 1.0)]
    if np.isfinite(now.break_even_messages_per_day) and 1 <= now.break_even_messages_per_day <= per_day[-1]:
        text = f"break-even: {now.break_even_messages_per_day:,.0f}/day"
        marks.append((now.break_even_messages_per_day, text, "#868e96", "dash", 0.08))
    for x, text, color, dash, y in marks:
        if x <= 0:
            continue
        fig.add_vline(x=x, line={"color": color, "width": 1.5, "dash": dash})
        side = "right" if x > 10**5 else "left"  # keep the label inside the plot
        fig.add_annotation(
            x=float(np.log10(x)), y=y, yref="paper", text=text, showarrow=False, xanchor=side, font={"size": 11}
        )
    fig.update_layout(
        height=360,
        margin=MARGIN,
        xaxis={"type": "log", "title": "check-ins per day", "range": [0, 7], "dtick": 1},
        yaxis={"type": "log", "title": "per month", "tickprefix": "$", "tickformat": ",.4~r", "dtick": 2},
    )
    _legend(fig)
    return fig
