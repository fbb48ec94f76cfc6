"""Features on Dask: the same fitted pipeline gives the pandas path's matrix bit for bit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from distributed import Client

from churn.data.files import raw_table
from churn.data.schema import ID
from churn.engine.dask.features import features, fit_pipeline, fit_sample, transform
from churn.engine.dask.frames import read_raw, typed
from churn.features.build import feature_table
from churn.features.pipeline import FeaturePipeline
from churn.validation.reader import read_raw_file

Writer = Callable[[pd.DataFrame, Path, int], Path]


@pytest.fixture(scope="module")
def exports(raw: pd.DataFrame, write_partitions: Writer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same rows as one parquet file (the pandas path) and as 4 partitions (the Dask path)."""
    root = tmp_path_factory.mktemp("features")
    pq.write_table(raw_table(raw), root / "customers.parquet")
    return root / "customers.parquet", write_partitions(raw, root / "customers_20260630", 4)


def test_typed_partitions_equal_the_pandas_read(client: Client, exports: tuple[Path, Path]) -> None:
    single, folder = exports
    ddf = typed(read_raw(folder))
    assert ddf.npartitions == 4
    frame = read_raw_file(single).frame
    assert frame is not None
    pd.testing.assert_frame_equal(ddf.compute().reset_index(drop=True), frame)


def test_dask_matrix_equals_the_pandas_matrix_bit_for_bit(client: Client, exports: tuple[Path, Path]) -> None:
    single, folder = exports
    frame = read_raw_file(single).frame
    pipeline = FeaturePipeline(rfm_bins=5).fit(frame)
    expected = pipeline.transform(frame)
    got = transform(pipeline, typed(read_raw(folder))).compute()
    assert list(got.columns) == list(pipeline.get_feature_names_out())
    matrix = got.to_numpy()
    assert matrix.dtype == expected.dtype == np.float64
    assert matrix.shape == expected.shape
    # Bit for bit, NaN-free: the same bytes, not merely close.
    assert not np.isnan(expected).any()
    assert matrix.tobytes() == np.ascontiguousarray(expected).tobytes()


def test_dask_feature_table_equals_the_pandas_feature_table(client: Client, exports: tuple[Path, Path]) -> None:
    single, folder = exports
    frame = read_raw_file(single).frame
    assert frame is not None
    pipeline = FeaturePipeline().fit(frame)
    got = features(pipeline, typed(read_raw(folder))).compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(got, feature_table(pipeline, frame), check_exact=True)


def test_fit_sample_is_seeded_bounded_and_independent_of_partitioning(
    client: Client, raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path
) -> None:
    four = typed(read_raw(write_partitions(raw, tmp_path / "four", 4)))
    three = typed(read_raw(write_partitions(raw, tmp_path / "three", 3)))
    sample = fit_sample(four, 1_000, seed=3)
    assert 800 <= len(sample) <= 1_200
    assert sample[ID].is_unique
    pd.testing.assert_frame_equal(sample, fit_sample(three, 1_000, seed=3))
    other = fit_sample(four, 1_000, seed=4)
    assert set(other[ID]) != set(sample[ID])
    # A table no larger than the sample is used whole.
    assert len(fit_sample(four, 5_000)) == len(raw)
    pipeline = fit_pipeline(four, sample_rows=1_000, seed=3)
    reference = FeaturePipeline().fit(sample)
    np.testing.assert_array_equal(pipeline.medians_, reference.medians_)
