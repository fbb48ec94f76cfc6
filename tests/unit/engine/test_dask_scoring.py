"""Scoring on the Dask engine: each partition through the pandas path's function, the same committed table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from distributed import Client

from churn.config import DaskSettings
from churn.engine.dask.scoring import score_source_dask
from churn.errors import ChurnError
from churn.scoring.batch import Scorer, score_source
from churn.scoring.table import read_manifest, read_table

pytestmark = pytest.mark.unit

Writer = Callable[[pd.DataFrame, Path, int], Path]


def _on(client: Client) -> DaskSettings:
    """The module's LocalCluster (2 workers), reached the way a configured scheduler is."""
    return DaskSettings(scheduler_address=client.scheduler.address)


@pytest.mark.slow
def test_the_dask_table_equals_the_pandas_table(
    client: Client, logged_model: Any, raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path
) -> None:
    base = write_partitions(raw, tmp_path / "base", 3)  # 1,000 rows a part, with the generator's missing values
    common = {"model_dir": logged_model.model_dir, "model_name": "churn-model", "model_version": "7", "part_rows": 600}
    by_pandas = score_source(str(base), str(tmp_path / "pandas"), **common)
    by_dask = score_source_dask(base, str(tmp_path / "dask"), settings=_on(client), **common)

    pandas_table, dask_table = read_table(str(tmp_path / "pandas")), read_table(str(tmp_path / "dask"))
    assert len(dask_table) == len(raw) and dask_table["scored_at"].nunique() == 1
    pd.testing.assert_frame_equal(
        dask_table.drop(columns="scored_at"), pandas_table.drop(columns="scored_at"), check_exact=True
    )
    assert dask_table["reason_1"].notna().all()
    # The same parts (1,000 rows -> 600 + 400, three times) and the same run numbers.
    assert by_dask.parts == by_pandas.parts == 6 and by_dask.rows == by_pandas.rows
    assert by_dask.decile_counts == by_pandas.decile_counts and by_dask.churned == by_pandas.churned
    assert by_dask.probability_counts == by_pandas.probability_counts
    assert by_dask.probability_sum == pytest.approx(by_pandas.probability_sum, rel=1e-12)
    assert read_manifest(str(tmp_path / "dask"))["model_version"] == "7"


@pytest.mark.slow
def test_an_invalid_base_on_dask_leaves_the_previous_table(
    client: Client, logged_model: Any, raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path
) -> None:
    out = str(tmp_path / "scored")
    common = {"model_dir": logged_model.model_dir, "model_name": "churn-model", "model_version": "7"}
    first = score_source_dask(
        write_partitions(raw.head(500), tmp_path / "good", 2), out, settings=_on(client), **common
    )
    bad = raw.head(900).copy()
    bad.loc[[10, 700], "age"] = 150
    with pytest.raises(ChurnError, match=r"(?s)the customer base is invalid: .*column .age.: values outside"):
        score_source_dask(write_partitions(bad, tmp_path / "bad", 2), out, settings=_on(client), **common)
    assert read_manifest(out)["run_id"] == first.manifest["run_id"] and len(read_table(out)) == 500
    csv = tmp_path / "base.csv"
    raw.head(10).to_csv(csv, index=False)
    with pytest.raises(ChurnError, match="not a readable parquet export"):
        score_source_dask(csv, out, settings=_on(client), **common)


def test_an_empty_partition_scores_to_the_tables_schema(logged_model: Any, raw: pd.DataFrame) -> None:
    """What map_partitions' meta is, and what an empty partition gives: no rows, every column typed."""
    scorer = Scorer.from_model_dir(logged_model.model_dir, model_name="churn-model", model_version="7")
    full, empty = scorer.score_table(raw.head(20)), scorer.score_table(raw.head(0))
    assert empty.num_rows == 0 and empty.schema == full.schema
    assert np.all(full.column("risk_decile").to_numpy() >= 1)


@pytest.mark.slow
def test_churn_score_with_the_dask_engine(
    client: Client,
    logged_model: Any,
    raw: pd.DataFrame,
    write_partitions: Writer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from churn.cli import app

    base = write_partitions(raw.head(1_200), tmp_path / "base", 2)
    monkeypatch.setenv("CHURN_DASK__SCHEDULER_ADDRESS", client.scheduler.address)
    monkeypatch.setenv("CHURN_DATA_DIR", str(tmp_path))
    command = ["score", str(base), "--model", str(logged_model.model_dir), "--top", "2", "--engine", "dask"]
    done = CliRunner().invoke(app, command)
    assert done.exit_code == 0, done.output
    assert "scored 1200 customers" in done.output and "2 highest-risk customers" in done.output
    table = read_table(str(tmp_path / "scored"))
    assert len(table) == 1_200 and table["customer_id"].tolist() == raw["customer_id"].head(1_200).tolist()
    refused = CliRunner().invoke(app, [*command[:-1], "spark"])
    assert isinstance(refused.exception, ChurnError) and "--engine must be pandas or dask" in str(refused.exception)
