"""Dataset versions: the base corpus plus every human label, de-duplicated, conflicts resolved,
split train/validation (stratified, fixed seed) and written in the fastText/BlazingText format
under `datasets/<version>/`, with a manifest that is enough to rebuild it bit for bit."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.errors import DatasetError, KeyNotFound, PulseError
from services.lifecycle.gold import gold_inputs, load_gold
from services.model.corpus import CHECKIN_BASE, SHIPPED
from services.model.prediction import LABELS, PREFIX
from services.model.text import PREPROCESSING, loose, preprocess
from services.review.labels import NOT_SENTIMENT, Label, read_labels, resolve
from services.store import keys
from services.store.base import ObjectStore

BASE = CHECKIN_BASE  # the base corpus of new datasets; services.model.corpus.SHIPPED names the others


@dataclass
class DatasetManifest:
    """What a dataset version holds and where every row came from."""

    version: str
    created_at: str
    created_by: str
    seed: int
    validation_share: float
    base: str
    counts: dict[str, dict[str, int]]  # split -> label -> rows
    sources: dict[str, int]  # base / human rows that made it in
    label_keys: list[str]  # every label file read (the dataset's inputs, for rebuilding)
    hashes: dict[str, str]  # file -> sha256 (train.txt, validation.txt, labels input)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows
    gold_inputs: list[str] = field(default_factory=list)  # the gold set excluded (see load_gold)
    redactions: int = 0  # times rows were removed by a participant deletion (services/privacy.py)
    # The preprocessing rules the lines were made by (services/text.py PREPROCESSING); manifests
    # written before it was recorded were made by version 1.
    preprocessing: int = 1

    @property
    def train_key(self) -> str:
        return keys.dataset_key(self.version, "train.txt")

    @property
    def validation_key(self) -> str:
        return keys.dataset_key(self.version, "validation.txt")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rows(
    labels: list[tuple[str, Label]], gold_prepared: set[str], base: str, preprocessing: int
) -> tuple[dict[str, tuple[str, str]], dict[str, int], list[dict[str, Any]], dict[str, int]]:
    """prepared text -> (label, source); sources; conflicts; dropped (reason -> count)."""
    dropped: Counter[str] = Counter()
    rows: dict[str, tuple[str, str]] = {}
    if base in SHIPPED:
        for r in SHIPPED[base]().train:
            rows.setdefault(preprocess(r.text, preprocessing), (r.label, "base"))
    elif base != "none":
        raise DatasetError(f"unknown base corpus {base!r}: use {' or '.join(map(repr, SHIPPED))} or 'none'")
    by_item: dict[str, list[Label]] = {}
    for _, label in labels:
        if label.gold:
            continue  # gold labels are evaluated on, never trained on
        by_item.setdefault(label.item_id, []).append(label)
    conflicts: list[dict[str, Any]] = []
    chosen_of = {item_id: resolve(labels) for item_id, labels in by_item.items()}
    human: dict[str, tuple[str, Label]] = {}  # prepared text -> (item, label) that holds its row
    # Oldest choice first: of two messages with the same text, the newer label is the one kept.
    for item_id in sorted(by_item, key=lambda i: (chosen_of[i][0].labelled_at, i)):
        chosen, disagree = chosen_of[item_id]
        if disagree:
            conflicts.append(
                {
                    "kind": "annotators disagree",
                    "item_id": item_id,
                    "labels": _who_said(by_item[item_id]),
                    "chosen": chosen.label,
                    "why": f"final label by {chosen.annotator}"
                    if chosen.final
                    else f"latest label ({chosen.annotator}); no final label",
                    "final": chosen.final,
                }
            )
        if chosen.label == NOT_SENTIMENT:
            dropped["not about feelings"] += 1
            continue
        if chosen.label not in LABELS:
            dropped["label outside the label set"] += 1
            continue
        text = preprocess(chosen.text, preprocessing)
        earlier = human.get(text)
        if earlier is not None and earlier[1].label != chosen.label:
            conflicts.append(
                {
                    "kind": "same text, two messages",
                    "item_id": item_id,
                    "other_item": earlier[0],
                    "labels": _who_said([earlier[1], chosen]),
                    "chosen": chosen.label,
                    "why": "the newer label of the same text",
                    "final": chosen.final,
                }
            )
        rows[text] = (chosen.label, "human")  # a human label beats the base corpus on the same text
        human[text] = (item_id, chosen)
    for text in [t for t in rows if not t]:
        del rows[text]
        dropped["no words left after preprocessing"] += 1
    for text in [t for t in rows if loose(t) in gold_prepared]:
        del rows[text]
        dropped["in the gold set"] += 1
    sources = Counter(source for _, source in rows.values())
    return rows, dict(sources), conflicts, dict(dropped)


def _who_said(labels: list[Label]) -> str:
    """ "ann: negative · bob: neutral" (each annotator's latest label, in the order they labelled)."""
    latest: dict[str, str] = {}
    for lab in sorted(labels, key=lambda lab: lab.labelled_at):
        latest.pop(lab.annotator, None)
        latest[lab.annotator] = lab.label + (" (final)" if lab.final else "")
    return " · ".join(f"{who}: {label}" for who, label in latest.items())


def split_lines(lines: list[str], *, seed: int, share: float) -> tuple[list[str], list[str]]:
    """Stratified (train, validation) split of fastText-format lines, as datasets are split."""
    rows: dict[str, tuple[str, str]] = {}
    for line in lines:
        head, _, text = line.partition(" ")
        if head.removeprefix(PREFIX) in LABELS and text.strip():
            rows.setdefault(text, (head.removeprefix(PREFIX), "lines"))
    return _split(rows, seed, share)


def _split(rows: dict[str, tuple[str, str]], seed: int, share: float) -> tuple[list[str], list[str]]:
    train: list[str] = []
    validation: list[str] = []
    for label in LABELS:
        texts = sorted(t for t, (lab, _) in rows.items() if lab == label)
        random.Random(f"{seed}-{label}").shuffle(texts)
        n_val = max(1, round(len(texts) * share)) if len(texts) >= 2 else 0
        validation += [f"{PREFIX}{label} {t}" for t in texts[:n_val]]
        train += [f"{PREFIX}{label} {t}" for t in texts[n_val:]]
    # A fixed, label-mixed order: fastText reads the file in order, and sorted-by-label hurts SGD.
    random.Random(seed).shuffle(train)
    return train, validation


def dataset_content(
    store: ObjectStore,
    label_keys: list[str],
    gold: list[str],
    *,
    seed: int,
    share: float,
    base: str,
    preprocessing: int = PREPROCESSING,
) -> tuple[bytes, bytes, dict[str, Any]]:
    labels = []
    for key in label_keys:
        try:
            labels.append((key, Label(**json.loads(store.get(key)))))
        except KeyNotFound:
            raise DatasetError(f"label {key} is gone: the dataset cannot be rebuilt") from None
        except (ValueError, TypeError):
            raise DatasetError(f"label {key} is not a readable label record") from None
    try:
        gold_texts = load_gold(store, gold).prepared()
    except (KeyNotFound, ValueError, TypeError):
        raise DatasetError("a file of the gold set is gone or unreadable: the dataset cannot be rebuilt") from None
    rows, sources, conflicts, dropped = _rows(labels, gold_texts, base, preprocessing)
    train, validation = _split(rows, seed, share)
    counts = {
        name: {label: sum(1 for line in lines if line.startswith(f"{PREFIX}{label} ")) for label in LABELS}
        for name, lines in (("train", train), ("validation", validation))
    }
    missing = [label for label in LABELS if counts["train"][label] == 0]
    if not train:
        raise DatasetError("the dataset would be empty: no base corpus and no human labels")
    if missing:
        raise DatasetError(f"no training examples for {', '.join(missing)}: label some first")
    extra = {"counts": counts, "sources": sources, "conflicts": conflicts, "dropped": dropped}
    return ("\n".join(train) + "\n").encode(), ("\n".join(validation) + "\n").encode(), extra


def build_dataset(
    store: ObjectStore, *, by: str, seed: int = 0, validation_share: float = 0.2, base: str = BASE
) -> DatasetManifest:
    """Build and store a new dataset version from the base corpus and all human labels."""
    if not 0.05 <= validation_share <= 0.5:
        raise DatasetError("validation_share must be between 0.05 and 0.5")
    label_keys = [key for key, _ in read_labels(store)]
    gold = gold_inputs(store)
    train, validation, extra = dataset_content(store, label_keys, gold, seed=seed, share=validation_share, base=base)
    digest = _sha(train + validation)[:8]
    now = datetime.now(UTC)
    manifest = DatasetManifest(
        version=f"d{now:%Y%m%d-%H%M%S}-{digest}",
        created_at=now.isoformat(timespec="seconds"),
        created_by=by,
        seed=seed,
        validation_share=validation_share,
        base=base,
        label_keys=label_keys,
        hashes={"train.txt": _sha(train), "validation.txt": _sha(validation)},
        gold_inputs=gold,
        preprocessing=PREPROCESSING,
        **extra,
    )
    if store.exists(keys.dataset_key(manifest.version, "manifest.json")):
        return load_manifest(store, manifest.version)  # the same content, built in the same second
    written: list[str] = []
    try:
        for key, body in ((manifest.train_key, train), (manifest.validation_key, validation)):
            written.append(key)
            store.put(key, body)
        store.put(keys.dataset_key(manifest.version, "manifest.json"), json.dumps(asdict(manifest), indent=2).encode())
    except PulseError:
        # The manifest is written last, so nothing uses a version without one; but its files hold
        # labelled messages, so they do not stay behind (a store still down leaves them to
        # privacy.delete_participant, which scrubs versions with no manifest too).
        for key in written:
            with contextlib.suppress(PulseError):
                store.delete(key)
        raise
    return manifest


def load_manifest(store: ObjectStore, version: str) -> DatasetManifest:
    try:
        return DatasetManifest(**json.loads(store.get(keys.dataset_key(version, "manifest.json"))))
    except KeyNotFound:
        raise DatasetError(f"dataset {version} does not exist") from None


def list_datasets(store: ObjectStore) -> list[str]:
    return sorted({k.split("/")[1] for k in store.list(keys.DATASETS) if k.endswith("/manifest.json")})


def rebuilt_content(store: ObjectStore, m: DatasetManifest) -> tuple[bytes, bytes]:
    """(train, validation) made again from a manifest's inputs, seed and preprocessing rules."""
    train, validation, _ = dataset_content(
        store,
        m.label_keys,
        m.gold_inputs,
        seed=m.seed,
        share=m.validation_share,
        base=m.base,
        preprocessing=m.preprocessing,
    )
    return train, validation


def verify_rebuild(store: ObjectStore, version: str) -> bool:
    """Rebuild a dataset from its manifest and report whether it matches bit for bit."""
    m = load_manifest(store, version)
    train, validation = rebuilt_content(store, m)
    return _sha(train) == m.hashes["train.txt"] and _sha(validation) == m.hashes["validation.txt"]
