"""Raw exports as Dask DataFrames: partitioned parquet read on the workers, typed per partition."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from churn.data.dataset import location
from churn.errors import ChurnError
from churn.storage import Location
from churn.storage.s3 import s3_filesystem
from churn.validation.reader import parse_columns

if TYPE_CHECKING:
    import dask.dataframe as dd


def read_raw(path: str | Path) -> dd.DataFrame:
    """A raw export (a folder of ``part-*.parquet`` or one parquet file, local or ``s3://``) as a Dask DataFrame.

    The files are read by the workers, partition by partition; nothing is loaded here.

    Raises:
        ChurnError: The path holds no readable parquet data.

    """
    import dask
    import dask.dataframe as dd

    path = location(path)  # a task's folder may only point at parts on S3 (see churn.data.dataset)
    options: dict[str, Any] = {}
    if Location.parse(path).is_s3:
        options["filesystem"] = s3_filesystem()
    try:
        # Text stays object dtype with None for missing, exactly as the pandas path reads it.
        with dask.config.set({"dataframe.convert-string": False}):
            return dd.read_parquet(str(path), **options)
    except (OSError, ValueError, TypeError) as exc:
        raise ChurnError(f"{path} is not a readable parquet export: {exc}") from None


def typed_partition(part: pd.DataFrame) -> pd.DataFrame:
    """One partition with every declared column converted as the pandas path converts a file."""
    frame = parse_columns(part.reset_index(drop=True)).frame
    assert frame is not None  # parse_columns always returns the frame it converted
    return frame


def typed(raw: dd.DataFrame) -> dd.DataFrame:
    """``raw`` with each partition typed by :func:`typed_partition` (cells that do not parse become missing)."""
    return raw.map_partitions(typed_partition, meta=typed_partition(meta_of(raw)))


def meta_of(frame: dd.DataFrame) -> pd.DataFrame:
    """The empty pandas frame that describes a Dask DataFrame's columns and dtypes."""
    meta: Any = frame._meta
    return pd.DataFrame(meta)


def compute(*collections: Any, what: str) -> tuple[Any, ...]:
    """``dask.compute`` for one stage, with a worker that keeps dying turned into a clear error.

    A worker that dies mid-run has its tasks rerun elsewhere by Dask (the nanny restarts it);
    only when the same task has killed ``distributed.scheduler.allowed-failures`` workers does
    the stage fail, and then with a message that says so instead of Dask's traceback.

    Raises:
        ChurnError: Workers died repeatedly running ``what``.

    """
    import dask
    from distributed import KilledWorker

    try:
        return tuple(dask.compute(*collections))
    except KilledWorker as exc:
        raise ChurnError(
            f"{what} failed: Dask workers died repeatedly while running it ({exc}); they may be short of memory "
            "(raise CHURN_DASK__MEMORY_LIMIT or add workers); nothing was written"
        ) from None
