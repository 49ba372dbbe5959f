"""Gold-set evaluation: metrics against hand-computed numbers, calibration, the gold set itself,
and temperature scaling."""

from __future__ import annotations

import json

import pytest

from services.errors import PulseError
from services.lifecycle.gold import GOLD_PREFIX, import_gold, load_gold
from services.model.calibration import TEMPERATURES, fit_temperature
from services.model.corpus import split_corpus
from services.model.evaluation import evaluate
from services.model.fasttext import SentimentModel, fasttext_line, train
from services.model.params import TrainParams
from services.model.prediction import Prediction
from services.model.text import preprocess
from services.review.labels import Label, save_label
from services.store.local import LocalStore

NEG, NEU, POS = "negative", "neutral", "positive"


def preds(labels: list[str], confidence: float = 0.9) -> list[Prediction]:
    return [Prediction(label, confidence) for label in labels]


# --- metrics ---------------------------------------------------------------------------------------
#
# truth     pred                      confusion (rows = truth, columns = prediction: neg, neu, pos)
# neg x4    neg neg neg pos           negative  [3, 0, 1]
# neu x2    neg neg                   neutral   [2, 0, 0]
# pos x4    pos pos neu neg           positive  [1, 1, 2]
#
# accuracy 5/10; negative P 3/6 R 3/4 F1 0.6; neutral P 0/1 R 0/2 F1 0;
# positive P 2/3 R 2/4 F1 4/7; macro-F1 (0.6 + 0 + 4/7) / 3.
TRUTH = [NEG] * 4 + [NEU] * 2 + [POS] * 4
PRED = [NEG, NEG, NEG, POS, NEG, NEG, POS, POS, NEU, NEG]


def test_evaluate_matches_a_confusion_matrix_worked_out_by_hand() -> None:
    ev = evaluate(preds(PRED), TRUTH)
    assert ev.n == 10
    assert ev.confusion == [[3, 0, 1], [2, 0, 0], [1, 1, 2]]
    assert ev.accuracy == pytest.approx(0.5)
    assert ev.per_class[NEG] == pytest.approx({"precision": 0.5, "recall": 0.75, "f1": 0.6, "support": 4.0})
    assert ev.per_class[NEU] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2.0})
    assert ev.per_class[POS] == pytest.approx({"precision": 2 / 3, "recall": 0.5, "f1": 4 / 7, "support": 4.0})
    assert ev.macro_f1 == pytest.approx((0.6 + 0 + 4 / 7) / 3)


def test_macro_f1_averages_only_the_classes_present_in_the_truth() -> None:
    # truth neg neg pos pos / pred neg pos pos pos: negative P 1 R 1/2 F1 2/3; positive P 2/3 R 1 F1 0.8.
    ev = evaluate(preds([NEG, POS, POS, POS]), [NEG, NEG, POS, POS])
    assert ev.per_class[NEU]["support"] == 0
    assert ev.per_class[NEG]["f1"] == pytest.approx(2 / 3)
    assert ev.per_class[POS]["f1"] == pytest.approx(0.8)
    assert ev.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)
    assert ev.accuracy == pytest.approx(0.75)


def test_a_class_predicted_but_absent_from_the_truth_costs_through_the_other_classes() -> None:
    # truth neg pos / pred neu pos: negative F1 0 (missed), positive F1 1; neutral (support 0) not averaged.
    ev = evaluate(preds([NEU, POS]), [NEG, POS])
    assert ev.confusion == [[0, 1, 0], [0, 0, 0], [0, 0, 1]]
    assert ev.macro_f1 == pytest.approx(0.5)
    assert ev.per_class[NEU]["precision"] == 0.0


def hand_written(predicted: list[str], truth: list[str]) -> tuple[float, float, list[list[int]]]:
    """The formulas `evaluate` used before it called scikit-learn: accuracy, macro-F1 over the
    classes present in the truth, and the confusion matrix."""
    labels = [NEG, NEU, POS]
    confusion = [[0] * 3 for _ in labels]
    for p, t in zip(predicted, truth, strict=True):
        confusion[labels.index(t)][labels.index(p)] += 1
    f1s = []
    for i in range(3):
        tp, col, row = confusion[i][i], sum(r[i] for r in confusion), sum(confusion[i])
        precision, recall = (tp / col if col else 0.0), (tp / row if row else 0.0)
        if row:
            f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(confusion[i][i] for i in range(3)) / len(truth), sum(f1s) / len(f1s), confusion


@pytest.mark.parametrize("seed", range(20))
def test_scikit_learn_gives_the_numbers_of_the_hand_written_formulas(seed: int) -> None:
    import random

    rng = random.Random(seed)
    classes = rng.choice([[NEG, NEU, POS], [NEG, POS], [NEU]])  # some sets lack a class
    truth = [rng.choice(classes) for _ in range(rng.randint(1, 60))]
    predicted = [rng.choice([NEG, NEU, POS]) for _ in truth]
    ev = evaluate(preds(predicted), truth)
    accuracy, macro_f1, confusion = hand_written(predicted, truth)
    assert ev.confusion == confusion
    assert ev.accuracy == pytest.approx(accuracy, abs=1e-12) and ev.macro_f1 == pytest.approx(macro_f1, abs=1e-12)


def test_a_perfect_model_scores_one() -> None:
    ev = evaluate(preds(TRUTH, confidence=1.0), TRUTH)
    assert (ev.accuracy, ev.macro_f1) == (1.0, 1.0)
    assert ev.confusion == [[4, 0, 0], [0, 2, 0], [0, 0, 4]]
    assert ev.ece == pytest.approx(0.0)  # confidence 1.0 lands in the last bin


def test_empty_input_raises() -> None:
    with pytest.raises(PulseError, match="empty"):
        evaluate([], [])


def test_predictions_and_truth_of_different_lengths_raise() -> None:
    with pytest.raises(ValueError, match="length"):
        evaluate(preds([NEG, POS]), [NEG])


def test_to_dict_round_trips_through_json() -> None:
    ev = evaluate(preds(PRED), TRUTH)
    data = json.loads(json.dumps(ev.to_dict()))
    assert data["confusion"] == ev.confusion
    assert data["macro_f1"] == pytest.approx(ev.macro_f1)


# --- calibration -----------------------------------------------------------------------------------


def test_a_perfectly_calibrated_model_has_zero_ece() -> None:
    # Bin 0.8-0.9: confidence 0.8, 8 of 10 right. Bin 0.5-0.6: confidence 0.5, 2 of 4 right.
    truth = [POS] * 14
    labels = [POS] * 8 + [NEG] * 2 + [POS] * 2 + [NEG] * 2
    confidences = [0.8] * 10 + [0.5] * 4
    ev = evaluate([Prediction(y, c) for y, c in zip(labels, confidences, strict=True)], truth)
    assert ev.ece == pytest.approx(0.0, abs=1e-12)
    assert [(b["lo"], b["count"]) for b in ev.calibration] == [(0.5, 4.0), (0.8, 10.0)]
    by_lo = {b["lo"]: b for b in ev.calibration}
    assert by_lo[0.8]["confidence"] == pytest.approx(0.8)
    assert by_lo[0.8]["accuracy"] == pytest.approx(0.8)
    assert by_lo[0.5]["accuracy"] == pytest.approx(0.5)
    assert by_lo[0.5]["hi"] == pytest.approx(0.6)


def test_an_overconfident_model_has_the_hand_computed_ece() -> None:
    # 10 at confidence 0.95 with 6 right (gap 0.35); 5 at 0.65 with 2 right (gap 0.25).
    # ECE = 10/15 * 0.35 + 5/15 * 0.25 = 0.316666...
    truth = [NEG] * 15
    labels = [NEG] * 6 + [POS] * 4 + [NEG] * 2 + [NEU] * 3
    confidences = [0.95] * 10 + [0.65] * 5
    ev = evaluate([Prediction(y, c) for y, c in zip(labels, confidences, strict=True)], truth)
    assert ev.ece == pytest.approx(10 / 15 * 0.35 + 5 / 15 * 0.25)
    assert [(b["lo"], b["count"]) for b in ev.calibration] == [(0.6, 5.0), (0.9, 10.0)]
    assert [b["accuracy"] for b in ev.calibration] == pytest.approx([0.4, 0.6])
    assert [b["confidence"] for b in ev.calibration] == pytest.approx([0.65, 0.95])


def test_calibration_bins_are_half_open_with_one_in_the_last_bin() -> None:
    ev = evaluate([Prediction(POS, c) for c in (0.0, 0.1, 0.3, 0.999, 1.0)], [POS] * 5)
    assert [(b["lo"], b["count"]) for b in ev.calibration] == [(0.0, 1.0), (0.1, 1.0), (0.3, 1.0), (0.9, 2.0)]
    assert sum(b["count"] for b in ev.calibration) == ev.n


# --- the gold set ----------------------------------------------------------------------------------


def gold_label(item: str, text: str, label: str, when: str, *, gold: bool = True) -> Label:
    return Label(item, text, label, "ann", f"2026-03-01T10:00:{when}.000000+00:00", gold=gold)


def test_import_gold_refuses_unknown_labels(store: LocalStore) -> None:
    with pytest.raises(PulseError, match="negative, neutral, positive") as err:
        import_gold(store, "g", [("fine", "positive"), ("hm", "unclear"), ("meh", "Neutral")])
    assert "unclear" in str(err.value)
    assert list(store.list(GOLD_PREFIX)) == []


def test_import_gold_stores_jsonl_under_a_safe_name(store: LocalStore) -> None:
    key = import_gold(store, "../team gold/2026", [("all good", "positive"), ("so so", "neutral")])
    assert key.startswith(GOLD_PREFIX) and key.endswith(".jsonl")
    assert "/" not in key.removeprefix(GOLD_PREFIX)
    rows = [json.loads(line) for line in store.get(key).decode().splitlines()]
    assert rows == [{"text": "all good", "label": "positive"}, {"text": "so so", "label": "neutral"}]


def test_load_gold_falls_back_to_the_shipped_slice_on_an_empty_workspace(store: LocalStore) -> None:
    gold = load_gold(store)
    shipped = split_corpus().gold
    assert gold.texts == [r.text for r in shipped]
    assert gold.labels == [r.label for r in shipped]
    assert gold.sources == {"checkin-corpus-gold": len(shipped)}
    assert gold.prepared() == {preprocess(r.text, 1) for r in shipped}  # "?" and "!" aside


def test_load_gold_ignores_labels_that_are_not_gold(store: LocalStore) -> None:
    save_label(store, gold_label("i1", "not gold at all", "positive", "01", gold=False))
    assert load_gold(store).sources == {"checkin-corpus-gold": len(split_corpus().gold)}


def test_load_gold_uses_imported_files_instead_of_the_shipped_slice(store: LocalStore) -> None:
    import_gold(store, "a", [("alpha", "positive"), ("beta", "negative")])
    import_gold(store, "b", [("gamma", "neutral")])
    gold = load_gold(store)
    assert gold.texts == ["alpha", "beta", "gamma"]
    assert gold.labels == ["positive", "negative", "neutral"]
    assert gold.sources == {"gold/a.jsonl": 2, "gold/b.jsonl": 1}


def test_load_gold_uses_gold_marked_labels_resolved_per_item(store: LocalStore) -> None:
    save_label(store, gold_label("i1", "first text", "positive", "01"))
    save_label(store, Label("i1", "first text", "negative", "bob", "2026-03-01T10:00:05.000000+00:00", gold=True))
    save_label(store, gold_label("i2", "second text", "neutral", "02"))
    save_label(store, gold_label("i3", "cannot tell", "unclear", "03"))  # not a sentiment: not gold
    gold = load_gold(store)
    assert sorted(zip(gold.texts, gold.labels, strict=True)) == [("first text", "negative"), ("second text", "neutral")]
    assert gold.sources == {"human-gold": 2}


def test_load_gold_combines_imported_files_and_gold_labels(store: LocalStore) -> None:
    import_gold(store, "a", [("alpha", "positive")])
    save_label(store, gold_label("i1", "delta", "negative", "01"))
    save_label(store, gold_label("i2", "epsilon", "positive", "02", gold=False))
    gold = load_gold(store)
    assert gold.texts == ["alpha", "delta"]
    assert gold.labels == ["positive", "negative"]
    assert gold.sources == {"gold/a.jsonl": 1, "human-gold": 1}
    assert not set(gold.texts) & {r.text for r in split_corpus().gold}


def test_only_unclear_gold_labels_still_fall_back(store: LocalStore) -> None:
    save_label(store, gold_label("i1", "cannot tell", "unclear", "01"))
    assert "checkin-corpus-gold" in load_gold(store).sources


def test_the_gold_fingerprint_follows_content_not_order(store: LocalStore) -> None:
    import_gold(store, "a", [("alpha", "positive"), ("beta", "negative")])
    one = load_gold(store).fingerprint()
    import_gold(store, "a", [("beta", "negative"), ("alpha", "positive")])
    assert load_gold(store).fingerprint() == one
    import_gold(store, "a", [("beta", "negative"), ("alpha", "neutral")])
    assert load_gold(store).fingerprint() != one


# --- temperature scaling ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def overconfident() -> tuple[SentimentModel, list[str], list[str]]:
    """A model trained hard on a small part of the corpus (very sure of itself), and a validation set."""
    corpus = split_corpus()
    model = train(
        [fasttext_line(r.label, r.text) for r in corpus.train[:1500]],
        TrainParams(epoch=50, lr=1.0, dim=10, bucket=10_000),
    )
    val = corpus.gold[:400]
    return model, [preprocess(r.text) for r in val], [r.label for r in val]


def test_fit_temperature_does_not_worsen_an_overconfident_models_ece(
    overconfident: tuple[SentimentModel, list[str], list[str]],
) -> None:
    model, texts, labels = overconfident
    raw = SentimentModel(model._ft, temperature=1.0)
    before = evaluate(raw.predict_prepared(texts), labels)
    mean_conf = sum(p.confidence for p in raw.predict_prepared(texts)) / len(texts)
    assert mean_conf > before.accuracy + 0.1, "the fixture should be over-confident"
    t = fit_temperature(raw, texts, labels)
    assert 1.0 < t < max(TEMPERATURES)  # over-confident: softened (3.6-4.0 measured), inside the grid searched
    calibrated = SentimentModel(model._ft, temperature=t)
    after = evaluate(calibrated.predict_prepared(texts), labels)
    assert after.ece <= before.ece
    assert after.ece < before.ece / 2


def test_fit_temperature_never_changes_the_predicted_labels(
    overconfident: tuple[SentimentModel, list[str], list[str]],
) -> None:
    model, texts, labels = overconfident
    raw = SentimentModel(model._ft)
    t = fit_temperature(raw, texts, labels)
    before = raw.predict_prepared(texts)
    after = SentimentModel(model._ft, temperature=t).predict_prepared(texts)
    assert [p.label for p in after] == [p.label for p in before]
    assert evaluate(after, labels).macro_f1 == evaluate(before, labels).macro_f1
    for p in after:
        assert sum(p.probs.values()) == pytest.approx(1.0)


def test_fit_temperature_ignores_a_temperature_already_set(
    overconfident: tuple[SentimentModel, list[str], list[str]],
) -> None:
    model, texts, labels = overconfident
    assert fit_temperature(SentimentModel(model._ft, temperature=0.3), texts, labels) == fit_temperature(
        SentimentModel(model._ft), texts, labels
    )


def test_fit_temperature_with_no_data_is_neutral(overconfident: tuple[SentimentModel, list[str], list[str]]) -> None:
    assert fit_temperature(overconfident[0], [], []) == 1.0


def test_silent_errors_are_the_confident_mistakes_and_review_share_the_unsure() -> None:
    from services.model.evaluation import silent_errors

    predictions = [Prediction(NEG, 0.9), Prediction(POS, 0.95), Prediction(NEU, 0.5), Prediction(POS, 0.6)]
    truth = [NEG, NEG, POS, NEU]  # right and sure; wrong and sure; wrong but unsure; wrong at the threshold
    assert silent_errors(predictions, truth, 0.6) == (0.5, 0.25)
    assert silent_errors(predictions, truth, 0.99) == (0.0, 1.0)
    with pytest.raises(ValueError):
        silent_errors([], [], 0.6)
