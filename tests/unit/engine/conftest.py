"""One LocalCluster (2 worker processes x 1 thread) shared by the Dask engine's tests of a module."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from distributed import Client

from churn.config import DaskSettings
from churn.data.files import raw_table
from churn.data.generator import generate_customers
from churn.engine.dask.cluster import dask_client

SETTINGS = DaskSettings(n_workers=2, threads_per_worker=1, memory_limit="2GiB")


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with dask_client(SETTINGS) as c:
        yield c


@pytest.fixture(scope="module")
def write_partitions() -> Callable[[pd.DataFrame, Path, int], Path]:
    """Write a raw frame as ``folder/part-*.parquet``: ``parts`` files of nearly equal size, rows in order."""

    def write(frame: pd.DataFrame, folder: Path, parts: int) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        bounds = [round(i * len(frame) / parts) for i in range(parts + 1)]
        for i, (start, stop) in enumerate(itertools.pairwise(bounds)):
            table = raw_table(frame.iloc[start:stop].reset_index(drop=True))
            pq.write_table(table, folder / f"part-{i:05d}.parquet")
        return folder

    return write


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """3,000 generated customers (with the generator's missing values)."""
    return generate_customers(3_000, "2026-06-30", seed=7).frame
