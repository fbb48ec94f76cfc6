"""The training pipeline under KFP's local runner (SubprocessRunner: every task is a real subprocess).

Only the KFP backend is missing here; the components run the same code a cluster pod runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from churn.config import Settings
from churn.errors import ChurnError
from churn.jobs.files import generate_file
from churn.kfp.compile import compile_pipeline
from churn.kfp.local import local_parameters, run_local
from churn.registry.mlflow_registry import connect_registry

pytestmark = pytest.mark.components
ROOT = Path(__file__).resolve().parents[2]


def test_committed_yaml_is_not_stale(tmp_path: Path) -> None:
    fresh = compile_pipeline("training", tmp_path)
    committed = ROOT / "pipelines/compiled/training_pipeline.yaml"
    assert committed.is_file(), "run `churn pipeline compile` and commit pipelines/compiled/"
    assert list(yaml.safe_load_all(fresh.read_text())) == list(yaml.safe_load_all(committed.read_text())), (
        "pipelines/compiled/training_pipeline.yaml is stale: run `churn pipeline compile` and commit it"
    )


def test_compiled_pipeline_pins_the_image_and_installs_nothing(tmp_path: Path) -> None:
    from churn import __version__

    spec = next(yaml.safe_load_all(compile_pipeline("training", tmp_path).read_text()))  # then the platform spec
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 11  # one per task: load, validate, split, 4 x train, select, register, promote, deploy
    for executor in executors.values():
        assert executor["container"]["image"].endswith(f"/churn:{__version__}")
        assert "pip install" not in " ".join(executor["container"]["command"])
    tasks = spec["root"]["dag"]["tasks"]
    assert sum(1 for t in tasks.values() if t["componentRef"]["name"].startswith("comp-train-model")) == 4
    # In a cluster, the MLflow/S3 tasks read the chart's credentials Secret as env (kfp-kubernetes).
    platform = spec_platform(compile_pipeline("training", tmp_path))
    with_secret = {name for name, config in platform.items() if config.get("secretAsEnv")}
    assert {"exec-load-data", "exec-register-model", "exec-promote-model", "exec-deploy-model"} <= with_secret


def spec_platform(path: Path) -> dict[str, Any]:
    docs = list(yaml.safe_load_all(path.read_text()))
    platform = next(d for d in docs if d and "platforms" in d)
    return dict(platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"])


def _versions(settings: Settings) -> list[str]:
    connect_registry(settings.tracking_uri)
    return [v.version for v in MlflowClient().search_model_versions("name='churn-model'")]


def test_invalid_data_stops_at_validation_then_a_rerun_trains_and_promotes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHURN_DATA_DIR", raising=False)
    settings = Settings(data_dir=tmp_path / "data")
    good = generate_file(settings, rows=3_000, date="2026-01-05").path
    bad = tmp_path / "bad.csv"
    lines = good.read_text().splitlines()
    lines[5] = lines[5].replace('"DE"', '"Atlantis"').replace('"FR"', '"Atlantis"').replace('"GB"', '"Atlantis"')
    bad.write_text("\n".join([lines[0], *(line.replace(",0.", ",-0.", 1) for line in lines[1:])]) + "\n")

    with pytest.raises(ChurnError, match="validate-data") as failed:
        run_local("training", settings, log=tmp_path / "bad.log", **local_parameters(settings, source_uri=str(bad)))
    reports = list((settings.data_dir / "kfp").glob("churn-training-*/validate-data/report"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["valid"] is False and report["violations"]
    assert report["source"] == str(bad)  # the user's file, not the task's copy of it
    # The error lists the violations (what the CLI prints), without KFP's colour codes.
    assert f"{bad}: {len(report['violations'])} violation(s)" in str(failed.value)
    assert "column 'country' [isin(" in str(failed.value) and "\x1b[" not in str(failed.value)
    assert not list((settings.data_dir / "kfp").glob("churn-training-*/train-model*"))
    assert not (settings.data_dir / "mlflow" / "mlflow.db").exists() or _versions(settings) == []

    result = run_local(
        "training", settings, log=tmp_path / "good.log", **local_parameters(settings, source_uri=str(good))
    )
    assert result.output == "promoted"
    assert "CHURN_DATA_DIR" not in os.environ  # the tasks' environment does not leak into the caller
    connect_registry(settings.tracking_uri)
    client = MlflowClient()
    champion = client.get_model_version_by_alias("churn-model", "champion")
    challenger = client.get_model_version_by_alias("churn-model", "challenger")
    assert str(champion.version) == str(challenger.version) == "1"
    run = client.get_run(champion.run_id)
    assert run.data.tags["data_fingerprint"].startswith("sha256:")
    assert run.data.tags["kfp_run_id"]
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.data.tags["gate_decision"] == "promoted"
    assert "gate_challenger_roc_auc" in parent.data.metrics
    assert client.get_experiment(parent.info.experiment_id).name == "churn"
    artifacts = settings.data_dir.resolve() / "mlflow" / "artifacts"
    assert client.get_experiment(parent.info.experiment_id).artifact_location == artifacts.as_uri()
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(r.data.params["family"] for r in children) == [
        "lightgbm",
        "logistic_regression",
        "random_forest",
        "xgboost",
    ]
    for child in children:
        assert {"val_roc_auc", "test_roc_auc", "test_pr_auc", "test_f1", "test_brier", "test_log_loss"} <= set(
            child.data.metrics
        )
    select_dir = next((settings.data_dir / "kfp").glob("churn-training-*/select-model"))
    assert "winner" in (select_dir / "comparison").read_text()
    # Promoted, so the deploy step ran; with no cluster it wrote the InferenceService it would apply.
    manifest = yaml.safe_load(
        next((settings.data_dir / "kfp").glob("churn-training-*/deploy-model/manifest")).read_text()
    )
    assert manifest["kind"] == "InferenceService"
    assert manifest["spec"]["predictor"]["model"]["storageUri"].endswith("/artifacts")
    assert manifest["metadata"]["labels"]["churn-mlops/model-version"] == "1"
