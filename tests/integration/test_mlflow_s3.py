"""The training pipeline against a real MLflow server whose artifacts live in a real S3 endpoint.

Two pipeline runs (the first is shared through a module fixture): a first run that
promotes a champion and a second one on the same data that cannot beat it; then a run
against a closed port that must fail fast, before any task, without touching the registry.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import joblib
import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from churn.config import Settings
from churn.data import generate_customers
from churn.errors import ChurnError
from churn.kfp.local import LocalRun, local_parameters, run_local
from churn.registry.mlflow_registry import CHALLENGER, CHAMPION, load_churn_model
from churn.registry.model_dir import PIPELINE_FILE
from churn.stages import registry
from churn.training.models import FAMILIES, predict_matrix
from servers import s3_client

pytestmark = pytest.mark.integration

MODEL = "churn-model"
EXPERIMENT = "integration"
DATE = "2026-01-05"


@dataclass(frozen=True)
class Trained:
    """The first pipeline run, shared by the tests that build on it."""

    run: LocalRun
    version: str


@pytest.fixture(scope="module", autouse=True)
def s3_client_env(s3_endpoint: str, mlflow_server: str, aws_env: dict[str, str]) -> Iterator[None]:
    """S3 settings for this process and the pipeline's tasks (subprocesses that inherit ``os.environ``).

    MLflow clients write artifacts straight to S3 (``--default-artifact-root s3://``), so the
    client side needs the endpoint and credentials too, not only the server.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_S3_ENDPOINT_URL", s3_endpoint)
        for name, value in aws_env.items():
            mp.setenv(name, value)
        mlflow.set_tracking_uri(mlflow_server)
        mlflow.set_registry_uri(mlflow_server)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None unsets it (and MLFLOW_TRACKING_URI)
            mlflow.set_registry_uri(None)  # type: ignore[arg-type]


def _train(workdir: Path, tracking_uri: str, *, rows: int = 3000, **overrides: object) -> LocalRun:
    """Run the training pipeline with the local KFP runner from ``workdir`` (task logs: ``workdir/train.log``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "train.log"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        # run_local sets CHURN_DATA_DIR for its tasks; setting it here first lets the context undo it.
        mp.setenv("CHURN_DATA_DIR", str((workdir / "data").resolve()))
        settings = Settings(data_dir=workdir / "data")
        params = local_parameters(
            settings,
            rows=rows,
            date=DATE,
            mlflow_tracking_uri=tracking_uri,
            mlflow_experiment=EXPERIMENT,
            **overrides,
        )
        return run_local("training", settings, log=log, **params)


def _task_seconds(log: str, task: str) -> float:
    """Wall time of one task, from the local runner's ``HH:MM:SS.fff - LEVEL - ...`` lines in the log."""
    line = rf"^(\d\d:\d\d:\d\d\.\d+) - \w+ - (?:Executing task \S*'{task}'|Task \S*'{task}'\S* finished)"
    stamps = [dt.datetime.strptime(m.group(1), "%H:%M:%S.%f") for m in re.finditer(line, log, re.MULTILINE)]
    assert len(stamps) == 2, f"start and end of {task} not found in the log"
    return (stamps[1] - stamps[0]).total_seconds() % 86_400


def _alias(alias: str) -> str:
    return str(MlflowClient().get_model_version_by_alias(MODEL, alias).version)


@pytest.fixture(scope="module")
def first_run(s3_client_env: None, mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    run = _train(tmp_path_factory.mktemp("first_run"), mlflow_server)
    assert run.output == "promoted"  # on failure pytest shows the task logs (see the unreachable test)
    return Trained(run, _alias(CHAMPION))


def test_pipeline_logs_to_mlflow_with_artifacts_in_s3(first_run: Trained, s3_endpoint: str, s3_bucket: str) -> None:
    assert first_run.run.output == "promoted"
    client = MlflowClient()
    champion = client.get_model_version_by_alias(MODEL, CHAMPION)
    assert str(champion.version) == first_run.version == _alias(CHALLENGER)

    # The artifacts are in the bucket: the logged model (MLmodel + extra files) and the run's feature pipeline.
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
        for item in page.get("Contents", [])
    ]
    assert any(key.endswith("/MLmodel") for key in keys), keys
    assert any(key.endswith(f"extra_files/{PIPELINE_FILE}") for key in keys), keys
    assert any(key.endswith(f"feature_pipeline/{PIPELINE_FILE}") for key in keys), keys
    download_uri = client.get_model_version_download_uri(MODEL, champion.version)
    assert download_uri.startswith(f"s3://{s3_bucket}/"), download_uri

    # models:/churn-model@champion loads (estimator + features + threshold) and predicts.
    raw = generate_customers(200, "2026-01-06", seed=3).frame
    model = load_churn_model(f"models:/{MODEL}@{CHAMPION}")
    assert model.family in FAMILIES
    assert model.family == champion.tags["family"]
    proba = model.predict_proba(raw)
    assert proba.shape == (200,)
    assert np.isfinite(proba).all()
    assert ((proba >= 0) & (proba <= 1)).all()

    # The same URI as a generic pyfunc model (what MLServer's mlflow runtime serves). Every flavor we
    # log (sklearn, xgboost, lightgbm) wraps a *classifier*, and the pyfunc wrappers call the
    # estimator's ``predict``: the documented output is class labels at 0.5 (sklearn's
    # ``pyfunc_predict_fn`` defaults to "predict"), not probabilities and not our tuned threshold.
    matrix = model.features.transform(raw)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL}@{CHAMPION}")
    labels = np.asarray(pyfunc.predict(matrix))
    assert labels.shape == (200,)
    assert set(np.unique(labels).tolist()) <= {0, 1}
    np.testing.assert_array_equal(labels.astype(int), (model.predict_matrix(matrix) > 0.5).astype(int))
    # The estimator inside the pyfunc gives exactly the churn model's probabilities.
    raw_estimator = pyfunc.get_raw_model()
    assert np.allclose(predict_matrix(model.family, raw_estimator, matrix), model.predict_matrix(matrix), atol=1e-6)

    # The feature pipeline logged to the run that produced the version is the one inside the model.
    pipeline_file = mlflow.artifacts.download_artifacts(f"runs:/{champion.run_id}/feature_pipeline/{PIPELINE_FILE}")
    features = joblib.load(pipeline_file)
    np.testing.assert_array_equal(features.transform(raw), matrix)

    # Lineage: the winner's run is nested in a parent run that carries data, code and KFP run ids.
    parent_id = client.get_run(champion.run_id).data.tags["mlflow.parentRunId"]
    parent = client.get_run(parent_id).data.tags
    assert parent["data_fingerprint"].startswith("sha256:")
    assert parent["git_commit"]
    assert parent["kfp_run_id"]
    assert parent["registered_version"] == first_run.version
    assert parent["gate_decision"] == "promoted"
    experiment_id = client.get_run(parent_id).info.experiment_id
    children = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    assert len(children) == 4
    assert {run.data.tags["family"] for run in children} == set(FAMILIES)
    assert champion.run_id in {run.info.run_id for run in children}


def test_second_run_keeps_the_champion_unless_beaten(first_run: Trained, mlflow_server: str, tmp_path: Path) -> None:
    run = _train(tmp_path, mlflow_server, gate_margin=0.5)  # same data, impossible margin
    assert run.output == "rejected"
    client = MlflowClient()
    new = client.get_model_version_by_alias(MODEL, CHALLENGER)
    assert str(new.version) != first_run.version
    assert _alias(CHAMPION) == first_run.version
    assert new.tags["gate_decision"] == "rejected"
    first = client.get_model_version(MODEL, first_run.version)
    assert new.tags["data_fingerprint"] == first.tags["data_fingerprint"]  # really the same data


def test_unreachable_tracking_server_fails_fast(
    first_run: Trained, closed_port_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    champion = _alias(CHAMPION)
    temporary = tmp_path / "temporary"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))  # where kfp.local.init makes its workspace
    # The local run checks the server before any task starts.
    start = time.perf_counter()
    with pytest.raises(ChurnError, match=f"MLflow tracking server {re.escape(closed_port_uri)} is unreachable"):
        _train(tmp_path / "local", closed_port_uri, rows=1000)
    assert time.perf_counter() - start < 15
    assert not list((tmp_path / "local").rglob("train-model*"))  # nothing trained
    assert not list(temporary.iterdir())  # and no KFP workspace folder left behind
    # In a cluster the register task itself is the check: it fails at once, with bounded retries.
    start = time.perf_counter()
    with pytest.raises(ChurnError, match="unreachable"):
        registry.register(
            {},
            {},
            "unused.parquet",
            tracking_uri=closed_port_uri,
            experiment=EXPERIMENT,
            model_name=MODEL,
            timeout=2,
            retries=1,
        )
    assert time.perf_counter() - start < 15
    assert _alias(CHAMPION) == champion  # checked on the real server: nothing moved


def test_runs_land_in_the_requested_experiment_with_artifacts_in_s3(first_run: Trained, s3_bucket: str) -> None:
    client = MlflowClient()
    run_id = client.get_model_version(MODEL, first_run.version).run_id
    experiment = client.get_experiment(client.get_run(run_id).info.experiment_id)
    assert experiment.name == EXPERIMENT
    created = client.get_experiment_by_name(EXPERIMENT)
    assert created is not None
    assert created.artifact_location.startswith(f"s3://{s3_bucket}/")


def test_no_output_of_a_run_holds_the_credentials_it_was_given(
    first_run: Trained,
    aws_env: dict[str, str],
    s3_endpoint: str,
    s3_bucket: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Task logs, KFP artifacts, the MLflow server's store and log, every object in the bucket."""
    secret = aws_env["AWS_SECRET_ACCESS_KEY"].encode()
    assert len(secret) > 20  # a per-session random value (tests/servers.py), so any match is a leak
    searched = 0
    for path in Path(tmp_path_factory.getbasetemp()).rglob("*"):
        if path.is_file() and not path.is_symlink():
            searched += 1
            assert secret not in path.read_bytes(), f"{path} holds the S3 secret key"
    assert searched > 50 and (first_run.run.run_dir is not None and first_run.run.run_dir.is_dir())
    client = s3_client(s3_endpoint)
    objects = client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
    assert objects
    for item in objects:
        body = client.get_object(Bucket=s3_bucket, Key=item["Key"])["Body"].read()
        assert secret not in body, f"s3://{s3_bucket}/{item['Key']} holds the S3 secret key"
    # ... nor any MLflow param or tag of the run.
    for run in MlflowClient().search_runs([MlflowClient().get_experiment_by_name(EXPERIMENT).experiment_id]):
        assert secret.decode() not in str(run.data.params) + str(run.data.tags)
