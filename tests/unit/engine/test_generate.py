"""Partitioned exports: the generator's rows cut into parts, byte-identical for the same arguments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from churn.data.generator import generate_customers
from churn.data.partitioned import generate_partitioned, write_partitioned
from churn.errors import ChurnError


def test_parts_hold_the_generators_rows_in_order_and_repeat_byte_for_byte(tmp_path: Path) -> None:
    folder = generate_partitioned(5_000, tmp_path / "a", "2026-06-30", seed=9, part_rows=1_500)
    assert folder == tmp_path / "a" / "customers_20260630"
    parts = sorted(folder.iterdir())
    assert [p.name for p in parts] == [f"part-{i:05d}.parquet" for i in range(4)]
    assert [pq.read_metadata(p).num_rows for p in parts] == [1_500, 1_500, 1_500, 500]
    whole = pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)
    expected = generate_customers(5_000, "2026-06-30", seed=9).frame
    assert list(whole["customer_id"]) == list(expected["customer_id"])
    pd.testing.assert_series_equal(whole["total_spend"], expected["total_spend"])
    again = generate_partitioned(5_000, tmp_path / "b", "2026-06-30", seed=9, part_rows=1_500)
    assert [p.read_bytes() for p in parts] == [p.read_bytes() for p in sorted(again.iterdir())]
    other = generate_partitioned(5_000, tmp_path / "c", "2026-06-30", seed=10, part_rows=1_500)
    assert parts[0].read_bytes() != sorted(other.iterdir())[0].read_bytes()


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    def frames() -> Iterator[pd.DataFrame]:
        yield generate_customers(100, "2026-06-30").frame
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        write_partitioned(frames(), tmp_path / "customers_20260630", part_rows=40)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ChurnError, match="part_rows must be >= 1"):
        write_partitioned([], tmp_path / "x", part_rows=0)
