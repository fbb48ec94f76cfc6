"""Realized performance: how well a cohort was scored, against the labels that have arrived.

ROC-AUC (with its Hanley-McNeil standard error), PR-AUC (average precision), precision and
recall of the logged labels (the model's stored threshold), lift in the top decile, Brier
score and expected calibration error (10 equal-width probability bins).
"""

from __future__ import annotations

import math

import numpy as np

from churn.monitoring.stats import roc_auc, roc_auc_standard_error

ECE_BINS = 10


def realized_metrics(labels: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Realized ROC-AUC (and standard error), PR-AUC, precision, recall, top-decile lift, Brier score, ECE.

    Args:
        labels: The outcomes (0/1); both classes must be present.
        probabilities: The logged churn probabilities.
        predicted: The logged labels (the stored threshold applied when serving).

    """
    from sklearn.metrics import average_precision_score

    y = labels.astype(np.int64)
    p = probabilities.astype(np.float64)
    positives, n = int(y.sum()), y.size
    auc = roc_auc(y, p)
    flagged = predicted == 1
    top = np.argsort(-p, kind="stable")[: max(1, math.ceil(0.1 * n))]
    bins = np.minimum((p * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    counts = np.bincount(bins, minlength=ECE_BINS)
    gap = np.abs(np.bincount(bins, weights=p - y, minlength=ECE_BINS))
    return {
        "churn_rate": positives / n,
        "roc_auc": auc,
        "roc_auc_standard_error": roc_auc_standard_error(auc, positives, n - positives),
        "pr_auc": float(average_precision_score(y, p)),
        "precision": float(y[flagged].mean()) if flagged.any() else 0.0,
        "recall": float(y[flagged].sum() / positives),
        "lift_top_decile": float(y[top].mean() / (positives / n)),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": float(gap[counts > 0].sum() / n),
    }
