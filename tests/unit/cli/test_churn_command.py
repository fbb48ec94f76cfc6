"""The command line as a user meets it: its description, and a clear error for an empty source to score."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from churn.cli import app

pytestmark = pytest.mark.unit


def test_help_describes_what_churn_does() -> None:
    shown = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    assert "later" not in shown
    assert "training" in shown and "serving" in shown and "monitoring" in shown


@pytest.mark.parametrize("source", ["", "  "])
def test_scoring_an_empty_source_fails_naming_it(tmp_path: Path, source: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "churn", "score", source], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1, done.stdout
    assert f"error: the source to score is empty ({source!r})" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "data").exists()
