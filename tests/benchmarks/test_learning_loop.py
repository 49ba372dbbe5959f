"""The learning-loop benchmark (see tests/benchmarks/learning_loop.py), on the airline set and on
the check-in corpus with one program left out: prints the curve for least-sure-first (re-ranked
and static) and random review order and writes artifacts/results/learning_loop.json and
learning_loop_checkins.json. Asserts what must hold whatever the timings: labels are counted, the
queue shrinks by what was labelled, every round registers a model, and the loop ends above the
bootstrap model on the held-out part."""

from __future__ import annotations

import itertools
from pathlib import Path

from tests.benchmarks.learning_loop import STRATEGIES, Data, Round, checkin_data, run, split_data, table, write_results

ROUNDS = 8


def _check(results: list[Round], data: Data) -> None:
    for strategy in [order if rerank or order == "random" else f"{order}, static" for order, rerank in STRATEGIES]:
        rounds = [r for r in results if r.strategy == strategy]
        assert [r.round for r in rounds] == list(range(len(rounds)))
        # Every round it was asked for, unless the queue ran dry first.
        assert len(rounds) == ROUNDS + 1 or (len(rounds) <= ROUNDS + 1 and rounds[-1].queue == 0)
        start = rounds[0]
        for before, after in itertools.pairwise(rounds):
            assert after.labels - before.labels == min(data.round_size, before.queue)
            assert before.queue - after.queue == after.labels - before.labels
            assert after.candidate_f1 is not None
        # The gate only lets a candidate through that holds up on the gold set, and the loop ends
        # above where it started on the held-out split.
        assert rounds[-1].live_f1 > start.live_f1


def test_learning_loop(tmp_path: Path) -> None:
    data = split_data()
    results = run(ROUNDS, tmp_path, say=lambda line: print(line, flush=True), data=data)
    write_results(results, data)
    print("\nlearning loop (airline set as check-ins; rounds of 250 labels)\n" + table(results))
    _check(results, data)


def test_learning_loop_checkins(tmp_path: Path) -> None:
    data = checkin_data()
    results = run(ROUNDS, tmp_path, say=lambda line: print(line, flush=True), data=data)
    write_results(results, data)
    print(f"\n{data.title}\n{table(results)}")
    _check(results, data)
