"""The model lifecycle through `python -m services.cli` on copies of the bootstrap workspace.

Each CLI call is a fresh Python process (a few seconds of imports), so the calls run once per
module, independent chains side by side, and the tests below check what they printed and left."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.lifecycle.datasets import build_dataset, list_datasets, load_manifest
from services.lifecycle.deployment import current, history
from services.lifecycle.gold import import_gold
from services.lifecycle.promotion import GateVerdict, gate
from services.lifecycle.registry import ModelCard, list_versions, load_card, new_version, register
from services.lifecycle.runs import RUNS
from services.model.corpus import split_corpus
from services.model.evaluation import rounded
from services.model.fasttext import fasttext_line, train
from services.model.params import TrainParams
from services.review.labels import Label, save_label
from services.store.local import LocalStore

ROOT = Path(__file__).resolve().parents[3]
FLIP = {"positive": "negative", "negative": "positive", "neutral": "neutral"}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def live_version(root: Path) -> str | None:
    dep = current(LocalStore(root))
    return dep.version if dep else None


@dataclass
class Step:
    proc: subprocess.CompletedProcess[str]
    live_after: str | None


@dataclass
class Results:
    lifecycle: Path  # dataset -> train -> evaluate
    promotion: Path  # promote (refused) -> promote --override -> rollback
    params: Path  # train --lr 9
    bootstrap: str
    worse: str
    expected_gate: GateVerdict
    n_train: int
    n_test: int
    steps: dict[str, Step] = field(default_factory=dict)
    trained: str | None = None


@pytest.fixture(scope="module")
def results(bootstrap_store: LocalStore, tmp_path_factory: pytest.TempPathFactory) -> Results:
    base = tmp_path_factory.mktemp("cli")
    cwd = base / "cwd"  # no secrets file, no ./workspace
    cwd.mkdir()
    lifecycle, promotion = base / "lifecycle", base / "promotion"
    shutil.copytree(bootstrap_store.root, lifecycle)
    shutil.copytree(bootstrap_store.root, promotion)
    bootstrap = live_version(promotion)
    assert bootstrap is not None

    # A clearly worse candidate: trained with positive and negative swapped.
    ps = LocalStore(promotion)
    flipped = train(
        [fasttext_line(FLIP[r.label], r.text) for r in split_corpus().train],
        TrainParams(epoch=5, dim=10, bucket=10_000),
    )
    card = ModelCard(new_version(), datetime.now(UTC).isoformat(timespec="seconds"), "tests", "flipped labels")
    worse = register(ps, flipped, card).version
    expected = gate(ps, worse, margin=0.01)  # the default PULSE_GATE_MARGIN

    # A small workspace with a dataset, for the parameter check.
    params = base / "params"
    small = LocalStore(params)
    import_gold(small, "gold", [("fine thanks", "positive")])
    for i, label in enumerate(["negative", "neutral", "positive"] * 3):
        save_label(small, Label(f"i{i}", f"message number {i + 10} {label}", label, "ann", f"2026-03-01T10:00:{i:02d}"))
    build_dataset(small, by="tests", base="none")

    corpus = split_corpus()
    train_rows = [(r.text, r.label) for r in corpus.train[:600]]
    test_rows = [(r.text, r.label) for r in corpus.gold[:200]]
    a = write_csv(base / "A.csv", train_rows)
    b = write_csv(base / "B.csv", test_rows)
    bad = write_csv(base / "bad.csv", [("so good", "positive"), ("what a day", "happy")])

    out = Results(lifecycle, promotion, params, bootstrap, worse, expected, len(train_rows), len(test_rows))

    def run(name: str, root: Path | None, *args: str) -> Step:
        step = Step(cli(*args, cwd=cwd), live_version(root) if root else None)
        out.steps[name] = step
        return step

    def chain_lifecycle() -> None:
        ws = ("--workspace", str(lifecycle))
        run("dataset", lifecycle, "dataset", *ws, "--seed", "3", "--by", "dana")
        step = run("train", lifecycle, "train", *ws, "--epoch", "5", "--dim", "10", "--by", "dana")
        found = re.search(r"^registered (\S+):", step.proc.stdout, re.MULTILINE)
        if found:
            out.trained = found.group(1)
            run("evaluate", lifecycle, "evaluate", out.trained, *ws)

    def chain_promotion() -> None:
        ws = ("--workspace", str(promotion))
        run("promote-refused", promotion, "promote", worse, *ws, "--reason", "r", "--by", "erin")
        run("promote-override", promotion, "promote", worse, *ws, "--reason", "r", "--override", "why", "--by", "erin")
        run("rollback", promotion, "rollback", *ws, "--reason", "too many complaints", "--by", "erin")

    chains: list[Callable[[], object]] = [
        chain_lifecycle,
        chain_promotion,
        lambda: run("train-lr", params, "train", "--workspace", str(params), "--lr", "9"),
        lambda: run("benchmark", None, "benchmark", "--train", str(a), "--test", str(b), "--json"),
        lambda: run("benchmark-bad", None, "benchmark", "--train", str(bad), "--test", str(b), "--json"),
    ]
    with ThreadPoolExecutor(max_workers=len(chains)) as pool:
        for future in [pool.submit(chain) for chain in chains]:
            future.result()
    return out


def ok(step: Step) -> subprocess.CompletedProcess[str]:
    assert step.proc.returncode == 0, step.proc.stderr
    assert "Traceback" not in step.proc.stderr
    return step.proc


def refused(step: Step) -> str:
    """The single `error:` line of a command that exited 2."""
    proc = step.proc
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


# --- dataset -> train -> evaluate ------------------------------------------------------------------


def test_dataset_builds_a_version(results: Results) -> None:
    proc = ok(results.steps["dataset"])
    store = LocalStore(results.lifecycle)
    [version] = list_datasets(store)
    assert proc.stdout.startswith(f"dataset {version}: train ")
    manifest = load_manifest(store, version)
    assert (manifest.seed, manifest.created_by, manifest.base) == (3, "dana", "checkin-corpus")
    assert str(manifest.counts["train"]) in proc.stdout


def test_train_registers_a_model_on_the_newest_dataset(results: Results) -> None:
    proc = ok(results.steps["train"])
    assert results.trained is not None, proc.stdout
    assert f"registered {results.trained}" in proc.stdout
    assert "[100%] done" in proc.stdout
    store = LocalStore(results.lifecycle)
    assert results.trained in list_versions(store)
    card = load_card(store, results.trained)
    assert card.dataset == list_datasets(store)[-1]
    assert card.created_by == "dana" and card.parent == results.bootstrap
    [run] = [json.loads(store.get(k)) for k in store.list(RUNS)]
    assert (run["params"]["epoch"], run["params"]["dim"]) == (5, 10)  # what was asked for
    # The card holds the parameters of the family that won, and only those.
    assert card.params["family"] == card.family
    assert ("epoch" in card.params) == (card.family == "fasttext") and ("c" in card.params) == (card.family == "linear")
    if card.family == "fasttext":
        assert (card.params["epoch"], card.params["dim"]) == (5, 10)
    assert run["status"] == "Completed"
    assert run["model_version"] == results.trained
    assert results.steps["train"].live_after == results.bootstrap  # training deploys nothing


def test_evaluate_compares_a_version_with_the_live_one(results: Results) -> None:
    proc = ok(results.steps["evaluate"])
    first, _, rest = proc.stdout.partition("\n")
    assert first.startswith(f"{results.trained} ")
    assert f"for the live {results.bootstrap}" in first
    metrics = json.loads(rest)
    card = load_card(LocalStore(results.lifecycle), results.trained or "")
    assert metrics == {k: v for k, v in card.metrics.items() if k != "gold_set"}
    assert results.steps["evaluate"].live_after == results.bootstrap


# --- promote -> promote --override -> rollback -----------------------------------------------------


def test_promote_of_a_worse_version_exits_2_with_the_gate_message(results: Results) -> None:
    line = refused(results.steps["promote-refused"])
    v = results.expected_gate
    assert not v.passed
    assert "is refused" in line
    assert f"below the live model, more than the {v.margin:.3f} the gate allows" in line
    figures = (
        f"macro-F1 {rounded(v.candidate_f1):.3f} against {rounded(v.live_f1 or 0):.3f} for the live {results.bootstrap}"
    )
    assert figures in line
    assert "override" in line
    assert results.steps["promote-refused"].proc.stdout == ""
    assert results.steps["promote-refused"].live_after == results.bootstrap


def test_promote_with_override_deploys_and_records_the_reason(results: Results) -> None:
    proc = ok(results.steps["promote-override"])
    assert f"{results.worse} is live (previous: {results.bootstrap})" in proc.stdout
    assert results.steps["promote-override"].live_after == results.worse
    records = history(LocalStore(results.promotion))
    overridden = [d for d in records if d.version == results.worse]
    assert len(overridden) == 1
    assert overridden[0].reason == "r [gate overridden: why]"
    assert overridden[0].deployed_by == "erin"


def test_rollback_puts_the_previous_version_back(results: Results) -> None:
    proc = ok(results.steps["rollback"])
    assert proc.stdout.strip() == f"rolled back: {results.bootstrap} is live again"
    assert results.steps["rollback"].live_after == results.bootstrap
    last = history(LocalStore(results.promotion))[-1]
    assert (last.version, last.previous, last.reason) == (
        results.bootstrap,
        results.worse,
        "rollback: too many complaints",
    )


# --- benchmark and refused input -------------------------------------------------------------------


def test_benchmark_prints_one_json_object(results: Results) -> None:
    proc = ok(results.steps["benchmark"])
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    report = json.loads(lines[0])
    assert isinstance(report, dict)
    assert {"macro_f1", "accuracy", "train_seconds", "n_train", "n_test"} <= set(report)
    assert (report["n_train"], report["n_test"]) == (results.n_train, results.n_test)
    assert 0.3 < report["macro_f1"] <= 1.0  # well above chance for three classes
    assert 0.3 < report["accuracy"] <= 1.0
    assert report["train_seconds"] >= 0


def test_benchmark_refuses_an_unknown_label(results: Results) -> None:
    line = refused(results.steps["benchmark-bad"])
    assert "bad.csv" in line
    assert "negative, neutral, positive" in line
    assert "happy" in line
    assert results.steps["benchmark-bad"].proc.stdout == ""


def test_train_refuses_a_learning_rate_out_of_range(results: Results) -> None:
    line = refused(results.steps["train-lr"])
    assert "lr=9.0 is outside 0.001..2" in line
    store = LocalStore(results.params)
    assert list_versions(store) == []
    assert list(store.list(RUNS)) == []
