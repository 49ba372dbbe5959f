"""Shared-data loaders for benchmarks: the airline set de-duplicated, TweetEval validation."""

from __future__ import annotations

import csv
import random

import pytest

from tests.conftest import SHARED_DATA

AIRLINE = SHARED_DATA / "twitter_us_airline_sentiment" / "Tweets.csv"
TWEETEVAL = SHARED_DATA / "tweeteval_sentiment_val"
LABELS = ("negative", "neutral", "positive")


def _need(path) -> None:  # type: ignore[no-untyped-def]
    if not path.exists():
        pytest.skip(f"{path} is missing: benchmarks read ../shared/data in place")


def airline_rows() -> list[dict[str, str]]:
    """Every airline row, de-duplicated on the text (first occurrence kept)."""
    _need(AIRLINE)
    seen: set[str] = set()
    rows = []
    with AIRLINE.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["text"] not in seen:
                seen.add(row["text"])
                rows.append(row)
    return rows


def airline_checkins(n: int, seed: int = 0) -> list[dict[str, str]]:
    """`n` check-ins of 3,000 participants in 40 groups, five minutes apart from 2025-01-01, each
    text drawn from the de-duplicated airline set (the ingest benchmarks' upload)."""
    from datetime import UTC, datetime, timedelta

    texts = sorted(row["text"] for row in airline_rows())
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)  # 100k x 5 min ends well before today
    return [
        {
            "participant": f"p{rng.randrange(3000):04d}",
            "group": f"group-{rng.randrange(40):02d}",
            "time": (start + timedelta(minutes=5 * i)).isoformat(),
            "text": rng.choice(texts),
        }
        for i in range(n)
    ]


def tweeteval_rows() -> list[tuple[str, str]]:
    _need(TWEETEVAL)
    texts = (TWEETEVAL / "val_text.txt").read_text(encoding="utf-8").split("\n")
    labels = (TWEETEVAL / "val_labels.txt").read_text(encoding="utf-8").split()
    return [(t.strip(), LABELS[int(y)]) for t, y in zip(texts, labels, strict=False)]


def stratified_split(
    rows: list[tuple[str, str]], test_share: float = 0.2, seed: int = 0
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Stratified split with a fixed seed (per class: shuffle, cut)."""
    rng = random.Random(seed)
    train, test = [], []
    for label in LABELS:
        members = sorted(r for r in rows if r[1] == label)
        rng.shuffle(members)
        k = int(len(members) * test_share)
        test += members[:k]
        train += members[k:]
    return train, test
