"""The fastText model, the registry of versions, deployment and the local endpoint."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import fasttext
import pytest

from services.config import Settings
from services.errors import AlreadyExists, ModelUnavailable
from services.lifecycle.deployment import CURRENT, current, deploy_local
from services.lifecycle.endpoint import LocalEndpoint
from services.lifecycle.registry import ARTIFACT, ModelCard, fetch_model, list_versions, load_card, register
from services.model.fasttext import SentimentModel, fasttext_line, train
from services.model.params import TrainParams
from services.model.prediction import LABELS, prepare
from services.store.local import LocalStore

ROOT = Path(__file__).resolve().parents[3]
TINY = TrainParams(epoch=50, lr=0.5, dim=20, word_ngrams=2, bucket=10_000)
CORPUS = {
    "positive": ["great happy lovely day", "so happy today", "love this team", "wonderful great work"],
    "negative": ["awful sad terrible day", "hate this so much", "terrible awful mood", "sad and tired"],
    "neutral": ["meeting at noon today", "the report is on the desk", "lunch at twelve", "call moved to monday"],
}


def corpus_lines(flip: bool = False) -> list[str]:
    """The tiny corpus in fastText format; `flip` swaps positive and negative (a visibly different model)."""
    swap = {"positive": "negative", "negative": "positive", "neutral": "neutral"} if flip else {}
    return [fasttext_line(swap.get(label, label), text) for label, texts in CORPUS.items() for text in texts * 3]


def fit(lines: list[str], params: TrainParams = TINY) -> SentimentModel:
    # No heap clean-up first: training must hold in a long-lived process (fastText's matrix
    # initialisation bug, see test_training_after_the_bootstrap_in_the_same_process).
    return train(lines, params)


@pytest.fixture(scope="module")
def tiny_model() -> SentimentModel:
    return fit(corpus_lines())


@pytest.fixture(scope="module")
def flipped_model() -> SentimentModel:
    return fit(corpus_lines(flip=True))


def card(version: str, **extra: Any) -> ModelCard:
    return ModelCard(
        version=version, created_at="2026-01-01T00:00:00+00:00", created_by="tests", dataset="tiny", **extra
    )


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def files_under(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}


# --- training and predictions ----------------------------------------------------------------------


def test_a_model_trained_on_a_tiny_corpus_gives_distributions(tiny_model: SentimentModel) -> None:
    assert set(tiny_model.labels) == set(LABELS)
    texts = ["What a great happy day!", "awful, terrible mood :(", "meeting moved to monday", "love it"]
    preds = tiny_model.predict(texts)
    assert len(preds) == len(texts)
    for p in preds:
        assert p.label in LABELS
        assert set(p.probs) == set(LABELS)
        assert sum(p.probs.values()) == pytest.approx(1.0, abs=0.02)
        assert all(0.0 <= v <= 1.0 for v in p.probs.values())
        assert p.confidence == max(p.probs.values()) == p.probs[p.label]
        assert 0.0 <= p.margin <= p.confidence
    assert [p.label for p in preds[:3]] == ["positive", "negative", "neutral"]


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "the and of", "a b c", "!!! ..."])
def test_text_with_nothing_readable_gets_confidence_zero(tiny_model: SentimentModel, text: str) -> None:
    pred = tiny_model.predict(["great happy day", text])[1]
    assert pred.confidence == 0.0
    assert set(pred.probs.values()) == {0.0}
    assert pred.margin == 0.0
    # Every valid review threshold is above zero, so such a check-in always goes to review.
    assert Settings.model_fields["review_threshold"].metadata[0].gt == 0.0


def test_predict_cuts_long_texts_to_max_chars(tiny_model: SentimentModel) -> None:
    model = SentimentModel(tiny_model._ft, max_chars=120)
    head = "great happy lovely day " * 6  # 138 chars
    text = head + "awful terrible sad " * 200
    assert model.predict([text])[0] == model.predict([head[:120]])[0]
    assert model.predict([text])[0].label == "positive"


def test_training_after_the_bootstrap_in_the_same_process(tmp_path: Path) -> None:
    # In a child process, so the heap is the one a real app process has right after bootstrapping.
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.unit.lifecycle.test_model_and_registry import TINY, corpus_lines
        from services.model.fasttext import train
        from services.store.local import LocalStore
        from services.lifecycle.training import train_bootstrap

        train_bootstrap(LocalStore({str(tmp_path / "ws")!r}), by="tests")
        failures = 0
        for _ in range(3):
            try:
                train(corpus_lines(), TINY)
            except RuntimeError as exc:
                failures += 1
                print("failed:", exc)
        print("failures:", failures)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "failures: 0" in result.stdout, result.stdout


def test_training_needs_at_least_one_line_with_words() -> None:
    with pytest.raises(ValueError, match="no training examples"):
        train([fasttext_line("positive", "the and of"), "not a fasttext line"], TINY)


def test_nan_during_training_is_retried_once_with_safer_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    real = fasttext.train_supervised
    calls: list[dict[str, Any]] = []

    def flaky(**kwargs: Any) -> Any:
        calls.append(kwargs)
        if len(calls) == 1:
            raise RuntimeError("Encountered NaN.")
        return real(**kwargs)

    monkeypatch.setattr(fasttext, "train_supervised", flaky)
    model = train(corpus_lines(), TINY)
    assert len(calls) == 2
    assert (calls[0]["minn"], calls[0]["maxn"]) == (0, 0)
    assert (calls[1]["minn"], calls[1]["maxn"]) == (2, 4)
    assert calls[1]["wordNgrams"] == 2
    assert calls[1]["lr"] == pytest.approx(TINY.lr / 2)
    assert calls[1]["input"] == calls[0]["input"]
    assert model.predict(["so happy today"])[0].label in LABELS


def test_other_training_errors_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def broken(**kwargs: Any) -> Any:
        calls.append(kwargs)
        raise RuntimeError("out of disk space")

    monkeypatch.setattr(fasttext, "train_supervised", broken)
    with pytest.raises(RuntimeError, match="out of disk space"):
        train(corpus_lines(), TINY)
    assert len(calls) == 1


# --- registry --------------------------------------------------------------------------------------


def test_register_and_fetch_round_trip(store: LocalStore, tiny_model: SentimentModel, tmp_path: Path) -> None:
    registered = register(store, tiny_model, card("m1", metrics={"accuracy": 0.5}, params={"epoch": 50}))
    assert list_versions(store) == ["m1"]
    assert load_card(store, "m1") == registered
    with tarfile.open(fileobj=io.BytesIO(store.get(f"models/m1/{ARTIFACT}")), mode="r:gz") as tar:
        assert tar.getnames() == ["model.bin"]

    fetched = fetch_model(store, "m1", tmp_path / "cache")
    assert (tmp_path / "cache" / "m1" / "model.bin").is_file()
    texts = ["great happy day", "awful terrible", "lunch at twelve", ""]
    assert fetched.predict(texts) == tiny_model.predict(texts)
    # A second fetch uses the cache, even if the store lost the artifact.
    store.delete(f"models/m1/{ARTIFACT}")
    assert fetch_model(store, "m1", tmp_path / "cache").predict(texts) == tiny_model.predict(texts)


def test_registering_a_version_twice_is_refused(
    store: LocalStore, tiny_model: SentimentModel, flipped_model: SentimentModel
) -> None:
    register(store, tiny_model, card("m1", notes="first"))
    artifact = store.get(f"models/m1/{ARTIFACT}")
    with pytest.raises(AlreadyExists, match="m1"):
        register(store, flipped_model, card("m1", notes="second"))
    assert store.get(f"models/m1/{ARTIFACT}") == artifact
    assert load_card(store, "m1").notes == "first"


@pytest.mark.parametrize(
    ("body", "said"),
    [
        pytest.param(b"{not json", "is not valid JSON", id="not-json"),
        pytest.param(b"[1, 2]", "is not a JSON object", id="not-an-object"),
        pytest.param(b'{"version": "m1", "created_at": "2026-12-01"}', "has no created_by, dataset", id="missing"),
        pytest.param(
            b'{"version": "m1", "created_at": "x", "created_by": "y", "dataset": "d", "labels": [0, 1]}',
            "unknown key(s) labels",
            id="unknown",
        ),
        pytest.param(
            b'{"version": "m2", "created_at": "x", "created_by": "y", "dataset": "d"}', "names version 'm2'", id="other"
        ),
        pytest.param(
            b'{"version": "m1", "created_at": "x", "created_by": "y", "dataset": "d", "family": "xgboost"}',
            "family 'xgboost'",
            id="family",
        ),
    ],
)
def test_a_card_written_by_hand_says_which_file_and_key_are_wrong(store: LocalStore, body: bytes, said: str) -> None:
    store.put("models/m1/card.json", body)
    with pytest.raises(ModelUnavailable) as info:
        load_card(store, "m1")
    assert "models/m1/card.json" in str(info.value) and said in str(info.value)


def test_a_fasttext_model_with_other_labels_is_refused_with_them_named(tmp_path: Path) -> None:
    numbered = {"negative": "0", "neutral": "1", "positive": "2"}
    lines = [
        line.replace(f"__label__{name} ", f"__label__{n} ", 1)
        for line in corpus_lines()
        for name, n in numbered.items()
        if line.startswith(f"__label__{name} ")
    ]
    fit(lines).save(tmp_path / "model.bin")  # as fastText's own trainer would, on a numbered export
    with pytest.raises(ModelUnavailable, match=r"predicts the labels [012], [012], [012]; Pulse reads negative"):
        SentimentModel.load(tmp_path / "model.bin")


def test_fetching_a_missing_version(store: LocalStore, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="missing"):
        fetch_model(store, "m404", tmp_path / "cache")
    with pytest.raises(ModelUnavailable, match="no card"):
        load_card(store, "m404")


def test_an_artifact_without_model_bin_is_refused(store: LocalStore, tmp_path: Path) -> None:
    store.put(f"models/m1/{ARTIFACT}", tar_gz([file_member("weights.bin", b"x" * 100)]))
    cache = tmp_path / "cache"
    with pytest.raises(ModelUnavailable, match=r"holds no model\.bin"):
        fetch_model(store, "m1", cache)
    assert files_under(cache) == set()


def test_an_artifact_that_is_not_a_tarball_is_refused(store: LocalStore, tmp_path: Path) -> None:
    store.put(f"models/m1/{ARTIFACT}", b"\x1f\x8b but not really gzip")
    with pytest.raises(ModelUnavailable, match="corrupt"):
        fetch_model(store, "m1", tmp_path / "cache")
    assert files_under(tmp_path / "cache") == set()


def test_a_junk_model_bin_is_refused(store: LocalStore, tmp_path: Path) -> None:
    store.put(f"models/m1/{ARTIFACT}", tar_gz([file_member("model.bin", b"not a fastText model" * 50)]))
    with pytest.raises(ModelUnavailable, match=r"corrupt.*not a fastText model"):
        fetch_model(store, "m1", tmp_path / "cache")


@pytest.mark.parametrize("name", ["../evil", "../../evil", "../../../evil", "model.bin/../../../../evil"])
def test_a_path_traversal_member_is_refused_and_writes_nothing_outside(
    store: LocalStore, tiny_model: SentimentModel, tmp_path: Path, name: str
) -> None:
    good = tmp_path / "good.bin"
    tiny_model.save(good)
    store.put(
        f"models/m1/{ARTIFACT}",
        tar_gz([file_member(name, b"owned"), file_member("model.bin", good.read_bytes())]),
    )
    cache = tmp_path / "deep" / "er" / "cache"
    with pytest.raises(ModelUnavailable):
        fetch_model(store, "m1", cache)
    assert [p for p in tmp_path.rglob("evil")] == []
    assert not (cache / "m1" / "model.bin").exists()


def test_an_absolute_member_is_refused(store: LocalStore, tmp_path: Path) -> None:
    target = tmp_path / "absolute-evil"
    store.put(f"models/m1/{ARTIFACT}", tar_gz([file_member(str(target), b"owned")]))
    with pytest.raises(ModelUnavailable):
        fetch_model(store, "m1", tmp_path / "cache")
    assert not target.exists()
    assert [p for p in tmp_path.rglob("absolute-evil")] == []


def test_a_symlinked_model_bin_is_refused(store: LocalStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"secret")
    link = tarfile.TarInfo("model.bin")
    link.type = tarfile.SYMTYPE
    link.linkname = str(outside)
    store.put(f"models/m1/{ARTIFACT}", tar_gz([(link, None)]))
    with pytest.raises(ModelUnavailable):
        fetch_model(store, "m1", tmp_path / "cache")
    assert not (tmp_path / "cache" / "m1" / "model.bin").exists()


def test_a_truncated_model_bin_is_refused_promptly(
    store: LocalStore, tiny_model: SentimentModel, tmp_path: Path
) -> None:
    good = tmp_path / "good.bin"
    tiny_model.save(good)
    store.put(f"models/m1/{ARTIFACT}", tar_gz([file_member("model.bin", good.read_bytes()[:100])]))
    # In a child process with a time limit: the bug makes the load hang and grow.
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from services.errors import ModelUnavailable
        from services.lifecycle.registry import fetch_model
        from services.store.local import LocalStore
        try:
            fetch_model(LocalStore({str(store.root)!r}), "m1", Path({str(tmp_path / "cache")!r}))
        except ModelUnavailable as exc:
            print("refused:", exc)
        """
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=6, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail("loading a truncated model.bin did not finish within 6 s")
    assert result.stdout.startswith("refused:"), result.stderr


# --- deployment and the endpoint ------------------------------------------------------------------


def test_deploy_refuses_an_unregistered_version(store: LocalStore, tiny_model: SentimentModel) -> None:
    with pytest.raises(ModelUnavailable, match="m404"):
        deploy_local(store, "m404", by="tests", reason="try")
    assert current(store) is None
    assert list(store.list("deployments/")) == []

    register(store, tiny_model, card("m1"))
    deploy_local(store, "m1", by="tests", reason="first")
    before = {k: store.get(k) for k in store.list("deployments/")}
    with pytest.raises(ModelUnavailable):
        deploy_local(store, "m404", by="tests", reason="try again")
    assert {k: store.get(k) for k in store.list("deployments/")} == before
    assert json.loads(store.get(CURRENT))["version"] == "m1"


def test_deploy_records_the_previous_version(store: LocalStore, tiny_model: SentimentModel) -> None:
    register(store, tiny_model, card("m1"))
    register(store, tiny_model, card("m2"))
    first = deploy_local(store, "m1", by="alice", reason="first")
    second = deploy_local(store, "m2", by="bob", reason="better")
    assert first.previous is None
    assert second.previous == "m1"
    assert current(store) == second
    history = [json.loads(store.get(k)) for k in store.list("deployments/history/")]
    assert sorted(h["version"] for h in history) == ["m1", "m2"]


def test_local_endpoint_swaps_to_a_newly_deployed_version(
    store: LocalStore, tiny_model: SentimentModel, flipped_model: SentimentModel, tmp_path: Path
) -> None:
    register(store, tiny_model, card("m1"))
    register(store, flipped_model, card("m2"))
    deploy_local(store, "m1", by="tests", reason="first")
    live = LocalEndpoint(store, tmp_path / "cache", recheck_seconds=0)
    lazy = LocalEndpoint(store, tmp_path / "cache", recheck_seconds=3600)
    texts = [prepare("so happy great day"), prepare("awful terrible sad")]

    version, preds = live.score(texts)
    assert version == "m1"
    assert [p.label for p in preds] == ["positive", "negative"]
    assert lazy.score(texts)[0] == "m1"

    deploy_local(store, "m2", by="tests", reason="flip")
    version, preds = live.score(texts)
    assert version == "m2"
    assert live.version() == "m2"
    assert [p.label for p in preds] == ["negative", "positive"]  # the new model's answers
    # An endpoint that rechecks rarely keeps the model it has until its recheck is due.
    assert lazy.score(texts)[0] == "m1"


def test_local_endpoint_without_a_deployment(store: LocalStore, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="bootstrap"):
        LocalEndpoint(store, tmp_path / "cache").score(["hello"])


def test_local_endpoint_keeps_serving_when_a_broken_version_is_deployed(
    store: LocalStore, tiny_model: SentimentModel, tmp_path: Path
) -> None:
    """A deploy whose artifact cannot be loaded must not take down a working endpoint."""
    register(store, tiny_model, card("m1"))
    register(store, tiny_model, card("m2"))
    deploy_local(store, "m1", by="tests", reason="first")
    live = LocalEndpoint(store, tmp_path / "cache", recheck_seconds=0)
    assert live.score([prepare("so happy great day")])[0] == "m1"
    store.put(f"models/m2/{ARTIFACT}", b"junk")
    deploy_local(store, "m2", by="tests", reason="broken")
    for _ in range(3):
        version, (pred,) = live.score([prepare("so happy great day")])
        assert version == "m1" and pred.label == "positive"
    # ... and it picks the version up once its artifact is fixed.
    register(store, tiny_model, card("m3"))
    deploy_local(store, "m3", by="tests", reason="fixed")
    assert live.score([prepare("so happy great day")])[0] == "m3"
    # A fresh endpoint with nothing loaded still reports the broken deploy.
    deploy_local(store, "m2", by="tests", reason="broken again")
    with pytest.raises(ModelUnavailable):
        LocalEndpoint(store, tmp_path / "cache2").score(["hello"])
