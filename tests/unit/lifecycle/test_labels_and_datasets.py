"""Human labels (append-only, resolution of disagreements) and dataset versions built from them."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, replace
from typing import Any

import pytest

from services.errors import AlreadyExists, DatasetError
from services.lifecycle.datasets import (
    BASE,
    DatasetManifest,
    build_dataset,
    dataset_content,
    list_datasets,
    load_manifest,
    verify_rebuild,
)
from services.lifecycle.gold import import_gold, load_gold
from services.model.corpus import split_corpus
from services.model.prediction import LABELS
from services.model.text import PREPROCESSING, preprocess
from services.review.labels import PREFIX, Label, label_key, read_labels, resolve, save_label
from services.store.local import LocalStore

WORDS = {"negative": "gloomy", "neutral": "ordinary", "positive": "cheerful"}
LINE = re.compile(r"^__label__(negative|neutral|positive) \S+( \S+)*$")


GOLD = [
    ("the quarterly numbers are in", "neutral"),
    ("what a lovely surprise", "positive"),
    ("this is awful", "negative"),
]


@pytest.fixture
def ws(store: LocalStore) -> LocalStore:
    """An empty store with a tiny imported gold set (so no test pays for the shipped gold slice)."""
    import_gold(store, "tiny", GOLD)
    return store


def at(second: int, minute: int = 0) -> str:
    """A UTC timestamp in the format `now_iso` writes."""
    return f"2026-03-01T10:{minute:02d}:{second:02d}.000000+00:00"


def lab(item: str, text: str, label: str, *, when: str = at(0), who: str = "ann", **extra: Any) -> Label:
    return Label(item_id=item, text=text, label=label, annotator=who, labelled_at=when, **extra)


def seed_labels(store: LocalStore, counts: dict[str, int], *, start: int = 0) -> dict[str, list[str]]:
    """`counts[label]` distinct human labels per class; returns label -> prepared texts."""
    out: dict[str, list[str]] = {}
    n = start
    for label, k in counts.items():
        for _ in range(k):
            text = f"{WORDS[label]} remark number {n + 10}"
            save_label(store, lab(f"{label}-{n}", text, label, when=at(n % 60, n // 60)))
            out.setdefault(label, []).append(preprocess(text))
            n += 1
    return out


def lines(store: LocalStore, key: str) -> list[str]:
    body = store.get(key).decode("utf-8")
    assert body.endswith("\n")
    return body[:-1].split("\n") if body != "\n" else []


def texts_of(rows: list[str]) -> list[str]:
    return [row.split(" ", 1)[1] for row in rows]


def both(store: LocalStore, manifest: DatasetManifest) -> tuple[list[str], list[str]]:
    return lines(store, manifest.train_key), lines(store, manifest.validation_key)


def all_rows(store: LocalStore, manifest: DatasetManifest) -> list[str]:
    train, validation = both(store, manifest)
    return train + validation


# --- labels ----------------------------------------------------------------------------------------


def test_a_second_label_on_the_same_item_is_a_new_file_and_the_first_is_untouched(ws: LocalStore) -> None:
    first = save_label(ws, lab("item-1", "so tired today", "negative", when=at(1), who="ann"))
    before = ws.get(first)
    second = save_label(ws, lab("item-1", "so tired today", "neutral", when=at(2), who="bob"))
    third = save_label(ws, lab("item-1", "so tired today", "positive", when=at(3), who="ann"))
    assert len({first, second, third}) == 3
    assert list(ws.list(f"{PREFIX}item-1/")) == sorted([first, second, third])
    assert ws.get(first) == before
    assert [label.label for _, label in read_labels(ws)] == ["negative", "neutral", "positive"]


def test_the_same_label_saved_twice_is_refused_and_never_overwritten(ws: LocalStore) -> None:
    label = lab("item-1", "so tired today", "negative", when=at(1))
    key = save_label(ws, label)
    before = ws.get(key)
    with pytest.raises(AlreadyExists):
        save_label(ws, label)
    # Same person, same instant, another decision: still refused, never replaces the first.
    with pytest.raises(AlreadyExists):
        save_label(ws, replace(label, label="positive"))
    assert ws.get(key) == before
    assert list(ws.list(PREFIX)) == [key]


def test_a_saved_label_reads_back_unchanged(ws: LocalStore) -> None:
    label = lab(
        "item-7", "Ça va 😀", "positive", when=at(5), who="Zoë Ünal", model_label="neutral", final=True, group="ops"
    )
    key = save_label(ws, label)
    assert key == label_key(label)
    assert key.startswith(f"{PREFIX}item-7/")
    assert read_labels(ws) == [(key, label)]


@pytest.mark.parametrize("bad", ["angry", "Positive", "", "__label__positive", "mixed"])
def test_a_label_outside_the_decisions_is_refused(ws: LocalStore, bad: str) -> None:
    with pytest.raises(ValueError, match="negative, neutral, positive, unclear"):
        save_label(ws, lab("item-1", "hello", bad))
    assert list(ws.list(PREFIX)) == []


@pytest.mark.parametrize("ok", ["negative", "neutral", "positive", "unclear"])
def test_every_decision_is_accepted(ws: LocalStore, ok: str) -> None:
    save_label(ws, lab("item-1", "hello there", ok))
    assert [label.label for _, label in read_labels(ws)] == [ok]


# --- resolve ---------------------------------------------------------------------------------------


def test_resolve_the_latest_label_wins_whatever_the_order_given() -> None:
    old = lab("i", "t", "positive", when=at(1))
    new = lab("i", "t", "negative", when=at(2), who="bob")
    for given in ([old, new], [new, old]):
        chosen, disagree = resolve(given)
        assert chosen == new
        assert disagree is True


def test_resolve_a_final_label_wins_over_later_non_final_ones() -> None:
    final = lab("i", "t", "neutral", when=at(1), who="reviewer", final=True)
    later = [lab("i", "t", "positive", when=at(2)), lab("i", "t", "negative", when=at(3), who="bob")]
    chosen, disagree = resolve([*later, final])
    assert chosen == final
    assert disagree is True


def test_resolve_the_latest_of_several_final_labels_wins() -> None:
    first = lab("i", "t", "neutral", when=at(1), who="r1", final=True)
    second = lab("i", "t", "negative", when=at(2), who="r2", final=True)
    chosen, _ = resolve([second, lab("i", "t", "positive", when=at(9)), first])
    assert chosen == second


def test_resolve_agreeing_labels_are_no_disagreement() -> None:
    one = lab("i", "t", "positive", when=at(1))
    chosen, disagree = resolve([one])
    assert (chosen, disagree) == (one, False)
    two = lab("i", "t", "positive", when=at(2), who="bob")
    chosen, disagree = resolve([two, one])
    assert (chosen, disagree) == (two, False)


def test_resolve_unclear_against_a_sentiment_is_a_disagreement() -> None:
    chosen, disagree = resolve([lab("i", "t", "positive", when=at(1)), lab("i", "t", "unclear", when=at(2))])
    assert chosen.label == "unclear"
    assert disagree is True


# --- build_dataset ---------------------------------------------------------------------------------


def test_dataset_lines_are_in_the_fasttext_format(ws: LocalStore) -> None:
    seed_labels(ws, {"negative": 6, "neutral": 6, "positive": 6})
    save_label(ws, lab("odd", "LOVED it!!! :) https://x.example/a @sam", "positive"))
    m = build_dataset(ws, by="tests", base="none")
    train, validation = both(ws, m)
    assert train and validation
    for row in train + validation:
        assert LINE.match(row), row
    assert "__label__positive loved EXCLAIM emosmile URL USER" in train + validation


def test_identical_texts_become_one_row(ws: LocalStore) -> None:
    seed_labels(ws, {"negative": 4, "neutral": 4, "positive": 4})
    save_label(ws, lab("dup-a", "Great day!!!", "positive", when=at(1)))
    save_label(ws, lab("dup-b", "great   day", "positive", when=at(2)))
    save_label(ws, lab("dup-c", "GREAT DAY", "positive", when=at(3), who="bob"))
    save_label(ws, lab("dup-d", "great day!", "positive", when=at(4), who="bob"))
    m = build_dataset(ws, by="tests", base="none")
    train, validation = both(ws, m)
    rows = texts_of(train + validation)
    assert rows.count("great day") == 1
    assert rows.count("great day EXCLAIM") == 1  # the model reads "!" (a run of them as one)
    assert len(rows) == len(set(rows)) == 14
    assert m.sources == {"human": 14}
    assert m.conflicts == []  # the same label on the same text is no conflict


def test_conflicts_are_reported_in_the_manifest(ws: LocalStore) -> None:
    seed_labels(ws, {"negative": 4, "neutral": 4, "positive": 4})
    save_label(ws, lab("item-x", "the meeting ran long", "negative", when=at(1)))
    save_label(ws, lab("item-x", "the meeting ran long", "neutral", when=at(2), who="bob"))
    save_label(ws, lab("twin-a", "coffee machine is back", "positive", when=at(3)))
    save_label(ws, lab("twin-b", "Coffee machine is back", "negative", when=at(4)))
    m = build_dataset(ws, by="tests", base="none")
    by_kind = {c["kind"]: c for c in m.conflicts}
    assert len(m.conflicts) == 2
    disagree = by_kind["annotators disagree"]
    assert disagree["item_id"] == "item-x" and disagree["chosen"] == "neutral" and not disagree["final"]
    assert disagree["labels"] == "ann: negative · bob: neutral" and disagree["why"].startswith("latest label (bob)")
    twins = by_kind["same text, two messages"]
    assert (twins["item_id"], twins["other_item"], twins["chosen"]) == ("twin-b", "twin-a", "negative")
    assert twins["why"] == "the newer label of the same text"
    train, validation = both(ws, m)
    rows = train + validation
    assert "__label__neutral meeting ran long" in rows
    assert sum(1 for r in rows if r.endswith(" coffee machine back")) == 1
    stored = json.loads(ws.get(f"datasets/{m.version}/manifest.json"))
    assert stored["conflicts"] == m.conflicts


def test_unclear_labels_are_dropped_with_a_count(ws: LocalStore) -> None:
    seed_labels(ws, {"negative": 4, "neutral": 4, "positive": 4})
    for i in range(3):
        save_label(ws, lab(f"unc-{i}", f"what about the zebra {i + 20}", "unclear"))
    # An item first labelled positive, then "unclear" by a later reviewer: dropped too.
    save_label(ws, lab("flip", "parking lot again", "positive", when=at(1)))
    save_label(ws, lab("flip", "parking lot again", "unclear", when=at(2), who="bob"))
    m = build_dataset(ws, by="tests", base="none")
    assert m.dropped == {"not about feelings": 4}
    rows = texts_of(all_rows(ws, m))
    assert not [r for r in rows if "zebra" in r or "parking" in r]
    assert sum(sum(c.values()) for c in m.counts.values()) == 12


def test_gold_marked_labels_are_never_trained_on(store: LocalStore) -> None:
    seed_labels(store, {"negative": 5, "neutral": 5, "positive": 5})
    save_label(store, lab("gold-1", "absolutely thrilled with the launch", "positive", gold=True))
    save_label(store, lab("gold-2", "the printer jammed twice", "negative", gold=True))
    # The same text labelled again outside the gold set must still stay out of training.
    save_label(store, lab("copy-of-gold", "Absolutely thrilled with the launch!!", "positive"))
    m = build_dataset(store, by="tests", base="none")
    rows = texts_of(all_rows(store, m))
    assert preprocess("absolutely thrilled with the launch") not in rows
    assert preprocess("the printer jammed twice") not in rows
    assert m.dropped == {"in the gold set": 1}
    assert len(rows) == 15


def test_gold_texts_never_reach_train_or_validation_with_the_base_corpus(store: LocalStore) -> None:
    gold_text = split_corpus().gold[3].text
    save_label(store, lab("relabel-gold", gold_text, "neutral"))
    m = build_dataset(store, by="tests", base=BASE)
    gold = load_gold(store)
    assert gold.sources == {"checkin-corpus-gold": len(split_corpus().gold)}
    prepared = gold.prepared()
    rows = texts_of(all_rows(store, m))
    assert not prepared & set(rows)
    # The shipped corpus repeats a few gold texts in its train part: they are dropped, with a count.
    assert m.dropped["in the gold set"] >= 1
    assert m.sources.get("human", 0) == 0
    assert m.sources["base"] == len(rows)


def test_a_dataset_built_on_the_corpus_before_the_check_ins_still_rebuilds_bit_for_bit(store: LocalStore) -> None:
    """Datasets record their base by name: one built on the TweetEval + UCI corpus keeps rebuilding from it
    (a participant deletion rewrites datasets this way), and the legacy gold name still loads its gold set."""
    from services.lifecycle.gold import LEGACY_GOLD
    from services.model.corpus import LEGACY_BASE, legacy_split

    old = build_dataset(store, by="tests", base=LEGACY_BASE)
    new = build_dataset(store, by="tests")
    assert (old.base, new.base) == (LEGACY_BASE, BASE) and old.counts != new.counts
    assert verify_rebuild(store, old.version) and verify_rebuild(store, new.version)
    legacy = load_gold(store, [LEGACY_GOLD])
    assert legacy.sources == {LEGACY_GOLD: len(legacy_split().gold)}
    assert set(legacy.texts) == {r.text for r in legacy_split().gold}
    with pytest.raises(DatasetError, match="unknown base corpus"):
        build_dataset(store, by="tests", base="tweets")


@pytest.mark.parametrize("share", [0.2, 0.25, 0.5])
def test_the_split_is_stratified(ws: LocalStore, share: float) -> None:
    counts = {"negative": 40, "neutral": 12, "positive": 20}
    texts = seed_labels(ws, counts)
    m = build_dataset(ws, by="tests", base="none", validation_share=share)
    train, validation = both(ws, m)
    for label, n in counts.items():
        n_val = sum(1 for r in validation if r.startswith(f"__label__{label} "))
        n_train = sum(1 for r in train if r.startswith(f"__label__{label} "))
        assert n_val + n_train == n
        assert n_val == max(1, round(n * share))
        assert abs(n_val / n - share) <= 0.5 / n + 1e-9
        got = set(texts_of([r for r in train + validation if r.startswith(f"__label__{label} ")]))
        assert got == set(texts[label])
    assert not set(train) & set(validation)


def test_the_same_seed_gives_the_same_files_and_another_seed_another_split(ws: LocalStore) -> None:
    seed_labels(ws, {"negative": 20, "neutral": 20, "positive": 20})
    a = build_dataset(ws, by="tests", base="none", seed=7)
    a_files = both(ws, a)
    b = build_dataset(ws, by="tests", base="none", seed=7)
    assert both(ws, b) == a_files
    assert a.hashes == b.hashes
    c = build_dataset(ws, by="tests", base="none", seed=8)
    c_train, c_val = both(ws, c)
    assert set(c_val) != set(a_files[1])
    assert set(c_train) | set(c_val) == set(a_files[0]) | set(a_files[1])
    assert c.counts == a.counts


def test_manifest_counts_and_hashes_match_the_files(ws: LocalStore) -> None:
    seed_labels(ws, {"negative": 9, "neutral": 7, "positive": 11})
    save_label(ws, lab("unc", "no idea at all", "unclear"))
    m = build_dataset(ws, by="alice", base="none", validation_share=0.3, seed=3)
    train_raw = ws.get(m.train_key)
    val_raw = ws.get(m.validation_key)
    for name, raw in (("train", train_raw), ("validation", val_raw)):
        rows = raw.decode().splitlines()
        assert m.counts[name] == {label: sum(1 for r in rows if r.startswith(f"__label__{label} ")) for label in LABELS}
    assert m.hashes == {
        "train.txt": hashlib.sha256(train_raw).hexdigest(),
        "validation.txt": hashlib.sha256(val_raw).hexdigest(),
    }
    assert m.sources == {"human": 27}
    assert m.label_keys == [key for key, _ in read_labels(ws)]
    assert (m.created_by, m.seed, m.validation_share, m.base) == ("alice", 3, 0.3, "none")
    assert load_manifest(ws, m.version) == m
    assert list_datasets(ws) == [m.version]
    assert json.loads(ws.get(f"datasets/{m.version}/manifest.json")) == asdict(m)


def test_verify_rebuild_holds_after_building_and_after_more_labels_arrive(ws: LocalStore) -> None:
    seed_labels(ws, {"negative": 8, "neutral": 8, "positive": 8})
    m = build_dataset(ws, by="tests", base="none")
    assert verify_rebuild(ws, m.version) is True
    seed_labels(ws, {"negative": 5, "positive": 5}, start=100)
    save_label(ws, lab("negative-0", "gloomy remark number 10", "positive", when=at(59, 30), who="late"))
    assert verify_rebuild(ws, m.version) is True
    newer = build_dataset(ws, by="tests", base="none", seed=1)
    assert newer.hashes != m.hashes
    assert verify_rebuild(ws, newer.version) is True
    assert verify_rebuild(ws, m.version) is True


def test_a_dataset_made_by_the_earlier_preprocessing_rules_rebuilds_by_them(ws: LocalStore) -> None:
    seed_labels(ws, {"negative": 6, "neutral": 6, "positive": 6})
    save_label(ws, lab("ask", "is the meeting moved?", "neutral"))
    save_label(ws, lab("cheer", "we shipped it!!!", "positive"))
    m = build_dataset(ws, by="tests", base="none")
    assert m.preprocessing == PREPROCESSING == 2
    assert any(r.endswith("meeting moved QUESTION") for r in all_rows(ws, m))
    # A version written before the manifest recorded the rules: lines by version 1, no field.
    train, validation, _ = dataset_content(
        ws, m.label_keys, m.gold_inputs, seed=m.seed, share=m.validation_share, base=m.base, preprocessing=1
    )
    assert b"QUESTION" not in train + validation and b"EXCLAIM" not in train + validation
    old = {k: v for k, v in asdict(m).items() if k != "preprocessing"}
    old["hashes"] = {
        "train.txt": hashlib.sha256(train).hexdigest(),
        "validation.txt": hashlib.sha256(validation).hexdigest(),
    }
    ws.put(m.train_key, train)
    ws.put(m.validation_key, validation)
    ws.put(f"datasets/{m.version}/manifest.json", json.dumps(old).encode())
    assert load_manifest(ws, m.version).preprocessing == 1
    assert verify_rebuild(ws, m.version) is True


def test_verify_rebuild_refuses_a_deleted_label(ws: LocalStore) -> None:
    seed_labels(ws, {"negative": 5, "neutral": 5, "positive": 5})
    m = build_dataset(ws, by="tests", base="none")
    ws.delete(m.label_keys[4])
    with pytest.raises(DatasetError, match="gone"):
        verify_rebuild(ws, m.version)


def test_verify_rebuild_is_false_after_a_label_file_was_edited(ws: LocalStore) -> None:
    seed_labels(ws, {"negative": 5, "neutral": 5, "positive": 5})
    m = build_dataset(ws, by="tests", base="none")
    key = m.label_keys[0]
    data = json.loads(ws.get(key))
    assert data["label"] == "negative"
    ws.put(key, json.dumps({**data, "label": "positive"}).encode())
    assert verify_rebuild(ws, m.version) is False
    ws.put(key, json.dumps({**data, "text": "gloomy remark number 999"}).encode())
    assert verify_rebuild(ws, m.version) is False


@pytest.mark.parametrize("body", [b"{not json", b'{"item_id": "x", "surprise": 1}'])
def test_verify_rebuild_reports_a_corrupted_label_file_as_a_dataset_error(ws: LocalStore, body: bytes) -> None:
    seed_labels(ws, {"negative": 5, "neutral": 5, "positive": 5})
    m = build_dataset(ws, by="tests", base="none")
    ws.put(m.label_keys[0], body)
    try:
        ok = verify_rebuild(ws, m.version)
    except DatasetError:
        return
    assert ok is False


def test_verify_rebuild_holds_after_a_gold_label_is_added_later(store: LocalStore) -> None:
    m = build_dataset(store, by="tests", base=BASE)
    assert m.dropped.get("in the gold set", 0) == 0  # the shipped train part holds no gold text
    assert verify_rebuild(store, m.version) is True
    save_label(store, lab("new-gold", "the new office chairs are comfy", "positive", gold=True))
    assert verify_rebuild(store, m.version) is True


def test_two_classes_only_without_a_base_is_refused_naming_the_missing_class(ws: LocalStore) -> None:
    seed_labels(ws, {"negative": 6, "positive": 6})
    with pytest.raises(DatasetError, match="neutral") as err:
        build_dataset(ws, by="tests", base="none")
    assert "negative" not in str(err.value)
    assert list(ws.list("datasets/")) == []


def test_a_class_with_a_single_example_goes_to_train(ws: LocalStore) -> None:
    seed_labels(ws, {"negative": 6, "neutral": 1, "positive": 6})
    m = build_dataset(ws, by="tests", base="none")
    assert m.counts["train"]["neutral"] == 1
    assert m.counts["validation"]["neutral"] == 0


def test_no_labels_and_no_base_is_refused_as_empty(ws: LocalStore) -> None:
    with pytest.raises(DatasetError, match="empty"):
        build_dataset(ws, by="tests", base="none")
    save_label(ws, lab("u", "no idea", "unclear"))
    with pytest.raises(DatasetError, match="empty"):
        build_dataset(ws, by="tests", base="none")
    assert list(ws.list("datasets/")) == []


@pytest.mark.parametrize("share", [0.0, 0.04, 0.51, 1.0, -0.2])
def test_a_validation_share_out_of_range_is_refused(ws: LocalStore, share: float) -> None:
    seed_labels(ws, {"negative": 4, "neutral": 4, "positive": 4})
    with pytest.raises(DatasetError, match="validation_share"):
        build_dataset(ws, by="tests", base="none", validation_share=share)
    assert list(ws.list("datasets/")) == []


def test_an_unknown_base_is_refused(ws: LocalStore) -> None:
    seed_labels(ws, {"negative": 4, "neutral": 4, "positive": 4})
    with pytest.raises(DatasetError, match="unknown base"):
        build_dataset(ws, by="tests", base="wikipedia")


def test_human_labels_override_the_base_corpus_on_the_same_text(store: LocalStore) -> None:
    row = split_corpus().train[0]
    other = next(label for label in LABELS if label != row.label)
    save_label(store, lab("fix", row.text, other))
    m = build_dataset(store, by="tests", base=BASE)
    rows = all_rows(store, m)
    text = preprocess(row.text)
    assert f"__label__{other} {text}" in rows
    assert f"__label__{row.label} {text}" not in rows
    assert m.sources["human"] == 1
    assert Counter(r.split(" ", 1)[1] for r in rows).most_common(1)[0][1] == 1
