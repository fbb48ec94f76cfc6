"""`churn pipeline run training --engine dask`: the training pipeline on partitioned data and LocalClusters.

Every task is a real subprocess of KFP's local runner; the data, split and training tasks start
their own ``distributed.LocalCluster`` (2 worker processes) and close it. The champion it
registers is the same plain model the pandas engine logs, served by the same code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from churn.cli import app
from churn.config import Settings
from churn.registry.mlflow_registry import connect_registry, load_churn_model
from churn.stages.training import load_model
from churn.training.split import SPLITS

pytestmark = [pytest.mark.components, pytest.mark.slow]


def test_training_on_the_dask_engine_registers_a_champion_that_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith(("MLFLOW_", "CHURN_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CHURN_DASK__N_WORKERS", "2")
    monkeypatch.setenv("CHURN_DASK__MEMORY_LIMIT", "1GiB")
    done = CliRunner().invoke(
        app, ["pipeline", "run", "training", "--engine", "dask", "--rows", "6000", "--date", "2026-01-05"]
    )
    assert done.exit_code == 0, done.output
    assert "promoted" in done.output

    (run_dir,) = (tmp_path / "data/kfp").glob("churn-training-*")
    # The data moved between tasks as folders of parquet parts, the split exactly 70/15/15 per class.
    raw_parts = sorted((run_dir / "load-data/raw").glob("part-*.parquet"))
    assert raw_parts, "load-data wrote no parts"
    splits = {name: pq.read_table(run_dir / "split-data" / name).to_pandas() for name in SPLITS}
    assert sum(len(f) for f in splits.values()) == 6_000
    ids = [set(f["customer_id"]) for f in splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    for label in (0, 1):
        total = sum(int((f["churned"] == label).sum()) for f in splits.values())
        share = (splits["train"]["churned"] == label).sum() / total
        assert abs(share - 0.70) <= 0.005

    settings = Settings(data_dir=tmp_path / "data")
    connect_registry(settings.tracking_uri)
    client = MlflowClient()
    champion = client.get_model_version_by_alias(settings.mlflow.model_name, "champion")
    run = client.get_run(str(champion.run_id))
    assert run.data.tags["engine"] == "dask"
    family = run.data.tags["family"]
    if family in ("xgboost", "lightgbm"):  # trained on the cluster
        assert run.data.tags["dask.workers"] == "2"
    else:  # fitted in the task's process on a sample of the split
        assert int(run.data.tags["dask.sample_rows"]) > 0
    info = json.loads((run_dir / "select-model/winner/info.json").read_text())
    assert info["engine"] == "dask" and info["family"] == family
    if family in ("xgboost", "lightgbm"):  # boosters train on every training row
        assert info["train_rows"] == len(splits["train"])

    # Served as today: the model the predictor and transformer load from the registry is the plain
    # single-node model the winning task saved, giving the same probabilities.
    served = load_churn_model(f"models:/{settings.mlflow.model_name}@champion")
    rows = splits["test"].drop(columns=["churned"]).head(200)
    p = served.predict_proba(rows)
    np.testing.assert_allclose(p, load_model(run_dir / "select-model/winner").predict_proba(rows), atol=1e-7)
    assert float(np.std(p)) > 0.01
