"""Real services for the integration tests: an S3 endpoint and an MLflow tracking server on loopback.

Nothing here is mocked: ``s3_endpoint`` (tests/conftest.py) is a real ``moto_server`` process speaking the S3
HTTP API (no MinIO binary is available on these machines), and ``mlflow_server`` is a
real ``mlflow server`` process with a sqlite backend store whose default artifact root is
that S3 endpoint. Tests talk to both over TCP, exactly as the pipeline does in a cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from prometheus_helpers import prometheus_binaries

from churn.config import ServingMode
from churn.serving.local import LocalService, ServiceConfig, free_port
from churn.training.models import ChurnModel
from servers import mlflow_server_process


@pytest.fixture
def closed_port_uri() -> str:
    """An ``http://`` URI on loopback where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def prometheus_bins() -> dict[str, str]:
    """Paths of promtool, prometheus and prometheus-pushgateway (installed now if missing)."""
    return prometheus_binaries()


@pytest.fixture(scope="session")
def mlflow_server(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of a real ``mlflow server`` (sqlite backend, artifacts in ``s3://mlflow/`` on ``s3_endpoint``)."""
    with mlflow_server_process(tmp_path_factory.mktemp("mlflow_server"), s3_endpoint) as uri:
        yield uri


@dataclass(frozen=True)
class ServedChampion:
    """A champion registered in a local MLflow store, and raw rows it has never seen."""

    tracking_uri: str
    model: ChurnModel
    rows: pd.DataFrame
    raw_file: Path


@pytest.fixture(scope="session")
def served_champion(tmp_path_factory: pytest.TempPathFactory) -> ServedChampion:
    """An XGBoost champion (the inplace_predict path) registered as churn-model@champion."""
    import mlflow

    from churn.data import generate_customers
    from churn.data.files import write_raw
    from churn.registry.mlflow_registry import CHAMPION, connect, load_churn_model, log_candidate, register_challenger
    from churn.scoring.batch import fit_risk_deciles
    from churn.training import split_frame, train_family

    root = tmp_path_factory.mktemp("champion")
    uri = f"sqlite:///{root}/mlflow.db"
    connect(uri, experiment="serving-test", artifact_location=(root / "artifacts").as_uri())
    parts = split_frame(generate_customers(6_000, "2026-01-05", seed=21).frame, seed=3)
    params = {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.1, "early_stopping_rounds": 20}
    trained = train_family("xgboost", parts["train"], parts["validation"], params)
    deciles = fit_risk_deciles(trained.predict_proba(parts["train"]))  # as the training pipeline logs its winner
    with mlflow.start_run():
        model_uri = log_candidate(trained, example=parts["test"].head(3), metrics={}, tags={}, risk_deciles=deciles)
    version = register_challenger(model_uri, "churn-model", tags={"family": "xgboost"})
    mlflow.MlflowClient().set_registered_model_alias("churn-model", CHAMPION, version)
    fresh = generate_customers(1_000, "2026-02-02", seed=99).frame
    raw_file = root / "customers_20260202.csv"
    write_raw([fresh], raw_file)
    return ServedChampion(uri, load_churn_model("models:/churn-model@champion"), fresh, raw_file)


@pytest.fixture(scope="session")
def churn_service(served_champion: ServedChampion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    """Predictor and transformer (gRPC between them) as real KServe servers on free loopback ports."""
    config = _shared_service_config(served_champion, tmp_path_factory.mktemp("serving-logs"), mode="transformer")
    with LocalService(config).start(timeout=120) as service:
        yield service


def _shared_service_config(served_champion: ServedChampion, log_dir: Path, mode: ServingMode) -> ServiceConfig:
    return ServiceConfig.on_free_ports(
        "models:/churn-model@champion",
        tracking_uri=served_champion.tracking_uri,
        mode=mode,
        max_batch_size=2_000,
        log_dir=log_dir,
        # A short body deadline, so the test of a body that never completes need not wait 30 s.
        extra_env={"CHURN_SERVING__BODY_READ_TIMEOUT_SECONDS": "3"},
    )


@pytest.fixture(scope="session")
def single_service(served_champion: ServedChampion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    """The same champion in single-pass mode (one KServe server), configured as ``churn_service``."""
    config = _shared_service_config(served_champion, tmp_path_factory.mktemp("single-serving-logs"), mode="single")
    with LocalService(config).start(timeout=120) as service:
        yield service


@pytest.fixture(scope="module", params=["transformer", "single"])
def service(request: pytest.FixtureRequest) -> LocalService:
    """The champion's service in each serving mode: a module using it runs every test against both."""
    name = "churn_service" if request.param == "transformer" else "single_service"
    served: LocalService = request.getfixturevalue(name)
    return served


@pytest.fixture
def own_service_config(served_champion: ServedChampion, tmp_path: Path) -> ServiceConfig:
    """The champion's service on ports of its own, for a test that breaks it (kills its predictor)."""
    return ServiceConfig.on_free_ports(
        "models:/churn-model@champion", tracking_uri=served_champion.tracking_uri, log_dir=tmp_path
    )
