"""Two registered model versions side by side on the same gold set: their metrics, confusion
matrices, per-class precision and recall, and the gold messages on which they disagree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.lifecycle.gold import GoldSet, load_gold
from services.lifecycle.registry import fetch_model, model_cache_dir
from services.model.evaluation import Evaluation, evaluate
from services.model.prediction import LABELS
from services.store.base import ObjectStore

METRICS = ("macro_f1", "accuracy", "ece")


@dataclass(frozen=True)
class GoldScore:
    """One version's predictions on the gold set, and how they scored."""

    version: str
    evaluation: Evaluation
    labels: list[str]
    confidences: list[float]

    def metric(self, name: str) -> float:
        return float(getattr(self.evaluation, name))


@dataclass(frozen=True)
class Disagreement:
    """A gold message the two versions label differently."""

    text: str
    truth: str
    label_a: str
    confidence_a: float
    label_b: str
    confidence_b: float

    @property
    def right(self) -> str:
        """Which version got it right: "A", "B" or "neither"."""
        if self.label_a == self.truth:
            return "A"
        return "B" if self.label_b == self.truth else "neither"


@dataclass(frozen=True)
class Comparison:
    """Version `a` against version `b` on one gold set."""

    a: GoldScore
    b: GoldScore
    gold_set: str
    disagreements: list[Disagreement]  # at most `max_examples`, those one version gets right first
    disagreeing: int  # how many gold messages they label differently in all

    @property
    def n(self) -> int:
        return self.a.evaluation.n

    def metrics(self) -> list[dict[str, object]]:
        """Macro-F1, accuracy and calibration error (lower is better) of both, and the change."""
        return [
            {
                "metric": name,
                "A": self.a.metric(name),
                "B": self.b.metric(name),
                "B - A": self.b.metric(name) - self.a.metric(name),
            }
            for name in METRICS
        ]

    def per_class(self) -> list[dict[str, object]]:
        """Precision, recall and F1 per class for both versions, and how much B changes them."""
        rows: list[dict[str, object]] = []
        for label in LABELS:
            pa, pb = self.a.evaluation.per_class[label], self.b.evaluation.per_class[label]
            row: dict[str, object] = {"class": label, "support": int(pa["support"])}
            for measure in ("precision", "recall", "f1"):
                row[f"{measure} A"] = pa[measure]
                row[f"{measure} B"] = pb[measure]
                row[f"{measure} change"] = pb[measure] - pa[measure]
            rows.append(row)
        return rows


def score_on_gold(store: ObjectStore, version: str, gold: GoldSet, cache_dir: Path | None = None) -> GoldScore:
    """Predict the gold set with a registered version (`ModelUnavailable` if its artifact is
    missing or corrupt)."""
    model = fetch_model(store, version, cache_dir or model_cache_dir(store))
    predictions = model.predict(gold.texts)
    return GoldScore(
        version,
        evaluate(predictions, gold.labels),
        [p.label for p in predictions],
        [round(p.confidence, 4) for p in predictions],
    )


def compare_versions(
    store: ObjectStore, a: str, b: str, *, cache_dir: Path | None = None, max_examples: int = 50
) -> Comparison:
    """Score both versions on the gold set as it is now and list where they disagree: first the
    messages one of them gets right (fixed or broken by the change), then those both get wrong."""
    gold = load_gold(store)
    score_a = score_on_gold(store, a, gold, cache_dir)
    score_b = score_on_gold(store, b, gold, cache_dir)
    found = [
        Disagreement(text, truth, la, ca, lb, cb)
        for text, truth, la, ca, lb, cb in zip(
            gold.texts,
            gold.labels,
            score_a.labels,
            score_a.confidences,
            score_b.labels,
            score_b.confidences,
            strict=True,
        )
        if la != lb
    ]
    found.sort(key=lambda d: d.right == "neither")  # stable: gold order within each group
    return Comparison(score_a, score_b, gold.fingerprint(), found[:max_examples], len(found))
