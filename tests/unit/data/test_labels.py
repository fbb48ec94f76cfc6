"""Delayed labels and the concept-drift scenario of the generator."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churn.data import CONCEPT_SCENARIOS, SCENARIOS, generate_customers, get_scenario
from churn.data.labels import outcomes, publish_labels, read_labels
from churn.errors import ChurnError


def test_outcomes_arrive_the_configured_days_after_scoring_and_only_once_due(tmp_path: Path) -> None:
    day1 = generate_customers(300, "2026-01-06", seed=1).frame
    day2 = generate_customers(200, "2026-01-07", seed=2).frame
    assert [Path(p).name for p in publish_labels(day1, 30, tmp_path)] == ["labels_20260205.csv"]
    publish_labels(day2, 30, tmp_path)
    assert read_labels(tmp_path, as_of=dt.date(2026, 2, 4)).empty
    arrived = read_labels(tmp_path, as_of=dt.date(2026, 2, 5))
    assert len(arrived) == 300 and set(arrived["scored_date"]) == {dt.date(2026, 1, 6)}
    assert arrived["churned"].tolist() == day1["churned"].tolist()
    assert len(read_labels(tmp_path)) == 500
    assert not list(tmp_path.glob(".*"))  # written atomically, no temporary file left


def test_bad_label_input_is_a_clear_error(tmp_path: Path) -> None:
    frame = generate_customers(10, "2026-01-06", seed=1).frame
    with pytest.raises(ChurnError, match="no column 'churned'"):
        outcomes(frame.drop(columns="churned"), 30)
    with pytest.raises(ChurnError, match=">= 0 days"):
        outcomes(frame, -1)
    (tmp_path / "labels_20260101.csv").write_text(
        "customer_id,scored_date,label_date,churned\nC1,2026-01-01,2026-01-01,7\n"
    )
    with pytest.raises(ChurnError, match=r"labels_20260101\.csv: 'churned' must be 0 or 1"):
        read_labels(tmp_path)


def test_the_labels_on_a_real_s3_endpoint(
    s3_endpoint: str, s3_bucket: str, aws_env: dict[str, str], monkeypatch
) -> None:
    for key, value in aws_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    frame = generate_customers(100, "2026-01-06", seed=1).frame
    root = f"s3://{s3_bucket}/labels-test/"
    assert publish_labels(frame, 7, root) == [f"s3://{s3_bucket}/labels-test/labels_20260113.csv"]
    assert len(read_labels(root, as_of=dt.date(2026, 1, 13))) == 100


def test_concept_drift_changes_who_churns_but_no_input_and_not_the_churn_rate() -> None:
    assert "concept_drift" in CONCEPT_SCENARIOS and "concept_drift" not in SCENARIOS
    assert get_scenario("concept_drift").moved_columns == ()
    base = generate_customers(20_000, "2026-01-06", seed=3)
    drifted = generate_customers(20_000, "2026-01-06", seed=3, scenario="concept_drift")
    pd.testing.assert_frame_equal(base.frame.drop(columns="churned"), drifted.frame.drop(columns="churned"))
    assert abs(drifted.frame["churned"].mean() - base.frame["churned"].mean()) < 0.01
    # The old truth no longer ranks the new churners: what a model trained before the change would suffer.
    old_rule = roc_auc_score(drifted.frame["churned"], base.true_probability)
    assert old_rule < 0.6 < roc_auc_score(base.frame["churned"], base.true_probability) - 0.2
    half = generate_customers(20_000, "2026-01-06", seed=3, scenario="concept_drift", strength=0.5)
    assert old_rule < roc_auc_score(half.frame["churned"], base.true_probability) < 0.8
    none = generate_customers(500, "2026-01-06", seed=3, scenario="concept_drift", strength=0.0)
    pd.testing.assert_frame_equal(none.frame, generate_customers(500, "2026-01-06", seed=3).frame)


def test_the_labels_command_emits_the_file_and_refuses_a_bad_one(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from churn.cli import app
    from churn.data.files import write_raw

    export = tmp_path / "customers_20260106.csv"
    write_raw([generate_customers(150, "2026-01-06", seed=4).frame], export)
    runner = CliRunner()
    done = runner.invoke(app, ["data", "labels", str(export), "--delay", "7", "--destination", str(tmp_path / "lab")])
    assert done.exit_code == 0, done.output
    assert "labels_20260113.csv (150 labels, 7 days after scoring)" in done.output
    assert len(read_labels(tmp_path / "lab", as_of=dt.date(2026, 1, 13))) == 150
    bad = tmp_path / "customers_20260107.csv"
    bad.write_text("customer_id,age\nC1,40\n")
    refused = runner.invoke(app, ["data", "labels", str(bad)])
    # `churn` prints a ChurnError as one line (cli.main); nothing was written before it.
    assert isinstance(refused.exception, ChurnError) and "no column 'snapshot_date'" in str(refused.exception)
