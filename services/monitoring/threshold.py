"""The review threshold in force: the `PULSE_REVIEW_THRESHOLD` setting, or an admin's override stored
in the workspace (`settings/review_threshold.json`, every change kept in its history and audited),
and what a threshold would send to review."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from services.access import audit
from services.config import Settings
from services.errors import InvalidThreshold, KeyNotFound
from services.store import keys
from services.store.base import ObjectStore

log = logging.getLogger(__name__)


def review_preview(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """How many check-ins per day would go to review at `threshold` (confidence below it), from the
    stored confidences: date, checkins, to_review, share. One vectorised comparison and group-by."""
    if frame.empty:
        return pd.DataFrame({"date": [], "checkins": [], "to_review": [], "share": []})
    low = frame["confidence"].to_numpy() < threshold
    out = (
        pd.DataFrame({"date": frame["date"].to_numpy(), "low": low})
        .groupby("date")
        .agg(checkins=("low", "size"), to_review=("low", "sum"))
        .reset_index()
    )
    out["share"] = out["to_review"] / out["checkins"]
    return out


THRESHOLD_KEY = keys.REVIEW_THRESHOLD


THRESHOLD_HISTORY = keys.REVIEW_THRESHOLD_HISTORY


@dataclass(frozen=True)
class ThresholdOverride:
    """An admin's choice of review threshold, replacing `PULSE_REVIEW_THRESHOLD` for new uploads."""

    threshold: float
    set_by: str
    set_at: str
    previous: float  # the threshold in force before this one
    previous_source: str  # "setting" (PULSE_REVIEW_THRESHOLD) or "override"


def _check_threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidThreshold(f"the review threshold must be a number, not {value!r}")
    if not math.isfinite(value) or not 0.0 < float(value) < 1.0:
        raise InvalidThreshold(f"the review threshold must lie strictly between 0 and 1, not {value}")
    return float(value)


def load_threshold_override(store: ObjectStore) -> ThresholdOverride | None:
    """The admin's override, or None when there is none. Raises `InvalidThreshold` for a file that
    is not a valid override (never guessed at)."""
    try:
        raw = json.loads(store.get(THRESHOLD_KEY))
    except KeyNotFound:
        return None
    except ValueError:
        raise InvalidThreshold(f"{THRESHOLD_KEY} is not valid JSON") from None
    try:
        found = ThresholdOverride(**raw)
    except TypeError:
        raise InvalidThreshold(f"{THRESHOLD_KEY} does not hold a threshold override") from None
    _check_threshold(found.threshold)
    return found


def effective_threshold(store: ObjectStore, settings: Settings) -> float:
    """The review threshold new uploads should use: the admin's override if there is a valid one,
    else `settings.review_threshold` (PULSE_REVIEW_THRESHOLD). An unreadable override is logged and
    ignored, so a damaged file never stops ingestion."""
    try:
        found = load_threshold_override(store)
    except InvalidThreshold as exc:
        log.warning("ignoring the review threshold override: %s", exc)
        return settings.review_threshold
    return found.threshold if found else settings.review_threshold


def save_threshold(
    store: ObjectStore, threshold: float, *, by: str, settings: Settings, now: datetime | None = None, role: str = ""
) -> ThresholdOverride:
    """Store an admin's review threshold (0 < threshold < 1) with who set it, when, and the value it
    replaces. A history record is written first, then the override itself (one atomic write)."""
    value = _check_threshold(threshold)
    if not by.strip():
        raise InvalidThreshold("say who sets the threshold")
    try:
        before = load_threshold_override(store)
    except InvalidThreshold:
        before = None  # a damaged override was not in force (see effective_threshold)
    record = ThresholdOverride(
        threshold=round(value, 4),
        set_by=by,
        set_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        previous=before.threshold if before else settings.review_threshold,
        previous_source="override" if before else "setting",
    )
    body = json.dumps(asdict(record), indent=2).encode()
    store.put(f"{THRESHOLD_HISTORY}{keys.file_stamp(record.set_at)}-{keys.segment(by)}.json", body)
    store.put(THRESHOLD_KEY, body)
    audit.try_record(store, by, role, "threshold_changed", "review_threshold", {"from": record.previous, "to": value})
    return record


def threshold_history(store: ObjectStore) -> list[ThresholdOverride]:
    """Every saved threshold, oldest first (unreadable records skipped)."""
    out = []
    for key in store.list(THRESHOLD_HISTORY):
        try:
            out.append(ThresholdOverride(**json.loads(store.get(key))))
        except (KeyNotFound, ValueError, TypeError):
            continue
    return out
