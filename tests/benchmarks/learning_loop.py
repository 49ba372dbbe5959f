"""The learning loop, measured: does the model get better when people label what it was unsure about?

Start from the bootstrap model (trained on the shipped corpus), ingest the de-duplicated airline set as
check-ins (`airline` as group, `name` as participant, `tweet_created` as time) except a held-out
stratified 20% test split, and let a simulated annotator label what the review queue hands out with the
true label, in rounds of 250. After each round: build a dataset (corpus + every label so far), train
with the default local pipeline, and promote through the gate; then score the live model on the held-out
split. The same loop runs with the queue in "uncertain" order (least sure first, as annotators get it)
and in "random" order (the baseline).

Everything goes through the services the app uses (ingest, LabelingService, build_dataset,
run_training, promote); nothing is re-implemented here. Choices, stated:
- the gate's gold set is 500 airline rows taken from the ingest pool (an admin importing a labelled
  file of their own domain); without it the gate would judge airline models on the shipped corpus;
- the queue is built at ingest from the bootstrap model's confidences; after each promotion it is
  re-ranked by the new live model (`labeling.rerank_queue`, as the Models page and `cli promote` do).
  "uncertain, static" is the same loop without re-ranking: it fell behind random selection, which
  is why the re-rank exists (the old model's hardest items stay first otherwise);
- one annotator, no double labelling (double_share 0): every round adds exactly 250 labels;
- a candidate the gate refuses is not promoted (the live model stays); its own score is reported.

Run standalone: `python -m tests.benchmarks.learning_loop [--rounds N]`.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from services.checkins.ingest import ingest
from services.errors import GateFailed
from services.lifecycle.datasets import build_dataset
from services.lifecycle.deployment import LocalDeployer, require_current
from services.lifecycle.endpoint import LocalEndpoint
from services.lifecycle.gold import import_gold
from services.lifecycle.promotion import promote
from services.lifecycle.registry import fetch_model
from services.lifecycle.trainers import LocalTrainer
from services.lifecycle.training import run_training, train_bootstrap
from services.model.evaluation import evaluate
from services.model.params import TrainParams
from services.review.labeling import LabelingService
from services.review.rerank import rerank_queue
from services.store.local import LocalStore
from tests.benchmarks.datasets import airline_rows, stratified_split

ROUND = 250
GOLD_ROWS = 500
THRESHOLD = 0.6
RESULTS = Path(__file__).resolve().parents[2] / "artifacts" / "results" / "learning_loop.json"


@dataclass(frozen=True)
class Round:
    strategy: str
    round: int
    labels: int
    queue: int
    live_f1: float
    candidate_f1: float | None
    gate: str
    live_version: str
    seconds: float


@dataclass(frozen=True)
class Data:
    pool: list[dict[str, str]]  # ingested as check-ins
    gold: list[tuple[str, str]]  # the gate's gold set
    test: list[tuple[str, str]]  # held out: what the curve is measured on
    truth: dict[str, str]  # text -> true label, the simulated annotator's knowledge


def split_data(seed: int = 0) -> Data:
    rows = airline_rows()
    by_text = {r["text"]: r for r in rows}
    train, test = stratified_split([(r["text"], r["airline_sentiment"]) for r in rows], seed=seed)
    train_rows = [by_text[t] for t, _ in train]
    random.Random(seed).shuffle(train_rows)
    gold = [(r["text"], r["airline_sentiment"]) for r in train_rows[:GOLD_ROWS]]
    pool = train_rows[GOLD_ROWS:]
    return Data(pool, gold, test, {r["text"]: r["airline_sentiment"] for r in pool})


def checkins_csv(pool: list[dict[str, str]]) -> bytes:
    frame = pd.DataFrame(
        {
            "participant": [r["name"] for r in pool],
            "group": [r["airline"] for r in pool],
            "time": [r["tweet_created"] for r in pool],
            "text": [r["text"] for r in pool],
        }
    )
    return frame.to_csv(index=False).encode()


def live_f1(store: LocalStore, cache: Path, test: list[tuple[str, str]]) -> tuple[str, float]:
    version = require_current(store).version
    model = fetch_model(store, version, cache)
    return version, evaluate(model.predict([t for t, _ in test]), [y for _, y in test]).macro_f1


def queue_size(svc: LabelingService) -> int:
    return int(svc.stats(exact=True)["queue_left"])


def run_strategy(  # type: ignore[no-untyped-def]
    order: str, data: Data, base: LocalStore, workdir: Path, *, rounds: int, rerank: bool = True, say=print
) -> list[Round]:
    """One loop from the bootstrap model in review `order` ("uncertain" or "random"). With `rerank`,
    the queue is re-ranked by each newly promoted model (`labeling.rerank_queue`), as the app does."""
    strategy = order if rerank or order == "random" else f"{order}, static"
    root = workdir / strategy.replace(", ", "-")
    shutil.copytree(base.root, root)
    store = LocalStore(root)
    cache = root.with_name(f"cache-{root.name}")
    import_gold(store, "airline-gold", data.gold)
    started = time.perf_counter()
    report = ingest(store, LocalEndpoint(store, cache), checkins_csv(data.pool), "airline.csv", threshold=THRESHOLD)
    say(
        f"[{strategy}] ingested {report.accepted:,} check-ins, {report.unrecognized:,} to review "
        f"({time.perf_counter() - started:.0f}s)"
    )
    svc = LabelingService(store, double_share=0.0)
    trainer, deployer = LocalTrainer(store), LocalDeployer()
    version, f1 = live_f1(store, cache, data.test)
    out = [Round(strategy, 0, 0, queue_size(svc), f1, None, "bootstrap", version, 0.0)]
    say(_line(out[-1]))
    labelled = 0
    for n in range(1, rounds + 1):
        started = time.perf_counter()
        for _ in range(ROUND):
            item = svc.claim_next("sim-annotator", order=order)  # type: ignore[arg-type]
            if item is None:
                break
            svc.submit(item.id, data.truth[item.text], "sim-annotator")
            labelled += 1
        manifest = build_dataset(store, by="learning-loop")
        run = run_training(store, trainer, manifest.version, params=TrainParams(), by="learning-loop")
        if run.status != "Completed" or run.model_version is None:
            raise RuntimeError(f"training failed in round {n}: {run.failure_reason}")
        candidate = fetch_model(store, run.model_version, cache)
        candidate_f1 = evaluate(candidate.predict([t for t, _ in data.test]), [y for _, y in data.test]).macro_f1
        try:
            _, verdict = promote(
                store, deployer, run.model_version, by="learning-loop", reason=f"round {n}", margin=0.01
            )
            gate = f"passed ({verdict.candidate_f1:.3f} vs {verdict.live_f1 or 0:.3f})"
            if rerank:
                rerank_queue(store, LocalEndpoint(store, cache))
        except GateFailed:
            gate = "refused"
        version, f1 = live_f1(store, cache, data.test)
        out.append(
            Round(
                strategy, n, labelled, queue_size(svc), f1, candidate_f1, gate, version, time.perf_counter() - started
            )
        )
        say(_line(out[-1]))
    return out


def _line(r: Round) -> str:
    cand = f"{r.candidate_f1:.3f}" if r.candidate_f1 is not None else "  -  "
    return (
        f"  {r.strategy:<9} round {r.round}  labels {r.labels:>5,}  queue {r.queue:>5,}  "
        f"live macro-F1 {r.live_f1:.3f}  candidate {cand}  gate {r.gate:<26} {r.seconds:5.1f}s"
    )


def table(results: list[Round]) -> str:
    return "\n".join(_line(r) for r in results)


def write_results(results: list[Round], path: Path = RESULTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[list[float]]] = {}
    for r in results:
        lines.setdefault(r.strategy, []).append([r.labels, round(r.live_f1, 4)])
    doc = {
        "title": "Learning loop: held-out macro-F1 of the live model after each round of 250 labels (airline set)",
        "columns": ["order", "round", "labels", "queue", "live macro-F1", "candidate macro-F1", "gate", "seconds"],
        "rows": [
            [
                r.strategy,
                r.round,
                r.labels,
                r.queue,
                round(r.live_f1, 3),
                "" if r.candidate_f1 is None else round(r.candidate_f1, 3),
                r.gate,
                round(r.seconds, 1),
            ]
            for r in results
        ],
        "notes": [
            "Bootstrap model first; the de-duplicated airline set ingested as check-ins except a stratified 20% "
            "held-out split (seed 0) and 500 rows imported as the gate's gold set.",
            "A simulated annotator labels what the queue hands out, with the true label; after each round a "
            "dataset is built, the default pipeline trains, and the gate decides (margin 0.01).",
            "'uncertain' re-ranks the queue by each newly promoted model; 'uncertain, static' keeps the "
            "bootstrap model's order; 'random' is the queue's fixed pseudo-random order (the baseline).",
        ],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{_cores()} cores, {platform.platform()}",
        "series": {"x_label": "labels", "y_label": "held-out macro-F1", "lines": lines},
    }
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run(rounds: int, workdir: Path, say=print) -> list[Round]:  # type: ignore[no-untyped-def]
    data = split_data()
    base = LocalStore(workdir / "bootstrap")
    train_bootstrap(base, by="learning-loop")
    results: list[Round] = []
    for order, rerank in (("uncertain", True), ("uncertain", False), ("random", False)):
        results += run_strategy(order, data, base, workdir, rounds=rounds, rerank=rerank, say=say)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pulse-loop-") as tmp:
        results = run(args.rounds, Path(tmp))
    write_results(results)
    print(io.StringIO(table(results)).getvalue())
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
