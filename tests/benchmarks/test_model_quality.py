"""Model quality: Pulse's default pipeline against TF-IDF + logistic regression and the VADER
lexicon, trained/run on the same splits, printed side by side. Figures, not assertions."""

from __future__ import annotations

import random
import time

import pytest

from services.benchmark import run_benchmark
from services.evaluation import evaluate
from services.model import Prediction
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


def _row(name: str, train: list[tuple[str, str]], test: list[tuple[str, str]]) -> str:
    pulse = run_benchmark(train, test)
    fasttext = run_benchmark(train, test, family="fasttext")
    searched = run_benchmark(train, test, search_seconds=20)
    lr_f1, lr_s = _tfidf_lr(train, test)
    vader = _vader(test)
    return (
        f"{name:<28} {len(train):>6} {len(test):>5}  {pulse['macro_f1']:.3f} {pulse['family']:<8} "
        f"({pulse['train_seconds']:>4.1f}s, ECE {pulse['ece']:.3f})  {fasttext['macro_f1']:.3f}  "
        f"{searched['macro_f1']:.3f}  {lr_f1:.3f} ({lr_s:>4.1f}s)  {vader:.3f}"
    )


def test_quality_side_by_side() -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("vaderSentiment")
    airline = [(r["text"], r["airline_sentiment"]) for r in airline_rows()]
    a_train, a_test = stratified_split(airline)
    t_train, t_test = stratified_split(tweeteval_rows())
    rng = random.Random(0)
    small = rng.sample(a_train, 400)
    lines = [
        "\nmodel quality (macro-F1; stratified 80/20, seed 0; de-duplicated airline set)",
        f"{'data':<28} {'train':>6} {'test':>5}  {'Pulse default (family picked)':<36}  fastText  "
        f"{'+search':<6} {'TF-IDF+LR':<15}  VADER",
        _row("airline", a_train, a_test),
        _row("airline, 400 training rows", small, a_test),
        _row("TweetEval validation", t_train, t_test),
    ]
    print("\n".join(lines))
