"""`services.cli import-model`: models made by fastText's own trainer on the real airline data, one with
numbered labels, one trained on lower-cased raw text; a BlazingText-style model.tar.gz; and what is
refused, with a message that says what to do."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from services.cli import main as cli
from services.errors import ModelUnavailable
from services.lifecycle.deployment import deploy_local, require_current
from services.lifecycle.endpoint import LocalEndpoint
from services.lifecycle.imports import import_model, parse_labels
from services.lifecycle.registry import ModelCard, fetch_model, load_card, load_model_file
from services.model.fasttext import relabel
from services.model.prediction import prepare
from services.store.local import LocalStore
from tests.benchmarks.datasets import AIRLINE
from tests.conftest import tar_gz

NUMBERED = {"negative": "0", "neutral": "1", "positive": "2"}
TEXTS = ["@united thanks, the crew was lovely", "@united lost my bag AGAIN", "@united what time is boarding?"]


def airline(n: int) -> list[tuple[str, str]]:
    with AIRLINE.open(newline="", encoding="utf-8") as fh:
        rows = [(r["airline_sentiment"], r["text"]) for r in csv.DictReader(fh)]
    return rows[:n]


def fasttext_bin(path: Path, lines: list[str]) -> Path:
    """A model made by fastText's own trainer (as the fastText CLI or a BlazingText job would)."""
    import fasttext

    data = path.with_suffix(".txt")
    data.write_text("\n".join(lines) + "\n")
    model = fasttext.train_supervised(
        input=str(data), epoch=10, wordNgrams=2, dim=20, bucket=50_000, verbose=0, thread=10
    )
    model.save_model(str(path))
    return path


@pytest.fixture(scope="module")
def numbered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Labels 0/1/2, text lower-cased and nothing else (as many exports are made)."""
    lines = [f"__label__{NUMBERED[label]} {' '.join(text.lower().split())}" for label, text in airline(4000)]
    return fasttext_bin(tmp_path_factory.mktemp("numbered") / "sentiment.bin", lines)


@pytest.fixture(scope="module")
def pulse_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pulse's labels and Pulse's preprocessing (what a BlazingText job on a Pulse dataset trains)."""
    lines = [f"__label__{label} {prepare(text)}" for label, text in airline(4000)]
    return fasttext_bin(tmp_path_factory.mktemp("pulse") / "model.bin", lines)


def import_numbered(ws: LocalStore, numbered: Path, **kwargs: str) -> ModelCard:
    """The numbered model imported with its labels mapped and its lower-cased text."""
    labels = parse_labels("0=negative,1=neutral,2=positive")
    return import_model(ws, numbered.read_bytes(), by="t", labels=labels, preprocessing="lowercase", **kwargs)


def test_numbered_labels_are_refused_without_a_mapping_and_named(ws: LocalStore, numbered: Path) -> None:
    with pytest.raises(ModelUnavailable, match=r"predicts the labels .*0.*1.*2.*--labels 0=negative") as refused:
        import_model(ws, numbered.read_bytes(), source="sentiment.bin", by="t")
    assert "sentiment.bin" in str(refused.value)


def test_a_mapping_renames_the_labels_and_keeps_every_probability(ws: LocalStore, numbered: Path) -> None:
    import fasttext

    card = import_numbered(ws, numbered, source="sentiment.bin")
    assert card.trainer == "imported" and card.preprocessing == "lowercase" and card.family == "fasttext"
    assert load_card(ws, card.version).metrics["macro_f1"] > 0.3  # evaluated on the gold set
    model = fetch_model(ws, card.version, ws.root.parent / "cache")
    original = fasttext.load_model(str(numbered))
    lowered = [" ".join(t.lower().split()) for t in TEXTS]
    labels, probs = original.predict(lowered, k=3)
    for prediction, own_labels, own_probs in zip(model.predict(TEXTS), labels, probs, strict=True):
        want = {name: float(p) for name, p in zip(own_labels, own_probs, strict=True)}
        got = {f"__label__{NUMBERED[label]}": p for label, p in prediction.probs.items()}
        assert got == pytest.approx(want, abs=1e-6)


def test_the_recorded_preprocessing_is_what_the_live_model_is_sent(ws: LocalStore, numbered: Path) -> None:
    """Deployed, the imported model scores lower-cased raw text, not Pulse's tokens."""
    card = import_numbered(ws, numbered, source="x.bin")
    deploy_local(ws, card.version, by="t", reason="t")
    endpoint = LocalEndpoint(ws, ws.root.parent / "cache2")
    assert endpoint.preprocessing() == "lowercase"
    assert require_current(ws).version == card.version
    direct = fetch_model(ws, card.version, ws.root.parent / "cache3")
    version, scored = endpoint.score([prepare(t, 2000, endpoint.preprocessing()) for t in TEXTS])
    assert version == card.version
    assert [p.probs for p in scored] == [p.probs for p in direct.predict(TEXTS)]


def test_a_blazingtext_model_tar_gz_imports_as_it_is(ws: LocalStore, pulse_prepared: Path) -> None:
    blob = tar_gz({"model.bin": pulse_prepared.read_bytes()})
    card = import_model(ws, blob, source="s3://b/job/output/model.tar.gz", by="t")
    assert card.preprocessing == "pulse-v2" and card.parent is not None
    assert "imported from s3://b/job/output/model.tar.gz" in card.notes


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("0=negative,1=neutral", "leaves 2 unmapped"),
        ("0=negative,1=neutral,2=positive,3=neutral", "two of the model's labels"),
        ("0=negative,1=neutral,5=positive", "names 5, which the model does not predict"),
        ("0=bad,1=neutral,2=positive", "'bad' is not a Pulse label"),
        ("0:negative", "is not LABEL=PULSE_LABEL"),
    ],
)
def test_a_wrong_mapping_says_what_is_wrong(ws: LocalStore, numbered: Path, spec: str, message: str) -> None:
    with pytest.raises((ModelUnavailable, ValueError), match=message):
        import_model(ws, numbered.read_bytes(), source="x.bin", by="t", labels=parse_labels(spec))


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"not a model at all", "neither a model.tar.gz nor a fastText .bin"),
        (tar_gz({"README": b"hello"}), "holds no model.bin or linear.npz"),
        (b"\x1f\x8b broken gzip", "not a readable model.tar.gz"),
    ],
    ids=["not a model", "no model in the tarball", "broken gzip"],
)
def test_what_is_not_a_model_is_refused(ws: LocalStore, blob: bytes, message: str) -> None:
    with pytest.raises(ModelUnavailable, match=message):
        import_model(ws, blob, source="x", by="t")


def test_a_tarball_that_escapes_its_folder_is_refused(ws: LocalStore, pulse_prepared: Path) -> None:
    with pytest.raises(ModelUnavailable, match=r"not a readable model\.tar\.gz"):
        import_model(ws, tar_gz({"../../model.bin": pulse_prepared.read_bytes()}), source="x", by="t")


def test_relabel_rewrites_only_the_labels(tmp_path: Path, numbered: Path) -> None:
    target = tmp_path / "renamed.bin"
    relabel(numbered, target, {"0": "negative", "1": "neutral", "2": "positive"})
    model = load_model_file(target)
    assert sorted(model.labels) == ["negative", "neutral", "positive"]  # type: ignore[attr-defined]
    grown = sum(len(name) - 1 for name in ("negative", "neutral", "positive"))  # each replaces one character
    assert target.stat().st_size == numbered.stat().st_size + grown


def test_the_cli_imports_registers_and_gates_without_deploying(
    ws: LocalStore, numbered: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = require_current(ws).version
    code = cli(
        [
            "import-model",
            str(numbered),
            "--workspace",
            str(ws.root),
            "--labels",
            "0=negative,1=neutral,2=positive",
            "--preprocessing",
            "lowercase",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "registered m" in out and "preprocessing lowercase" in out and "promote" in out
    assert require_current(ws).version == live  # ready for the gate, not live
    assert cli(["import-model", str(numbered), "--workspace", str(ws.root)]) == 2
    assert "--labels 0=negative" in capsys.readouterr().err
    assert require_current(ws).version == live
