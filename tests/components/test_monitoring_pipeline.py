"""The monitoring and daily data pipelines under KFP's local runner.

The module works on its own copy of the session's champion (3,000 rows, trained once per run:
tests/components/conftest.py); each test then runs the short pipelines against it. The
drift -> retrain loop is test_retraining_loop.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest
import yaml
from pipeline_runs import publish_day, run_monitoring

from churn.config import Settings
from churn.data.files import write_raw
from churn.errors import ChurnError
from churn.kfp.catalog import PIPELINES
from churn.kfp.compile import compile_pipeline
from churn.kfp.local import local_parameters, run_local
from churn.kfp.retrain import submit_training, trigger_training
from churn.monitoring.reference import ReferenceProfile
from churn.registry.mlflow_registry import connect_registry, load_reference
from churn.validation import validate_file

pytestmark = pytest.mark.components
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", [p for p in PIPELINES if p != "training"])
def test_committed_yaml_is_not_stale(name: str, tmp_path: Path) -> None:
    fresh = compile_pipeline(name, tmp_path)
    committed = ROOT / f"pipelines/compiled/{name}_pipeline.yaml"
    assert committed.is_file(), "run `churn pipeline compile` and commit pipelines/compiled/"
    assert list(yaml.safe_load_all(fresh.read_text())) == list(yaml.safe_load_all(committed.read_text())), (
        f"pipelines/compiled/{name}_pipeline.yaml is stale: run `churn pipeline compile` and commit it"
    )


def test_champion_carries_its_reference_profile(trained: Settings) -> None:
    connect_registry(trained.tracking_uri)
    profile = load_reference("models:/churn-model@champion")
    assert isinstance(profile, ReferenceProfile)
    assert profile.rows == 2_100  # the 70% training split of 3,000 rows
    assert profile.prediction is not None and profile.roc_auc is not None and profile.roc_auc > 0.7
    assert profile.roc_auc_standard_error is not None and 0 < profile.roc_auc_standard_error < 0.05
    assert {"discount_usage_rate", "total_orders"} <= set(profile.numeric)
    assert "acquisition_channel" in profile.categorical


def test_data_pipeline_publishes_a_valid_daily_increment(trained: Settings) -> None:
    published = Path(publish_day(trained, "2026-01-06", "none"))
    assert published == (trained.raw_dir / "customers_20260106.csv").resolve()
    frame, report = validate_file(published, min_rows=100)
    assert report.valid and len(frame) == trained.data.daily_rows == 1_000


def test_clean_day_is_ok_and_drifted_day_alerts_with_artifacts(trained: Settings) -> None:
    clean = run_monitoring(trained, publish_day(trained, "2026-01-06", "none"))
    assert clean.output == "ok"
    day = publish_day(trained, "2026-01-07", "price_shock")
    drifted = run_monitoring(trained, day)
    assert drifted.output == "alert"
    assert drifted.run_dir is not None
    task = drifted.run_dir / "check-drift"
    report = json.loads((task / "report").read_text())
    assert report["verdict"] == "alert"
    assert report["source"] == day  # the user's file, not the pipeline's copy of it
    assert {"discount_usage_rate", "cart_abandonment_rate"} <= set(report["flagged"])
    assert "# Drift check: ALERT" in (task / "summary").read_text()
    assert "<html" in (task / "evidently").read_text(encoding="utf-8")[:2000].lower()
    outputs = json.loads((task / "executor_output.json").read_text())
    metrics = outputs["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert metrics["verdict_level"] == 2 and metrics["drifted_features"] >= 2
    assert metrics["max_feature_wasserstein"] >= 0.1  # the scale-aware rule sees the price shock too
    assert not (drifted.run_dir / "trigger-retraining").exists()  # retrain_on_alert is off by default


@pytest.mark.slow
def test_a_dask_day_is_a_folder_of_parts_checked_on_dask_with_the_pandas_verdict(trained: Settings) -> None:
    """The data pipeline on the Dask engine publishes customers_YYYYMMDD/; monitoring finds it and counts it on Dask."""
    day = run_local(
        "data",
        trained,
        log=trained.data_dir / "data-dask.log",
        **local_parameters(trained, "data", date="2026-01-09", scenario="price_shock", seed=9, engine="dask"),
    )
    folder = Path(str(day.output))
    assert folder == (trained.raw_dir / "customers_20260109").resolve() and folder.is_dir()
    assert sorted(p.name for p in folder.iterdir()) == ["part-00000.parquet"]
    # The latest increment in the raw folder is now this folder: the default monitoring run checks it.
    on_dask = run_monitoring(trained, "", engine="dask")
    assert on_dask.run_dir is not None
    report = json.loads((on_dask.run_dir / "check-drift/report").read_text())
    assert report["current_rows"] == 1_000
    assert (on_dask.run_dir / "load-current/current").is_dir()
    # The same rows as one CSV, checked in one process: the same verdict and statistics.
    csv = trained.data_dir / "same-day.csv"
    write_raw([pd.read_parquet(folder / "part-00000.parquet")], csv, "csv")
    in_process = run_monitoring(trained, str(csv))
    assert in_process.run_dir is not None and in_process.output == on_dask.output == "alert"
    expected = json.loads((in_process.run_dir / "check-drift/report").read_text())
    assert report["flagged"] == expected["flagged"]
    for got, want in zip(report["features"], expected["features"], strict=True):
        assert got["statistic"] == pytest.approx(want["statistic"], rel=1e-9), want["feature"]


class _Recorder(BaseHTTPRequestHandler):
    """A stand-in Pushgateway that records what is pushed to it (the real one runs in tests/integration)."""

    pushes: ClassVar[list[str]] = []

    def _record(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).pushes.append(f"{self.command} {self.path}\n{body.decode(errors='replace')}")
        self.send_response(200)
        self.end_headers()

    do_PUT = do_POST = _record  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def pushgateway() -> Iterator[tuple[str, list[str]]]:
    _Recorder.pushes = []
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.pushes
    server.shutdown()


@pytest.mark.parametrize("content", ["", "customer_id,age\n"], ids=["empty", "header-only"])
def test_invalid_current_data_fails_the_run_and_records_a_failed_monitoring_run(
    trained: Settings, tmp_path: Path, pushgateway: tuple[str, list[str]], content: str
) -> None:
    url, pushes = pushgateway
    bad = tmp_path / "customers_20260108.csv"
    bad.write_text(content)
    with pytest.raises(ChurnError, match="validate-current"):
        run_monitoring(trained, str(bad), pushgateway_url=url)
    log = (trained.data_dir / "monitoring.log").read_text()
    assert "monitoring failed: the current data is invalid" in log
    assert len(pushes) == 1 and "churn_monitoring_failed 1.0" in pushes[0] and pushes[0].startswith("POST")


def test_a_good_run_pushes_its_metrics(trained: Settings, pushgateway: tuple[str, list[str]]) -> None:
    url, pushes = pushgateway
    assert run_monitoring(trained, publish_day(trained, "2026-01-06", "none"), pushgateway_url=url).output == "ok"
    drift = [p for p in pushes if p.startswith("PUT /metrics/job/churn-monitoring")]
    performance = [p for p in pushes if p.startswith("PUT /metrics/job/churn-performance")]
    assert len(drift) == len(performance) == 1 and len(pushes) == 2  # two jobs: neither replaces the other
    assert "churn_feature_psi" in drift[0] and "churn_monitoring_failed 0.0" in drift[0]
    assert "churn_performance_check_level" in performance[0]


def test_the_performance_step_joins_logged_predictions_with_the_labels_that_have_arrived(trained: Settings) -> None:
    from churn.jobs.demos import log_day_predictions

    for date in ("2026-01-09", "2026-01-10"):
        published = Path(publish_day(trained, date, "none"))
        logged = log_day_predictions(trained, published, label_delay_days=1)
        assert logged["rows"] == 1_000 and Path(logged["predictions"][0]).parent.name == f"date={date}"
    run = run_monitoring(trained, str(published), as_of="2026-01-10")
    assert run.run_dir is not None
    report = json.loads((run.run_dir / "check-performance" / "report").read_text())
    by_day = {c["cohort"]: c for c in report["cohorts"]}
    first, second = by_day["2026-01-09"], by_day["2026-01-10"]
    assert first["labelled"] == 1_000 and first["realized"]["roc_auc"] > 0.7
    assert abs(first["estimated"]["roc_auc"] - first["realized"]["roc_auc"]) < 0.05
    assert second["labelled"] == 0 and second["realized"] is None and second["estimated"]["roc_auc"] > 0.7
    assert second["labels_due"] == "2026-02-09" and report["levels"]["labels"] == "ok"  # the configured 30 days
    assert len(report["lines"]) == len(report["cohorts"]) and "realized" in report["lines"][-2]
    assert "# Performance as of 2026-01-10" in (run.run_dir / "check-performance" / "summary").read_text()


class _StandInKfpClient:
    """A recording stand-in for ``kfp.Client`` (there is no KFP backend here)."""

    calls: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, host: str | None = None) -> None:
        self.host = host

    def create_run_from_pipeline_package(self, pipeline_file: str, **kwargs: Any) -> Any:
        spec = next(yaml.safe_load_all(Path(pipeline_file).read_text()))  # pipeline spec, then platform spec
        type(self).calls.append({"host": self.host, "pipeline": spec["pipelineInfo"]["name"], **kwargs})
        return type("Run", (), {"run_id": "run-123"})()


def test_retraining_in_a_cluster_submits_the_compiled_training_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    _StandInKfpClient.calls = []
    monkeypatch.setenv("CHURN_DEPLOY__SERVICE_ACCOUNT", "prod-deployer")  # the chart's pipeline-env ConfigMap
    result = trigger_training(
        {"rows": 5_000, "date": "2026-01-07", "source_uri": "", "cluster_env": "prod-pipeline-env"},
        mode="kfp",
        kfp_host="http://ml-pipeline.kubeflow:8888",
        client_factory=_StandInKfpClient,
    )
    assert result == "KFP run run-123"
    (call,) = _StandInKfpClient.calls
    assert call["host"] == "http://ml-pipeline.kubeflow:8888" and call["pipeline"] == "churn-training"
    # Empty values are left to the pipeline's defaults; a cluster run deploys what its gate promotes.
    assert call["arguments"] == {
        "rows": 5_000,
        "date": "2026-01-07",
        "cluster_env": "prod-pipeline-env",
        "deploy_mode": "cluster",
    }
    assert call["service_account"] == "prod-deployer"
    with pytest.raises(ChurnError, match="retrain mode"):
        trigger_training({}, mode="cron")

    class Refusing(_StandInKfpClient):
        def create_run_from_pipeline_package(self, pipeline_file: str, **kwargs: Any) -> Any:
            raise ConnectionError("connection refused")

    with pytest.raises(ChurnError, match=r"could not submit .* connection refused"):
        submit_training({}, host="http://nowhere:1", client_factory=Refusing)


def _cli(settings: Settings, *args: str) -> subprocess.Popen[str]:
    """``churn ...`` in a child process on the module's data folder, as a user runs it in a terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CHURN_"))}
    env["CHURN_DATA_DIR"] = str(settings.data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "churn", *args],
        cwd=settings.data_dir.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _field(output: str, name: str) -> str:
    (line,) = [line for line in output.splitlines() if line.strip().startswith(name)]
    return line.strip().removeprefix(name).strip()


def test_two_runs_at_once_in_one_checkout_each_report_their_own_outputs(trained: Settings) -> None:
    """Two terminals, one data folder: each run prints its own verdict, outputs folder and log."""
    days = {
        "ok": publish_day(trained, "2026-01-10", "none"),
        "alert": publish_day(trained, "2026-01-11", "price_shock"),
    }
    runs = {
        verdict: _cli(trained, "pipeline", "run", "monitoring", "--current-uri", day) for verdict, day in days.items()
    }
    printed = {}
    for verdict, process in runs.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        assert "\x1b[" not in out + err  # not a terminal: no colour codes
        printed[verdict] = out
    folders = {verdict: Path(_field(out, "task outputs")) for verdict, out in printed.items()}
    logs = {verdict: Path(_field(out, "task logs")) for verdict, out in printed.items()}
    assert folders["ok"] != folders["alert"] and logs["ok"] != logs["alert"]
    for verdict, out in printed.items():
        assert _field(out, "verdict").split()[0] == verdict
        report = json.loads((folders[verdict] / "check-drift" / "report").read_text())
        assert report["verdict"] == verdict
        loaded = json.loads((folders[verdict] / "load-current" / "executor_output.json").read_text())
        assert loaded["parameterValues"]["Output"] == days[verdict]  # this run's own increment
        assert "\x1b[" not in logs[verdict].read_text()


def test_a_failed_validation_prints_the_violations_and_names_the_users_file(trained: Settings, tmp_path: Path) -> None:
    frame = pd.read_csv(publish_day(trained, "2026-01-12", "none"))
    frame.loc[:2, "age"] = 500
    bad = tmp_path / "my_export.csv"
    frame.to_csv(bad, index=False)
    process = _cli(trained, "pipeline", "run", "monitoring", "--current-uri", str(bad))
    out, err = process.communicate(timeout=600)
    assert process.returncode == 1
    assert "task 'validate-current' failed" in err
    assert f"{bad}: 1 violation(s) in 1000 rows" in err
    assert "column 'age' [in_range(18, 100)]: values outside [18, 100] (3 rows)" in err
    assert "\x1b[" not in out + err and "Traceback" not in err
    folder = Path(_field(err, "task outputs:"))
    report = json.loads((folder / "validate-current" / "report").read_text())
    assert report["source"] == str(bad)  # the user's file, not the pipeline's copy


def test_with_a_shadow_active_the_monitoring_run_compares_its_logged_answers_with_the_champions(
    trained: Settings,
) -> None:
    from churn.jobs.demos import log_day_predictions
    from churn.predictions.log import read_prediction_log, write_prediction_log

    published = Path(publish_day(trained, "2026-01-12", "none"))
    log_day_predictions(trained, published, label_delay_days=1)
    log_root = trained.prediction_log_uri
    champion = read_prediction_log(log_root, start=dt.date(2026, 1, 12), end=dt.date(2026, 1, 12))
    champion = champion[champion["variant"] == "champion"]
    # A shadow's answers to the same records (as the transformer logs them), logged later that day: the
    # champion's scores reversed, so a performance check that took them for the champion's would see it.
    shadow = champion.assign(churn_probability=1 - champion["churn_probability"])
    shadow["churn_label"] = (shadow["churn_probability"] >= 0.3).astype(int)
    write_prediction_log(
        shadow,
        log_root,
        run_id=str(champion["request_id"].iloc[0]),
        model_name="churn-model",
        model_version="shadow-1",
        scored_at=dt.datetime(2026, 1, 12, 13, tzinfo=dt.UTC),
        variant="shadow",
    )
    run = run_monitoring(trained, str(published), as_of="2026-01-13", shadow_active=True, shadow_window_days=2)
    assert run.run_dir is not None
    report = json.loads((run.run_dir / "compare-shadow" / "report").read_text())
    assert report["pairs"] == len(champion) and report["shadow_version"] == "shadow-1"
    assert report["rank_correlation"] == pytest.approx(-1.0)
    assert report["top_decile_overlap"] == 0.0 and report["label_agreement"] < 0.5
    assert report["labelled_pairs"] == len(champion) and report["champion_roc_auc"] > 0.7
    assert report["shadow_roc_auc"] == pytest.approx(1 - report["champion_roc_auc"])
    # The performance check judged the champion on its own answers, not on the shadow's later ones.
    performance = json.loads((run.run_dir / "check-performance" / "report").read_text())
    cohort = next(c for c in performance["cohorts"] if c["cohort"] == "2026-01-12")
    assert cohort["realized"]["roc_auc"] == pytest.approx(report["champion_roc_auc"])
    assert "# Shadow vs champion" in (run.run_dir / "compare-shadow" / "summary").read_text()
