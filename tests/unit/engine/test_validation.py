"""Validation on Dask: the same verdict and the same violations as the pandas path on the same data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from distributed import Client

from churn.data.files import raw_table
from churn.engine.dask.validation import validate_path
from churn.validation import DataValidationError, ValidationReport, validate_file

Writer = Callable[[pd.DataFrame, Path, int], Path]


def _both(frame: pd.DataFrame, root: Path, write: Writer, **kwargs: Any) -> tuple[ValidationReport, ValidationReport]:
    """The pandas path's report on one file and the Dask path's on 4 partitions of the same rows."""
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(raw_table(frame), root / "one.parquet")
    folder = write(frame, root / "parts", 4)
    reports = []
    for run in (validate_file, validate_path):
        try:
            _, report = run(root / "one.parquet" if run is validate_file else folder, **kwargs)
        except DataValidationError as exc:
            report = exc.report
        reports.append(report)
    return reports[0], reports[1]


def _by_rule(report: ValidationReport) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Each violation's count, message and number of examples.

    Which example rows are shown differs: the Dask path lists the first rows of the export,
    the pandas path the order pandera reports them in (not always by row).
    """
    return {
        (v.rule, v.column): {"failed_rows": v.failed_rows, "message": v.message, "examples": len(v.examples)}
        for v in report.violations
    }


def test_a_clean_export_is_valid_on_both_engines(
    client: Client, raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path
) -> None:
    pandas_report, dask_report = _both(raw, tmp_path, write_partitions, min_rows=100)
    assert pandas_report.valid and dask_report.valid
    assert dask_report.rows == pandas_report.rows == len(raw)
    assert dask_report.columns == pandas_report.columns
    assert dask_report.null_rates == pandas_report.null_rates
    assert any(rate > 0 for rate in dask_report.null_rates.values())


def _broken(raw: pd.DataFrame) -> pd.DataFrame:
    """Violations of every kind, spread over the rows (and so over the 4 partitions)."""
    bad = raw.copy()
    bad["country"] = bad["country"].astype(object)  # the generator's categorical dtype allows no unknown value
    n = len(bad)
    spread = np.linspace(5, n - 5, 12).astype(int)
    bad.loc[spread[:4], "age"] = 7  # out of range, in partitions 1 and 2
    bad.loc[spread[4:8], "country"] = ["XX", "ZZ", "AA", "XX"]  # unknown categories, partitions 2 and 3
    bad.loc[spread[8:], "total_returns"] = bad.loc[spread[8:], "total_orders"] + 3  # a row rule, partitions 3 and 4
    # Duplicated ids: a value seen in partitions 1 and 4, another twice in partition 2.
    bad.loc[n - 1, "customer_id"] = bad.loc[0, "customer_id"]
    bad.loc[n // 3 + 1, "customer_id"] = bad.loc[n // 3, "customer_id"]
    # A null rate above its limit only when all partitions are counted: 8% of rows per partition
    # would pass, but the last partition is all-missing.
    bad.loc[3 * n // 4 :, "age"] = np.nan
    bad.loc[spread[2], "signup_date"] = pd.NaT  # not nullable
    return bad


def test_injected_violations_give_the_same_verdict_counts_and_examples(
    client: Client, raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path
) -> None:
    pandas_report, dask_report = _both(_broken(raw), tmp_path, write_partitions, min_rows=100, max_examples=3)
    assert not pandas_report.valid and not dask_report.valid
    expected = _by_rule(pandas_report)
    assert {("field_uniqueness", "customer_id"), ("returns_within_orders", "total_returns, total_orders")} <= set(
        expected
    )
    assert any(rule.startswith("max_null_rate") for rule, _ in expected)
    assert any(rule.startswith("isin") for rule, _ in expected)
    assert _by_rule(dask_report) == expected
    examples = {(v.rule, v.column): v.examples for v in dask_report.violations}
    spread = np.linspace(5, len(raw) - 5, 12).astype(int)
    assert examples[("in_range(18, 100)", "age")] == [{"row": int(r), "value": 7} for r in spread[:3]]
    assert [e["row"] for e in examples[("field_uniqueness", "customer_id")]] == [0, len(raw) // 3, len(raw) // 3 + 1]
    assert dask_report.rows == pandas_report.rows
    assert dask_report.null_rates == pandas_report.null_rates


def test_too_few_rows_counts_all_partitions(
    client: Client, raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path
) -> None:
    small = raw.head(400)
    pandas_report, dask_report = _both(small, tmp_path / "a", write_partitions, min_rows=401)
    assert _by_rule(dask_report) == _by_rule(pandas_report)
    assert [v.rule for v in dask_report.violations] == ["min_rows(401)"]
    # 400 rows in 4 partitions of 100: each alone is below 150, together they pass.
    pandas_report, dask_report = _both(small, tmp_path / "b", write_partitions, min_rows=150)
    assert pandas_report.valid and dask_report.valid


def test_an_unreadable_export_is_a_clear_error(client: Client, tmp_path: Path) -> None:
    from churn.errors import ChurnError

    (tmp_path / "part-00000.parquet").write_text("customer_id\n1\n")
    with pytest.raises(ChurnError, match="not a readable parquet export"):
        validate_path(tmp_path)
