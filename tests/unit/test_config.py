from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from churn.config import Settings, get_settings

pytestmark = pytest.mark.unit


def test_defaults_need_no_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = get_settings()
    assert settings.data.rows == 100_000
    assert settings.data.daily_rows == 1_000
    assert 0.20 <= settings.data.churn_rate <= 0.30
    assert settings.raw_dir == Path("data/raw")
    assert settings.truth_dir != settings.raw_dir


def test_nested_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHURN_DATA__ROWS", "1234")
    monkeypatch.setenv("CHURN_DATA__DATE", "2026-05-01")
    monkeypatch.setenv("CHURN_VALIDATION__MIN_ROWS", "7")
    monkeypatch.setenv("CHURN_DATA_DIR", str(tmp_path / "elsewhere"))
    settings = get_settings()
    assert settings.data.rows == 1234
    assert settings.data.date == dt.date(2026, 5, 1)
    assert settings.validation.min_rows == 7
    assert settings.features_dir == tmp_path / "elsewhere" / "features"


def test_bad_values_are_refused_with_the_field_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_DATA__CHURN_RATE", "1.5")
    with pytest.raises(ValidationError, match="churn_rate"):
        Settings()


def test_importing_the_package_does_nothing(tmp_path: Path) -> None:
    """No folders, no files, no settings read at import time."""
    code = "import churn, churn.config, churn.cli, churn.jobs, churn.data, churn.features, churn.validation"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, env={"CHURN_DATA__ROWS": "oops"})
    assert list(tmp_path.iterdir()) == []


def test_config_show_prints_no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from churn.cli import app
    from churn.config import redact

    monkeypatch.setenv("CHURN_MLFLOW__TRACKING_URI", "https://trainer:hunter2-secret@mlflow.example:5000/")
    monkeypatch.setenv("CHURN_MONITORING__PUSHGATEWAY_URL", "http://push:p%40ss@gw:9091")
    shown = CliRunner().invoke(app, ["config", "show"]).output
    assert "hunter2" not in shown and "p%40ss" not in shown
    assert "https://trainer:***@mlflow.example:5000/" in shown
    assert redact("sqlite:////tmp/mlflow.db and s3://bucket/x") == "sqlite:////tmp/mlflow.db and s3://bucket/x"
