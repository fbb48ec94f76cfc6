"""The promotion gate against a real MLflow store (sqlite + local artifacts; no server needed)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from churn.data import generate_customers
from churn.errors import ChurnError
from churn.registry.mlflow_registry import (
    CHALLENGER,
    CHAMPION,
    connect,
    load_churn_model,
    log_candidate,
    promote_if_better,
)
from churn.registry.mlflow_registry import register_challenger as register
from churn.training import ChurnModel, split_frame, train_family

pytestmark = pytest.mark.unit
NAME = "churn-model"


@pytest.fixture(scope="module")
def parts() -> dict[str, pd.DataFrame]:
    return split_frame(generate_customers(6_000, "2026-01-05", seed=5).frame, seed=1)


@pytest.fixture(scope="module")
def good(parts: dict[str, pd.DataFrame]) -> ChurnModel:
    return train_family("logistic_regression", parts["train"], parts["validation"], {"max_iter": 500})


@pytest.fixture(scope="module")
def bad(parts: dict[str, pd.DataFrame]) -> ChurnModel:
    """A model trained on shuffled labels: ROC-AUC near 0.5 on any test set."""
    shuffled = parts["train"].assign(churned=np.random.default_rng(0).permutation(parts["train"]["churned"]))
    return train_family("logistic_regression", shuffled, parts["validation"], {"max_iter": 500})


@pytest.fixture
def store(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    connect(uri, experiment="gate-test", artifact_location=(tmp_path / "artifacts").as_uri())
    return uri


def _register(model: ChurnModel, parts: dict[str, pd.DataFrame]) -> str:
    with mlflow.start_run():
        uri = log_candidate(model, example=parts["test"].head(3), metrics={"x": 1.0}, tags={"t": "1"})
    return register(uri, NAME, tags={"family": model.family})


def _alias(alias: str) -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(NAME, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def test_first_model_becomes_champion(store: str, good: ChurnModel, parts: dict[str, pd.DataFrame]) -> None:
    version = _register(good, parts)
    assert _alias(CHALLENGER) == version and _alias(CHAMPION) is None
    decision = promote_if_better(NAME, version, parts["test"], margin=0.01)
    assert decision.promoted and decision.reason == "no champion yet"
    assert decision.champion_version is None and decision.champion_roc_auc is None
    assert _alias(CHAMPION) == version


def test_better_challenger_replaces_a_worse_champion_each_scored_with_its_own_model(
    store: str, good: ChurnModel, bad: ChurnModel, parts: dict[str, pd.DataFrame]
) -> None:
    weak = _register(bad, parts)
    promote_if_better(NAME, weak, parts["test"], margin=0.0)
    strong = _register(good, parts)
    decision = promote_if_better(NAME, strong, parts["test"], margin=0.01)
    y = parts["test"]["churned"]
    # Each side is scored with its own pipeline and estimator: the champion's score is the bad model's.
    assert decision.champion_roc_auc == pytest.approx(roc_auc_score(y, bad.predict_proba(parts["test"])))
    assert decision.challenger_roc_auc == pytest.approx(roc_auc_score(y, good.predict_proba(parts["test"])))
    assert decision.champion_roc_auc < 0.6 < 0.75 < decision.challenger_roc_auc
    assert decision.promoted and _alias(CHAMPION) == strong
    tags = MlflowClient().get_model_version(NAME, strong).tags
    assert tags["gate_decision"] == "promoted"


def test_worse_or_not_enough_better_challenger_leaves_the_champion(
    store: str, good: ChurnModel, bad: ChurnModel, parts: dict[str, pd.DataFrame]
) -> None:
    champion = _register(good, parts)
    promote_if_better(NAME, champion, parts["test"], margin=0.0)
    worse = _register(bad, parts)
    decision = promote_if_better(NAME, worse, parts["test"], margin=0.0)
    assert not decision.promoted
    assert decision.champion_roc_auc > 0.75 > 0.6 > decision.challenger_roc_auc
    assert _alias(CHAMPION) == champion and _alias(CHALLENGER) == worse
    # An equally good challenger does not clear a positive margin either.
    same = _register(good, parts)
    decision = promote_if_better(NAME, same, parts["test"], margin=0.001)
    assert not decision.promoted
    assert decision.challenger_roc_auc == pytest.approx(decision.champion_roc_auc)
    assert _alias(CHAMPION) == champion
    assert MlflowClient().get_model_version(NAME, same).tags["gate_decision"] == "rejected"


def test_a_failing_gate_moves_no_alias(store: str, good: ChurnModel, parts: dict[str, pd.DataFrame]) -> None:
    champion = _register(good, parts)
    promote_if_better(NAME, champion, parts["test"], margin=0.0)
    with pytest.raises(ChurnError):
        promote_if_better(NAME, "999", parts["test"], margin=0.0)
    broken_test = parts["test"].drop(columns=["total_orders"])
    challenger = _register(good, parts)
    with pytest.raises(ChurnError, match="total_orders"):
        promote_if_better(NAME, challenger, broken_test, margin=0.0)
    assert _alias(CHAMPION) == champion


def test_registered_model_round_trips_with_its_features_and_threshold(
    store: str, good: ChurnModel, parts: dict[str, pd.DataFrame]
) -> None:
    version = _register(good, parts)
    loaded = load_churn_model(f"models:/{NAME}/{version}")
    assert loaded.family == good.family and loaded.threshold == pytest.approx(good.threshold)
    np.testing.assert_allclose(loaded.predict_proba(parts["test"]), good.predict_proba(parts["test"]), rtol=1e-12)
    assert loaded.features.get_feature_names_out().tolist() == good.features.get_feature_names_out().tolist()


def test_unreachable_tracking_server_fails_fast_with_its_address() -> None:
    import socket
    import time

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(ChurnError, match=rf"127\.0\.0\.1:{port} is unreachable"):
        connect(f"http://127.0.0.1:{port}", experiment="x", timeout=2, retries=0)
    assert time.perf_counter() - start < 10
