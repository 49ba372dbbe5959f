"""Streamlit glue of the pages 'Training' and 'Models & deploy': cached reads of the registry, the
gate and version comparisons (keyed on the store keys that change them), tables and figures."""

from __future__ import annotations

import contextlib

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.errors import StreamlitAPIException

from dashboard.charts import plot_text
from dashboard.components import escape_markdown
from dashboard.deps import workspace
from services.errors import DatasetError, PulseError
from services.lifecycle.comparison import Comparison, compare_versions
from services.lifecycle.datasets import list_datasets, load_manifest
from services.lifecycle.deployment import current, history
from services.lifecycle.promotion import GateVerdict, gate
from services.lifecycle.registry import ModelCard, list_versions, load_card
from services.lifecycle.runs import TrainingJob
from services.model.evaluation import rounded
from services.model.prediction import LABELS
from services.store import keys


def link_to(page: str, label: str, icon: str) -> None:
    """A link to another page; skipped when Streamlit runs this page file on its own (no navigation)."""
    with contextlib.suppress(StreamlitAPIException, KeyError):
        st.page_link(page, label=escape_markdown(label), icon=icon)


def _models_key() -> tuple[str, ...]:
    """Changes with every registered or deleted artifact or card, and every deployment."""
    store = workspace().store
    dep = current(store)
    return (store.describe(), *store.list(keys.MODELS), dep.version if dep else "")


def _gold_key() -> tuple[str, ...]:
    """Changes when the gold set may have changed (gold files, labels: some are marked gold)."""
    store = workspace().store
    return (*store.list(keys.GOLD), *store.list(keys.REVIEW_LABELS))


# --- datasets and runs ---------------------------------------------------------------------------


@st.cache_data(ttl=300, show_spinner=False)
def _datasets(keys: tuple[str, ...]) -> list[tuple[str, str]]:
    store = workspace().store
    out = []
    for version in reversed(list_datasets(store)):
        try:
            m = load_manifest(store, version)
        except (DatasetError, ValueError, TypeError):
            continue
        rows = sum(m.counts.get("train", {}).values()) + sum(m.counts.get("validation", {}).values())
        built = m.created_at[:16].replace("T", " ")
        out.append(
            (version, f"{version} — {rows:,} rows, {m.sources.get('human', 0):,} from people, built {built} UTC")
        )
    return out


def dataset_choices() -> list[tuple[str, str]]:
    """(version, description) of every dataset version, newest first."""
    store = workspace().store
    return _datasets(tuple(k for k in store.list(keys.DATASETS) if k.endswith("/manifest.json")))


def duration(seconds: float) -> str:
    """'42s' or '3:07'."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}" if whole >= 60 else f"{whole}s"


def runs_frame(jobs: list[TrainingJob]) -> pd.DataFrame:
    """Past runs, one row each (newest first, as given)."""
    rows = [
        {
            "job": j.job_name,
            "status": j.status,
            "model version": j.run.model_version or "",
            "macro-F1": j.run.metrics.get("macro_f1"),
            "failure reason": j.run.failure_reason or "",
            "seconds": round(j.elapsed_seconds(), 1),
            "dataset": j.run.dataset,
            "trainer": j.run.trainer,
            "started": j.run.started_at.replace("T", " ")[:16],
            "by": j.run.started_by,
        }
        for j in jobs
    ]
    return pd.DataFrame(rows)


def live_figure() -> tuple[str, float] | None:
    """The live version and its gold macro-F1 from its card, or None (nothing live, no card)."""
    store = workspace().store
    dep = current(store)
    if dep is None:
        return None
    try:
        value = load_card(store, dep.version).metrics.get("macro_f1")
    except (PulseError, TypeError, ValueError):
        return None
    return (dep.version, float(value)) if isinstance(value, int | float) else None


def _shown(value: object) -> float | None:
    return rounded(value) if isinstance(value, int | float) else None


# --- the registry --------------------------------------------------------------------------------


@st.cache_data(ttl=300, show_spinner=False)
def _registry(key: tuple[str, ...]) -> tuple[pd.DataFrame, dict[str, ModelCard]]:
    store = workspace().store
    dep = current(store)
    live = dep.version if dep else None
    stored = set(key)
    cards: dict[str, ModelCard] = {}
    rows = []
    for version in reversed(list_versions(store)):
        try:
            card = load_card(store, version)
        except (PulseError, TypeError, ValueError):
            continue
        cards[version] = card
        rows.append(
            {
                "live": "● live" if version == live else "",
                "version": version,
                "macro-F1": _shown(card.metrics.get("macro_f1")),
                "accuracy": _shown(card.metrics.get("accuracy")),
                "ECE": _shown(card.metrics.get("ece")),
                "family": card.family,
                "created": card.created_at.replace("T", " ")[:16],
                "by": card.created_by,
                "dataset": card.dataset,
                "artifact": "ok" if keys.model_key(version) in stored else "missing",
            }
        )
    return pd.DataFrame(rows), cards


def registry() -> tuple[pd.DataFrame, dict[str, ModelCard]]:
    """The registry as a table (newest first) and the cards by version."""
    return _registry(_models_key())


@st.cache_data(ttl=600, show_spinner="Scoring both versions on the gold set…")
def _comparison(a: str, b: str, models: tuple[str, ...], gold: tuple[str, ...]) -> Comparison:
    return compare_versions(workspace().store, a, b)


def comparison(a: str, b: str) -> Comparison:
    """Versions `a` and `b` on the gold set as it is now (`ModelUnavailable` if an artifact is gone)."""
    return _comparison(a, b, _models_key(), _gold_key())


@st.cache_data(ttl=600, show_spinner="Scoring the candidate and the live model on the gold set…")
def _gate(version: str, margin: float, models: tuple[str, ...], gold: tuple[str, ...]) -> GateVerdict:
    return gate(workspace().store, version, margin=margin)


def gate_verdict(version: str) -> GateVerdict:
    """What the gate would say now about promoting `version` over the live model."""
    ws = workspace()
    return _gate(version, ws.settings.gate_margin, _models_key(), _gold_key())


METRIC_NAMES = {
    "macro_f1": "macro-F1",
    "accuracy": "accuracy",
    "ece": "calibration error (ECE, lower is better)",
    "f1_negative": "F1 negative",
    "f1_neutral": "F1 neutral",
    "f1_positive": "F1 positive",
}


def verdict_frame(verdict: GateVerdict) -> pd.DataFrame:
    """Candidate and live model side by side, every figure rounded as the verdict's words round it."""
    live = verdict.live_metrics or {}
    rows = []
    for name, title in METRIC_NAMES.items():
        cand = verdict.candidate_metrics.get(name)
        was = live.get(name)
        cand_r = rounded(cand) if cand is not None else None
        was_r = rounded(was) if was is not None else None
        change = rounded(cand_r - was_r) if cand_r is not None and was_r is not None else None
        rows.append({"metric": title, "candidate": cand_r, "live": was_r, "change": change})
    return pd.DataFrame(rows)


def history_frame() -> pd.DataFrame:
    """Every deployment, newest first."""
    rows = [
        {
            "when": d.deployed_at.replace("T", " ")[:19],
            "version": d.version,
            "previous": d.previous or "",
            "who": d.deployed_by,
            "why": d.reason,
            "backend": d.details.get("backend", ""),
        }
        for d in reversed(history(workspace().store))
    ]
    return pd.DataFrame(rows)


# --- figures and comparison tables ----------------------------------------------------------------


def confusion_figure(confusion: list[list[int]], title: str) -> go.Figure:
    """A confusion matrix: rows the true labels, columns the predictions, counts in the cells."""
    fig = go.Figure(
        go.Heatmap(
            z=confusion,
            x=list(LABELS),
            y=list(LABELS),
            colorscale="Blues",
            showscale=False,
            text=confusion,
            texttemplate="%{text}",
            hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>",
        )
    )
    fig.update_layout(
        title={"text": plot_text(title), "font": {"size": 14}},
        height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis={"title": "predicted", "side": "bottom"},
        yaxis={"title": "true", "autorange": "reversed"},
    )
    return fig


def per_class_frame(comp: Comparison) -> pd.DataFrame:
    frame = pd.DataFrame(comp.per_class())
    cols = ["class", "support"]
    for measure in ("precision", "recall", "f1"):
        cols += [f"{measure} A", f"{measure} B", f"{measure} change"]
    return frame[cols]


def disagreements_frame(comp: Comparison) -> pd.DataFrame:
    """The gold messages the two versions label differently, as plain text."""
    return pd.DataFrame(
        [
            {
                "message": d.text,
                "true label": d.truth,
                "A says": d.label_a,
                "A confidence": d.confidence_a,
                "B says": d.label_b,
                "B confidence": d.confidence_b,
                "right": d.right,
            }
            for d in comp.disagreements
        ]
    )
