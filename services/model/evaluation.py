"""Evaluation on a gold set: accuracy, macro-F1, per-class precision/recall, confusion matrix,
and calibration (confidence against accuracy by bin, expected calibration error)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from services.errors import PulseError
from services.model.corpus import split_corpus
from services.model.prediction import LABELS, Prediction
from services.model.text import loose, preprocess
from services.review.labels import Label, read_labels, resolve
from services.store.base import ObjectStore

GOLD_PREFIX = "gold/"
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
    index = {label: i for i, label in enumerate(LABELS)}
    confusion = [[0] * len(LABELS) for _ in LABELS]
    for pred, true in zip(predictions, truth, strict=True):
        confusion[index[true]][index[pred.label]] += 1
    per_class: dict[str, dict[str, float]] = {}
    for label, i in index.items():
        tp = confusion[i][i]
        predicted = sum(row[i] for row in confusion)
        support = sum(confusion[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": float(support)}
    present = [label for label in LABELS if per_class[label]["support"] > 0]
    macro_f1 = sum(per_class[label]["f1"] for label in present) / len(present)
    accuracy = sum(confusion[i][i] for i in range(len(LABELS))) / len(truth)
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


@dataclass(frozen=True)
class GoldSet:
    """Texts held out from every dataset, with their true labels, and the inputs they came from."""

    texts: list[str]
    labels: list[str]
    sources: dict[str, int]
    inputs: list[str] = field(default_factory=list)  # gold file keys, gold label keys, or CORPUS_GOLD

    def fingerprint(self) -> str:
        blob = json.dumps(sorted(zip(self.texts, self.labels, strict=True)), ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def prepared(self) -> set[str]:
        """The gold texts as training rows are matched against them: prepared, "?" and "!" aside
        (`services.text.loose`), so a copy with one more "!" stays out of training too."""
        return {loose(preprocess(t)) for t in self.texts}


CORPUS_GOLD = "bootstrap-corpus-gold"


def import_gold(store: ObjectStore, name: str, rows: Sequence[tuple[str, str]]) -> str:
    """Store a labelled file as part of the gold set (`gold/<name>.jsonl`)."""
    bad = [label for _, label in rows if label not in LABELS]
    if bad:
        raise PulseError(f"gold labels must be one of {', '.join(LABELS)}; found {sorted(set(bad))[:5]}")
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:80] or "gold"
    key = f"{GOLD_PREFIX}{safe}.jsonl"
    body = "\n".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) for t, y in rows) + "\n"
    store.put(key, body.encode())
    return key


def gold_inputs(store: ObjectStore) -> list[str]:
    """What the gold set is made of now: imported files and gold-marked label files, or, when
    there are neither, the gold slice of the shipped corpus."""
    files = [k for k in store.list(GOLD_PREFIX) if k.endswith(".jsonl")]
    labels = [key for key, label in read_labels(store) if label.gold and label.label in LABELS]
    return files + labels or [CORPUS_GOLD]


def load_gold(store: ObjectStore, inputs: Sequence[str] | None = None) -> GoldSet:
    """The gold set from `inputs` (default: `gold_inputs(store)`, i.e. as it is now). A dataset
    records its inputs, so the same gold texts are excluded when it is rebuilt."""
    keys = list(inputs) if inputs is not None else gold_inputs(store)
    texts: list[str] = []
    labels: list[str] = []
    sources: dict[str, int] = {}
    by_item: dict[str, list[Label]] = {}
    for key in keys:
        if key == CORPUS_GOLD:
            corpus = split_corpus().gold
            texts += [r.text for r in corpus]
            labels += [r.label for r in corpus]
            sources[CORPUS_GOLD] = len(corpus)
        elif key.startswith(GOLD_PREFIX):
            for line in store.get(key).decode("utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    texts.append(row["text"])
                    labels.append(row["label"])
                    sources[key] = sources.get(key, 0) + 1
        else:
            label = Label(**json.loads(store.get(key)))
            by_item.setdefault(label.item_id, []).append(label)
    for items in by_item.values():
        chosen, _ = resolve(items)
        if chosen.label in LABELS:
            texts.append(chosen.text)
            labels.append(chosen.label)
            sources["human-gold"] = sources.get("human-gold", 0) + 1
    return GoldSet(texts, labels, sources, keys)


def summary(ev: Evaluation) -> dict[str, float]:
    """The few numbers a model card and a gate need."""
    return {
        "macro_f1": round(ev.macro_f1, 4),
        "accuracy": round(ev.accuracy, 4),
        "ece": round(ev.ece, 4),
        "n": float(ev.n),
        **{f"f1_{k}": round(v["f1"], 4) for k, v in ev.per_class.items()},
    }
