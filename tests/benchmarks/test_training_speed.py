"""Training time on 100k messages (the airline texts, cycled), default parameters against the
reference fastText settings (epochs 10, lr 0.1) measured in the same run; then the whole default
pipeline (both families on an 80/20 split, calibration, refit of the winner on all 100k)."""

from __future__ import annotations

import itertools
import time

from services.model.fasttext import fasttext_line, train
from services.model.linear import train_linear
from services.model.params import TrainParams
from services.model.pipeline import candidates_for, fit_pipeline, labelled_texts
from tests.benchmarks.datasets import airline_rows

N = 100_000


def test_training_100k_messages() -> None:
    rows = airline_rows()
    lines = [fasttext_line(r["airline_sentiment"], r["text"]) for r in itertools.islice(itertools.cycle(rows), N)]
    timings = {}
    for name, params in (("reference (epochs 10, lr 0.1)", TrainParams(epoch=10, lr=0.1)), ("default", TrainParams())):
        started = time.perf_counter()
        train(lines, params)
        timings[name] = time.perf_counter() - started
    base = timings["reference (epochs 10, lr 0.1)"]
    print(f"\ntraining on {N:,} preprocessed messages (fastText, 10 threads on this machine's cores)")
    for name, seconds in timings.items():
        print(f"  {name:<32} {seconds:6.1f} s  {seconds / base:.2f}x")

    texts, labels = labelled_texts(lines)
    started = time.perf_counter()
    train_linear(texts, labels)
    linear = time.perf_counter() - started
    started = time.perf_counter()
    cut = N // 5
    candidates = candidates_for(TrainParams(), rows=N - cut)
    fitted = fit_pipeline(lines[cut:], lines[:cut], candidates, 0.0, lambda _s, _l: None)
    pipeline = time.perf_counter() - started
    assert isinstance(fitted, tuple)
    print(f"  {'linear model (fit once)':<32} {linear:6.1f} s  {linear / base:.2f}x")
    print(
        f"  {'default pipeline, ' + fitted[0].family + ' kept':<32} {pipeline:6.1f} s  {pipeline / base:.2f}x"
        f"  ({candidates[0].epoch} epochs; candidates: {', '.join(c.family for c in candidates)})"
    )
