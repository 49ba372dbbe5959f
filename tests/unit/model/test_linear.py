"""The linear model family: features, training, calibration, a safe artifact, and its place in the
training pipeline beside fastText."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer

from services.errors import ModelUnavailable
from services.lifecycle.registry import ModelCard, fetch_model, register
from services.model.fasttext import fasttext_line
from services.model.linear import LinearModel, _char_counts, train_linear
from services.model.params import TrainParams
from services.model.pipeline import candidates_for, fit_pipeline
from services.model.prediction import UNREADABLE, prepare
from services.store.local import LocalStore

POSITIVE = [
    "great day with the team",
    "love this so much",
    "wonderful news today",
    "happy and grateful",
    "what a lovely morning",
    "feeling great and rested",
    "best day ever",
    "so proud of us",
]
NEGATIVE = [
    "awful day again",
    "i hate this so much",
    "terrible news today",
    "sad and tired",
    "what a horrible morning",
    "feeling awful and drained",
    "worst day ever",
    "so angry at this",
]
NEUTRAL = [
    "the meeting is at noon",
    "lunch was a sandwich",
    "bus at eight",
    "report sent to the team",
    "moved desks on tuesday",
    "the printer is on floor two",
    "call at three",
    "form submitted",
]


def corpus(times: int = 3) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for label, group in (("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL)):
        for t in group * times:
            texts.append(prepare(t))
            labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def model() -> LinearModel:
    return train_linear(*corpus())


def test_character_ngrams_match_scikit_learns_char_wb(model: LinearModel) -> None:
    """The per-word shortcut counts exactly what `char_wb` counts on the whole document."""
    docs = ["great great day", "day", "", "unseen wordz here great"]
    reference = CountVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=False)
    reference.fit(docs)
    ours = CountVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=False, vocabulary=reference.vocabulary_)
    assert (_char_counts(docs, ours) != reference.transform(docs)).nnz == 0


def test_it_learns_the_obvious(model: LinearModel) -> None:
    preds = model.predict(["Such a GREAT day!", "an awful, horrible day", "the meeting is at three"])
    assert [p.label for p in preds] == ["positive", "negative", "neutral"]
    for p in preds:
        assert sum(p.probs.values()) == pytest.approx(1.0)
        assert p.confidence == max(p.probs.values())


def test_an_empty_message_is_unreadable(model: LinearModel) -> None:
    assert model.predict(["", "   ", "the and of"]) == [UNREADABLE] * 3


def test_temperature_changes_confidence_not_labels(model: LinearModel) -> None:
    texts = [prepare(t) for t in ("great day", "awful day", "a sandwich")]
    sharp, soft = model.with_temperature(0.1).predict_prepared(texts), model.with_temperature(5).predict_prepared(texts)
    assert [p.label for p in sharp] == [p.label for p in soft]
    assert all(a.confidence > b.confidence for a, b in zip(sharp, soft, strict=True))


def test_save_and_load_give_the_same_predictions(model: LinearModel, tmp_path: Path) -> None:
    path = tmp_path / "linear.npz"
    model.save(path)
    again = LinearModel.load(path, temperature=model.temperature)
    texts = ["great day", "awful day", "the printer", "brand new words nobody saw"]
    for a, b in zip(model.predict(texts), again.predict(texts), strict=True):
        assert a.label == b.label and a.probs == pytest.approx(b.probs, abs=1e-6)


def test_two_classes_are_enough(tmp_path: Path) -> None:
    m = train_linear([prepare(t) for t in POSITIVE + NEGATIVE], ["positive"] * 8 + ["negative"] * 8)
    p = m.predict(["best day ever"])[0]
    assert p.label == "positive" and p.probs["neutral"] == 0.0


@pytest.mark.parametrize(
    ("texts", "labels", "message"),
    [
        (["", " "], ["positive", "negative"], "no training examples"),
        (["good", "fine"], ["positive", "positive"], "at least two classes"),
        (["good", "bad"], ["happy", "sad"], "no training examples"),
    ],
)
def test_nothing_to_learn_is_refused(texts: list[str], labels: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        train_linear(texts, labels)


def _npz(**arrays: object) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a zip at all",
        _npz(meta=np.array('{"format": "something-else"}')),
        _npz(meta=np.array([{"format": "pulse-linear-1"}], dtype=object)),  # pickled: never loaded
    ],
    ids=["empty", "junk", "wrong-format", "pickled-object"],
)
def test_a_bad_artifact_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "linear.npz"
    path.write_bytes(content)
    with pytest.raises(ModelUnavailable, match="corrupt or not a Pulse linear model"):
        LinearModel.load(path)


def test_coefficients_that_do_not_fit_the_features_are_refused(model: LinearModel, tmp_path: Path) -> None:
    path = tmp_path / "linear.npz"
    model.save(path)
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["coef"] = arrays["coef"][:, :-1]
    path.write_bytes(_npz(**arrays))
    with pytest.raises(ModelUnavailable, match="inconsistent"):
        LinearModel.load(path)


def test_the_registry_keeps_and_serves_a_linear_model(model: LinearModel, store: LocalStore, tmp_path: Path) -> None:
    card = register(store, model, ModelCard("m-lin", "now", "t", "d", temperature=0.5))
    assert card.family == "linear"
    loaded = fetch_model(store, "m-lin", tmp_path / "cache")
    assert isinstance(loaded, LinearModel) and loaded.temperature == 0.5
    assert (tmp_path / "cache" / "m-lin" / "linear.npz").is_file()


def _lines(texts: list[str], labels: list[str]) -> list[str]:
    return [fasttext_line(y, t) for t, y in zip(texts, labels, strict=True)]


def test_auto_tries_both_families_and_keeps_the_better_on_validation() -> None:
    texts, labels = corpus(4)
    notes: list[str] = []
    fitted = fit_pipeline(
        _lines(texts, labels),
        _lines(texts[::3], labels[::3]),
        candidates_for(TrainParams()),
        0.0,
        lambda _s, line: notes.append(line),
    )
    assert isinstance(fitted, tuple)
    model, params, temperature = fitted
    tried = [n for n in notes if n.startswith("candidate")]
    assert len(tried) == 2 and "fastText" in tried[0] and "linear" in tried[1]
    assert model.family == params.family and model.temperature == temperature


@pytest.mark.parametrize("family", ["fasttext", "linear"])
def test_a_named_family_trains_only_that_family(family: str) -> None:
    assert [p.family for p in candidates_for(TrainParams(family=family))] == [family]
    assert [p.family for p in candidates_for(TrainParams())] == ["fasttext", "linear"]


def test_auto_on_large_data_trains_fasttext_only_with_fewer_epochs() -> None:
    from services.model.pipeline import LARGE_TRAINING_SET, MIN_EPOCHS, UPDATES

    small = candidates_for(TrainParams(), rows=10_000)
    assert [p.family for p in small] == ["fasttext", "linear"] and small[0].epoch == TrainParams().epoch
    large = candidates_for(TrainParams(), rows=LARGE_TRAINING_SET + 1)
    assert [p.family for p in large] == ["fasttext"]
    assert large[0].epoch == max(MIN_EPOCHS, -(-UPDATES // (LARGE_TRAINING_SET + 1)))
    assert candidates_for(TrainParams(), rows=10_000_000)[0].epoch == MIN_EPOCHS
    # An explicit family keeps its settings whatever the size.
    assert candidates_for(TrainParams(family="linear"), rows=10_000_000)[0].family == "linear"
    assert candidates_for(TrainParams(family="fasttext"), rows=10_000_000)[0].epoch == TrainParams().epoch


def test_lexicon_features_count_valence_and_flip_it_after_a_negation() -> None:
    from services.model.linear import lexicon_features, sentiment_lexicon

    lexicon = sentiment_lexicon()
    assert lexicon["great"] > 0 > lexicon["awful"]
    rows = lexicon_features(["great", "not great", "not really great", "awful", "meeting noon", ""], lexicon)
    great, not_great, not_really_great, awful, plain, empty = rows
    assert great[0] > 0 and great[1] == 0 and great[2] > 0
    assert not_great[0] == 0 and not_great[1] > 0 and not_great[2] < 0  # flipped and damped
    assert not_great[1] < great[0]
    assert not_really_great[2] < 0  # a negation reaches two words ahead
    assert awful[1] > 0 and awful[2] < 0
    assert plain.tolist() == empty.tolist() == [0.0, 0.0, 0.0]


def test_the_lexicon_travels_with_the_model(
    model: LinearModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A saved model keeps the lexicon it was trained with: a changed lexicon never shifts its scores."""
    import services.model.linear as linear

    assert model.fitted.features.lexicon_weight > 0
    path = tmp_path / "linear.npz"
    model.save(path)
    monkeypatch.setattr(linear, "sentiment_lexicon", lambda: {"great": -4.0})
    again = LinearModel.load(path, temperature=model.temperature)
    assert again.fitted.features.lexicon == model.fitted.features.lexicon
    texts = ["great day", "not great"]
    for a, b in zip(model.predict(texts), again.predict(texts), strict=True):
        assert a.probs == pytest.approx(b.probs, abs=1e-6)


def test_a_model_saved_before_the_lexicon_still_loads(tmp_path: Path) -> None:
    """Format pulse-linear-1 (no lexicon features) stays readable and scores as it did."""
    from services.model.linear import Features, LinearFit

    texts, labels = corpus()
    features, _ = Features.fit(texts, lexicon_weight=0.0)
    old = train_linear(texts, labels)
    fitted = LinearFit(
        features, np.zeros((3, features.size)), np.array([0.0, 0.1, 0.0]), ("negative", "neutral", "positive")
    )
    path = tmp_path / "linear.npz"
    LinearModel(fitted, c=old.c).save(path)
    with np.load(path, allow_pickle=False) as npz:  # rewrite as the old format wrote it
        arrays = {k: npz[k] for k in npz.files if not k.startswith("lexicon_")}
    meta = json.loads(str(arrays["meta"]))
    meta["format"] = "pulse-linear-1"
    del meta["lexicon_weight"]
    arrays["meta"] = np.array(json.dumps(meta))
    with path.open("wb") as fh:
        np.savez_compressed(fh, **arrays)
    loaded = LinearModel.load(path)
    assert loaded.fitted.features.lexicon_weight == 0 and loaded.predict(["great day"])[0].label == "neutral"
