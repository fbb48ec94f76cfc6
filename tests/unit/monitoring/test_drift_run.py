"""One monitoring run: reports written, metrics pushed, and the failure rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.config import MonitoringSettings
from churn.data import generate_customers
from churn.errors import ChurnError
from churn.monitoring.reference import ReferenceProfile
from churn.monitoring.run import run_monitoring

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def drifted() -> tuple[pd.DataFrame, np.ndarray]:
    generated = generate_customers(2_000, "2026-01-06", seed=32, scenario="engagement_decline")
    return generated.frame, generated.true_probability


def test_a_run_writes_the_reports_and_pushes_nothing_by_default(
    profile: ReferenceProfile, drifted: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    run = run_monitoring(
        profile,
        *drifted,
        json_path=tmp_path / "drift.json",
        markdown_path=tmp_path / "drift.md",
        source="s3://lake/customers_20260106.csv",
    )
    assert run.report.verdict == "alert" and run.pushed_to is None and run.html_path is None
    written = json.loads(run.json_path.read_text())
    assert written["verdict"] == "alert" and written["source"] == "s3://lake/customers_20260106.csv"
    assert run.markdown_path is not None and "ALERT" in run.markdown_path.read_text()


def test_pushgateway_down_fails_after_the_reports_are_written(
    profile: ReferenceProfile, drifted: tuple[pd.DataFrame, np.ndarray], tmp_path: Path, closed_gateway: str
) -> None:
    settings = MonitoringSettings(pushgateway_url=closed_gateway, push_timeout_seconds=2)
    with pytest.raises(ChurnError, match=f"Pushgateway at {closed_gateway}.*reports were written"):
        run_monitoring(profile, *drifted, json_path=tmp_path / "drift.json", settings=settings)
    assert json.loads((tmp_path / "drift.json").read_text())["verdict"] == "alert"


def test_bad_current_data_fails_with_no_report_and_says_the_push_failed_too(
    profile: ReferenceProfile, drifted: tuple[pd.DataFrame, np.ndarray], tmp_path: Path, closed_gateway: str
) -> None:
    frame, _ = drifted
    with pytest.raises(ChurnError, match="current data is empty") as caught:
        run_monitoring(profile, frame.head(0), json_path=tmp_path / "drift.json", pushgateway_url=closed_gateway)
    assert any(closed_gateway in note for note in caught.value.__notes__)
    assert not (tmp_path / "drift.json").exists()
    with pytest.raises(ChurnError, match="needs the reference rows"):
        run_monitoring(profile, frame, json_path=tmp_path / "drift.json", html_path=tmp_path / "drift.html")
