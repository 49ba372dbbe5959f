"""What the human labels add up to, for the Labels & datasets page: labels per class and per annotator,
what the next dataset version would hold, what the live model has not learnt yet, and how well
annotators agree (with the disagreements to resolve)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from services.errors import DatasetError, InvalidKey, KeyNotFound, ModelUnavailable
from services.lifecycle.datasets import BASE, dataset_content, load_manifest
from services.lifecycle.deployment import current
from services.lifecycle.gold import gold_inputs
from services.lifecycle.registry import load_card
from services.model.prediction import LABELS
from services.review.labeling import LabelingService
from services.review.labels import DECISIONS, Label, read_labels, resolve, retracted_keys
from services.store.base import ObjectStore


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
