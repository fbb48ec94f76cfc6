"""`churn data validate --engine dask`: a partitioned export validated on a LocalCluster, the same report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churn.cli import app
from churn.errors import ChurnError

Writer = Callable[[pd.DataFrame, Path, int], Path]


@pytest.mark.slow
def test_validate_with_the_dask_engine_writes_the_report(
    raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURN_ENGINE", "dask")
    monkeypatch.setenv("CHURN_DASK__N_WORKERS", "1")
    monkeypatch.setenv("CHURN_DASK__MEMORY_LIMIT", "1GiB")
    good = write_partitions(raw, tmp_path / "good", 3)
    bad_rows = raw.copy()
    bad_rows.loc[[10, 2_500], "age"] = 150
    bad = write_partitions(bad_rows, tmp_path / "bad", 3)
    runner = CliRunner()
    done = runner.invoke(app, ["data", "validate", str(good), "--report", str(tmp_path / "good.json")])
    assert done.exit_code == 0, done.output
    report = json.loads((tmp_path / "good.json").read_text())
    assert report["valid"] is True and report["rows"] == len(raw)
    done = runner.invoke(app, ["data", "validate", str(bad), "--report", str(tmp_path / "bad.json")])
    assert done.exit_code == 1
    report = json.loads((tmp_path / "bad.json").read_text())
    assert report["valid"] is False
    (violation,) = report["violations"]
    assert (violation["rule"], violation["column"], violation["failed_rows"]) == ("in_range(18, 100)", "age", 2)
    assert [e["row"] for e in violation["examples"]] == [10, 2_500]


def test_an_unknown_engine_is_a_clear_error(tmp_path: Path) -> None:
    done = CliRunner().invoke(app, ["data", "validate", str(tmp_path), "--engine", "spark"])
    assert isinstance(done.exception, ChurnError)
    assert "--engine must be pandas or dask, got 'spark'" in str(done.exception)


def test_no_dask_operator_access_is_one_clear_line(tmp_path: Path) -> None:
    """In a pod without credentials for the Kubernetes API: a one-line error, no traceback, exit 1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "KUBE", "CHURN_"))}
    env |= {
        "HOME": str(tmp_path),
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": "1",
        "CHURN_DASK__KUBERNETES": "true",
        "CHURN_DASK__NAMESPACE": "ml",
    }
    done = subprocess.run(
        [sys.executable, "-m", "churn", "data", "validate", str(tmp_path), "--engine", "dask"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "error: cannot create a DaskCluster in namespace 'ml'" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_generate_with_the_dask_engine_writes_a_folder_of_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHURN_DATA_DIR", raising=False)
    runner = CliRunner()
    args = ["data", "generate", "--rows", "300000", "--date", "2026-01-05", "--engine", "dask", "--seed", "4"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    folder = tmp_path / "data/raw/customers_20260105"
    assert sorted(p.name for p in folder.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert sum(len(pd.read_parquet(p)) for p in folder.iterdir()) == 300_000
    first = [p.read_bytes() for p in sorted(folder.iterdir())]
    assert runner.invoke(app, args).exit_code == 0
    assert [p.read_bytes() for p in sorted(folder.iterdir())] == first  # byte-identical for the same arguments
    refused = runner.invoke(app, [*args, "--format", "csv"])
    assert isinstance(refused.exception, ChurnError) and "drop --strength and --format" in str(refused.exception)
