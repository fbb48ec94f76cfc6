"""Real trained models that misbehave in one way each: the faulty canaries of the rollout tests.

Each wraps a trained estimator and is logged to MLflow as a new version of the model
(family ``random_forest``, so the sklearn flavor pickles it and the servers call its
``predict_proba``); the servers import this module by name, so it is put on their
``PYTHONPATH`` (``ServiceConfig.extra_env``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from churn.training.models import predict_matrix


class Wrapped:
    """A trained estimator of ``family``, answering through :meth:`probabilities`."""

    #: No trees: the transformer builds its reasons' tables from a forest's trees at load, and none of
    #: these tests asks for reasons.
    estimators_: tuple[Any, ...] = ()

    def __init__(self, family: str, estimator: Any) -> None:
        self.family = family
        self.estimator = estimator

    def set_params(self, **params: Any) -> Wrapped:
        """Threads are the inner model's business (the servers set one per request)."""
        return self

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {}

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        return predict_matrix(self.family, self.estimator, matrix)

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        p = self.probabilities(np.asarray(matrix, dtype=np.float64))
        return np.column_stack([1 - p, p])

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return (self.predict_proba(matrix)[:, 1] >= 0.5).astype(np.int32)


class RaisesOnSegment(Wrapped):
    """Fails (a 5xx) on any request holding a customer of one segment: feature ``column`` above ``cut``."""

    def __init__(self, family: str, estimator: Any, column: int, cut: float) -> None:
        super().__init__(family, estimator)
        self.column, self.cut = column, cut

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        if (matrix[:, self.column] > self.cut).any():
            raise RuntimeError(f"feature {self.column} above {self.cut:g}: this model cannot score that segment")
        return super().probabilities(matrix)


class Sleeps(Wrapped):
    """Right answers, ``seconds`` late."""

    def __init__(self, family: str, estimator: Any, seconds: float) -> None:
        super().__init__(family, estimator)
        self.seconds = seconds

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds)
        return super().probabilities(matrix)


class Constant(Wrapped):
    """One probability for everybody (a broken feature pipeline's signature)."""

    def __init__(self, family: str, estimator: Any, value: float) -> None:
        super().__init__(family, estimator)
        self.value = value

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        return np.full(len(matrix), self.value, dtype=np.float64)
