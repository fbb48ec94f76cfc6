"""A challenger for the shadow tests: the champion's estimator, answering differently and, if asked, slowly.

It lives in its own folder, put on the shadow predictor's PYTHONPATH (``ServiceConfig.extra_env``),
so that the pickled model names this module and a real predictor process can load it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class ShadowClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """``inner``'s churn probability raised to ``exponent``, after sleeping ``delay_seconds`` per call."""

    def __init__(self, inner: Any = None, delay_seconds: float = 0.0, exponent: float = 1.0, n_jobs: Any = None):
        self.inner = inner
        self.delay_seconds = delay_seconds
        self.exponent = exponent
        self.n_jobs = n_jobs

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        churn = np.asarray(self.inner.predict_proba(matrix)[:, 1], dtype=np.float64) ** self.exponent
        return np.column_stack([1 - churn, churn])
