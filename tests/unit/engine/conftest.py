"""One LocalCluster (2 worker processes x 1 thread) per pytest process while its engine modules run.

Starting the cluster costs about 10 s of CPU (a scheduler and two worker processes importing
the stack), so it starts once for a run of engine modules, not once per module. It closes as
soon as the next test is not an engine test: left open to the session's end, its idle workers
took about 4% of a core each for the rest of the run (some 70 s of CPU in a CI run); an engine
module handed out later starts it again. Each module connects its own client to it (the
engine's ``scheduler_address`` path) and closes it at the module's end, so no client outlives
the module to become the default of later tests. The failure tests kill worker processes and
start their own clusters (test_failure.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from distributed import Client, LocalCluster

from churn.config import DaskSettings
from churn.data.files import raw_table
from churn.data.generator import generate_customers
from churn.engine.dask.cluster import dask_client

HERE = Path(__file__).resolve().parent
SETTINGS = DaskSettings(n_workers=2, threads_per_worker=1, memory_limit="2GiB")


class _SharedCluster:
    """The LocalCluster the engine modules of this pytest process share, while they run one after another."""

    cluster: LocalCluster | None = None

    @classmethod
    def address(cls) -> str:
        if cls.cluster is None:
            cls.cluster = LocalCluster(
                n_workers=SETTINGS.n_workers,
                threads_per_worker=SETTINGS.threads_per_worker,
                memory_limit=SETTINGS.memory_limit,
                processes=True,
                dashboard_address=":0",
            )
        return str(cls.cluster.scheduler_address)

    @classmethod
    def close(cls) -> None:
        if cls.cluster is not None:
            cls.cluster.close()
            cls.cluster = None


@pytest.hookimpl(trylast=True)  # after the finished test's own teardown (its module's client closes first)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Close the shared cluster once the next test is not in this folder (xdist hands out whole files)."""
    if nextitem is None or HERE not in Path(nextitem.path).parents:
        _SharedCluster.close()


@pytest.fixture(scope="module")
def dask_scheduler() -> str:
    """Address of the LocalCluster ``dask_client`` would start for SETTINGS, without a client of its own."""
    return _SharedCluster.address()


@pytest.fixture(scope="module")
def client(dask_scheduler: str) -> Iterator[Client]:
    with dask_client(SETTINGS.model_copy(update={"scheduler_address": dask_scheduler})) as c:
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
