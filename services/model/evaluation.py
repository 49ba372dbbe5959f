"""How well predictions match true labels: accuracy, macro-F1, per-class precision/recall and the
confusion matrix (scikit-learn's), and calibration (confidence against accuracy by bin, expected
calibration error). The gold set these are measured on is `services.lifecycle.gold`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from services.errors import PulseError
from services.model.prediction import LABELS, Prediction

BINS = 10


@dataclass(frozen=True)
class Evaluation:
    """How a model did on a labelled set. Confusion rows are the true labels, columns the predictions."""

    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    calibration: list[dict[str, float]] = field(default_factory=list)
    ece: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(predictions: Sequence[Prediction], truth: Sequence[str]) -> Evaluation:
    """Score predictions against true labels (both in LABELS)."""
    if len(predictions) != len(truth):
        raise ValueError("predictions and labels differ in length")
    if not truth:
        raise PulseError("the evaluation set is empty")
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    predicted = [p.label for p in predictions]
    labels = list(LABELS)
    confusion = confusion_matrix(truth, predicted, labels=labels).tolist()
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": float(support[i]),
        }
        for i, label in enumerate(labels)
    }
    # Macro-F1 over the classes the set holds: a gold set without neutral is not scored on it.
    present = [label for label in labels if per_class[label]["support"] > 0]
    macro_f1 = sum(per_class[label]["f1"] for label in present) / len(present)
    accuracy = float(accuracy_score(truth, predicted))
    bins: list[dict[str, float]] = []
    ece = 0.0
    for b in range(BINS):
        lo, hi = b / BINS, (b + 1) / BINS
        members = [
            (p.confidence, p.label == t)
            for p, t in zip(predictions, truth, strict=True)
            if lo <= p.confidence < hi or (b == BINS - 1 and p.confidence == 1.0)
        ]
        if not members:
            continue
        conf = sum(c for c, _ in members) / len(members)
        acc = sum(ok for _, ok in members) / len(members)
        bins.append({"lo": lo, "hi": hi, "count": float(len(members)), "confidence": conf, "accuracy": acc})
        ece += len(members) / len(truth) * abs(conf - acc)
    return Evaluation(len(truth), accuracy, macro_f1, per_class, confusion, bins, ece)


def silent_errors(predictions: Sequence[Prediction], truth: Sequence[str], threshold: float) -> tuple[float, float]:
    """(share of messages wrong *and* at or above the review threshold, share sent to review): the
    mistakes nobody sees, beside what the review queue costs in people's time."""
    if len(predictions) != len(truth) or not truth:
        raise ValueError("predictions and labels must be non-empty and of one length")
    sent = [p.confidence < threshold for p in predictions]
    silent = sum(1 for p, t, s in zip(predictions, truth, sent, strict=True) if not s and p.label != t)
    return silent / len(truth), sum(sent) / len(truth)


def summary(ev: Evaluation) -> dict[str, float]:
    """The few numbers a model card and a gate need."""
    return {
        "macro_f1": round(ev.macro_f1, 4),
        "accuracy": round(ev.accuracy, 4),
        "ece": round(ev.ece, 4),
        "n": float(ev.n),
        **{f"f1_{k}": round(v["f1"], 4) for k, v in ev.per_class.items()},
    }


def rounded(value: float, places: int = 3) -> float:
    """A metric as Pulse shows it: to `places` decimals, halves rounded up from the stored decimal
    figure (so 0.0265 reads 0.027 in every table, whatever binary float holds it)."""
    step = Decimal(1).scaleb(-places)
    return float(Decimal(repr(float(value))).quantize(step, rounding=ROUND_HALF_UP))
