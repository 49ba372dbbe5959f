"""Cached reads of the admin pages 'Labels & datasets' and 'Model health & costs', keyed on the
files that change them (labels, retractions, datasets, batches, the live model), so a rerun after
a click is instant and a new label or batch shows at once."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from dashboard.components import escape_markdown
from dashboard.deps import workspace
from services.errors import DatasetError, InvalidThreshold
from services.lifecycle.datasets import list_datasets, load_manifest
from services.lifecycle.deployment import current
from services.lifecycle.label_summary import (
    Agreement,
    DatasetPreview,
    LabelSummary,
    SinceLive,
    agreement,
    label_summary,
    labels_since_live,
    preview_dataset,
)
from services.monitoring.costs import Volume, current_volume
from services.monitoring.health import Health, model_health, training_counts
from services.monitoring.threshold import ThresholdOverride, effective_threshold, load_threshold_override
from services.review.labels import labels_for_item
from services.store import keys
from services.store.base import ObjectStore


def _live() -> str:
    dep = current(workspace().store)
    return dep.version if dep else ""


def labels_fingerprint() -> tuple[str, ...]:
    """Changes with every label, undo, gold file, dataset version or deployment."""
    store = workspace().store
    found = [
        *store.list(keys.REVIEW_LABELS),
        *store.list(keys.REVIEW_RETRACTIONS),
        *store.list(keys.GOLD),
        *(k for k in store.list(keys.DATASETS) if k.endswith("/manifest.json")),
    ]
    return (*found, _live())


def health_fingerprint() -> tuple[str, ...]:
    """Changes with every ingested batch, deployment or registered model."""
    store = workspace().store
    cards = (k for k in store.list(keys.MODELS) if k.endswith("/card.json"))
    return (*store.list(keys.INGEST_BATCHES), *cards, _live())


@dataclass(frozen=True)
class LabelData:
    summary: LabelSummary
    since: SinceLive
    agreement: Agreement
    live_training: dict[str, int] | None  # rows per class the live model was trained on


@st.cache_data(ttl=300, show_spinner=False)
def _label_data(fingerprint: tuple[str, ...]) -> LabelData:
    store = workspace().store
    since = labels_since_live(store)
    live = training_counts(store, since.version) if since.version else None
    return LabelData(label_summary(store), since, agreement(store), live)


def label_data() -> LabelData:
    return _label_data(labels_fingerprint())


@st.cache_data(ttl=300, show_spinner="Previewing the next dataset version…")
def _preview(fingerprint: tuple[str, ...]) -> DatasetPreview:
    return preview_dataset(workspace().store)


def dataset_preview() -> DatasetPreview:
    """What `build_dataset` would produce now (the build's own code, nothing written)."""
    return _preview(labels_fingerprint())


@st.cache_data(ttl=300, show_spinner=False)
def _datasets(fingerprint: tuple[str, ...]) -> pd.DataFrame:
    store = workspace().store
    rows = []
    for version in reversed(list_datasets(store)):
        try:
            m = load_manifest(store, version)
        except (DatasetError, ValueError, TypeError):
            continue
        rows.append(
            {
                "version": m.version,
                "built": m.created_at,
                "by": m.created_by,
                "train rows": sum(m.counts.get("train", {}).values()),
                "validation rows": sum(m.counts.get("validation", {}).values()),
                "human rows": m.sources.get("human", 0),
                "conflicts": len(m.conflicts),
            }
        )
    return pd.DataFrame(rows)


def dataset_versions() -> pd.DataFrame:
    """Dataset versions, newest first, one row each."""
    return _datasets(labels_fingerprint())


@st.cache_data(ttl=300, show_spinner="Reading the scored check-ins…")
def _health(fingerprint: tuple[str, ...], default_threshold: float) -> Health:
    return model_health(workspace().store, default_threshold=default_threshold)


def health() -> Health:
    """Health over time; a batch without a manifest counts with the setting's threshold."""
    return _health(health_fingerprint(), workspace().settings.review_threshold)


@st.cache_data(ttl=300, show_spinner=False)
def _volume(fingerprint: tuple[str, ...]) -> Volume:
    return current_volume(workspace().store)


def volume() -> Volume:
    """Check-ins per day and characters per check-in over the last 28 days."""
    return _volume(health_fingerprint())


@dataclass(frozen=True)
class ThresholdState:
    in_force: float
    override: ThresholdOverride | None
    problem: str | None  # an override file that cannot be read (ignored)


def threshold_state() -> ThresholdState:
    """The review threshold in force and where it comes from (one small read, never cached: it
    must show a save at once)."""
    ws = workspace()
    try:
        found, problem = load_threshold_override(ws.store), None
    except InvalidThreshold as exc:
        found, problem = None, str(exc)
    return ThresholdState(effective_threshold(ws.store, ws.settings), found, problem)


# --- formatting


def money(dollars: float) -> str:
    """Dollars with cents, small amounts with two significant digits (never a bare $0.00), for
    Markdown (metric values included): the dollar sign is escaped, as a pair of them starts a formula."""
    if dollars == 0 or dollars >= 0.995:
        return f"\\${dollars:,.2f}"
    if dollars >= 0.0001:
        return f"\\${dollars:.2g}"
    return "under \\$0.0001"


def utc_minute(stamp: str | None) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM UTC', safe inside Markdown."""
    try:
        return escape_markdown(pd.Timestamp(stamp).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC"))
    except (ValueError, TypeError):
        return escape_markdown(stamp or "an unknown time")


def message_text(store: ObjectStore, item_id: str) -> str:
    """The text of a labelled message, as its labels keep it (for admins), or "" when none is left."""
    labels = labels_for_item(store, item_id)
    return labels[0][1].text if labels else ""
