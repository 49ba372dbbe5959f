"""The bootstrap corpus shipped with Pulse (see services/corpus/PROVENANCE.md)."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from importlib import resources

LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: str
    source: str


def _read(name: str) -> str:
    # read_text translates newlines; the UCI files are CRLF, which tests guard against regressing.
    return resources.files("services").joinpath("corpus", name).read_text(encoding="utf-8")


def tweeteval() -> list[LabelledText]:
    """TweetEval sentiment validation split: 2,000 tweets, three classes."""
    texts = _read("tweeteval_val_text.txt").split("\n")
    labels = _read("tweeteval_val_labels.txt").split("\n")
    rows = []
    for text, label in zip(texts, labels, strict=False):
        if label.strip():
            rows.append(LabelledText(text.strip(), LABELS[int(label)], "tweeteval"))
    return rows


def uci() -> list[LabelledText]:
    """UCI sentiment sentences (Amazon, IMDb, Yelp): 3,000 sentences, negative/positive."""
    rows = []
    for site in ("amazon_cells", "imdb", "yelp"):
        raw = _read(f"{site}_labelled.txt").replace("\r\n", "\n")
        for fields in csv.reader(io.StringIO(raw), delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(fields) == 2 and fields[1].strip() in ("0", "1"):
                label = "positive" if fields[1].strip() == "1" else "negative"
                rows.append(LabelledText(fields[0].strip(), label, f"uci-{site}"))
    return rows


def bootstrap_split(seed: int = 0, demo_share: float = 0.3) -> tuple[list[LabelledText], list[LabelledText]]:
    """The corpus split into (training rows, rows kept back for demo check-ins).

    The demo's check-ins come from texts the bootstrap model never saw, so its confidence on
    them, and the share that lands in the review queue, is realistic.
    """
    rows = tweeteval() + uci()
    random.Random(seed).shuffle(rows)
    cut = int(len(rows) * (1 - demo_share))
    return rows[:cut], rows[cut:]
