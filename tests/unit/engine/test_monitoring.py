"""Drift checks on Dask: the counts summed across partitions, and the report, are the pandas path's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import Client

from churn.data.generator import generate_customers
from churn.engine.dask.frames import read_raw, typed
from churn.engine.dask.monitoring import check_drift_dask, drift_counts
from churn.errors import ChurnError
from churn.monitoring.checks import check_drift, count_current
from churn.monitoring.reference import category_counts, fit_reference, numeric_values
from churn.monitoring.stats import bin_counts
from churn.training.models import train_family

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
    whole = count_current(profile, frame)
    for name, ref in profile.numeric.items():
        expected = bin_counts(numeric_values(frame[name], name), np.asarray(ref.edges))
        np.testing.assert_array_equal(counts.numeric[name].coarse, expected, err_msg=name)
        np.testing.assert_array_equal(counts.numeric[name].fine, whole.numeric[name].fine, err_msg=name)
        np.testing.assert_allclose(counts.numeric[name].sums, whole.numeric[name].sums, rtol=1e-12, err_msg=name)
    assert counts.numeric["age"].missing == int(current["age"].isna().sum()) >= 901
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


@pytest.mark.parametrize("scenario", ["none", "price_shock"])
def test_the_drift_report_equals_the_pandas_report(
    client: Client, raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path, scenario: str
) -> None:
    frame_raw = typed(read_raw(write_partitions(raw, tmp_path / "reference", 1))).compute().reset_index(drop=True)
    model = train_family("logistic_regression", frame_raw.iloc[:2_000], frame_raw.iloc[2_000:], {}, n_jobs=1)
    profile = fit_reference(frame_raw, model.predict_proba(frame_raw), roc_auc=0.8, roc_auc_standard_error=0.01)
    current = generate_customers(2_500, "2026-07-31", seed=3, scenario=scenario).frame
    current.loc[:40, "churned"] = np.nan  # some rows not labelled yet
    ddf = typed(read_raw(write_partitions(current, tmp_path / "current", 3)))
    frame = ddf.compute().reset_index(drop=True)
    report, p = check_drift_dask(profile, ddf, model)
    expected = check_drift(profile, frame, model.predict_proba(frame))
    assert p is not None
    np.testing.assert_allclose(p, model.predict_proba(frame), rtol=0, atol=1e-12)
    got, want = report.to_dict(), expected.to_dict()
    assert got["verdict"] == want["verdict"] and got["flagged"] == want["flagged"]
    assert got.keys() == want.keys()
    for left, right in zip(got["features"], want["features"], strict=True):
        assert left.keys() == right.keys()
        for key, value in right.items():
            if isinstance(value, float):
                assert left[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (right["feature"], key)
            else:
                assert left[key] == pytest.approx(value), (right["feature"], key)
    for key in ("churn_rate", "prediction", "performance"):
        assert got[key] == pytest.approx(want[key]), key
    if scenario == "price_shock":
        assert want["verdict"] != "ok"  # the comparison covers a report that flags something
