"""A champion logged to a real MLflow store (sqlite + local artifacts), with its risk decile cut points.

Shared by the unit tests of batch scoring and of the Dask engine's scoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from churn.data import generate_customers
from churn.training import ChurnModel, split_frame, train_family


@dataclass(frozen=True)
class LoggedModel:
    model: ChurnModel
    model_dir: Path
    train: pd.DataFrame


@pytest.fixture(scope="session")
def logged_model(tmp_path_factory: pytest.TempPathFactory) -> LoggedModel:
    """A small LightGBM model logged like the training pipeline logs its winner, downloaded as KServe would."""
    import mlflow

    from churn.registry.mlflow_registry import connect, log_candidate
    from churn.scoring.batch import fit_risk_deciles

    root = tmp_path_factory.mktemp("scoring-model")
    connect(f"sqlite:///{root}/mlflow.db", experiment="scoring", artifact_location=(root / "artifacts").as_uri())
    parts = split_frame(generate_customers(4_000, "2026-01-05", seed=61).frame, seed=2)
    params = {"n_estimators": 60, "num_leaves": 7, "early_stopping_rounds": 10}
    trained = train_family("lightgbm", parts["train"], parts["validation"], params, n_jobs=1)
    deciles = fit_risk_deciles(trained.predict_proba(parts["train"]))
    with mlflow.start_run():
        uri = log_candidate(trained, example=parts["test"].head(3), metrics={}, tags={}, risk_deciles=deciles)
    model_dir = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(root / "model")))
    return LoggedModel(trained, model_dir, parts["train"])
