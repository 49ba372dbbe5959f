"""The linear model family: TF-IDF of word 1-2-grams and of character 2-5-grams inside words, three
sentiment-lexicon features (see LEXICON_WEIGHT), and a linear SVM with balanced class weights, its
scores turned into calibrated probabilities by a softmax with a temperature fitted on validation data.

Why it is here beside fastText: with a few hundred to a few thousand labels (a fresh deployment),
fastText trails TF-IDF + a linear model by a wide margin, and on the airline set this family reaches
macro-F1 0.764 where fastText reaches 0.735 (mean of three splits; tests/benchmarks/test_model_quality.py). Training
picks the family by validation macro-F1 (services/training.py).

It reads the same prepared text as fastText (`model.prepare`), so every endpoint, the review queue
and the datasets stay as they are. The artifact is a numpy `.npz` of plain arrays (vocabularies,
idf weights, coefficients), loaded with `allow_pickle=False`: opening a model file runs no code.
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from services.errors import ModelUnavailable
from services.model.prediction import LABELS, Prediction, predictions, prepare_all, score_readable

log = logging.getLogger(__name__)

ARTIFACT_NAME = "linear.npz"
FORMAT = "pulse-linear-2"  # 2: lexicon features (and the lexicon) in the artifact
READABLE_FORMATS = ("pulse-linear-1", FORMAT)


def _sublinear_tfidf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """1 + log(tf), times idf, each row scaled to unit length (scikit-learn's TfidfVectorizer with
    sublinear_tf=True, norm="l2"), computed on the sparse data in place."""
    from sklearn.preprocessing import normalize

    x = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    x.data = (1.0 + np.log(x.data)) * idf[x.indices]
    out: sp.csr_matrix = normalize(x, norm="l2", copy=False)
    return out


def _idf(counts: sp.csr_matrix) -> np.ndarray:
    """Smoothed inverse document frequency: ln((1 + n) / (1 + df)) + 1."""
    n = int(counts.shape[0])
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    out: np.ndarray = np.log((1.0 + n) / (1.0 + df)) + 1.0
    return out


# Prior knowledge for small data: three features from a sentiment lexicon (VADER's, MIT licensed, from
# the pinned vaderSentiment package), log(1 + positive valence), log(1 + negative valence) and their
# difference, a word's valence flipped and damped (x -0.74, as VADER does) after a negation. They
# help most where labels are few (a large labelled set already teaches what the lexicon knows).
# The weight scales them beside the unit-length TF-IDF rows; the model-quality benchmark compares.
LEXICON_WEIGHT = 0.1
LEXICON_FEATURES = ("log_positive", "log_negative", "difference")
_NEGATIONS = frozenset(("not", "no", "never", "nothing", "nobody", "none", "nor", "neither", "without", "cannot"))
_NEGATION_SCALAR = -0.74


@cache
def sentiment_lexicon() -> dict[str, float]:
    """Word -> valence (-4 to +4) from VADER's lexicon, lower-case words only (the text is lowercased)."""
    text = resources.files("vaderSentiment").joinpath("vader_lexicon.txt").read_text(encoding="utf-8")
    out: dict[str, float] = {}
    for line in text.splitlines():
        word, value, *_ = line.split("\t")
        if word and word == word.lower():
            out[word] = float(value)
    return out


def lexicon_features(docs: Sequence[str], lexicon: dict[str, float]) -> np.ndarray:
    """Documents x LEXICON_FEATURES (see above)."""
    out = np.zeros((len(docs), len(LEXICON_FEATURES)))
    get = lexicon.get
    for i, doc in enumerate(docs):
        pos = neg = 0.0
        before = previous = ""
        for token in doc.split():
            value = get(token)
            if value is not None:
                if previous in _NEGATIONS or before in _NEGATIONS:
                    value *= _NEGATION_SCALAR
                if value > 0:
                    pos += value
                else:
                    neg -= value
            before, previous = previous, token
        out[i, 0], out[i, 1] = pos, neg
    out[:, :2] = np.log1p(out[:, :2])
    out[:, 2] = out[:, 0] - out[:, 1]
    return out


class Features:
    """Text -> sparse feature rows. Character n-grams are computed once per distinct word of a batch
    and summed into documents with one sparse product (the same counts as scikit-learn's `char_wb`
    analyzer, at a fraction of the cost: most words of a batch repeat)."""

    def __init__(
        self,
        word_vocab: Sequence[str],
        word_idf: np.ndarray,
        char_vocab: Sequence[str],
        char_idf: np.ndarray,
        *,
        word_ngrams: int = 2,
        char_range: tuple[int, int] = (2, 5),
        lexicon: dict[str, float] | None = None,
        lexicon_weight: float = 0.0,
    ) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        self.word_ngrams = word_ngrams
        self.char_range = char_range
        self.lexicon = dict(lexicon or {}) if lexicon_weight else {}
        self.lexicon_weight = lexicon_weight if self.lexicon else 0.0
        self.word_vocab = list(word_vocab)
        self.char_vocab = list(char_vocab)
        self.word_idf = np.asarray(word_idf, dtype=np.float64)
        self.char_idf = np.asarray(char_idf, dtype=np.float64)
        self._words = CountVectorizer(
            tokenizer=str.split,
            token_pattern=None,
            lowercase=False,
            ngram_range=(1, word_ngrams),
            vocabulary={w: i for i, w in enumerate(self.word_vocab)},
            dtype=np.float64,
        )
        self._chars = CountVectorizer(
            analyzer="char_wb",
            lowercase=False,
            ngram_range=char_range,
            vocabulary={c: i for i, c in enumerate(self.char_vocab)},
            dtype=np.float64,
        )

    @property
    def size(self) -> int:
        return len(self.word_vocab) + len(self.char_vocab) + (len(LEXICON_FEATURES) if self.lexicon_weight else 0)

    def transform(self, docs: Sequence[str]) -> sp.csr_matrix:
        words = _sublinear_tfidf(self._words.transform(docs), self.word_idf)
        chars = _sublinear_tfidf(_char_counts(docs, self._chars), self.char_idf)
        return self._stack(docs, words, chars)

    def _stack(self, docs: Sequence[str], words: sp.csr_matrix, chars: sp.csr_matrix) -> sp.csr_matrix:
        blocks = [words, chars]
        if self.lexicon_weight:
            blocks.append(sp.csr_matrix(lexicon_features(docs, self.lexicon) * self.lexicon_weight))
        return sp.csr_matrix(sp.hstack(blocks, format="csr"))

    @classmethod
    def fit(
        cls,
        docs: Sequence[str],
        *,
        word_ngrams: int = 2,
        char_range: tuple[int, int] = (2, 5),
        min_df: int = 2,
        lexicon_weight: float = LEXICON_WEIGHT,
    ) -> tuple[Features, sp.csr_matrix]:
        """Learn vocabularies (n-grams in at least `min_df` documents) and idf; also return the
        transformed `docs`."""
        from sklearn.feature_extraction.text import CountVectorizer

        word_cv = CountVectorizer(
            tokenizer=str.split,
            token_pattern=None,
            lowercase=False,
            ngram_range=(1, word_ngrams),
            min_df=min_df,
            dtype=np.float64,
        )
        word_counts = word_cv.fit_transform(docs).tocsr()
        char_cv = CountVectorizer(analyzer="char_wb", lowercase=False, ngram_range=char_range, dtype=np.float64)
        char_counts = _char_counts(docs, char_cv, fit=True)
        df = np.bincount(char_counts.indices, minlength=char_counts.shape[1])
        keep = np.flatnonzero(df >= min_df)
        names = char_cv.get_feature_names_out()
        char_counts = char_counts[:, keep].tocsr()
        features = cls(
            word_cv.get_feature_names_out().tolist(),
            _idf(word_counts),
            names[keep].tolist(),
            _idf(char_counts),
            word_ngrams=word_ngrams,
            char_range=char_range,
            lexicon=sentiment_lexicon() if lexicon_weight else None,
            lexicon_weight=lexicon_weight,
        )
        words = _sublinear_tfidf(word_counts, features.word_idf)
        chars = _sublinear_tfidf(char_counts, features.char_idf)
        return features, features._stack(docs, words, chars)


def _char_counts(docs: Sequence[str], char_cv: Any, *, fit: bool = False) -> sp.csr_matrix:
    """Documents x character n-grams, as (documents x distinct words) @ (words x n-grams)."""
    index: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for i, doc in enumerate(docs):
        for word in doc.split():
            cols.append(index.setdefault(word, len(index)))
            rows.append(i)
    doc_word = sp.csr_matrix(
        (np.ones(len(cols)), (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
        shape=(len(docs), len(index)),
    )
    distinct = list(index)
    if fit:
        word_chars = char_cv.fit_transform(distinct)
    elif distinct:
        word_chars = char_cv.transform(distinct)
    else:
        word_chars = sp.csr_matrix((0, len(char_cv.vocabulary)))
    return sp.csr_matrix(doc_word @ word_chars)


@dataclass(frozen=True)
class LinearFit:
    """What `train_linear` learned, before it becomes a model."""

    features: Features
    coef: np.ndarray  # classes x features
    intercept: np.ndarray  # classes
    classes: tuple[str, ...]


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


class LinearModel:
    """A trained linear model that scores raw or prepared message texts."""

    family = "linear"
    preprocessing = "pulse-v2"  # trained by Pulse only

    def __init__(self, fitted: LinearFit, *, c: float, max_chars: int = 2000, temperature: float = 1.0) -> None:
        self.fitted = fitted
        self.c = c
        self.max_chars = max_chars
        self.temperature = temperature
        self.labels = fitted.classes

    def with_temperature(self, temperature: float) -> LinearModel:
        return LinearModel(self.fitted, c=self.c, max_chars=self.max_chars, temperature=temperature)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return self.predict_prepared(prepare_all(texts, self.max_chars))

    def predict_prepared(self, prepared: Sequence[str]) -> list[Prediction]:
        return score_readable(prepared, self._score)

    def _score(self, texts: list[str]) -> list[Prediction]:
        x = self.fitted.features.transform(texts)
        scores = np.asarray(x @ self.fitted.coef.T) + self.fitted.intercept
        probs = _softmax(scores / self.temperature)
        if tuple(self.fitted.classes) == LABELS:
            return predictions(probs)
        dist = np.zeros((len(texts), len(LABELS)))  # a model trained without some class
        for j, name in enumerate(self.fitted.classes):
            dist[:, LABELS.index(name)] = probs[:, j]
        return predictions(dist)

    def save(self, path: Path) -> None:
        f = self.fitted.features
        meta = {
            "format": FORMAT,
            "c": self.c,
            "word_ngrams": f.word_ngrams,
            "char_range": list(f.char_range),
            "classes": list(self.fitted.classes),
            "lexicon_weight": f.lexicon_weight,
        }
        with path.open("wb") as fh:
            np.savez_compressed(
                fh,
                meta=np.array(json.dumps(meta)),
                word_vocab=np.array(f.word_vocab, dtype=str),
                word_idf=f.word_idf,
                char_vocab=np.array(f.char_vocab, dtype=str),
                char_idf=f.char_idf,
                coef=self.fitted.coef.astype(np.float32),
                intercept=self.fitted.intercept.astype(np.float64),
                # the lexicon travels with the model: a newer lexicon never shifts its scores
                lexicon_words=np.array(list(f.lexicon), dtype=str),
                lexicon_values=np.array(list(f.lexicon.values()), dtype=np.float64),
            )

    @classmethod
    def load(cls, path: Path | str, *, max_chars: int = 2000, temperature: float = 1.0) -> LinearModel:
        path = Path(path)
        if not path.is_file():
            raise ModelUnavailable(f"model file {path} is missing")
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
                if meta.get("format") not in READABLE_FORMATS:
                    raise ValueError(f"unknown format {meta.get('format')!r}")
                weight = float(meta.get("lexicon_weight", 0.0))
                lexicon = (
                    dict(zip(npz["lexicon_words"].tolist(), npz["lexicon_values"].tolist(), strict=True))
                    if weight
                    else None
                )
                word_vocab, char_vocab = npz["word_vocab"].tolist(), npz["char_vocab"].tolist()
                features = Features(
                    word_vocab,
                    npz["word_idf"],
                    char_vocab,
                    npz["char_idf"],
                    word_ngrams=int(meta["word_ngrams"]),
                    char_range=(int(meta["char_range"][0]), int(meta["char_range"][1])),
                    lexicon=lexicon,
                    lexicon_weight=weight,
                )
                coef = npz["coef"].astype(np.float64)
                intercept = npz["intercept"]
                classes = tuple(str(c) for c in meta["classes"])
        except (OSError, EOFError, zipfile.BadZipFile, ValueError, KeyError, TypeError, IndexError) as exc:
            raise ModelUnavailable(f"model file {path.name} is corrupt or not a Pulse linear model") from exc
        if coef.shape != (len(classes), features.size) or intercept.shape != (len(classes),):
            raise ModelUnavailable(f"model file {path.name} is inconsistent (coefficients do not match the features)")
        if not set(classes) <= set(LABELS):
            raise ModelUnavailable(f"model file {path.name} has labels outside {', '.join(LABELS)}")
        fitted = LinearFit(features, coef, intercept, classes)
        return cls(fitted, c=float(meta["c"]), max_chars=max_chars, temperature=temperature)


def train_linear(texts: Sequence[str], labels: Sequence[str], *, c: float = 0.1, max_chars: int = 2000) -> LinearModel:
    """Fit on prepared texts. Raises ValueError when there is nothing to learn from (no words, or a
    single class)."""
    from sklearn.svm import LinearSVC

    pairs = [(t, y) for t, y in zip(texts, labels, strict=True) if t.strip() and y in LABELS]
    if not pairs:
        raise ValueError("no training examples with any words left after preprocessing")
    classes = sorted({y for _, y in pairs}, key=LABELS.index)
    if len(classes) < 2:
        raise ValueError(f"a linear model needs examples of at least two classes; got only {classes[0]}")
    started = time.perf_counter()
    docs = [t for t, _ in pairs]
    # min_df=2 drops n-grams seen once; on a tiny set that can leave nothing, so fall back to 1.
    features, x = Features.fit(docs, min_df=2 if len(docs) >= 50 else 1)
    y = np.array([classes.index(lab) for _, lab in pairs])
    svm = LinearSVC(C=c, class_weight="balanced", random_state=0)  # liblinear shuffles: same data, same model
    svm.fit(x, y)
    coef = np.asarray(svm.coef_, dtype=np.float64)
    intercept = np.asarray(svm.intercept_, dtype=np.float64)
    if len(classes) == 2:  # one score for the second class: make it a symmetric pair
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    log.info("linear model trained on %d texts in %.2fs", len(docs), time.perf_counter() - started)
    fitted = LinearFit(features, coef, intercept, tuple(classes))
    return LinearModel(fitted, c=c, max_chars=max_chars)
