"""The fastText family: a supervised classifier whose `model.bin` is SageMaker BlazingText's format too."""

from __future__ import annotations

import logging
import struct
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from services.errors import ModelUnavailable
from services.model.params import SAFE_RETRY, TrainParams
from services.model.prediction import LABELS, PREFIX, Prediction, predictions, prepare_all, score_readable, temper_rows
from services.model.text import preprocess

log = logging.getLogger(__name__)


def fasttext_line(label: str, text: str) -> str:
    """One training line in the fastText/BlazingText format."""
    return f"{PREFIX}{label} {preprocess(text)}"


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


def relabel(source: Path, target: Path, mapping: dict[str, str]) -> None:
    """Write `source` with its labels renamed by `mapping` (label -> label, without the prefix).

    A fastText `.bin` keeps each dictionary entry as a NUL-terminated string with its count and type
    (0 word, 1 label) and no offsets anywhere, and labels are never hashed, so renaming a label is
    rewriting its string; the matrices that follow are copied byte for byte."""
    data = source.read_bytes()
    pos = 8 + 12 * 4 + 8
    size = struct.unpack_from("<i", data, pos)[0]
    pos += 4 * 3 + 8 * 2
    out = [data[:pos]]
    for _ in range(size):
        end = data.index(b"\0", pos)
        word = data[pos:end].decode("utf-8")
        (kind,) = struct.unpack_from("<b", data, end + 9)
        if kind == 1:
            name = mapping.get(word.removeprefix(PREFIX), word.removeprefix(PREFIX))
            word = PREFIX + name
        out.append(word.encode("utf-8") + data[end : end + 10])
        pos = end + 10
    out.append(data[pos:])
    target.write_bytes(b"".join(out))


class SentimentModel:
    """A loaded fastText model that scores raw message texts."""

    family = "fasttext"

    def __init__(
        self, ft_model: Any, *, max_chars: int = 2000, temperature: float = 1.0, preprocessing: str = "pulse-v2"
    ) -> None:
        self._ft = ft_model
        self.max_chars = max_chars
        self.temperature = temperature  # fitted on validation data: see fit_temperature
        self.preprocessing = preprocessing  # a model imported from elsewhere may expect other text
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
        model = cls(ft, max_chars=max_chars, temperature=temperature)
        foreign = [label for label in model.labels if label not in LABELS]
        if foreign or not model.labels:
            # Scored as is, every message would read "negative" at confidence 0: refuse it instead.
            raise ModelUnavailable(
                f"model file {path.name} predicts the labels {', '.join(model.labels) or '(none)'}; Pulse reads "
                f"{', '.join(LABELS)} (train it on lines starting with {PREFIX}negative, {PREFIX}neutral or "
                f"{PREFIX}positive)"
            )
        return model

    def with_temperature(self, temperature: float) -> SentimentModel:
        """The same model with another calibration temperature."""
        return SentimentModel(
            self._ft, max_chars=self.max_chars, temperature=temperature, preprocessing=self.preprocessing
        )

    def with_preprocessing(self, preprocessing: str) -> SentimentModel:
        """The same model, reading texts prepared another way (`prediction.PREPROCESSINGS`)."""
        return SentimentModel(
            self._ft, max_chars=self.max_chars, temperature=self.temperature, preprocessing=preprocessing
        )

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Score raw texts. Long texts are cut to `max_chars` for scoring only."""
        return self.predict_prepared(prepare_all(texts, self.max_chars, self.preprocessing))

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
