"""Metrics of churn probabilities, and the decision threshold chosen on validation data."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability cut-off that maximises F1 on (validation) data.

    F1 weighs missed churners and wasted retention offers equally; it is the usual choice
    when no cost ratio is known. Ties go to the higher threshold (fewer offers).
    """
    precision, recall, thresholds = precision_recall_curve(y, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)[:-1]
    best = np.flatnonzero(f1 == f1.max())[-1]
    return float(thresholds[best])


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC, F1, precision, recall, accuracy, Brier score and log loss."""
    label = (p >= threshold).astype(int)
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "f1": float(f1_score(y, label, zero_division=0)),
        "precision": float(precision_score(y, label, zero_division=0)),
        "recall": float(recall_score(y, label, zero_division=0)),
        "accuracy": float((label == y).mean()),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, clipped, labels=[0, 1])),
        "threshold": float(threshold),
        "positive_rate": float(label.mean()),
    }


def curves(y: np.ndarray, p: np.ndarray, threshold: float, points: int = 200) -> dict[str, Any]:
    """A thinned ROC curve and the confusion matrix at ``threshold`` (for reports and the KFP UI)."""
    fpr, tpr, thresholds = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(points, len(fpr))).astype(int))
    matrix = confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1])
    return {
        "fpr": fpr[keep].tolist(),
        "tpr": tpr[keep].tolist(),
        "thresholds": np.minimum(thresholds[keep], 1.0).tolist(),
        "confusion_matrix": matrix.tolist(),
    }
