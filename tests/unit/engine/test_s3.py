"""A partitioned export on a real S3 endpoint (moto_server) read by the Dask workers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
from distributed import Client

from churn.engine.dask.frames import read_raw, typed
from churn.storage import copy

Writer = Callable[[pd.DataFrame, Path, int], Path]


def test_parts_on_s3_read_as_locally(
    client: Client,
    raw: pd.DataFrame,
    write_partitions: Writer,
    tmp_path: Path,
    s3_env: str,
    s3_bucket: str,
) -> None:
    folder = write_partitions(raw, tmp_path / "customers_20260630", 3)
    for part in sorted(folder.iterdir()):
        copy(part, f"s3://{s3_bucket}/raw/customers_20260630/{part.name}")
    remote = typed(read_raw(f"s3://{s3_bucket}/raw/customers_20260630/"))
    assert remote.npartitions == 3
    local = typed(read_raw(folder)).compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(remote.compute().reset_index(drop=True), local)
