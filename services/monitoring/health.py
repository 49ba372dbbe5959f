"""Model health for admins: how the live model does on real check-ins over time (volume, the share
sent to review, confidence) and how far its predicted labels drift from the mix it was trained on.
Everything here reads the store.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from services.checkins.partitions import read_scored
from services.errors import DatasetError, InvalidKey, KeyNotFound, ModelUnavailable
from services.lifecycle.datasets import load_manifest
from services.lifecycle.deployment import current
from services.lifecycle.registry import load_card
from services.model.corpus import SHIPPED
from services.model.prediction import LABELS
from services.store import keys
from services.store.base import ObjectStore

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- what the labels add


# --------------------------------------------------------------------------- drift


def js_distance(p: Any, q: Any) -> Any:
    """Jensen–Shannon distance (base 2) between distributions along the last axis; 0 = identical, 1 = disjoint.

    Chosen over the population stability index because it is bounded (0 to 1, so one reading
    scale fits every day), symmetric, and defined when a class is absent on a day (PSI and KL need
    an arbitrary epsilon there and blow up); its square root form is a true metric. Inputs need not
    be normalised. Works on single vectors and on (days x classes) arrays alike (scipy's)."""
    from scipy.spatial.distance import jensenshannon

    with np.errstate(divide="ignore", invalid="ignore"):  # an empty row has no distribution: nan
        return jensenshannon(np.asarray(p, dtype=float), np.asarray(q, dtype=float), base=2, axis=-1)


def chance_distance(n: int, classes: int = len(LABELS)) -> float:
    """About the distance that sampling noise alone gives for `n` check-ins drawn from the training
    mix itself (JS divergence ≈ (k-1) / (8 n ln 2) bits for a sample of n): a day with 30 check-ins
    reads about 0.11 even with no drift at all."""
    if n <= 0:
        return 1.0
    return math.sqrt((classes - 1) / (8 * n * math.log(2)))


def drift_reading(distance: float | None, n: int) -> str:
    """The drift score in words, against the noise expected from `n` check-ins."""
    if distance is None or math.isnan(distance):
        return "no training distribution is known for the model, so drift cannot be measured"
    noise = chance_distance(n)
    tail = f"(distance {distance:.2f}; chance alone gives about {noise:.2f} with {n:,} check-ins)"
    if distance <= 1.5 * noise or distance < 0.05:
        return f"the model's labels follow the training mix {tail}"
    if distance < 0.1:
        return f"a small shift from the training mix {tail}"
    if distance < 0.2:
        return f"a moderate shift from the training mix: worth a look {tail}"
    return f"a large shift from the training mix: check-ins differ from what the model learnt on {tail}"


# --------------------------------------------------------------------------- health over time

SHARE_COLUMNS = [f"share_{label}" for label in LABELS]
HEALTH_COLUMNS = ["time", "label", "confidence", "model_version", "batch"]


@lru_cache(maxsize=2)
def _corpus_counts(base: str) -> tuple[tuple[str, int], ...]:
    counts = Counter(row.label for row in SHIPPED[base]().train)
    return tuple((label, counts.get(label, 0)) for label in LABELS)


def training_counts(store: ObjectStore, version: str) -> dict[str, int] | None:
    """Training rows per class of a model version: its dataset manifest's `train` counts, or the
    shipped corpus for a model trained on it directly (the bootstrap model); None when unknown."""
    try:
        card = load_card(store, version)
    except (ModelUnavailable, ValueError, TypeError):
        return None
    try:
        return dict(load_manifest(store, card.dataset).counts["train"])
    except (DatasetError, KeyNotFound, InvalidKey, ValueError, TypeError, KeyError):
        pass
    for base in SHIPPED:  # a model trained on a shipped corpus directly (a bootstrap model)
        if card.dataset.startswith(base):
            return dict(_corpus_counts(base))
    return None


def batch_thresholds(store: ObjectStore, batches: list[str]) -> dict[str, float]:
    """The review threshold each ingest batch was routed with (its `ingest/batches/` manifest)."""
    out: dict[str, float] = {}
    for batch in batches:
        try:
            out[batch] = float(json.loads(store.get(keys.batch_key(batch)))["threshold"])
        except (KeyNotFound, ValueError, TypeError, KeyError):
            continue
    return out


def read_health_frame(store: ObjectStore, default_threshold: float) -> pd.DataFrame:
    """One row per scored check-in: date (UTC day), label, confidence, model_version and the
    threshold in force when it was ingested (`default_threshold` for a batch without a manifest)."""
    frame = read_scored(store, columns=HEALTH_COLUMNS)
    batches = frame["batch"].astype(str)
    known = batch_thresholds(store, sorted(batches.unique()))
    threshold = batches.map(known).astype(float).fillna(default_threshold)
    return pd.DataFrame(
        {
            "date": frame["time"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize(),
            "label": frame["label"].astype(str),
            "confidence": frame["confidence"].astype(float),
            "model_version": frame["model_version"].astype(str),
            "threshold": threshold,
        }
    )


def _shares(frame: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    counts = pd.crosstab([frame[c] for c in ([by] if isinstance(by, str) else by)], frame["label"])
    counts = counts.reindex(columns=list(LABELS), fill_value=0)
    shares = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)
    shares.columns = SHARE_COLUMNS
    return shares


def _drift(shares: pd.DataFrame, versions: pd.Series, training: dict[str, dict[str, float]]) -> np.ndarray:
    """JS distance of each row's label shares from the training mix of its model version (NaN if unknown)."""
    known = versions.map(lambda v: v in training).to_numpy(dtype=bool)
    out = np.full(len(shares), np.nan)
    if known.any():
        q = np.array([[training[v][label] for label in LABELS] for v in versions[known]])
        out[known] = js_distance(shares.to_numpy()[known], q)
    return out


def daily_health(frame: pd.DataFrame, training: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Per day: check-ins, unrecognized (confidence below the threshold in force) and their share,
    mean confidence, the share of each predicted label, the model version that scored most of the
    day's check-ins, and the drift of the day's labels from that version's training mix."""
    cols = ["date", "checkins", "unrecognized", "unrecognized_share", "mean_confidence", *SHARE_COLUMNS]
    if frame.empty:
        return pd.DataFrame(columns=[*cols, "model_version", "drift"])
    low = frame["confidence"] < frame["threshold"]
    daily = (
        frame.assign(low=low)
        .groupby("date")
        .agg(checkins=("label", "size"), unrecognized=("low", "sum"), mean_confidence=("confidence", "mean"))
    )
    daily["unrecognized_share"] = daily["unrecognized"] / daily["checkins"]
    daily = daily.join(_shares(frame, "date"))
    per_version = frame.groupby(["date", "model_version"]).size().reset_index(name="n")
    main = per_version.sort_values(["date", "n"], ascending=[True, False]).drop_duplicates("date")
    daily["model_version"] = main.set_index("date")["model_version"]
    daily["drift"] = _drift(daily[SHARE_COLUMNS], daily["model_version"], training)
    return daily.reset_index()[[*cols, "model_version", "drift"]]


def version_health(frame: pd.DataFrame, training: dict[str, dict[str, float]]) -> pd.DataFrame:
    """The same figures per model version that scored check-ins, in the order they went live."""
    cols = ["model_version", "first_day", "last_day", "checkins", "unrecognized_share", "mean_confidence"]
    if frame.empty:
        return pd.DataFrame(columns=[*cols, *SHARE_COLUMNS, "drift"])
    low = frame["confidence"] < frame["threshold"]
    out = (
        frame.assign(low=low)
        .groupby("model_version")
        .agg(
            first_day=("date", "min"),
            last_day=("date", "max"),
            checkins=("label", "size"),
            unrecognized_share=("low", "mean"),
            mean_confidence=("confidence", "mean"),
        )
        .join(_shares(frame, "model_version"))
        .sort_values("first_day")
    )
    out["drift"] = _drift(out[SHARE_COLUMNS], out.index.to_series(), training)
    return out.reset_index()[[*cols, *SHARE_COLUMNS, "drift"]]


@dataclass(frozen=True)
class RecentHealth:
    """The last days of check-ins in a few numbers."""

    days: int
    checkins: int
    checkins_per_day: float
    unrecognized_share: float
    mean_confidence: float
    shares: dict[str, float]
    drift: float | None  # vs the live model's training mix
    reading: str


@dataclass(frozen=True)
class Health:
    """Health over time of the scoring model, from the scored check-ins."""

    checkins: pd.DataFrame  # one row per check-in (see `read_health_frame`)
    daily: pd.DataFrame  # see `daily_health`
    versions: pd.DataFrame  # see `version_health`
    training: dict[str, dict[str, float]]  # model version -> class -> share of its training rows
    live_version: str | None
    recent: RecentHealth | None  # None: no check-ins yet


def recent_health(
    frame: pd.DataFrame, training: dict[str, dict[str, float]], live: str | None, days: int = 7
) -> RecentHealth | None:
    """The last `days` calendar days that have check-ins, against the live model's training mix."""
    if frame.empty:
        return None
    last = frame["date"].max()
    days = min(days, (last - frame["date"].min()).days + 1)  # a young workspace has fewer days
    window = frame[frame["date"] >= last - pd.Timedelta(days=days - 1)]
    n = len(window)
    counts = window["label"].value_counts()
    shares = {label: float(counts.get(label, 0)) / n for label in LABELS}
    drift = None
    if live in training:
        drift = float(js_distance([shares[c] for c in LABELS], [training[live][c] for c in LABELS]))
    return RecentHealth(
        days=days,
        checkins=n,
        checkins_per_day=n / days,
        unrecognized_share=float((window["confidence"] < window["threshold"]).mean()),
        mean_confidence=float(window["confidence"].mean()),
        shares=shares,
        drift=drift,
        reading=drift_reading(drift, n),
    )


def model_health(store: ObjectStore, *, default_threshold: float, recent_days: int = 7) -> Health:
    """Health over time: volume, unrecognized share, mean confidence, predicted label mix and drift
    per day and per model version. The drift is measured against the training mix of the version
    that scored the check-ins; the training mix comes from the shipped corpus, so a drift here says
    "these check-ins differ from what the model learnt on" — the gap human labels close."""
    frame = read_health_frame(store, default_threshold)
    dep = current(store)
    live = dep.version if dep else None
    versions = sorted(set(frame["model_version"].unique()) | ({live} if live else set()))
    training: dict[str, dict[str, float]] = {}
    for version in versions:
        counts = training_counts(store, version)
        total = sum(counts.values()) if counts else 0
        if counts and total:
            training[version] = {label: counts.get(label, 0) / total for label in LABELS}
    return Health(
        checkins=frame,
        daily=daily_health(frame, training),
        versions=version_health(frame, training),
        training=training,
        live_version=live,
        recent=recent_health(frame, training, live, recent_days),
    )


# --------------------------------------------------------------------------- the review threshold
