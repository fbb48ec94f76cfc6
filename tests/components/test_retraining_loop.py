"""The drift -> retrain loop under KFP's local runner: alerts start a training run, the gate decides,
and monitoring judges each model version, so a new champion's cohorts start clean.

Apart from the monitoring module so that the two xdist workers share the suite's longest
pipeline runs (each retraining is a whole training pipeline); the module works on its own
copy of the session's champion (tests/components/conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from pipeline_runs import publish_day, run_monitoring, task_output

from churn.config import Settings
from churn.registry.mlflow_registry import connect_registry, load_reference

pytestmark = pytest.mark.components


def test_drift_alert_triggers_retraining_and_the_gate_decides(
    trained: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURN_MONITORING__RETRAINING_RECORD_URI", str(tmp_path))  # this test's own last retraining
    connect_registry(trained.tracking_uri)
    client = MlflowClient()
    before = {v.version for v in client.search_model_versions("name='churn-model'")}
    drifted = run_monitoring(
        trained,
        publish_day(trained, "2026-01-09", "price_shock"),
        retrain_on_alert=True,
        retrain_rows=3_000,
        date="2026-01-09",
    )
    assert drifted.output == "alert"
    assert drifted.run_dir is not None
    executed = json.loads((drifted.run_dir / "trigger-retraining" / "executor_output.json").read_text())
    outcome = executed["parameterValues"]["Output"]
    assert outcome.startswith("local training run: ")
    after = {v.version: v for v in client.search_model_versions("name='churn-model'")}
    (new,) = set(after) - before
    decision = after[new].tags["gate_decision"]
    assert decision in ("promoted", "rejected") and outcome.endswith(decision)
    assert after[new].tags["gate_reason"]
    assert client.get_model_version_by_alias("churn-model", "challenger").version == new
    assert load_reference(f"models:/churn-model/{new}").rows == 2_100
    assert len(pd.read_csv(trained.raw_dir / "customers_20260109.csv")) == 1_000


def test_a_realized_performance_alert_triggers_retraining_without_any_drift(
    trained: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Today's increment is clean (no drift alert); the labels of an earlier, concept-drifted day show the drop.

    (The concept-drifted day itself would also alert the drift run: its increment carries its
    labels, so the drift run's own ROC-AUC check sees the drop.)
    """
    from churn.jobs.demos import log_day_predictions

    monkeypatch.setenv("CHURN_MONITORING__RETRAINING_RECORD_URI", str(tmp_path))  # this test's own last retraining
    connect_registry(trained.tracking_uri)
    client = MlflowClient()
    before = {v.version for v in client.search_model_versions("name='churn-model'")}
    log_day_predictions(trained, Path(publish_day(trained, "2026-01-12", "concept_drift")), label_delay_days=1)
    today = publish_day(trained, "2026-01-13", "none")
    run = run_monitoring(
        trained, today, as_of="2026-01-13", retrain_on_alert=True, retrain_rows=3_000, date="2026-01-13"
    )
    # No drift alert (a small reference may "warn"): only the realized performance can retrain.
    assert run.output != "alert" and run.run_dir is not None
    performance = json.loads((run.run_dir / "check-performance" / "report").read_text())
    assert performance["levels"]["realized"] == "alert"
    executed = json.loads((run.run_dir / "trigger-retraining" / "executor_output.json").read_text())
    assert executed["parameterValues"]["Output"].startswith("local training run: ")
    assert len({v.version for v in client.search_model_versions("name='churn-model'")} - before) == 1


def test_after_a_concept_drift_five_daily_runs_retrain_once_and_the_new_champion_starts_clean(
    trained: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Day 1 retrains on the champion's realized alert; days 2-5 judge the new champion's own cohorts.

    The old version's concept-drifted cohort stays in the 90-day window (and alerting) all
    week; with the cooldown off, only the per-version rule keeps it from retraining again.
    """
    from churn.jobs.demos import log_day_predictions

    own = {"prediction_log_uri": str(tmp_path / "predictions"), "labels_uri": str(tmp_path / "labels")}
    logged = trained.model_copy(update={"performance": trained.performance.model_copy(update=own)})
    monkeypatch.setenv("CHURN_MONITORING__RETRAINING_RECORD_URI", str(tmp_path / "monitoring"))
    monkeypatch.setenv("CHURN_MONITORING__RETRAIN_COOLDOWN_DAYS", "0")
    connect_registry(trained.tracking_uri)
    client = MlflowClient()
    before = {v.version for v in client.search_model_versions("name='churn-model'")}
    old = log_day_predictions(logged, Path(publish_day(trained, "2026-01-14", "concept_drift")), label_delay_days=1)
    clean = publish_day(trained, "2026-01-15", "none")
    runs = []
    for day in range(15, 20):
        as_of = f"2026-01-{day}"
        # gate_margin -1: the gate promotes the retrained model, so a new champion takes over.
        run = run_monitoring(
            trained, clean, as_of=as_of, retrain_on_alert=True, retrain_rows=3_000, gate_margin=-1.0, **own
        )
        runs.append(run)
        if day == 15:  # the new champion scores the day; its labels arrive the next day
            new = log_day_predictions(logged, Path(clean), label_delay_days=1)
    assert len({v.version for v in client.search_model_versions("name='churn-model'")} - before) == 1
    assert new["version"] != old["version"]
    assert str(client.get_model_version_by_alias("churn-model", "champion").version) == new["version"]
    assert runs[0].run_dir is not None
    judged = json.loads((runs[0].run_dir / "check-performance" / "report").read_text())
    assert judged["champion_version"] == old["version"]
    assert judged["levels_by_version"][old["version"]]["realized"] == "alert"
    assert task_output(runs[0], "trigger-retraining") == "local training run: promoted"
    for run in runs[1:]:
        assert run.run_dir is not None and run.output != "alert"
        report = json.loads((run.run_dir / "check-performance" / "report").read_text())
        assert report["champion_version"] == new["version"]
        levels = report["levels_by_version"]
        assert levels[old["version"]]["realized"] == "alert" and levels[new["version"]]["realized"] == "ok"
        (own_cohort,) = [c for c in report["cohorts"] if c["model_version"] == new["version"]]
        assert own_cohort["cohort"] == "2026-01-15" and own_cohort["labelled"] == 1_000
        held = f"realized alert only on cohorts of version {old['version']}, not the champion's ({new['version']})"
        assert task_output(run, "trigger-retraining") == f"no alert: no retraining ({held})"
        summary = (run.run_dir / "trigger-retraining" / "summary").read_text()
        assert "# Retraining: not needed" in summary and held in summary
        metrics = json.loads((run.run_dir / "trigger-retraining" / "executor_output.json").read_text())
        assert metrics["artifacts"]["metrics"]["artifacts"][0]["metadata"]["retraining_started"] == 0
