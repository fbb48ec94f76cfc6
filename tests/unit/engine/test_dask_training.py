"""Boosters on Dask: the kept model is the plain single-node one, as good as the pandas path's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
from distributed import Client
from lightgbm import LGBMClassifier
from sklearn.metrics import roc_auc_score
from xgboost import XGBClassifier

from churn.data.generator import generate_customers
from churn.data.schema import LABEL
from churn.engine.dask.frames import read_raw, typed
from churn.engine.dask.split import hash_split
from churn.engine.dask.training import (
    LIGHTGBM_BLOCK_ROUNDS,
    add_raw_score,
    early_stopping_round,
    merge_lightgbm_models,
    train_dask,
    validation_auc_by_round,
)
from churn.errors import ChurnError
from churn.features.pipeline import FeaturePipeline
from churn.training.models import train_family
from churn.training.split import hash_split_frame

Writer = Callable[[pd.DataFrame, Path, int], Path]
PARAMS = {
    "xgboost": {"n_estimators": 300, "learning_rate": 0.1, "max_depth": 4, "early_stopping_rounds": 20},
    "lightgbm": {"n_estimators": 400, "learning_rate": 0.1, "num_leaves": 15, "early_stopping_rounds": 20},
}
LOCAL = {"xgboost": XGBClassifier, "lightgbm": LGBMClassifier}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_dask_booster_matches_the_pandas_path(
    family: str, client: Client, write_partitions: Writer, tmp_path: Path
) -> None:
    frame = generate_customers(200_000, "2026-06-30", seed=3).frame
    ddf = typed(read_raw(write_partitions(frame, tmp_path / "c", 4)))
    typed_frame = ddf.compute().reset_index(drop=True)
    local = hash_split_frame(typed_frame, seed=1)
    parts = hash_split(ddf, seed=1)
    features = FeaturePipeline().fit(local["train"])
    model = train_dask(family, client, features, parts["train"], parts["validation"], PARAMS[family], seed=1)
    assert type(model.estimator) is LOCAL[family]
    assert model.info["train_rows"] == len(local["train"])
    reference = train_family(family, local["train"], local["validation"], PARAMS[family], n_jobs=1, seed=1)
    test = local["test"]
    y = test[LABEL].to_numpy(dtype=np.int64)
    auc_dask = roc_auc_score(y, model.predict_proba(test))
    auc_pandas = roc_auc_score(y, reference.predict_proba(test))
    assert auc_dask > 0.75
    # The same 200K rows and split on both engines (the bound); both stop early on validation.
    assert abs(auc_dask - auc_pandas) <= 0.005, (auc_dask, auc_pandas)
    assert 0 < model.threshold < 1
    best = model.info["best_iteration"]
    assert best is not None and 1 <= best < PARAMS[family]["n_estimators"]
    if family == "lightgbm":
        # Trained in blocks that stop once patience runs out, not all n_estimators rounds.
        patience, trained = PARAMS[family]["early_stopping_rounds"], model.info["trained_rounds"]
        assert trained - best >= patience
        assert trained <= best + patience + LIGHTGBM_BLOCK_ROUNDS
        assert trained < PARAMS[family]["n_estimators"], (best, trained)
        assert model.estimator.booster_.current_iteration() == trained
        # Continued boosters must still log as a plain model (MLflow's skops check refused the first cut).
        import mlflow.lightgbm

        mlflow.lightgbm.save_model(model.estimator, tmp_path / "logged")
        reloaded = mlflow.lightgbm.load_model(str(tmp_path / "logged"))
        np.testing.assert_allclose(
            reloaded.predict_proba(model.features.transform(test))[:, 1], model.predict_proba(test)
        )


def test_lightgbm_rounds_curve_is_lightgbms_own_validation_auc(client: Client, raw: pd.DataFrame) -> None:
    """The per-partition curve is LightGBM's own evaluation, and the round kept is early stopping's."""
    import dask.dataframe as dd

    data = hash_split_frame(typed(dd.from_pandas(raw, npartitions=1)).compute(), seed=2)
    features = FeaturePipeline().fit(data["train"])
    x_train, x_val = features.transform(data["train"]), features.transform(data["validation"])
    y_train, y_val = data["train"][LABEL].to_numpy(int), data["validation"][LABEL].to_numpy(int)
    recorded: dict[str, Any] = {}
    estimator = LGBMClassifier(n_estimators=120, learning_rate=0.2, num_leaves=7, verbose=-1, n_jobs=1, metric="auc")
    estimator.fit(
        x_train,
        y_train,
        eval_set=[(x_val, y_val)],
        callbacks=[lightgbm.record_evaluation(recorded), lightgbm.early_stopping(10, verbose=False)],
    )
    names = [str(n) for n in features.get_feature_names_out()]
    x_dd = dd.from_pandas(pd.DataFrame(x_val, columns=names), npartitions=3)
    y_dd = dd.from_pandas(pd.Series(y_val, name=LABEL), npartitions=3)
    curve = validation_auc_by_round(estimator.booster_, x_dd, y_dd, chunk=97)
    own = np.asarray(recorded["valid_0"]["auc"])
    # The booster kept only its best rounds; those agree up to the bins' tie error (distinct margins
    # sharing a 0.012-wide bin), at most a few 1e-3 on these 450 validation rows with 7-leaf trees.
    assert curve.size == estimator.best_iteration_
    np.testing.assert_allclose(curve, own[: curve.size], atol=5e-3)
    assert np.corrcoef(curve, own[: curve.size])[0, 1] > 0.99
    assert own[early_stopping_round(curve, 10) - 1] >= own.max() - 1e-3


def test_lightgbm_blocks_merge_into_the_continued_model(client: Client, raw: pd.DataFrame) -> None:
    """Blocks boosted from the earlier blocks' raw score, merged, are the model an ``init_model`` continues to."""
    import dask.dataframe as dd

    data = hash_split_frame(typed(dd.from_pandas(raw, npartitions=1)).compute(), seed=2)
    features = FeaturePipeline().fit(data["train"])
    x_train, x_val = features.transform(data["train"]), features.transform(data["validation"])
    y_train, y_val = data["train"][LABEL].to_numpy(int), data["validation"][LABEL].to_numpy(int)
    params = {"learning_rate": 0.2, "num_leaves": 7, "verbose": -1, "n_jobs": 1, "subsample": 0.8, "subsample_freq": 1}
    first = LGBMClassifier(n_estimators=7, random_state=1, **params).fit(x_train, y_train)
    margin = first.predict(x_train, raw_score=True)
    second = LGBMClassifier(n_estimators=9, random_state=8, **params).fit(x_train, y_train, init_score=margin)
    continued = LGBMClassifier(n_estimators=9, random_state=8, **params).fit(
        x_train, y_train, init_model=first.booster_
    )
    merged = lightgbm.Booster(model_str=merge_lightgbm_models([m.booster_.model_to_string() for m in (first, second)]))
    assert merged.current_iteration() == continued.booster_.current_iteration() == 16
    np.testing.assert_allclose(
        merged.predict(x_val, raw_score=True), continued.predict(x_val, raw_score=True), rtol=0, atol=1e-12
    )
    # Each block's validation curve, counted from the raw score the block starts from, is the
    # merged model's curve from that round on; the margin is advanced partition for partition.
    names = [str(n) for n in features.get_feature_names_out()]
    x_dd = dd.from_pandas(pd.DataFrame(x_val, columns=names), npartitions=3)
    y_dd = dd.from_pandas(pd.Series(y_val, name=LABEL), npartitions=3)
    curve = validation_auc_by_round(merged, x_dd, y_dd, chunk=97)
    margin_val = add_raw_score(x_dd, None, first.booster_)
    np.testing.assert_allclose(margin_val.compute().to_numpy(), first.predict(x_val, raw_score=True))
    later = validation_auc_by_round(second.booster_, x_dd, y_dd, margin=margin_val, chunk=97)
    np.testing.assert_allclose(later, curve[7:], atol=1e-9)
    advanced = add_raw_score(x_dd, margin_val, second.booster_).compute().to_numpy()
    np.testing.assert_allclose(advanced, merged.predict(x_val, raw_score=True), atol=1e-9)


def test_early_stopping_round_keeps_the_best_before_patience_runs_out() -> None:
    auc = np.array
    assert early_stopping_round(auc([0.70, 0.75, 0.80, 0.79, 0.78, 0.90]), 2) == 3  # stops before the late peak
    assert early_stopping_round(auc([0.70, 0.75, 0.80, 0.79, 0.85, 0.86]), 3) == 6  # the gain came in time
    assert early_stopping_round(auc([0.8, 0.8, 0.8]), 5) == 1  # a tie is no gain


def test_other_families_are_refused_clearly(client: Client) -> None:
    with pytest.raises(ChurnError, match="no Dask trainer for 'random_forest'"):
        train_dask("random_forest", client, FeaturePipeline(), None, None, {})  # type: ignore[arg-type]
