"""The one engine chooser: validates the name once, decides from a name or a dataset's location."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from churn.engine import engine_for
from churn.errors import ChurnError

pytestmark = pytest.mark.unit


def test_a_bad_engine_name_is_refused_naming_it() -> None:
    with pytest.raises(ChurnError, match="engine must be pandas or dask, got 'spark'"):
        engine_for("spark")
    with pytest.raises(ChurnError, match="--engine must be pandas or dask, got 'spark'"):
        engine_for("spark", option="--engine")


def test_the_name_or_the_location_decides(tmp_path: Path) -> None:
    assert engine_for(None).name == engine_for("").name == engine_for("pandas").name == "pandas"
    assert engine_for("dask").name == "dask"
    (tmp_path / "file.csv").write_text("x\n")
    assert engine_for(None, tmp_path / "file.csv").name == "pandas"
    assert engine_for("pandas", tmp_path).name == "dask"  # a folder of parts is the Dask engine's dataset


def test_a_pandas_stage_run_does_not_load_dask(tmp_path: Path) -> None:
    script = f"""
import sys
from churn.stages import data, training
raw = {str(tmp_path / "raw.csv")!r}
data.load_data(raw, rows=2_000, date="2026-01-05", engine="pandas")
data.validate(raw, {str(tmp_path / "report.json")!r})
out = {{n: {str(tmp_path)!r} + "/" + n + ".parquet" for n in ("train", "validation", "test")}}
data.split(raw, out)
training.read_split(out["train"])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed", "dask_kubernetes"))
assert not loaded, loaded
assert "churn.engine.dask" not in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
