"""Training time on 100k messages (the airline texts, cycled), default parameters against the
reference fastText settings (epochs 10, lr 0.1) measured in the same run."""

from __future__ import annotations

import itertools
import time

from services.model import TrainParams, fasttext_line, train
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
