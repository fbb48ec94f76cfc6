"""Threads per request: one for small requests, the server's cores for a large batch, and back at once."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from churn.data import generate_customers
from churn.serving.threads import ThreadedPredict, usable_cores
from churn.training import ChurnModel, split_frame, train_family
from churn.training import models as training_models

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cpu_max", "limit"),
    [
        ("max 100000\n", None),  # no quota: the affinity
        ("100000 100000\n", 1),
        ("150000 100000\n", 1),  # 1.5 CPUs: one thread, not two fighting for 1.5
        ("50000 100000\n", 1),  # under one CPU: still one thread
        ("6400000 100000\n", None),  # more than the machine: the affinity
        ("garbage\n", None),
        (None, None),  # no cgroup v2 file (cgroup v1, or not Linux)
    ],
)
def test_usable_cores_follow_the_affinity_and_the_cgroup_quota(
    tmp_path: Path, cpu_max: str | None, limit: int | None
) -> None:
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    assert usable_cores(path) == (min(affinity, limit) if limit else affinity)


@pytest.fixture(scope="module")
def xgboost_model() -> ChurnModel:
    parts = split_frame(generate_customers(2_000, "2026-01-05", seed=8).frame, seed=2)
    params = {"n_estimators": 20, "max_depth": 3, "early_stopping_rounds": 5}
    return train_family("xgboost", parts["train"], parts["validation"], params)


def _nthread(model: ChurnModel) -> int:
    return int(json.loads(model.estimator.get_booster().save_config())["learner"]["generic_param"]["nthread"])


def test_a_large_batch_predicts_on_a_copy_with_the_batch_threads_and_the_model_keeps_one(
    xgboost_model: ChurnModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real = training_models.predict_matrix

    def recording(family: str, estimator: Any, matrix: np.ndarray) -> np.ndarray:
        seen.append(int(json.loads(estimator.get_booster().save_config())["learner"]["generic_param"]["nthread"]))
        return real(family, estimator, matrix)

    monkeypatch.setattr(training_models, "predict_matrix", recording)
    training_models.set_threads("xgboost", xgboost_model.estimator, 1)
    predict = ThreadedPredict(xgboost_model, xgboost_model.with_threads(2), batch_min_rows=100)
    matrix = np.random.default_rng(0).random((150, xgboost_model.features.n_features_out_))
    small, large, small_again = predict(matrix[:99]), predict(matrix), predict(matrix[:99])
    assert seen == [1, 2, 1] and _nthread(xgboost_model) == 1  # the served model was never switched
    assert predict.batch_model.estimator.get_booster() is not xgboost_model.estimator.get_booster()
    np.testing.assert_allclose(small, large[:99])  # the same answers on any number of threads
    np.testing.assert_array_equal(small, small_again)


@pytest.mark.parametrize("family", ["logistic_regression", "random_forest", "lightgbm"])
def test_a_copy_on_more_threads_answers_alike_and_leaves_the_model_as_it_was(family: str) -> None:
    parts = split_frame(generate_customers(1_000, "2026-01-05", seed=9).frame, seed=3)
    params = {"n_estimators": 10} if family != "logistic_regression" else {}
    model = train_family(family, parts["train"], parts["validation"], params)
    training_models.set_threads(family, model.estimator, 1)
    before = model.estimator.get_params()
    copied = model.with_threads(2)
    assert model.estimator.get_params() == before  # the served model's own settings are untouched
    if family != "logistic_regression":
        assert copied.estimator.get_params()["n_jobs"] == 2
    matrix = model.features.transform(parts["validation"].drop(columns=["churned"]))
    np.testing.assert_allclose(copied.predict_matrix(matrix), model.predict_matrix(matrix))


def test_the_settings_choose_the_batch_threads(xgboost_model: ChurnModel, monkeypatch: pytest.MonkeyPatch) -> None:
    cores = usable_cores()
    default = ThreadedPredict.from_settings(xgboost_model, threads=1)
    assert _nthread(default.batch_model) == cores and (default.batch_model is xgboost_model) == (cores == 1)
    monkeypatch.setenv("CHURN_SERVING__BATCH_THREADS", "3")
    monkeypatch.setenv("CHURN_SERVING__BATCH_THREADS_MIN_ROWS", "500")
    predict = ThreadedPredict.from_settings(xgboost_model, threads=1)
    assert (_nthread(predict.model), _nthread(predict.batch_model), predict.batch_min_rows) == (1, 3, 500)
    assert predict.model is xgboost_model  # set at once: every request but a large batch
    monkeypatch.setenv("CHURN_SERVING__BATCH_THREADS", "1")
    assert ThreadedPredict.from_settings(xgboost_model, threads=1).batch_model is xgboost_model  # no copy needed
