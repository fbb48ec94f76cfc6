"""Boosters on Dask: XGBoost and LightGBM trained on every row across the workers, kept as plain models.

``xgboost.dask`` and ``lightgbm.dask`` train one booster over all partitions (each worker
feeds its own) with early stopping on the validation split; the result is turned into the
same single-node estimator the pandas path logs, so registry, gate, serving and monitoring
do not change. The threshold is tuned on validation probabilities computed per partition.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churn.data.schema import LABEL
from churn.errors import ChurnError
from churn.features.pipeline import FeaturePipeline
from churn.scale.features import transform
from churn.scale.frames import compute
from churn.training.evaluate import best_f1_threshold, classification_metrics
from churn.training.models import ChurnModel, build_estimator, predict_matrix

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

DASK_FAMILIES = ("xgboost", "lightgbm")


def _labels(part: pd.DataFrame) -> pd.Series:
    return pd.Series(part[LABEL].to_numpy(dtype=np.int64), index=part.index, name=LABEL)


def _probabilities(part: pd.DataFrame, family: str, estimator: Any) -> pd.Series:
    return pd.Series(predict_matrix(family, estimator, part.to_numpy()), index=part.index)


def _load_booster(trained: Any, estimator: Any) -> Any:
    """``estimator`` (a fresh single-node ``XGBClassifier``) holding the Dask-trained booster."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.json"
        trained.save_model(path)
        estimator.load_model(path)
    return estimator


def train_dask(
    family: str,
    client: Client,
    features: FeaturePipeline,
    train: dd.DataFrame,
    validation: dd.DataFrame,
    params: dict[str, Any],
    *,
    n_jobs: int = 1,
    seed: int = 42,
) -> ChurnModel:
    """Train ``family`` on typed raw Dask frames with a fitted feature pipeline.

    Raises:
        ChurnError: ``family`` has no Dask trainer here (see :data:`DASK_FAMILIES`).

    """
    if family not in DASK_FAMILIES:
        raise ChurnError(f"no Dask trainer for {family!r}; the Dask engine trains {', '.join(DASK_FAMILIES)}")
    x_train, x_val = transform(features, train), transform(features, validation)
    y_train = train.map_partitions(_labels, meta=pd.Series(dtype=np.int64, name=LABEL))
    y_val = validation.map_partitions(_labels, meta=pd.Series(dtype=np.int64, name=LABEL))
    positives, rows = compute(y_train.sum(), y_train.shape[0], what="training")
    pos_weight = float((rows - positives) / max(positives, 1))
    params = dict(params)
    stopping = params.pop("early_stopping_rounds", None)
    # The pandas path's estimator, hyperparameters and all, trained the distributed way.
    estimator = build_estimator(family, params, n_jobs=n_jobs, seed=seed, pos_weight=pos_weight)
    start = time.perf_counter()
    if family == "xgboost":
        from xgboost.dask import DaskXGBClassifier

        model = DaskXGBClassifier(**estimator.get_params())
        model.set_params(early_stopping_rounds=stopping)
        model.client = client
        model.fit(x_train, y_train, eval_set=[(x_val, y_val)], verbose=False)
        estimator = _load_booster(model, estimator)
        best = estimator.best_iteration if stopping else None
    else:
        import lightgbm

        # No early stopping here: each worker scores its own validation rows, so workers stop at
        # different rounds and LightGBM's socket network fails ("Connection reset by peer", measured).
        model = lightgbm.DaskLGBMClassifier(client=client, **estimator.get_params())
        model.fit(x_train, y_train)
        estimator = model.to_local()
        best = None
    fit_seconds = time.perf_counter() - start
    p_val, labels = compute(
        x_val.map_partitions(_probabilities, family, estimator, meta=pd.Series(dtype=np.float64)),
        y_val,
        what="training",
    )
    y, p = labels.to_numpy(), p_val.to_numpy()
    threshold = best_f1_threshold(y, p)
    info = {
        "validation": classification_metrics(y, p, threshold),
        "fit_seconds": fit_seconds,
        "best_iteration": None if best is None else int(best),
        "train_rows": int(rows),
        "pos_weight": pos_weight,
        "engine": "dask",
    }
    if family == "lightgbm" and stopping:
        info["note"] = f"LightGBM on Dask trains all {estimator.n_estimators} rounds: no early stopping yet"
    return ChurnModel(family, features, estimator, threshold, {**params, "early_stopping_rounds": stopping}, info)
