"""Agreement between annotators: which items are labelled twice (a fixed share, chosen by a hash of
the id so every replica agrees), and Cohen's kappa over their first two labels, with the
disagreements to resolve."""

from __future__ import annotations

import hashlib
from typing import Any

from services.review.labels import Label, read_labels
from services.store.base import ObjectStore


def needs_two(item_id: str, double_share: float) -> bool:
    """Whether an item belongs to the double-label share: a hash of its id, so every replica agrees."""
    if double_share <= 0:
        return False
    if double_share >= 1:
        return True
    h = int.from_bytes(hashlib.sha256(f"double:{item_id}".encode()).digest()[:8], "big")
    return h / 2**64 < double_share


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa (scikit-learn's) for (first rater, second rater) pairs; None when there are
    none, 1.0 when both raters used one and the same category throughout (perfect agreement, where
    the formula divides by zero)."""
    if not pairs:
        return None
    first, second = [a for a, _ in pairs], [b for _, b in pairs]
    if len(set(first) | set(second)) == 1:
        return 1.0
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(first, second))


def agreement(store: ObjectStore) -> tuple[float | None, list[dict[str, Any]]]:
    """Cohen's kappa over items labelled by two different annotators (their first labels), and the
    disagreements to resolve: item id, text, the labels in order, who gave them. Reads every label."""
    by_item: dict[str, list[Label]] = {}
    for _, lab in read_labels(store):
        by_item.setdefault(lab.item_id, []).append(lab)
    pairs: list[tuple[str, str]] = []
    disagreements: list[dict[str, Any]] = []
    for item_id in sorted(by_item):
        firsts: dict[str, Label] = {}
        for lab in sorted(by_item[item_id], key=lambda x: x.labelled_at):
            firsts.setdefault(lab.annotator, lab)
        if len(firsts) < 2:
            continue
        a, b = list(firsts.values())[:2]
        pairs.append((a.label, b.label))
        if len({lab.label for lab in firsts.values()}) > 1:
            disagreements.append(
                {
                    "item_id": item_id,
                    "text": a.text,
                    "labels": [lab.label for lab in firsts.values()],
                    "annotators": list(firsts),
                }
            )
    return cohen_kappa(pairs), disagreements
