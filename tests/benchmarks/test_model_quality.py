"""Model quality: Pulse's default pipeline against TF-IDF + logistic regression and the VADER
lexicon, trained/run on the same splits, printed side by side. Figures, not assertions."""

from __future__ import annotations

import random
import time

import pytest

from services.model.benchmark import run_benchmark
from services.model.evaluation import evaluate
from services.model.prediction import Prediction
from tests.benchmarks.datasets import airline_rows, stratified_split, tweeteval_rows


def _tfidf_lr(train: list[tuple[str, str]], test: list[tuple[str, str]]) -> tuple[float, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x = vec.fit_transform([t for t, _ in train])
    clf = LogisticRegression(max_iter=2000, C=4.0)
    clf.fit(x, [y for _, y in train])
    seconds = time.perf_counter() - started
    pred = clf.predict(vec.transform([t for t, _ in test]))
    ev = evaluate([Prediction(p, 1.0) for p in pred], [y for _, y in test])
    return ev.macro_f1, seconds


def _vader(test: list[tuple[str, str]]) -> float:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    sia = SentimentIntensityAnalyzer()

    def label(text: str) -> str:
        c = sia.polarity_scores(text)["compound"]
        return "positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral"

    ev = evaluate([Prediction(label(t), 1.0) for t, _ in test], [y for _, y in test])
    return ev.macro_f1


def _scores(train: list[tuple[str, str]], test: list[tuple[str, str]]) -> dict[str, float]:
    pulse = run_benchmark(train, test)
    return {
        "pulse": pulse["macro_f1"],
        "ece": pulse["ece"],
        "seconds": pulse["train_seconds"],
        "linear": float(pulse["family"] == "linear"),
        "fasttext": run_benchmark(train, test, family="fasttext")["macro_f1"],
        "lr": _tfidf_lr(train, test)[0],
        "vader": _vader(test),
    }


def _line(name: str, n_train: int, n_test: int, s: dict[str, float]) -> str:
    family = "linear" if s["linear"] == 1 else "fasttext" if s["linear"] == 0 else f"linear {s['linear']:.0%}"
    return (
        f"{name:<30} {n_train:>6} {n_test:>5}  {s['pulse']:.3f} {family:<11} "
        f"({s['seconds']:>4.1f}s, ECE {s['ece']:.3f})  {s['fasttext']:.3f}    {s['lr']:.3f}      {s['vader']:.3f}"
    )


SEEDS = (0, 1, 2)


def test_quality_side_by_side() -> None:
    """Each data set on three stratified 80/20 splits (seeds 0-2) and their mean: the default is
    judged across splits, not tuned to one."""
    pytest.importorskip("sklearn")
    pytest.importorskip("vaderSentiment")
    airline = [(r["text"], r["airline_sentiment"]) for r in airline_rows()]
    sets: list[tuple[str, list[tuple[str, str]], int | None]] = [
        ("airline", airline, None),
        ("airline, 400 training rows", airline, 400),
        ("TweetEval validation", tweeteval_rows(), None),
    ]
    lines = [
        "\nmodel quality (macro-F1; stratified 80/20 splits, seeds 0-2; de-duplicated airline set)",
        f"{'data':<30} {'train':>6} {'test':>5}  {'Pulse default (family picked)':<37}  fastText TF-IDF+LR  VADER",
    ]
    for name, rows, cap in sets:
        per_seed = []
        for seed in SEEDS:
            train, test = stratified_split(rows, seed=seed)
            if cap:
                train = random.Random(seed).sample(train, cap)
            scores = _scores(train, test)
            per_seed.append(scores)
            lines.append(_line(f"{name}, seed {seed}", len(train), len(test), scores))
        mean = {k: sum(s[k] for s in per_seed) / len(per_seed) for k in per_seed[0]}
        lines.append(_line(f"{name}, mean", len(train), len(test), mean))
    print("\n".join(lines))
