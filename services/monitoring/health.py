"""Model health for admins: what the human labels add, how the live model does on real check-ins
over time, and the review threshold (with an admin override stored in the workspace).

Everything here reads the store; nothing writes except `save_threshold`. No Streamlit.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from services.access import audit
from services.checkins.partitions import read_scored
from services.config import Settings
from services.errors import InvalidKey, KeyNotFound, ModelUnavailable, PulseError
from services.lifecycle.datasets import BASE, DatasetError, dataset_content, load_manifest
from services.lifecycle.deployment import current
from services.lifecycle.gold import gold_inputs
from services.lifecycle.registry import load_card
from services.model.corpus import split_corpus
from services.model.prediction import LABELS
from services.review.labeling import LabelingService
from services.review.labels import DECISIONS, Label, read_labels, resolve, retracted_keys
from services.store.base import ObjectStore

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- what the labels add


@dataclass(frozen=True)
class LabelSummary:
    """The human labels that count now (labels withdrawn by undo are left out, as `read_labels` does).

    `per_class` counts items by the label that wins for them (`services.labels.resolve`, the rule a
    dataset build applies), gold items left out as a build leaves them out; `per_annotator` counts
    the labels each person gave, gold included (it is their work all the same)."""

    labels: int
    items: int
    retracted: int
    per_class: dict[str, int]
    per_annotator: dict[str, dict[str, int]]
    gold_items: int
    double_labelled: int  # items labelled by two or more people: the sample behind kappa
    disagreeing: int  # items whose labels differ (a build resolves them, the table lists them)


def label_summary(store: ObjectStore) -> LabelSummary:
    """Label counts per class (resolved per item) and per annotator."""
    labels = [lab for _, lab in read_labels(store)]
    by_item: dict[str, list[Label]] = {}
    for lab in labels:
        by_item.setdefault(lab.item_id, []).append(lab)
    per_class = dict.fromkeys(DECISIONS, 0)
    gold = 0
    for items in by_item.values():
        trainable = [lab for lab in items if not lab.gold]
        gold += len(trainable) < len(items)
        if trainable:
            chosen, _ = resolve(trainable)
            per_class[chosen.label] = per_class.get(chosen.label, 0) + 1
    per_annotator: dict[str, dict[str, int]] = {}
    for lab in labels:
        row = per_annotator.setdefault(lab.annotator, dict.fromkeys(DECISIONS, 0))
        row[lab.label] = row.get(lab.label, 0) + 1
    return LabelSummary(
        labels=len(labels),
        items=len(by_item),
        retracted=len(retracted_keys(store)),
        per_class=per_class,
        per_annotator=dict(sorted(per_annotator.items())),
        gold_items=gold,
        double_labelled=sum(1 for items in by_item.values() if len({lab.annotator for lab in items}) > 1),
        disagreeing=sum(1 for items in by_item.values() if resolve(items)[1]),
    )


@dataclass(frozen=True)
class DatasetPreview:
    """What `build_dataset` would write now, without writing it."""

    counts: dict[str, dict[str, int]]  # split -> label -> rows
    sources: dict[str, int]  # base / human rows
    dropped: dict[str, int]  # reason -> rows
    conflicts: int
    problem: str | None = None  # why a build would be refused now (then the counts are empty)

    def class_balance(self) -> dict[str, int]:
        """Rows per class over both splits."""
        return {label: sum(split.get(label, 0) for split in self.counts.values()) for label in LABELS}


def preview_dataset(
    store: ObjectStore, *, seed: int = 0, validation_share: float = 0.2, base: str = BASE
) -> DatasetPreview:
    """The class balance of the next dataset version, by the very code that builds it (nothing is
    written). A dataset that would be refused (empty, a class with no examples) comes back with
    `problem` set instead of raising."""
    label_keys = [key for key, _ in read_labels(store)]
    try:
        _, _, extra = dataset_content(
            store, label_keys, gold_inputs(store), seed=seed, share=validation_share, base=base
        )
    except DatasetError as exc:
        return DatasetPreview({}, {}, {}, 0, problem=str(exc))
    return DatasetPreview(
        counts=extra["counts"],
        sources=extra["sources"],
        dropped=extra["dropped"],
        conflicts=len(extra["conflicts"]),
    )


@dataclass(frozen=True)
class SinceLive:
    """Labels the live model has not learnt from: those that were not an input of its dataset."""

    version: str | None  # the live model (None: nothing deployed)
    dataset: str | None  # its card's dataset
    dataset_created_at: str | None  # when that dataset was built (or the model, if it has no dataset version)
    from_manifest: bool  # False: the model was not trained on a dataset version (e.g. the bootstrap model)
    new_labels: int
    new_items: int
    new_per_class: dict[str, int] = field(default_factory=dict)  # decision -> new labels
    withdrawn: int = 0  # labels the dataset used that were retracted since


def labels_since_live(store: ObjectStore) -> SinceLive:
    """New labels since the live model's dataset. The dataset's manifest lists the label files it
    read, which is exact (a timestamp comparison would miss late writes); a model trained without a
    dataset version has learnt from no label at all."""
    labels = read_labels(store)
    dep = current(store)
    if dep is None:
        return _since(None, None, None, False, labels, set())
    try:
        card = load_card(store, dep.version)
    except ModelUnavailable:
        return _since(dep.version, None, None, False, labels, set())
    try:
        manifest = load_manifest(store, card.dataset)
    except (DatasetError, KeyNotFound, InvalidKey, ValueError, TypeError):
        return _since(dep.version, card.dataset, card.created_at, False, labels, set())
    used = set(manifest.label_keys)
    out = _since(dep.version, card.dataset, manifest.created_at, True, labels, used)
    now = {key for key, _ in labels}
    return SinceLive(**{**asdict(out), "withdrawn": len(used - now)})


def _since(
    version: str | None,
    dataset: str | None,
    created_at: str | None,
    from_manifest: bool,
    labels: list[tuple[str, Label]],
    used: set[str],
) -> SinceLive:
    new = [lab for key, lab in labels if key not in used]
    per_class = dict.fromkeys(DECISIONS, 0)
    for lab in new:
        per_class[lab.label] = per_class.get(lab.label, 0) + 1
    return SinceLive(
        version, dataset, created_at, from_manifest, len(new), len({lab.item_id for lab in new}), per_class
    )


@dataclass(frozen=True)
class Agreement:
    """Cohen's kappa between annotators and the items where they disagree."""

    kappa: float | None  # None: no item has two annotators yet
    reading: str  # the number in words
    disagreements: list[dict[str, Any]]  # item_id, text, labels, annotators, counts_as


def kappa_reading(kappa: float | None) -> str:
    """Kappa in words (the Landis & Koch bands, the usual convention)."""
    if kappa is None:
        return "no item has been labelled by two people yet"
    bands = ((0.0, "less than chance"), (0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial"))
    word = "almost perfect"
    for upper, name in bands:
        if kappa <= upper:
            word = name
            break
    return f"{word} agreement"


def agreement(store: ObjectStore) -> Agreement:
    """Kappa and disagreements as `LabelingService.agreement` computes them, plus the label a
    dataset build would use for each disagreement (`counts_as`)."""
    kappa, rows = LabelingService(store).agreement()
    by_item: dict[str, list[Label]] = {}
    for _, lab in read_labels(store):
        by_item.setdefault(lab.item_id, []).append(lab)
    out = []
    for row in rows:
        items = by_item.get(str(row["item_id"]), [])
        out.append({**row, "counts_as": resolve(items)[0].label if items else ""})
    return Agreement(kappa, kappa_reading(kappa), out)


# --------------------------------------------------------------------------- drift


def js_distance(p: Any, q: Any) -> Any:
    """Jensen–Shannon distance (base 2) between distributions along the last axis; 0 = identical, 1 = disjoint.

    Chosen over the population stability index because it is bounded (0 to 1, so one reading
    scale fits every day), symmetric, and defined when a class is absent on a day (PSI and KL need
    an arbitrary epsilon there and blow up); its square root form is a true metric. Inputs need not
    be normalised. Works on single vectors and on (days x classes) arrays alike."""
    a = np.asarray(p, dtype=float)
    b = np.asarray(q, dtype=float)
    a = a / a.sum(axis=-1, keepdims=True)
    b = b / b.sum(axis=-1, keepdims=True)
    m = (a + b) / 2

    def kl(x: Any) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(x > 0, x * np.log2(np.where(x > 0, x, 1.0) / np.where(m > 0, m, 1.0)), 0.0)
        return terms.sum(axis=-1)

    divergence = np.clip((kl(a) + kl(b)) / 2, 0.0, 1.0)
    return np.sqrt(divergence)


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


@lru_cache(maxsize=1)
def _corpus_counts() -> tuple[tuple[str, int], ...]:
    counts = Counter(row.label for row in split_corpus().train)
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
    if card.dataset.startswith(BASE):
        return dict(_corpus_counts())
    return None


def batch_thresholds(store: ObjectStore, batches: list[str]) -> dict[str, float]:
    """The review threshold each ingest batch was routed with (its `ingest/batches/` manifest)."""
    out: dict[str, float] = {}
    for batch in batches:
        try:
            out[batch] = float(json.loads(store.get(f"ingest/batches/{batch}.json"))["threshold"])
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


# --------------------------------------------------------------------------- the review threshold

THRESHOLD_KEY = "settings/review_threshold.json"
THRESHOLD_HISTORY = "settings/history/review_threshold/"


class InvalidThreshold(PulseError):
    """A review threshold outside (0, 1), or an override file that cannot be read."""


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
    stamp = record.set_at.replace(":", "").replace("-", "").replace("+", "p")
    who = "".join(c if c.isalnum() or c in "._@-" else "_" for c in by)[:64]
    store.put(f"{THRESHOLD_HISTORY}{stamp}-{who}.json", body)
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
