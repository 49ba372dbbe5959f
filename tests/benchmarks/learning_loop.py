"""The learning loop, measured: does the model get better when people label what it was unsure about?

Two data sets, one loop. The airline set: start from the bootstrap model (trained on the shipped
corpus), ingest the de-duplicated airline set as check-ins (`airline` as group, `name` as participant,
`tweet_created` as time) except a held-out stratified 20% test split, and let a simulated annotator
label what the review queue hands out with the true label, in rounds of 250. The check-in corpus,
one program left out (night-nurses unless asked): the loop's bootstrap model is trained on the shipped
corpus without that program's messages, its train and demo parts are ingested (sentiment labels only;
the program as group, participants and times made up from a hash of the text), and labelled in rounds
of 25 (only the unsure part of a few hundred messages reaches the queue); its gold part is the held-out
test. After each round: build a dataset (base corpus + every label
so far), train with the default local pipeline, and promote through the gate; then score the live model
on the held-out part. The same loop runs with the queue in "uncertain" order (least sure first, as
annotators get it) and in "random" order (the baseline).

Everything goes through the services the app uses (ingest, LabelingService, build_dataset,
run_training, promote); nothing is re-implemented here. Choices, stated:
- airline: the gate's gold set is 500 airline rows taken from the ingest pool (an admin importing a
  labelled file of their own domain); without it the gate would judge airline models on the shipped corpus;
- check-ins: the gate's gold set is the shipped gold set without the left-out program (the other four
  programs' gold part), so neither the gate nor any dataset sees the test part, and every message of
  the program is left in the pool; the gate then asks that a program's labels do not cost the others;
- check-ins: the base corpus without the program is added to `services.model.corpus.SHIPPED` under its
  own name for the run (and taken out after), so `build_dataset` builds on it as on any shipped corpus;
  the bootstrap model is trained on it by `build_dataset` + `run_training` with the bootstrap's
  parameters and made live by `promote` (what `train_bootstrap` does on the full corpus: the same
  lines, split, pipeline and calibration);
- the queue is built at ingest from the bootstrap model's confidences; after each promotion it is
  re-ranked by the new live model (`labeling.rerank_queue`, as the Models page and `cli promote` do).
  "uncertain, static" is the same loop without re-ranking: on the airline set it fell behind random
  selection, which is why the re-rank exists (the old model's hardest items stay first otherwise);
- one annotator, no double labelling (double_share 0): every round adds a full round of labels, until
  the queue is empty (then the loop stops: there is nothing left to learn from);
- a candidate the gate refuses is not promoted (the live model stays); its own score is reported.

Run standalone: `python -m tests.benchmarks.learning_loop [--rounds N] [--data airline|checkins|both]`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import platform
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from services.checkins.ingest import ingest
from services.errors import GateFailed
from services.lifecycle.datasets import BASE, build_dataset
from services.lifecycle.deployment import LocalDeployer, require_current
from services.lifecycle.endpoint import LocalEndpoint
from services.lifecycle.gold import import_gold
from services.lifecycle.promotion import promote
from services.lifecycle.registry import fetch_model
from services.lifecycle.trainers import LocalTrainer
from services.lifecycle.training import BOOTSTRAP_PARAMS, run_training, train_bootstrap
from services.model.corpus import SHIPPED, CorpusSplit, checkin_part, checkins, split_corpus
from services.model.evaluation import evaluate
from services.model.params import TrainParams
from services.model.text import loose, preprocess
from services.review.labeling import LabelingService
from services.review.rerank import rerank_queue
from services.store.local import LocalStore
from tests.benchmarks.datasets import airline_rows, stratified_split

ROUND = 250
CHECKIN_ROUND = 25
GOLD_ROWS = 500
PROGRAM = "night-nurses"
THRESHOLD = 0.6
MARGIN = 0.01
RESULTS = Path(__file__).resolve().parents[2] / "artifacts" / "results" / "learning_loop.json"
CHECKIN_RESULTS = RESULTS.with_name("learning_loop_checkins.json")
STRATEGIES = (("uncertain", True), ("uncertain", False), ("random", False))


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
    name: str  # names the ingested file and the gold file
    pool: list[dict[str, str]]  # ingested as check-ins: participant, group, time, text
    gold: list[tuple[str, str]]  # the gate's gold set
    test: list[tuple[str, str]]  # held out: what the curve is measured on
    truth: dict[str, str]  # text -> true label, the simulated annotator's knowledge
    round_size: int
    title: str
    notes: list[str]
    results: Path
    # A base corpus of the benchmark's own (name, loader), registered for the run; None: the shipped one.
    corpus: tuple[str, Callable[[], CorpusSplit]] | None = None

    @property
    def base(self) -> str:
        return self.corpus[0] if self.corpus else BASE


_AIRLINE_TITLE = "Learning loop: held-out macro-F1 of the live model after each round of 250 labels (airline set)"
_AIRLINE_NOTES = [
    "Bootstrap model first; the de-duplicated airline set ingested as check-ins except a stratified 20% "
    "held-out split (seed 0) and 500 rows imported as the gate's gold set.",
    "A simulated annotator labels what the queue hands out, with the true label; after each round a "
    "dataset is built, the default pipeline trains, and the gate decides (margin 0.01).",
    "'uncertain' re-ranks the queue by each newly promoted model; 'uncertain, static' keeps the "
    "bootstrap model's order; 'random' is the queue's fixed pseudo-random order (the baseline).",
]


def split_data(seed: int = 0) -> Data:
    """The airline set: a stratified 20% test split, 500 gold rows, the rest ingested."""
    rows = airline_rows()
    by_text = {r["text"]: r for r in rows}
    train, test = stratified_split([(r["text"], r["airline_sentiment"]) for r in rows], seed=seed)
    train_rows = [by_text[t] for t, _ in train]
    random.Random(seed).shuffle(train_rows)
    gold = [(r["text"], r["airline_sentiment"]) for r in train_rows[:GOLD_ROWS]]
    pool = [
        {"participant": r["name"], "group": r["airline"], "time": r["tweet_created"], "text": r["text"]}
        for r in train_rows[GOLD_ROWS:]
    ]
    truth = {r["text"]: r["airline_sentiment"] for r in train_rows[GOLD_ROWS:]}
    return Data("airline", pool, gold, test, truth, ROUND, _AIRLINE_TITLE, _AIRLINE_NOTES, RESULTS)


@functools.cache
def corpus_without(program: str) -> CorpusSplit:
    """The shipped corpus without one program: no text that matches one of its messages after
    preprocessing ("?" and "!" aside), in training, gold or demo."""
    shipped = split_corpus()
    held = {loose(preprocess(r.text)) for r in checkins() if r.program == program}
    return CorpusSplit(
        train=[r for r in shipped.train if loose(preprocess(r.text)) not in held],
        gold=[r for r in shipped.gold if loose(preprocess(r.text)) not in held],
        demo=[r for r in shipped.demo if r.source != program],
    )


def checkin_data(program: str = PROGRAM) -> Data:
    """The check-in corpus with `program` left out: its train and demo parts ingested, its gold part
    held out, the other programs' gold as the gate's gold set."""
    if program not in {r.program for r in checkins()}:
        raise ValueError(f"unknown program {program!r}")
    rows = [r for part in ("train", "demo") for r in checkin_part(part, source=None) if r.program == program]
    pool = [
        {"participant": _participant(r.text), "group": program, "time": _time(r.text), "text": r.text} for r in rows
    ]
    test = [(r.text, r.label) for r in checkin_part("gold") if r.program == program]
    corpus = corpus_without(program)
    title = (
        f"Learning loop on the check-in corpus: {program}'s held-out gold macro-F1 after each round "
        f"of {CHECKIN_ROUND} labels (bootstrap trained without {program})"
    )
    notes = [
        f"Bootstrap model trained with the default pipeline on the shipped corpus without {program}'s "
        f"messages; its train and demo parts ({len(pool)} messages, sentiment labels only) ingested as "
        f"check-ins; its gold part ({len(test)} every-day messages) held out; the gate's gold set is the "
        f"other four programs' gold part ({len(corpus.gold)} messages).",
        "A simulated annotator labels what the queue hands out, with the true label; after each round a "
        "dataset is built on the same base corpus, the default pipeline trains, and the gate decides "
        "(margin 0.01). The loop stops when the queue is empty.",
        "'uncertain' re-ranks the queue by each newly promoted model; 'uncertain, static' keeps the "
        "bootstrap model's order; 'random' is the queue's fixed pseudo-random order (the baseline).",
    ]
    truth = {r.text: r.label for r in rows}
    name = f"checkin-corpus-without-{program}"
    gold = [(r.text, r.label) for r in corpus.gold]
    return Data(program, pool, gold, test, truth, CHECKIN_ROUND, title, notes, CHECKIN_RESULTS, (name, lambda: corpus))


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _participant(text: str) -> str:
    return f"p{_digest(text) % 24 + 1:02d}"  # two dozen writers, stable from run to run


def _time(text: str) -> str:
    start = datetime(2026, 9, 7, 6, tzinfo=UTC)  # four weeks of check-ins, to the minute
    return (start + timedelta(minutes=(_digest(text) >> 16) % (28 * 24 * 60))).isoformat()


def checkins_csv(pool: list[dict[str, str]]) -> bytes:
    text: str = pd.DataFrame(pool, columns=["participant", "group", "time", "text"]).to_csv(index=False)
    return text.encode()


@contextlib.contextmanager
def base_corpus(data: Data) -> Iterator[None]:
    """Make the data set's own base corpus known to build_dataset (and gold sets) for the run."""
    if data.corpus is None:
        yield
        return
    name, loader = data.corpus
    SHIPPED[name] = loader
    try:
        yield
    finally:
        del SHIPPED[name]


def bootstrap(store: LocalStore, data: Data) -> None:
    """The loop's starting model: `train_bootstrap` on the shipped corpus, or on the data set's own
    base corpus the same pipeline through a dataset version, a training run and the gate."""
    if data.corpus is None:
        train_bootstrap(store, by="learning-loop")
        return
    import_gold(store, f"{data.name}-gold", data.gold)
    manifest = build_dataset(store, by="learning-loop", base=data.base)
    run = run_training(store, LocalTrainer(store), manifest.version, params=BOOTSTRAP_PARAMS, by="learning-loop")
    if run.status != "Completed" or run.model_version is None:
        raise RuntimeError(f"the bootstrap model failed to train: {run.failure_reason}")
    promote(store, LocalDeployer(), run.model_version, by="learning-loop", reason="bootstrap model", margin=MARGIN)


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
    import_gold(store, f"{data.name}-gold", data.gold)
    started = time.perf_counter()
    report = ingest(
        store, LocalEndpoint(store, cache), checkins_csv(data.pool), f"{data.name}.csv", threshold=THRESHOLD
    )
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
        if out[-1].queue == 0:
            break  # nothing left to label: another round would train on the same labels
        started = time.perf_counter()
        for _ in range(data.round_size):
            item = svc.claim_next("sim-annotator", order=order)  # type: ignore[arg-type]
            if item is None:
                break
            svc.submit(item.id, data.truth[item.text], "sim-annotator")
            labelled += 1
        manifest = build_dataset(store, by="learning-loop", base=data.base)
        run = run_training(store, trainer, manifest.version, params=TrainParams(), by="learning-loop")
        if run.status != "Completed" or run.model_version is None:
            raise RuntimeError(f"training failed in round {n}: {run.failure_reason}")
        candidate = fetch_model(store, run.model_version, cache)
        candidate_f1 = evaluate(candidate.predict([t for t, _ in data.test]), [y for _, y in data.test]).macro_f1
        try:
            _, verdict = promote(
                store, deployer, run.model_version, by="learning-loop", reason=f"round {n}", margin=MARGIN
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


def write_results(results: list[Round], data: Data, path: Path | None = None) -> Path:
    path = path or data.results
    path.parent.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[list[float]]] = {}
    for r in results:
        lines.setdefault(r.strategy, []).append([r.labels, round(r.live_f1, 4)])
    doc = {
        "title": data.title,
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
        "notes": data.notes,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{_cores()} cores, {platform.platform()}",
        "series": {"x_label": "labels", "y_label": "held-out macro-F1", "lines": lines},
    }
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run(rounds: int, workdir: Path, say=print, *, data: Data | None = None) -> list[Round]:  # type: ignore[no-untyped-def]
    """The three strategies on one data set (default: the airline set), from one bootstrap model."""
    data = data or split_data()
    base = LocalStore(workdir / "bootstrap")
    results: list[Round] = []
    with base_corpus(data):
        bootstrap(base, data)
        for order, rerank in STRATEGIES:
            results += run_strategy(order, data, base, workdir, rounds=rounds, rerank=rerank, say=say)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="at most this many rounds per strategy")
    parser.add_argument("--data", choices=("airline", "checkins", "both"), default="airline")
    parser.add_argument("--program", default=PROGRAM, help="the check-in program left out (default: %(default)s)")
    args = parser.parse_args()
    for name in ("airline", "checkins") if args.data == "both" else (args.data,):
        data = split_data() if name == "airline" else checkin_data(args.program)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="pulse-loop-") as tmp:
            results = run(args.rounds, Path(tmp), data=data)
        path = write_results(results, data)
        print(f"\n{data.title}\n{table(results)}")
        print(f"{time.perf_counter() - started:.0f}s; written to {path}")


if __name__ == "__main__":
    main()
