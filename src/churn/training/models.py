"""The four model families, trained on the shared feature pipeline.

Each family handles class imbalance its own way (balanced class weights for the
scikit-learn models, ``scale_pos_weight`` for the boosters), the boosters stop early on
the validation split, and every estimator gets an explicit thread count.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churn.data.schema import LABEL
from churn.errors import ChurnError
from churn.features import FeaturePipeline
from churn.training.evaluate import best_f1_threshold, classification_metrics

FAMILIES = ("logistic_regression", "random_forest", "xgboost", "lightgbm")


@dataclass
class ChurnModel:
    """A fitted feature pipeline, a fitted estimator and the decision threshold: one servable model."""

    family: str
    features: FeaturePipeline
    estimator: Any
    threshold: float = 0.5
    params: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Churn probability of each row of an already transformed model matrix."""
        return predict_matrix(self.family, self.estimator, matrix)

    def predict_proba(self, raw: Any) -> np.ndarray:
        """Churn probability of raw customer records (DataFrame, record or records)."""
        return self.predict_matrix(self.features.transform(raw))

    def with_threads(self, threads: int) -> ChurnModel:
        """A copy of the model that predicts on ``threads`` threads (the original keeps its own)."""
        return dataclasses.replace(self, estimator=with_threads(self.family, self.estimator, threads))

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        """The churn label (1 at or above the stored threshold) of each probability: serving and batch alike."""
        return (probabilities >= self.threshold).astype(np.int32)


def predict_matrix(family: str, estimator: Any, matrix: np.ndarray) -> np.ndarray:
    """The fastest correct predict path of each family (no DataFrame, no feature-name checks)."""
    if family == "xgboost":
        booster = estimator.get_booster()
        limit = (0, estimator.best_iteration + 1) if getattr(estimator, "best_iteration", None) is not None else (0, 0)
        return np.asarray(booster.inplace_predict(matrix, iteration_range=limit), dtype=np.float64)
    if family == "lightgbm":
        booster = estimator.booster_
        threads = int(estimator.get_params().get("n_jobs") or 0)  # 0 = OpenMP's default
        probabilities = booster.predict(matrix, num_iteration=estimator.best_iteration_ or None, num_threads=threads)
        return np.asarray(probabilities, dtype=np.float64)
    if family == "logistic_regression" and estimator.coef_.shape[0] == 1:
        # What LogisticRegression.predict_proba computes for two classes, minus its per-call input
        # checks (half the cost of a one-row request): expit(X @ coef.T + intercept).
        from scipy.special import expit

        return np.asarray(expit(matrix @ estimator.coef_.T + estimator.intercept_).ravel(), dtype=np.float64)
    return np.asarray(estimator.predict_proba(matrix)[:, 1], dtype=np.float64)


def set_threads(family: str, estimator: Any, threads: int) -> None:
    """Make ``estimator`` predict on ``threads`` threads (serving: one per request; concurrency comes from requests)."""
    if family == "xgboost":
        # The attribute, not set_params: that re-sends every parameter to the booster (0.3 ms, paid twice
        # by each large batch a server predicts on more threads).
        estimator.n_jobs = threads
        estimator.get_booster().set_param({"nthread": threads})
    elif family == "lightgbm":
        estimator.set_params(n_jobs=threads)  # predict_matrix passes it on (Booster.reset_parameter crashes here)
    elif family == "random_forest":
        estimator.set_params(n_jobs=threads)


def with_threads(family: str, estimator: Any, threads: int) -> Any:
    """A copy of ``estimator`` that predicts on ``threads`` threads; ``estimator`` is left as it is.

    A booster is copied whole: changing a booster's thread count makes it reconfigure on its
    next call (0.7 ms of a 1,000-row XGBoost batch, when a server switched one model back and
    forth), and LightGBM's parameters live in a dict a shallow copy would share. A forest's
    fitted trees are shared (its ``n_jobs`` is read per call; the trees can take gigabytes).
    """
    copied = copy.copy(estimator) if family == "random_forest" else copy.deepcopy(estimator)
    set_threads(family, copied, threads)
    return copied


def build_estimator(family: str, params: dict[str, Any], *, n_jobs: int, seed: int, pos_weight: float) -> Any:
    """A fresh, unfitted estimator of ``family`` with the given hyperparameters."""
    if family == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(class_weight="balanced", random_state=seed, **params)
    if family == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(class_weight="balanced_subsample", n_jobs=n_jobs, random_state=seed, **params)
    if family == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(
            scale_pos_weight=pos_weight,
            n_jobs=n_jobs,
            random_state=seed,
            eval_metric="auc",
            tree_method="hist",
            **params,
        )
    if family == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(
            scale_pos_weight=pos_weight, n_jobs=n_jobs, random_state=seed, verbose=-1, metric="auc", **params
        )
    raise ChurnError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")


def train_family(
    family: str,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    params: dict[str, Any],
    *,
    n_jobs: int = 2,
    seed: int = 42,
    rfm_bins: int = 5,
) -> ChurnModel:
    """Fit the feature pipeline on ``train``, then one model of ``family``; tune the threshold on validation.

    Returns:
        The fitted model; ``info`` holds validation metrics, timings and the best iteration.

    Raises:
        ChurnError: ``family`` is not one of :data:`FAMILIES` (checked before any work).

    """
    if family not in FAMILIES:
        raise ChurnError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    start = time.perf_counter()
    features = FeaturePipeline(rfm_bins=rfm_bins).fit(train)
    x_train, x_val = features.transform(train), features.transform(validation)
    y_train = train[LABEL].to_numpy(dtype=np.int64)
    y_val = validation[LABEL].to_numpy(dtype=np.int64)
    features_seconds = time.perf_counter() - start

    params = dict(params)
    stopping = params.pop("early_stopping_rounds", None)
    pos_weight = float((y_train == 0).sum() / max((y_train == 1).sum(), 1))
    estimator = build_estimator(family, params, n_jobs=n_jobs, seed=seed, pos_weight=pos_weight)
    start = time.perf_counter()
    if family == "xgboost":
        if stopping:
            estimator.set_params(early_stopping_rounds=stopping)
        estimator.fit(x_train, y_train, eval_set=[(x_val, y_val)], verbose=False)
        best_iteration = int(estimator.best_iteration) if stopping else None
    elif family == "lightgbm":
        import lightgbm

        callbacks = [lightgbm.early_stopping(stopping, verbose=False)] if stopping else []
        estimator.fit(x_train, y_train, eval_X=(x_val,), eval_y=(y_val,), callbacks=callbacks)
        best_iteration = int(estimator.best_iteration_) if stopping else None
    else:
        estimator.fit(x_train, y_train)
        best_iteration = None
    fit_seconds = time.perf_counter() - start

    p_val = predict_matrix(family, estimator, x_val)
    threshold = best_f1_threshold(y_val, p_val)
    info = {
        "validation": classification_metrics(y_val, p_val, threshold),
        "features_seconds": features_seconds,
        "fit_seconds": fit_seconds,
        "best_iteration": best_iteration,
        "train_rows": len(train),
        "pos_weight": pos_weight,
    }
    return ChurnModel(family, features, estimator, threshold, {**params, "early_stopping_rounds": stopping}, info)
