"""Estimated performance by confidence-based performance estimation (CBPE, as published by NannyML).

For every cohort, labelled or not: the model's probabilities, calibrated on labelled data
(isotonic regression), give an expected confusion matrix at every threshold, hence an
expected ROC curve and ROC-AUC, and an expected precision and recall at the stored
threshold. Its standard error comes from sampling: labels are drawn from the calibrated
probabilities 200 times and the ROC-AUC of each draw computed.

What CBPE cannot see: it assumes that P(churn | score) stays what it was when the
calibrator was fitted. Under covariate drift (customers change, the rules do not) the
estimate follows the change. Under **concept drift** (the same customers now churn for
other reasons) the scores look exactly as before, so the estimate does not move: only
the realized numbers, weeks later when the labels arrive, show the drop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn.errors import ChurnError
from churn.monitoring.perf_report import MIN_LABELLED_ROWS

CBPE_SAMPLES = 200


@dataclass(frozen=True)
class Calibrator:
    """Maps the model's scores to calibrated churn probabilities (isotonic; identity when unfitted)."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def fit(cls, probabilities: np.ndarray, labels: np.ndarray) -> Calibrator:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(probabilities, labels)
        return cls(np.asarray(iso.X_thresholds_, dtype=np.float64), np.asarray(iso.y_thresholds_, dtype=np.float64))

    @classmethod
    def identity(cls) -> Calibrator:
        return cls(np.array([0.0, 1.0]), np.array([0.0, 1.0]))

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        return np.asarray(np.interp(probabilities, self.x, self.y))


def cbpe(
    probabilities: np.ndarray,
    threshold: float,
    calibrator: Calibrator,
    *,
    samples: int = CBPE_SAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Confidence-based performance estimation of ROC-AUC, precision and recall, without labels.

    With calibrated probabilities ``q``, the expected true positives above a score
    threshold ``t`` are ``sum(q[p >= t])`` and the expected false positives
    ``sum(1 - q[p >= t])``; sweeping ``t`` over the scores gives the expected ROC curve,
    whose area is the estimated ROC-AUC. The standard error is the spread of the ROC-AUC
    over label sets drawn from ``q`` (what the realized ROC-AUC of this cohort would scatter
    by if the calibration holds).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    q = np.clip(calibrator(p), 0.0, 1.0)
    order = np.argsort(-p, kind="stable")
    ps, qs = p[order], q[order]
    last_of_tie = np.r_[ps[1:] != ps[:-1], True]  # thresholds only between distinct scores
    tp = np.r_[0.0, np.cumsum(qs)[last_of_tie]]
    fp = np.r_[0.0, np.cumsum(1.0 - qs)[last_of_tie]]
    if tp[-1] <= 0 or fp[-1] <= 0:
        raise ChurnError("CBPE needs calibrated probabilities strictly between 0 and 1 for some rows")
    tpr, fpr = tp / tp[-1], fp / fp[-1]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    above = p >= threshold
    expected_tp, expected_fp, expected_fn = q[above].sum(), (1.0 - q[above]).sum(), q[~above].sum()

    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    ranks = rankdata(p)
    draws = rng.random((samples, p.size)) < q
    n_pos = draws.sum(axis=1)
    usable = (n_pos > 0) & (n_pos < p.size)
    draws, n_pos = draws[usable], n_pos[usable]
    aucs = (draws @ ranks - n_pos * (n_pos + 1) / 2.0) / (n_pos * (p.size - n_pos))
    return {
        "roc_auc": auc,
        "roc_auc_standard_error": float(np.std(aucs, ddof=1)) if aucs.size > 1 else float("nan"),
        "precision": float(expected_tp / (expected_tp + expected_fp)) if above.any() else 0.0,
        "recall": float(expected_tp / (expected_tp + expected_fn)),
        "churn_rate": float(q.mean()),
    }


def fit_calibrator(frame: pd.DataFrame, reference_cohorts: int = 7) -> tuple[Calibrator, str]:
    """An isotonic calibrator on the labelled rows of the oldest ``reference_cohorts`` labelled cohorts.

    The oldest cohorts are the reference period (as in NannyML): the model's behaviour right
    after deployment. Calibrating on the newest labels instead would let a concept drift leak
    into the calibration. Identity when there are fewer labelled rows than the minimum.
    """
    known = frame["churned"].notna()
    days = sorted(set(frame.loc[known, "date"]))[:reference_cohorts]
    rows = known & frame["date"].isin(days)
    y = frame.loc[rows, "churned"].to_numpy()
    if rows.sum() < MIN_LABELLED_ROWS or not 0 < y.sum() < y.size:
        return Calibrator.identity(), "nothing (too few labels yet: the model's probabilities are taken as calibrated)"
    where = f"{int(rows.sum())} labelled predictions of the cohorts {days[0]}..{days[-1]}"
    return Calibrator.fit(frame.loc[rows, "churn_probability"].to_numpy(dtype=np.float64), y), where
