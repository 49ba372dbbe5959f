"""The sentiment model: a fastText supervised classifier (the same `model.bin` format as
SageMaker BlazingText), wrapped so that every caller preprocesses text the same way."""

from __future__ import annotations

import gc
import logging
import math
import struct
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from services.errors import ModelUnavailable
from services.text import preprocess

log = logging.getLogger(__name__)

LABELS = ("negative", "neutral", "positive")
PREFIX = "__label__"


@dataclass(slots=True)  # not frozen: frozen dataclasses are built ~2x slower, and ingest builds 100ks
class Prediction:
    """What the model thinks of one message. Treat it as read-only."""

    label: str
    confidence: float
    probs: dict[str, float] = field(default_factory=dict)

    @property
    def margin(self) -> float:
        """Gap between the two most likely labels (small = unsure)."""
        top = [*sorted(self.probs.values(), reverse=True), 0.0, 0.0]
        return top[0] - top[1]


# An empty message tells the model nothing: it always goes to a human.
UNREADABLE = Prediction("neutral", 0.0, dict.fromkeys(LABELS, 0.0))


def score_readable(prepared: Sequence[str], score: Callable[[list[str]], list[Prediction]]) -> list[Prediction]:
    """`score` the non-empty prepared texts in one batch; an empty one is `UNREADABLE`."""
    out: list[Prediction] = [UNREADABLE] * len(prepared)
    idx = [i for i, p in enumerate(prepared) if p]
    if idx:
        with gc_paused():
            scored = score([prepared[i] for i in idx])
        for i, prediction in zip(idx, scored, strict=True):
            out[i] = prediction
    return out


def prepare(text: str, max_chars: int = 2000) -> str:
    """What the model sees of a message: its first `max_chars` characters, preprocessed."""
    return preprocess(text[:max_chars])


def fasttext_line(label: str, text: str) -> str:
    """One training line in the fastText/BlazingText format."""
    return f"{PREFIX}{label} {preprocess(text)}"


FASTTEXT_THREADS = 10


@dataclass(frozen=True)
class TrainParams:
    """fastText hyperparameters; not the epochs 10 / lr 0.01 / dim 300 / 3-gram settings that
    barely learn. Measured: on the shipped gold set after the demo's labels, epochs 25 / lr 0.5 gave
    macro-F1 0.689 and epochs 10 / lr 0.1 gave 0.653; on the airline set 0.725 vs 0.734. A fresh
    deployment has little data, so the default favours it. dim 50 is within 0.01 of dim 100."""

    epoch: int = 25
    lr: float = 0.5
    dim: int = 50
    word_ngrams: int = 2
    minn: int = 0
    maxn: int = 0
    bucket: int = 100_000
    seed: int = 0
    # Repeat minority-class rows up to the majority's count (fastText has no class weights).
    # Off by default: it cost 0.006 macro-F1 on the airline set and 0.03 on the shipped gold set.
    balance_classes: bool = False
    # Model family: "auto" trains fastText and the linear model (services/linear.py) and keeps the
    # better on validation macro-F1; "fasttext" or "linear" trains only that one. SageMaker
    # (BlazingText) trains fastText whatever this says.
    family: str = "auto"
    # The linear model's regularisation (LinearSVC's C): smaller is smoother.
    c: float = 0.1

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


FASTTEXT_MAGIC = 793712314


def check_model_file(path: Path) -> None:
    """Refuse a fastText `.bin` whose length does not match what its header declares.

    fastText's loader does not check: a truncated file made `load_model` loop, eating memory,
    instead of failing. Layout: magic, version, 12 int32 args + a double, the dictionary, then
    the input and output matrices (int64 rows, int64 cols, float32 values), each after a flag.
    """
    data = path.read_bytes()

    def bad(why: str) -> ModelUnavailable:
        return ModelUnavailable(f"model file {path.name} is corrupt or truncated ({why})")

    try:
        magic, _version = struct.unpack_from("<ii", data, 0)
        if magic != FASTTEXT_MAGIC:
            raise bad("not a fastText model")
        pos = 8 + 12 * 4 + 8
        size, _nwords, _nlabels, _ntokens, prune = struct.unpack_from("<iiiqq", data, pos)
        pos += 4 * 3 + 8 * 2
        prune = max(prune, 0)  # -1 means "not pruned"
        if not 0 <= size <= 100_000_000 or prune > 100_000_000:
            raise bad("impossible dictionary size")
        for _ in range(size):
            end = data.index(b"\0", pos)
            pos = end + 1 + 8 + 1  # word, count (int64), type (int8)
        pos += prune * 8
        for _matrix in ("input", "output"):
            (quantized,) = struct.unpack_from("<?", data, pos)
            pos += 1
            if quantized:
                return  # a quantized (.ftz) model has another layout: the loader checks it
            rows, cols = struct.unpack_from("<qq", data, pos)
            if rows < 0 or cols < 0:
                raise bad("negative matrix size")
            pos += 16 + rows * cols * 4
    except (struct.error, ValueError) as exc:
        raise bad("the file ends early") from exc
    if pos != len(data):
        raise bad(f"{len(data):,} bytes where the header declares {pos:,}")


class SentimentModel:
    """A loaded fastText model that scores raw message texts."""

    family = "fasttext"

    def __init__(self, ft_model: Any, *, max_chars: int = 2000, temperature: float = 1.0) -> None:
        self._ft = ft_model
        self.max_chars = max_chars
        self.temperature = temperature  # fitted on validation data: see fit_temperature
        self.labels = tuple(label.removeprefix(PREFIX) for label in ft_model.get_labels())

    @classmethod
    def load(cls, path: Path | str, *, max_chars: int = 2000, temperature: float = 1.0) -> SentimentModel:
        import fasttext

        path = Path(path)
        if not path.is_file():
            raise ModelUnavailable(f"model file {path} is missing")
        check_model_file(path)
        try:
            ft = fasttext.load_model(str(path))
        except (ValueError, RuntimeError, MemoryError) as exc:
            raise ModelUnavailable(f"model file {path.name} is corrupt or not a fastText model") from exc
        return cls(ft, max_chars=max_chars, temperature=temperature)

    def with_temperature(self, temperature: float) -> SentimentModel:
        """The same model with another calibration temperature."""
        return SentimentModel(self._ft, max_chars=self.max_chars, temperature=temperature)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Score raw texts. Long texts are cut to `max_chars` for scoring only."""
        return self.predict_prepared(prepare_all(texts, self.max_chars))

    def predict_prepared(self, prepared: Sequence[str]) -> list[Prediction]:
        """Score texts that already went through `prepare`."""
        return score_readable(prepared, self._score)

    def _score(self, texts: list[str]) -> list[Prediction]:
        import numpy as np

        labels, probs = self._ft.predict(texts, k=-1)
        # Each row lists every label of the model, most likely first: put them in LABELS order with
        # array operations (the per-message Python loop this replaces cost more than the model).
        names = np.array(labels, dtype=object)
        p = np.minimum(np.array(probs, dtype=float), 1.0)
        dist = np.zeros((len(texts), len(LABELS)))
        for j, label in enumerate(LABELS):
            dist[:, j] = np.where(names == PREFIX + label, p, 0.0).sum(axis=1)
        return predictions(temper_rows(dist, self.temperature))

    def save(self, path: Path) -> None:
        self._ft.save_model(str(path))


def apply_temperature(dist: dict[str, float], temperature: float) -> dict[str, float]:
    """Soften (T > 1) or sharpen (T < 1) a probability distribution: p_i ** (1/T), renormalised."""
    if temperature == 1.0:
        return dist
    powered = {k: max(v, 1e-12) ** (1.0 / temperature) for k, v in dist.items()}
    total = sum(powered.values())
    return {k: v / total for k, v in powered.items()}


def temper_rows(dist: Any, temperature: float) -> Any:
    """`apply_temperature` for a matrix of probability rows."""
    if temperature == 1.0:
        return dist
    import numpy as np

    powered = np.maximum(dist, 1e-12) ** (1.0 / temperature)
    return powered / powered.sum(axis=1, keepdims=True)


def predictions(dist: Any) -> list[Prediction]:
    """One `Prediction` per row of a probability matrix whose columns are LABELS."""
    best, rows = dist.argmax(axis=1).tolist(), dist.tolist()
    neg, neu, pos = LABELS
    return [
        Prediction(LABELS[b], row[b], {neg: row[0], neu: row[1], pos: row[2]})
        for b, row in zip(best, rows, strict=True)
    ]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Build many small objects without the cycle collector. Scoring 100k messages allocates
    ~1M containers, which set off the collector hundreds of times over everything alive in the
    process (measured: a third of the scoring time); none of them can form a cycle."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def prepare_all(texts: Sequence[str], max_chars: int) -> list[str]:
    """`prepare` for a batch."""
    with gc_paused():
        return [prepare(t, max_chars) for t in texts]


class Model(Protocol):
    """What every model family offers: fastText (`SentimentModel`) and linear (`LinearModel`)."""

    family: str
    temperature: float
    max_chars: int

    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...

    def predict_prepared(self, prepared: Sequence[str]) -> list[Prediction]: ...

    def with_temperature(self, temperature: float) -> Model: ...

    def save(self, path: Path) -> None: ...


# Temperatures tried by fit_temperature: 0.02 to 5, evenly spaced in log scale (fastText's
# probabilities want ~0.5-2; a linear SVM's raw scores are small and want ~0.1-0.5).
TEMPERATURES = tuple(0.02 * (250 ** (i / 99)) for i in range(100))


def fit_temperature(model: Model, prepared: Sequence[str], labels: Sequence[str]) -> float:
    """The temperature that minimises the negative log-likelihood of the true labels (a grid
    search; one parameter, so the model's ranking, and its macro-F1, do not change)."""
    if not prepared:
        return 1.0
    import numpy as np

    raw = model.with_temperature(1.0).predict_prepared(prepared)
    probs = np.maximum(np.array([[p.probs.get(k, 0.0) for k in LABELS] for p in raw]), 1e-12)
    truth = np.array([LABELS.index(y) if y in LABELS else -1 for y in labels])
    keep = (truth >= 0) & (probs.sum(axis=1) > 3e-12)  # unreadable texts carry no signal
    if not keep.any():
        return 1.0
    logp, truth = np.log(probs[keep]), truth[keep]
    best, best_nll = 1.0, math.inf
    for t in TEMPERATURES:
        z = logp / t  # log of p ** (1/T), then renormalised in log space
        z -= z.max(axis=1, keepdims=True)
        log_q = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll = float(-log_q[np.arange(len(truth)), truth].sum())
        if nll < best_nll:
            best, best_nll = t, nll
    return round(best, 4)


def train(lines: Iterable[str], params: TrainParams | None = None, *, max_chars: int = 2000) -> SentimentModel:
    """Train a model on lines in the fastText format; retry once with safer settings on NaN."""
    import fasttext

    params = params or TrainParams()
    with tempfile.TemporaryDirectory(prefix="pulse-train-") as tmp:
        path = Path(tmp) / "train.txt"
        n = 0
        with path.open("w", encoding="utf-8") as fh:
            for line in lines:
                if line.split(" ", 1)[-1].strip() and line.startswith(PREFIX):
                    fh.write(line.replace("\n", " ") + "\n")
                    n += 1
        if n == 0:
            raise ValueError("no training examples with any words left after preprocessing")
        started = time.perf_counter()
        try:
            ft = fasttext.train_supervised(input=str(path), **params.fasttext_args())
        except RuntimeError as exc:
            if "nan" not in str(exc).lower():
                raise
            log.warning("fastText hit a NaN loss; retrying with subwords and half the learning rate")
            safer = TrainParams(**{**params.__dict__, **SAFE_RETRY, "lr": params.lr / 2})
            ft = fasttext.train_supervised(input=str(path), **safer.fasttext_args())
        log.info("trained on %d lines in %.2fs", n, time.perf_counter() - started)
    return SentimentModel(ft, max_chars=max_chars)
