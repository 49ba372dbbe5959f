"""Training hyperparameters of both families, and their valid ranges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FASTTEXT_THREADS = 10


@dataclass(frozen=True)
class TrainParams:
    """Hyperparameters of both families (fastText's, then the linear model's C). fastText's defaults
    favour small data, which a fresh deployment has (the test_model_quality benchmark compares
    them); not the epochs 10 / lr 0.01 / dim 300 / 3-gram settings that barely learn."""

    epoch: int = 25
    lr: float = 0.5
    dim: int = 50
    word_ngrams: int = 2
    minn: int = 0
    maxn: int = 0
    bucket: int = 100_000
    seed: int = 0
    # Repeat minority-class rows up to the majority's count (fastText has no class weights).
    # Off by default: it cost macro-F1 on the data sets tried.
    balance_classes: bool = False
    # Model family: "auto" trains fastText and the linear model (services/model/linear.py) and keeps the
    # better on validation macro-F1; "fasttext" or "linear" trains only that one. SageMaker
    # (BlazingText) trains fastText whatever this says.
    family: str = "auto"
    # The linear model's regularisation (LinearSVC's C): smaller is smoother.
    c: float = 0.1

    def used_by(self, family: str) -> dict[str, object]:
        """The parameters a model of `family` was trained with: what its card shows (a linear
        model's card has no fastText epochs or learning rate)."""
        names = LINEAR_FIELDS if family == "linear" else FASTTEXT_FIELDS
        return {"family": family, **{n: getattr(self, n) for n in names}, "balance_classes": self.balance_classes}

    def fasttext_args(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "lr": self.lr,
            "dim": self.dim,
            "wordNgrams": self.word_ngrams,
            "minn": self.minn,
            "maxn": self.maxn,
            "bucket": self.bucket,
            "seed": self.seed,
            "loss": "softmax",
            # fastText initialises its input matrix in ten blocks, one per thread id below 10
            # (DenseMatrix::uniformThread); with fewer threads the rest keeps whatever the heap
            # held, which is what made training fail with "Encountered NaN" in a busy process.
            "thread": FASTTEXT_THREADS,
            "verbose": 0,
        }


FASTTEXT_FIELDS = ("epoch", "lr", "dim", "word_ngrams", "minn", "maxn", "bucket", "seed")
LINEAR_FIELDS = ("c",)

PARAM_RANGES: dict[str, tuple[float, float]] = {
    "epoch": (1, 100),
    "lr": (0.001, 2.0),
    "dim": (2, 300),
    "word_ngrams": (1, 5),
    "minn": (0, 6),
    "maxn": (0, 8),
    "bucket": (0, 2_000_000),
    "c": (0.0001, 100.0),
}


FAMILIES = ("auto", "fasttext", "linear")

# Each hyperparameter in words, as the Training form asks for it and a model card shows it.
PARAM_NAMES: dict[str, str] = {
    "family": "Model family",
    "epoch": "Epochs",
    "lr": "Learning rate",
    "dim": "Dimensions",
    "word_ngrams": "Word n-grams",
    "minn": "Subwords from",
    "maxn": "Subwords to",
    "bucket": "Hash buckets",
    "seed": "Random seed",
    "c": "Regularisation C",
    "balance_classes": "Balance classes",
}


def describe_params(params: dict[str, object]) -> dict[str, str]:
    """A card's hyperparameters as words and plain values ("Balance classes": "no"), in the card's order;
    a name this version does not know (a newer trainer's) is shown as it is stored."""

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, int | float):
            return _number(v)
        return str(v)

    return {PARAM_NAMES.get(name, name): value(v) for name, v in params.items()}


def _number(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def validate_params(params: TrainParams) -> TrainParams:
    """Refuse hyperparameters outside their valid range, naming the range."""
    problems = []
    for name, (lo, hi) in PARAM_RANGES.items():
        value = getattr(params, name)
        if not lo <= value <= hi:
            problems.append(f"{name}={value} is outside {_number(lo)}..{_number(hi)}")
    if params.family not in FAMILIES:
        problems.append(f"family={params.family!r} is not one of {', '.join(FAMILIES)}")
    if params.maxn and params.minn > params.maxn:
        problems.append(f"minn={params.minn} is larger than maxn={params.maxn}")
    if problems:
        raise ValueError("; ".join(problems))
    return params


# Settings known to avoid fastText's "Encountered NaN" on small data: subwords and a lower rate.
SAFE_RETRY = {"minn": 2, "maxn": 4, "word_ngrams": 2}
