"""Drift statistics on Dask: the counts reduced across partitions are the pandas path's counts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import Client

from churn.data.generator import generate_customers
from churn.errors import ChurnError
from churn.monitoring.reference import category_counts, fit_reference, numeric_values
from churn.monitoring.stats import bin_counts
from churn.scale.frames import read_raw, typed
from churn.scale.monitoring import drift_counts

Writer = Callable[[pd.DataFrame, Path, int], Path]


def test_bin_and_category_counts_equal_the_pandas_path(
    client: Client, raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path
) -> None:
    profile = fit_reference(raw, bins=10)
    current = generate_customers(2_000, "2026-07-31", seed=11, scenario="price_shock").frame
    current["country"] = current["country"].astype(object)
    current.loc[1_900:, "country"] = "XX"  # a category the reference never saw, only in the last partition
    current.loc[:99, "country"] = None  # missing values, only in the first partition
    current.loc[500:1_400, "age"] = np.nan
    ddf = typed(read_raw(write_partitions(current, tmp_path / "current", 4)))
    frame = ddf.compute().reset_index(drop=True)  # the rows as the pandas path reads them
    counts = drift_counts(profile, ddf)
    assert counts.rows == len(current)
    assert set(counts.numeric) == set(profile.numeric)
    for name, ref in profile.numeric.items():
        expected = bin_counts(numeric_values(frame[name], name), np.asarray(ref.edges))
        np.testing.assert_array_equal(counts.numeric[name], expected, err_msg=name)
    assert counts.numeric["age"][-1] == int(current["age"].isna().sum()) >= 901
    for name in profile.categorical:
        names, expected = category_counts(frame[name])
        assert counts.categorical[name][0] == names, name
        np.testing.assert_array_equal(counts.categorical[name][1], expected, err_msg=name)
    names, country = counts.categorical["country"]
    assert names[-1] == "XX" and country[-2] == 100 and country[-1] == 100


def test_missing_columns_are_a_clear_error(client: Client, raw: pd.DataFrame, tmp_path: Path) -> None:
    profile = fit_reference(raw)
    raw.drop(columns=["age", "preferred_device"]).to_parquet(tmp_path / "part-0.parquet")
    ddf = typed(read_raw(tmp_path))
    with pytest.raises(ChurnError, match=r"current data lacks column\(s\): age, preferred_device"):
        drift_counts(profile, ddf)
