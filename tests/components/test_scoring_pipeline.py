"""The scoring pipeline under KFP's local runner, against a champion the training pipeline registered.

A real Pushgateway (Debian's ``prometheus-pushgateway``) receives the run's metrics; the test
reads them back from its ``/metrics`` page.
"""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from churn.config import Settings
from churn.data import generate_customers
from churn.data.files import write_raw
from churn.errors import ChurnError
from churn.kfp.local import LocalRun, local_parameters, run_local
from churn.predictions.log import read_prediction_log
from churn.registry.mlflow_registry import connect_registry
from churn.scoring.batch import BASE_COLUMNS, reason_columns
from churn.scoring.table import read_manifest, read_table
from churn.serving.local import free_port
from servers import stop, wait_http

pytestmark = pytest.mark.components
PUSHGATEWAY = Path("/usr/bin/prometheus-pushgateway")


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not PUSHGATEWAY.is_file():
        pytest.fail("prometheus-pushgateway is not installed: run `make prometheus`")
    port = free_port()
    log = tmp_path_factory.mktemp("pushgateway") / "pushgateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(PUSHGATEWAY), f"--web.listen-address=127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", process, log, seconds=90, ok={200})  # returns once up; generous under load
        yield url
    finally:
        stop(process)


def _metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("churn_scoring"):
            name, value = line.rsplit(" ", 1)
            found[name.replace(',instance=""', "").replace('instance="",', "")] = float(value)
    return found


def _score(settings: Settings, **parameters: str | bool) -> LocalRun:
    return run_local(
        "scoring",
        settings,
        log=settings.data_dir / "scoring.log",
        **local_parameters(settings, "scoring", **parameters),
    )


def test_the_scoring_pipeline_scores_a_base_of_parts_and_pushes_its_metrics(
    trained: Settings, tmp_path: Path, pushgateway: str
) -> None:
    base = tmp_path / "base"
    write_raw([generate_customers(700, "2026-01-12", seed=5).frame], base / "part-0.parquet", "parquet")
    write_raw([generate_customers(300, "2026-01-12", seed=6).frame], base / "part-1.csv", "csv")
    run = _score(trained, source_uri=str(base), pushgateway_url=pushgateway)
    assert run.output == trained.scored_uri
    table = read_table(trained.scored_uri)
    assert list(table.columns)[: len(BASE_COLUMNS)] == list(BASE_COLUMNS)
    assert set(reason_columns()) <= set(table.columns)
    assert len(table) == 1_000
    connect_registry(trained.tracking_uri)
    champion = MlflowClient().get_model_version_by_alias("churn-model", "champion")
    assert set(table["model_version"]) == {str(champion.version)}
    assert table["reason_1"].notna().all() and (table["reason_1_contribution"].abs() > 0).all()
    metrics = _metrics(pushgateway)
    assert metrics['churn_scoring_rows{job="churn-scoring"}'] == 1_000
    churned = metrics['churn_scoring_label_rows{job="churn-scoring",label="churned"}']
    assert churned == int(table["churn_label"].sum())
    assert metrics['churn_scoring_probability_rows_le{job="churn-scoring",le="1.0"}'] == 1_000
    assert sum(v for k, v in metrics.items() if k.startswith("churn_scoring_risk_decile_rows")) == 1_000
    assert metrics['churn_scoring_failed{job="churn-scoring"}'] == 0
    assert metrics['churn_scoring_last_success_timestamp_seconds{job="churn-scoring"}'] > 1.7e9
    assert metrics['churn_scoring_duration_seconds{job="churn-scoring"}'] > 0
    # Every score is in the prediction log too, for performance monitoring to join with late labels.
    logged = read_prediction_log(trained.prediction_log_uri)
    logged = logged[logged["request_id"] == read_manifest(trained.scored_uri)["run_id"]]
    assert len(logged) == 1_000 and set(logged["customer_id"]) == set(table["customer_id"])
    assert set(logged["model_version"]) == {str(champion.version)} and set(logged["source"]) == {"batch"}
    # The same rows (the two generated parts may reuse customer ids, so compare them whole).
    columns = ["customer_id", "churn_probability", "churn_label"]
    pd.testing.assert_frame_equal(
        logged[columns].sort_values(columns).reset_index(drop=True),
        table[columns].sort_values(columns).reset_index(drop=True),
        check_dtype=False,
    )


def test_a_failed_run_keeps_the_previous_table_and_is_pushed_as_failed(
    trained: Settings, tmp_path: Path, pushgateway: str
) -> None:
    good = tmp_path / "customers_20260113.csv"
    write_raw([generate_customers(400, "2026-01-13", seed=7).frame], good)
    _score(trained, source_uri=str(good), pushgateway_url=pushgateway)
    before = read_table(trained.scored_uri)
    manifest = read_manifest(trained.scored_uri)
    bad = tmp_path / "broken.csv"
    frame = generate_customers(400, "2026-01-14", seed=8).frame
    frame["age"] = frame["age"].astype(object)
    frame.loc[3, "age"] = "forty"
    frame.to_csv(bad, index=False)
    with pytest.raises(ChurnError, match="validate-base"):
        _score(trained, source_uri=str(bad), pushgateway_url=pushgateway)
    pd.testing.assert_frame_equal(read_table(trained.scored_uri), before)
    assert read_manifest(trained.scored_uri)["run_id"] == manifest["run_id"]
    metrics = _metrics(pushgateway)
    assert metrics['churn_scoring_failed{job="churn-scoring"}'] == 1
    assert metrics['churn_scoring_rows{job="churn-scoring"}'] == 400  # the last good run's numbers stay


def test_latest_only_scores_the_newest_increment_of_a_folder(trained: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "increments"
    write_raw([generate_customers(200, "2026-01-15", seed=9).frame], folder / "customers_20260115.csv")
    write_raw([generate_customers(300, "2026-01-16", seed=10).frame], folder / "customers_20260116.csv")
    out = tmp_path / "scored"
    _score(trained, source_uri=str(folder) + "/", latest_only=True, destination=str(out))
    table = read_table(str(out))
    assert len(table) == 300 and (table["snapshot_date"] == pd.Timestamp("2026-01-16")).all()


def test_the_dask_engine_commits_the_same_table(
    trained: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """engine=dask: the score task scores the base's parquet parts on a 2-worker LocalCluster, the same rows."""
    from churn.scoring.batch import fetch_model, score_source

    base = tmp_path / "base"
    write_raw([generate_customers(600, "2026-01-17", seed=11).frame], base / "part-0.parquet", "parquet")
    write_raw([generate_customers(400, "2026-01-17", seed=12).frame], base / "part-1.parquet", "parquet")
    monkeypatch.setenv("CHURN_DASK__N_WORKERS", "2")
    monkeypatch.setenv("CHURN_DASK__MEMORY_LIMIT", "1GiB")
    out = tmp_path / "scored-dask"
    _score(trained, source_uri=str(base), destination=str(out), engine="dask", log_predictions=False)
    by_dask = read_table(str(out)).drop(columns="scored_at")
    # The pandas engine in this process, with the same champion.
    model_dir, version = fetch_model("models:/churn-model@champion", trained.tracking_uri)
    pandas_out = str(tmp_path / "scored-pandas")
    score_source(str(base), pandas_out, model_dir=model_dir, model_name="churn-model", model_version=version)
    by_pandas = read_table(pandas_out).drop(columns="scored_at")
    assert len(by_dask) == 1_000
    pd.testing.assert_frame_equal(by_dask, by_pandas, check_exact=True)
