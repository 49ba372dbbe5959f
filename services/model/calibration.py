"""Calibration: one temperature per model, fitted on validation data, that makes confidences honest."""

from __future__ import annotations

import math
from collections.abc import Sequence

from services.model.prediction import LABELS, Model

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
