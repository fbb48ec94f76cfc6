"""A worker that dies mid-run: its tasks are rerun by Dask, or the stage fails clearly; the cluster always closes.

These tests kill worker processes, so they use their own LocalCluster, not the shared one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest

from churn.config import DaskSettings
from churn.engine.dask.cluster import dask_client
from churn.engine.dask.features import transform
from churn.engine.dask.frames import compute, read_raw, typed
from churn.errors import ChurnError
from churn.features.pipeline import FeaturePipeline

Writer = Callable[[pd.DataFrame, Path, int], Path]
SETTINGS = DaskSettings(n_workers=2, threads_per_worker=1, memory_limit="1GiB")


def die_once(part: pd.DataFrame, marker: str) -> pd.DataFrame:
    """Kill this worker process the first time any partition gets here; pass rows through afterwards."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return part
    os.close(fd)
    os._exit(1)


def die_always(part: pd.DataFrame) -> pd.DataFrame:
    os._exit(1)


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_and_the_result_is_unchanged(
    raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path
) -> None:
    pipeline = FeaturePipeline().fit(raw)
    expected = pipeline.transform(raw)
    folder = write_partitions(raw, tmp_path / "c", 4)
    marker = str(tmp_path / "killed")
    with dask_client(SETTINGS) as client:
        ddf = typed(read_raw(folder))
        ddf = ddf.map_partitions(die_once, marker, meta=ddf._meta)
        (got,) = compute(transform(pipeline, ddf), what="features")
        assert Path(marker).exists()  # a worker really died
        client.wait_for_workers(2, timeout=60)  # and its nanny starts a new one
    assert got.to_numpy().tobytes() == np.ascontiguousarray(expected).tobytes()


@pytest.mark.slow
def test_workers_that_keep_dying_fail_the_stage_clearly_and_the_cluster_closes(
    raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path
) -> None:
    folder = write_partitions(raw, tmp_path / "c", 1)
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        pytest.raises(ChurnError, match=r"features failed: Dask workers died repeatedly"),
        dask_client(SETTINGS.model_copy(update={"n_workers": 1})) as client,
    ):
        cluster = client.cluster
        ddf = typed(read_raw(folder))
        compute(ddf.map_partitions(die_always, meta=ddf._meta), what="features")
    assert client.status == "closed"
    assert cluster.status.name == "closed"
