"""Model health (services.health): what the labels add, drift, the review-threshold preview and
override, and an empty workspace."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from services.checkins.partitions import SCHEMA, partition_key, partitions
from services.config import load_settings
from services.errors import InvalidThreshold
from services.lifecycle import label_summary as summary
from services.lifecycle.datasets import build_dataset
from services.lifecycle.deployment import record_deployment
from services.lifecycle.gold import import_gold
from services.lifecycle.registry import ModelCard
from services.monitoring import health, threshold
from services.review.labeling import LabelingService
from services.review.labels import Label, retract_label, save_label
from services.store.base import ObjectStore
from services.store.local import LocalStore
from tests.unit.review.test_labeling import make_item, queue

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def lab(
    item: str, label: str, who: str, minute: int = 0, *, text: str = "", gold: bool = False, final: bool = False
) -> Label:
    when = (T0 + timedelta(minutes=minute)).isoformat(timespec="microseconds")
    return Label(item, text or f"text of {item}", label, who, when, gold=gold, final=final)


def register_card(store: ObjectStore, version: str, dataset: str) -> None:
    """A card without an artifact: enough for health, which never loads the model."""
    card = ModelCard(version=version, created_at=T0.isoformat(), created_by="tests", dataset=dataset)
    store.put(f"models/{version}/card.json", json.dumps(asdict(card)).encode())


def write_scored(store: ObjectStore, rows: list[dict[str, object]], batch: str, threshold: float) -> None:
    frame = pd.DataFrame(rows)
    for name in SCHEMA.names:
        if name not in frame:
            frame[name] = "" if name not in ("confidence", "p_negative", "p_neutral", "p_positive") else 0.0
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["batch"] = batch
    for date, blob in partitions(frame):
        store.put(partition_key(date, batch), blob)
    store.put(f"ingest/batches/{batch}.json", json.dumps({"batch": batch, "threshold": threshold}).encode())


# --- what the labels add ------------------------------------------------------------------------


def test_counts_resolve_per_item_and_leave_retracted_labels_out(store: LocalStore) -> None:
    save_label(store, lab("a", "negative", "ann", 1))
    save_label(store, lab("a", "positive", "bob", 2))  # later: wins for the item
    save_label(store, lab("b", "neutral", "ann", 3))
    undone = save_label(store, lab("c", "positive", "bob", 4))
    save_label(store, lab("d", "positive", "cy", 5, gold=True))  # held out: not in per_class
    retract_label(store, undone, by="bob")
    s = summary.label_summary(store)
    assert s.labels == 4 and s.items == 3 and s.retracted == 1
    assert s.per_class == {"negative": 0, "neutral": 1, "positive": 1, "unclear": 0}
    assert s.per_annotator == {
        "ann": {"negative": 1, "neutral": 1, "positive": 0, "unclear": 0},
        "bob": {"negative": 0, "neutral": 0, "positive": 1, "unclear": 0},
        "cy": {"negative": 0, "neutral": 0, "positive": 1, "unclear": 0},
    }
    assert (s.gold_items, s.double_labelled, s.disagreeing) == (1, 1, 1)


def test_an_undo_in_the_review_queue_takes_the_label_out_of_the_counts(store: LocalStore) -> None:
    queue(store, [make_item(i, margin=0.1 * i) for i in range(2)])
    svc = LabelingService(store, double_share=0)
    first = svc.claim_next("ann")
    assert first is not None
    svc.submit(first.id, "negative", "ann")
    second = svc.claim_next("ann")
    assert second is not None
    svc.submit(second.id, "positive", "ann")
    assert summary.label_summary(store).per_class["positive"] == 1
    assert svc.undo("ann") == second.id
    s = summary.label_summary(store)
    assert s.per_class == {"negative": 1, "neutral": 0, "positive": 0, "unclear": 0}
    assert s.per_annotator == {"ann": {"negative": 1, "neutral": 0, "positive": 0, "unclear": 0}}
    assert s.retracted == 1


def test_agreement_passes_kappa_through_and_says_which_label_counts(store: LocalStore) -> None:
    save_label(store, lab("a", "negative", "ann", 1))
    save_label(store, lab("a", "negative", "bob", 2))
    save_label(store, lab("b", "neutral", "ann", 3))
    save_label(store, lab("b", "positive", "bob", 4))
    save_label(store, lab("b", "neutral", "cy", 5, final=True))  # a reviewer settles it
    report = summary.agreement(store)
    kappa, rows = LabelingService(store).agreement()
    assert report.kappa == kappa and report.kappa is not None
    assert [(r["item_id"], r["labels"], r["counts_as"]) for r in report.disagreements] == [
        ("b", ["neutral", "positive", "neutral"], "neutral")
    ]
    assert [{k: v for k, v in r.items() if k != "counts_as"} for r in report.disagreements] == rows
    assert report.reading.endswith("agreement")


@pytest.mark.parametrize(
    ("kappa", "words"),
    [(None, "no item"), (-0.1, "less than chance"), (0.5, "moderate"), (0.7, "substantial"), (0.95, "almost perfect")],
)
def test_kappa_in_words(kappa: float | None, words: str) -> None:
    assert words in summary.kappa_reading(kappa)


def test_new_labels_are_those_the_live_models_dataset_did_not_read(store: LocalStore) -> None:
    import_gold(store, "tiny", [("the numbers are in", "neutral"), ("lovely", "positive"), ("awful", "negative")])
    words = {"negative": "gloomy", "neutral": "ordinary", "positive": "cheerful"}
    keys = [
        save_label(store, lab(f"i{i}", label, "ann", i, text=f"{words[label]} remark number {i + 10}"))
        for i, label in enumerate(["negative", "neutral", "positive"] * 2)
    ]
    manifest = build_dataset(store, by="tests", base="none")
    register_card(store, "m1", manifest.version)
    record_deployment(store, "m1", by="tests", reason="test")
    save_label(store, lab("new-1", "negative", "bob", 30))
    save_label(store, lab("new-2", "unclear", "bob", 31))
    retract_label(store, keys[0], by="ann")
    since = summary.labels_since_live(store)
    assert (since.version, since.dataset, since.from_manifest) == ("m1", manifest.version, True)
    assert since.dataset_created_at == manifest.created_at
    assert (since.new_labels, since.new_items, since.withdrawn) == (2, 2, 1)
    assert since.new_per_class == {"negative": 1, "neutral": 0, "positive": 0, "unclear": 1}


def test_a_model_without_a_dataset_version_has_learnt_from_no_label(store: LocalStore) -> None:
    register_card(store, "m0", "bootstrap-corpus (shipped)")
    record_deployment(store, "m0", by="tests", reason="bootstrap")
    save_label(store, lab("a", "positive", "ann"))
    since = summary.labels_since_live(store)
    assert not since.from_manifest and since.new_labels == 1 and since.dataset_created_at == T0.isoformat()
    assert health.training_counts(store, "m0") == dict(health._corpus_counts("bootstrap-corpus"))


def test_preview_matches_what_a_build_then_writes(store: LocalStore) -> None:
    import_gold(store, "tiny", [("the numbers are in", "neutral")])
    for i, label in enumerate(["negative", "neutral", "positive"] * 3):
        save_label(store, lab(f"i{i}", label, "ann", i, text=f"{label} remark number {i + 10}"))
    preview = summary.preview_dataset(store, base="none")
    assert preview.problem is None
    assert not list(store.list("datasets/"))  # nothing written
    built = build_dataset(store, by="tests", base="none")
    assert preview.counts == built.counts and preview.sources == built.sources
    assert preview.class_balance() == {"negative": 3, "neutral": 3, "positive": 3}


def test_preview_says_why_a_build_would_be_refused(store: LocalStore) -> None:
    save_label(store, lab("a", "positive", "ann"))
    preview = summary.preview_dataset(store, base="none")
    assert preview.problem is not None and "no training examples" in preview.problem
    assert preview.counts == {}


# --- drift ----------------------------------------------------------------------------------------


def test_drift_is_zero_for_identical_mixes_and_grows_with_the_shift() -> None:
    base = [0.3, 0.2, 0.5]
    assert health.js_distance(base, base) == pytest.approx(0.0, abs=1e-9)
    assert health.js_distance([3, 2, 5], base) == pytest.approx(0.0, abs=1e-9)  # counts work as well
    small = health.js_distance([0.35, 0.2, 0.45], base)
    large = health.js_distance([0.7, 0.2, 0.1], base)
    assert 0 < small < large < 1
    assert health.js_distance([1, 0, 0], [0, 0, 1]) == pytest.approx(1.0)  # disjoint
    assert math.isfinite(health.js_distance([0.5, 0.0, 0.5], base))  # an empty class is fine
    rows = health.js_distance(np.array([base, [0.7, 0.2, 0.1]]), np.array([base, base]))
    assert rows.shape == (2,) and rows[0] == pytest.approx(0) and rows[1] == pytest.approx(large)


def test_drift_reading_weighs_the_noise_of_small_samples() -> None:
    assert health.chance_distance(30) == pytest.approx(math.sqrt(2 / (8 * 30 * math.log(2))))
    assert health.chance_distance(30) > health.chance_distance(3000)
    assert "follow the training mix" in health.drift_reading(0.1, 30)  # within chance for 30 check-ins
    assert "moderate shift" in health.drift_reading(0.15, 5000)
    assert "large shift" in health.drift_reading(0.3, 5000)
    assert "cannot be measured" in health.drift_reading(None, 100)


# --- health over time ------------------------------------------------------------------------------


def _day(day: int, confidences: list[float], labels: list[str], version: str) -> list[dict[str, object]]:
    when = T0 + timedelta(days=day)
    return [
        {"id": f"{version}-{day}-{i}", "time": when + timedelta(minutes=i), "label": y, "confidence": c,
         "model_version": version, "text": "x"}
        for i, (c, y) in enumerate(zip(confidences, labels, strict=True))
    ]  # fmt: skip


def test_health_per_day_and_per_version(store: LocalStore) -> None:
    register_card(store, "m1", "bootstrap-corpus")
    register_card(store, "m2", "d-unknown")  # no manifest: drift unknown for its days
    rows = _day(0, [0.9, 0.5, 0.7, 0.3], ["positive", "negative", "neutral", "positive"], "m1")
    write_scored(store, rows, "b1", threshold=0.6)
    write_scored(store, _day(1, [0.55, 0.65], ["negative", "negative"], "m2"), "b2", threshold=0.6)
    write_scored(store, _day(2, [0.55, 0.65], ["positive", "neutral"], "m2"), "b3", threshold=0.5)
    record_deployment(store, "m2", by="tests", reason="test")
    h = health.model_health(store, default_threshold=0.8)
    d = h.daily  # one row per day, days 0, 1, 2
    assert list(d["checkins"]) == [4, 2, 2]
    assert list(d["unrecognized"]) == [2, 1, 0]  # each batch's own threshold: 0.6, 0.6, 0.5
    assert d.loc[0, "mean_confidence"] == pytest.approx(0.6)
    assert (d.loc[0, "share_negative"], d.loc[0, "share_neutral"], d.loc[0, "share_positive"]) == (0.25, 0.25, 0.5)
    assert list(d["model_version"]) == ["m1", "m2", "m2"]
    corpus = dict(health._corpus_counts("bootstrap-corpus"))
    mix = [corpus[c] / sum(corpus.values()) for c in ("negative", "neutral", "positive")]
    assert d.loc[0, "drift"] == pytest.approx(health.js_distance([0.25, 0.25, 0.5], mix))
    assert math.isnan(d.loc[2, "drift"])
    v = h.versions.set_index("model_version")
    assert list(v.index) == ["m1", "m2"] and list(v["checkins"]) == [4, 4]
    assert v.loc["m2", "unrecognized_share"] == pytest.approx(0.25)
    assert h.live_version == "m2" and set(h.training) == {"m1"}
    assert h.recent is not None and h.recent.checkins == 8 and h.recent.drift is None
    assert h.recent.checkins_per_day == pytest.approx(8 / 3)


def test_threshold_preview_counts_per_day() -> None:
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2026-03-01"] * 4 + ["2026-03-02"] * 3),
            "confidence": [0.2, 0.5, 0.59, 0.6, 0.9, 0.61, 0.1],
        }
    )
    out = threshold.review_preview(frame, 0.6)
    assert list(out["checkins"]) == [4, 3]
    assert list(out["to_review"]) == [3, 1]  # strictly below the threshold, as ingest routes
    assert list(out["share"]) == [0.75, pytest.approx(1 / 3)]
    assert list(threshold.review_preview(frame, 0.05)["to_review"]) == [0, 0]
    assert list(threshold.review_preview(frame, 0.95)["to_review"]) == [4, 3]


def test_threshold_preview_of_a_large_frame_is_fast() -> None:
    import time

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "date": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 365, 1_000_000), unit="D"),
            "confidence": rng.random(1_000_000),
        }
    )
    started = time.perf_counter()
    out = threshold.review_preview(frame, 0.5)
    assert time.perf_counter() - started < 1.0
    assert out["checkins"].sum() == 1_000_000


# --- the review threshold --------------------------------------------------------------------------


def test_saving_the_threshold_keeps_who_when_and_the_value_it_replaces(store: LocalStore) -> None:
    settings = load_settings(review_threshold=0.6)
    assert threshold.load_threshold_override(store) is None
    assert threshold.effective_threshold(store, settings) == 0.6
    first = threshold.save_threshold(store, 0.55, by="alice", settings=settings, now=T0)
    assert (first.threshold, first.set_by, first.set_at) == (0.55, "alice", T0.isoformat(timespec="seconds"))
    assert (first.previous, first.previous_source) == (0.6, "setting")
    second = threshold.save_threshold(store, 0.7, by="bob", settings=settings, now=T0 + timedelta(hours=1))
    assert (second.previous, second.previous_source) == (0.55, "override")
    assert threshold.load_threshold_override(store) == second
    assert threshold.effective_threshold(store, settings) == 0.7
    assert [h.threshold for h in threshold.threshold_history(store)] == [0.55, 0.7]
    assert json.loads(store.get(threshold.THRESHOLD_KEY))["set_by"] == "bob"


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, 1.5, float("nan"), float("inf"), True, "0.5"])
def test_an_out_of_range_threshold_is_refused_and_nothing_written(store: LocalStore, bad: object) -> None:
    with pytest.raises(InvalidThreshold):
        threshold.save_threshold(store, bad, by="alice", settings=load_settings())  # type: ignore[arg-type]
    assert list(store.list("settings/")) == []


def test_a_damaged_override_is_reported_and_ignored_by_ingest(store: LocalStore) -> None:
    settings = load_settings(review_threshold=0.6)
    store.put(threshold.THRESHOLD_KEY, b"{not json")
    with pytest.raises(InvalidThreshold):
        threshold.load_threshold_override(store)
    assert threshold.effective_threshold(store, settings) == 0.6
    bad = {"threshold": 3, "set_by": "x", "set_at": "", "previous": 0.6, "previous_source": "setting"}
    store.put(threshold.THRESHOLD_KEY, json.dumps(bad).encode())
    assert threshold.effective_threshold(store, settings) == 0.6
    saved = threshold.save_threshold(store, 0.5, by="alice", settings=settings)
    assert (saved.previous, saved.previous_source) == (0.6, "setting")


# --- an empty workspace ----------------------------------------------------------------------------


def test_an_empty_workspace_gives_empty_results_not_errors(store: LocalStore) -> None:
    s = summary.label_summary(store)
    assert s.labels == 0 and s.per_annotator == {} and sum(s.per_class.values()) == 0
    since = summary.labels_since_live(store)
    assert since.version is None and since.new_labels == 0
    report = summary.agreement(store)
    assert report.kappa is None and report.disagreements == []
    h = health.model_health(store, default_threshold=0.6)
    assert h.daily.empty and h.versions.empty and h.checkins.empty
    assert h.recent is None and h.live_version is None and h.training == {}
    assert threshold.review_preview(h.checkins, 0.6).empty
    assert threshold.threshold_history(store) == []


def hand_written_js(p: list[float], q: list[float]) -> float:
    """The Jensen–Shannon distance `js_distance` computed by hand before it called scipy."""
    import math

    a = [x / sum(p) for x in p]
    b = [x / sum(q) for x in q]
    m = [(x + y) / 2 for x, y in zip(a, b, strict=True)]

    def kl(x: list[float]) -> float:
        return sum(xi * math.log2(xi / mi) for xi, mi in zip(x, m, strict=True) if xi > 0)

    return math.sqrt(min(max((kl(a) + kl(b)) / 2, 0.0), 1.0))


@pytest.mark.parametrize(
    ("p", "q"),
    [
        ([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]),
        ([1, 0, 0], [0, 0, 1]),
        ([0.5, 0.5, 0], [0.1, 0.2, 0.7]),
        ([3, 1, 0], [0.3, 0.3, 0.4]),
        ([0.01, 0.98, 0.01], [0.6, 0.2, 0.2]),
    ],
)
def test_scipys_jensen_shannon_distance_is_the_hand_written_one(p: list[float], q: list[float]) -> None:
    assert float(health.js_distance(p, q)) == pytest.approx(hand_written_js(p, q), abs=1e-12)
    rows = health.js_distance([p, q], [q, q])  # (days x classes) arrays too
    assert float(rows[0]) == pytest.approx(hand_written_js(p, q), abs=1e-12) and float(rows[1]) == pytest.approx(
        0, abs=1e-7
    )
