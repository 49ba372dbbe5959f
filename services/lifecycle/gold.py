"""The gold set: labelled texts held out from every dataset version, that every model is evaluated on
and the gate compares. Made of imported files (`gold/<name>.jsonl`), labels an annotator marked
gold, or, in a fresh workspace, the gold slice of the shipped corpus."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.errors import PulseError
from services.model.corpus import CHECKIN_BASE, GOLD_SUFFIX, LEGACY_BASE, SHIPPED
from services.model.prediction import LABELS
from services.model.text import loose, preprocess
from services.review.labels import Label, read_labels, resolve
from services.store import keys
from services.store.base import ObjectStore

GOLD_PREFIX = keys.GOLD


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


CORPUS_GOLD = CHECKIN_BASE + GOLD_SUFFIX  # the shipped gold set: the check-in corpus's gold part
LEGACY_GOLD = LEGACY_BASE + GOLD_SUFFIX  # the shipped gold set before it (TweetEval + UCI), for older records


def import_gold(store: ObjectStore, name: str, rows: Sequence[tuple[str, str]]) -> str:
    """Store a labelled file as part of the gold set (`gold/<name>.jsonl`)."""
    bad = [label for _, label in rows if label not in LABELS]
    if bad:
        raise PulseError(f"gold labels must be one of {', '.join(LABELS)}; found {sorted(set(bad))[:5]}")
    key = f"{GOLD_PREFIX}{keys.segment(name, limit=80, allowed='._-', default='gold')}.jsonl"
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
        if key.endswith(GOLD_SUFFIX) and key.removesuffix(GOLD_SUFFIX) in SHIPPED:
            corpus = SHIPPED[key.removesuffix(GOLD_SUFFIX)]().gold
            texts += [r.text for r in corpus]
            labels += [r.label for r in corpus]
            sources[key] = len(corpus)
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
