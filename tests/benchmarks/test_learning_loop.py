"""The learning-loop benchmark (see tests/benchmarks/learning_loop.py): prints the curve for
least-sure-first and random review order and writes artifacts/results/learning_loop.json.
Asserts what must hold whatever the timings: labels are counted, the queue shrinks by what was
labelled, every round registers a model, and the loop ends above the bootstrap model."""

from __future__ import annotations

import itertools
from pathlib import Path

from tests.benchmarks.learning_loop import ROUND, run, table, write_results

ROUNDS = 8


def test_learning_loop(tmp_path: Path) -> None:
    results = run(ROUNDS, tmp_path, say=lambda line: print(line, flush=True))
    write_results(results)
    print("\nlearning loop (airline set as check-ins; rounds of 250 labels)\n" + table(results))
    for strategy in ("uncertain", "uncertain, static", "random"):
        rounds = [r for r in results if r.strategy == strategy]
        assert [r.round for r in rounds] == list(range(ROUNDS + 1))
        start = rounds[0]
        for before, after in itertools.pairwise(rounds):
            assert after.labels - before.labels == min(ROUND, before.queue)
            assert before.queue - after.queue == after.labels - before.labels
            assert after.candidate_f1 is not None
        # The gate only lets a candidate through that holds up on the gold set, and the loop ends
        # above where it started on the held-out split.
        assert rounds[-1].live_f1 > start.live_f1
