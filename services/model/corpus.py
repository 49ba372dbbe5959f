"""The corpora shipped with Pulse: Pulse's own check-ins (services/model/data/checkins/, written by the
team, with a fixed train / gold / demo split) and the vendored TweetEval and UCI sets
(services/model/data/PROVENANCE.md)."""

from __future__ import annotations

import csv
import functools
import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from services.errors import PulseError

LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: str
    source: str


def _read(*path: str) -> str:
    # read_text translates newlines; the UCI files are CRLF, which tests guard against regressing.
    return resources.files("services.model").joinpath("data", *path).read_text(encoding="utf-8")


def tweeteval() -> list[LabelledText]:
    """TweetEval sentiment validation split: 2,000 tweets, three classes."""
    texts = _read("tweeteval_val_text.txt").split("\n")
    labels = _read("tweeteval_val_labels.txt").split("\n")
    rows = []
    for text, label in zip(texts, labels, strict=False):
        if label.strip():
            rows.append(LabelledText(text.strip(), LABELS[int(label)], "tweeteval"))
    return rows


def uci() -> list[LabelledText]:
    """UCI sentiment sentences (Amazon, IMDb, Yelp): 3,000 sentences, negative/positive."""
    rows = []
    for site in ("amazon_cells", "imdb", "yelp"):
        raw = _read(f"{site}_labelled.txt").replace("\r\n", "\n")
        for fields in csv.reader(io.StringIO(raw), delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(fields) == 2 and fields[1].strip() in ("0", "1"):
                label = "positive" if fields[1].strip() == "1" else "negative"
                rows.append(LabelledText(fields[0].strip(), label, f"uci-{site}"))
    return rows


CHECKIN_PARTS = ("train", "gold", "demo")
NOT_SENTIMENT = "unclear"


@dataclass(frozen=True)
class CheckIn:
    """One message of Pulse's check-in corpus (services/model/data/checkins/README.md)."""

    text: str
    label: str  # negative | neutral | positive | unclear (never trained on)
    crisis: bool  # the writer may be at risk: the crisis alert must fire
    kinds: tuple[str, ...]  # what makes it what it is: short, negation, sarcasm, hyperbole, report...
    program: str  # support-desk, night-nurses, student-cohort, peer-support, engineering-team
    source: str  # "checkins" (every day, balanced) or "crisis" (crisis language and its look-alikes)
    part: str  # train | gold | demo: fixed, never re-drawn


@functools.cache
def checkins() -> tuple[CheckIn, ...]:
    """Every message of the check-in corpus, with the part it belongs to."""
    rows = []
    for r in csv.DictReader(io.StringIO(_read("checkins", "checkins.csv"), newline="")):
        rows.append(
            CheckIn(
                text=r["text"],
                label=r["label"],
                crisis=r["crisis"] == "1",
                kinds=tuple(r["kind"].split("|")),
                program=r["program"],
                source=r["source"],
                part=r["split"],
            )
        )
    return tuple(rows)


def checkin_part(part: str, *, source: str | None = "checkins", sentiment_only: bool = True) -> list[CheckIn]:
    """One part of the check-in corpus: `source` "checkins" (the balanced every-day messages, the
    default), "crisis", or None for both; `sentiment_only` leaves out `unclear` messages."""
    if part not in CHECKIN_PARTS:
        raise ValueError(f"unknown part {part!r}: use one of {', '.join(CHECKIN_PARTS)}")
    return [
        r
        for r in checkins()
        if r.part == part and (source is None or r.source == source) and (r.label in LABELS or not sentiment_only)
    ]


@dataclass(frozen=True)
class CorpusSplit:
    """A shipped corpus in three disjoint parts."""

    train: list[LabelledText]  # the bootstrap model and every later dataset's base
    gold: list[LabelledText]  # the default gold set: evaluated on, never trained on
    demo: list[LabelledText]  # texts of the demo's check-ins (never gold)


CHECKIN_BASE = "checkin-corpus"  # the base corpus of new datasets: split_corpus().train
LEGACY_BASE = "bootstrap-corpus"  # the base of datasets built before the check-in corpus: legacy_split().train
GOLD_SUFFIX = "-gold"  # "<corpus name>-gold": that corpus's gold part, as gold sets and manifests name it


@functools.cache
def split_corpus() -> CorpusSplit:
    """The default corpus: Pulse's check-ins, plus TweetEval for training.

    train: the check-in corpus's train part (every-day and crisis messages) and the 2,000 TweetEval
      tweets, in a fixed shuffled order, without any text that matches a gold message after
      preprocessing. (Measured when the check-in corpus came in: with TweetEval, training on four
      programs and testing on the fifth's gold gives the same macro-F1 and fewer confident mistakes;
      the UCI review sentences lowered macro-F1, so they are no longer trained on.)
    gold: the check-in gold part's every-day messages, balanced over the three labels.
    demo: check-ins of the demo and train parts (never gold), `unclear` ones included.
    """
    from services.model.text import loose, preprocess

    gold = [LabelledText(r.text, r.label, "checkins") for r in checkin_part("gold")]
    gold_keys = {loose(preprocess(r.text)) for r in checkin_part("gold", source=None)}
    train = [LabelledText(r.text, r.label, f"checkins-{r.source}") for r in checkin_part("train", source=None)]
    train += tweeteval()
    train = [r for r in train if loose(preprocess(r.text)) not in gold_keys]
    random.Random(0).shuffle(train)
    demo = [
        LabelledText(r.text, r.label, r.program)
        for part in ("demo", "train")
        for r in checkin_part(part, source=None, sentiment_only=False)
    ]
    return CorpusSplit(train=train, gold=gold, demo=demo)


def legacy_split(seed: int = 0, gold_share: float = 0.15, demo_share: float = 0.3) -> CorpusSplit:
    """The bootstrap corpus before the check-in corpus: TweetEval and UCI shuffled with a fixed seed
    and cut into train / gold / demo. Datasets and gold sets recorded under `LEGACY_BASE` (and the
    legacy gold name) are rebuilt from it, bit for bit."""
    rows = tweeteval() + uci()
    random.Random(seed).shuffle(rows)
    n_gold = int(len(rows) * gold_share)
    n_demo = int(len(rows) * demo_share)
    return CorpusSplit(
        train=rows[n_gold + n_demo :],
        gold=rows[:n_gold],
        demo=rows[n_gold : n_gold + n_demo],
    )


# The shipped corpora by the name datasets record as their base (and gold sets as name + GOLD_SUFFIX).
SHIPPED: dict[str, Callable[[], CorpusSplit]] = {CHECKIN_BASE: split_corpus, LEGACY_BASE: legacy_split}


def read_labelled_csv(path: Path) -> list[tuple[str, str]]:
    """(text, label) rows of a CSV with `text` and `label` columns; labels must be in LABELS."""
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PulseError(f"cannot read {path}: {exc}") from None
    reader = csv.DictReader(io.StringIO(raw, newline=""))
    if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
        raise PulseError(f"{path.name} needs the columns text,label (found {reader.fieldnames})")
    rows = [(r["text"] or "", (r["label"] or "").strip().lower()) for r in reader]
    bad = sorted({label for _, label in rows if label not in LABELS})
    if bad:
        raise PulseError(f"{path.name}: labels must be one of {', '.join(LABELS)}; found {bad[:5]}")
    return rows
