"""Model quality: Pulse's default pipeline against TF-IDF + logistic regression and the VADER
lexicon, trained/run on the same splits, printed side by side. Figures, not assertions."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from typing import Any

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


def pairs(rows: Iterable[Any]) -> list[tuple[str, str]]:
    return [(r.text, r.label) for r in rows]


def _checkin_line(name: str, train: list[tuple[str, str]], test: list[tuple[str, str]]) -> tuple[str, dict[str, float]]:
    pulse = run_benchmark(train, test)
    s = {
        "pulse": pulse["macro_f1"],
        "neutral": pulse["neutral_recall"],
        "ece": pulse["ece"],
        "silent": pulse["silent_errors"],
        "review": pulse["review_share"],
        "fasttext": run_benchmark(train, test, family="fasttext")["macro_f1"],
        "lr": _tfidf_lr(train, test)[0],
        "vader": _vader(test),
    }
    return _checkin_text(name, len(train), len(test), s), s


def _checkin_text(name: str, n_train: int, n_test: int, s: dict[str, float]) -> str:
    return (
        f"{name:<38} {n_train:>6} {n_test:>5}  {s['pulse']:.3f}  {s['neutral']:.2f}    {s['ece']:.3f}  "
        f"{s['silent']:>6.1%}  {s['review']:>6.1%}   {s['fasttext']:.3f}    {s['lr']:.3f}      {s['vader']:.3f}"
    )


def test_checkins_side_by_side() -> None:
    """Pulse's own check-ins: the gold part (never trained on) with the shipped training set, the same
    gold with the corpus shipped before it (the baseline), and each program's gold with the other four
    programs' check-ins only (writers and days the model has not read). Silent errors: wrong and at or
    above the review threshold 0.6; review: below it."""
    pytest.importorskip("sklearn")
    pytest.importorskip("vaderSentiment")
    from services.model.corpus import checkin_part, legacy_split, split_corpus, tweeteval

    gold = pairs(checkin_part("gold"))
    lines = [
        "\ncheck-ins (macro-F1, neutral recall, ECE, silent errors and review share at 0.6; side by side)",
        f"{'data':<38} {'train':>6} {'test':>5}  Pulse  neutral  ECE    silent  review   fastText TF-IDF+LR  VADER",
        _checkin_line("gold part, shipped training set", pairs(split_corpus().train), gold)[0],
        _checkin_line("gold part, corpus before (baseline)", pairs(legacy_split().train), gold)[0],
    ]
    per_program, sizes = [], []
    for program in sorted({r.program for r in checkin_part("gold")}):
        train = pairs(r for r in checkin_part("train", source=None) if r.program != program) + pairs(tweeteval())
        test = pairs(r for r in checkin_part("gold") if r.program == program)
        line, s = _checkin_line(f"{program} (other four trained)", train, test)
        lines.append(line)
        per_program.append(s)
        sizes.append((len(train), len(test)))
    mean = {k: sum(s[k] for s in per_program) / len(per_program) for k in per_program[0]}
    n_train, n_test = sum(a for a, _ in sizes) // len(sizes), sum(b for _, b in sizes)
    lines.append(_checkin_text("leave one program out, mean", n_train, n_test, mean))
    print("\n".join(lines))
