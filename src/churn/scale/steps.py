"""The training pipeline's stages on the Dask engine: the same inputs and outputs as :mod:`churn.steps`.

A dataset between stages is a folder of ``part-*.parquet`` (the pandas engine writes one
file); every stage reads it with Dask, so no process holds more than a partition, a
bounded sample, or a column of results. The models that come out are the same plain
single-node ``ChurnModel`` the pandas engine saves, so selection, registry, gate, serving
and monitoring do not change.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churn.data.schema import LABEL
from churn.errors import ChurnError
from churn.io import atomic_folder, write_raw
from churn.scale.frames import compute, read_raw

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

    from churn.config import DaskSettings
    from churn.training.models import ChurnModel

#: Rows Logistic Regression and Random Forest are fitted on (and every sampled statistic uses).
#: scikit-learn fits them in one process: a forest on 7M rows would take hours and many GiB, while
#: 500K seeded rows give coefficients and splits whose sampling error is far below the
#: differences the gate acts on; the boosters, which win on this data, train on every row.
SINGLE_NODE_SAMPLE_ROWS = 500_000
PART_GLOB = "part-*.parquet"


@contextmanager
def engine_client(settings: DaskSettings | None = None, *, name: str = "churn") -> Iterator[Client]:
    """The run's Dask client (see :func:`churn.scale.cluster.dask_client`)."""
    from churn.scale.cluster import dask_client

    with dask_client(settings, name=name) as client:
        yield client


def is_partitioned(path: str | Path) -> bool:
    """Whether ``path`` is a folder of parquet parts (a Dask-engine dataset)."""
    return Path(path).is_dir()


def folder_fingerprint(folder: str | Path) -> str:
    """``sha256:<hex>`` over the part files' names and bytes, in name order: one data version per export."""
    digest = hashlib.sha256()
    for part in sorted(Path(folder).glob(PART_GLOB)):
        digest.update(part.name.encode())
        with part.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _write_part(part: pd.DataFrame, path: str, raw: bool) -> int:
    if raw:
        write_raw([part.reset_index(drop=True)], path, "parquet")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), path)
    return len(part)


def write_parts(frame: dd.DataFrame, folder: str | Path, *, what: str, raw: bool = True) -> int:
    """Write each partition as ``folder/part-NNNNN.parquet`` on the workers, atomically; the row count.

    Raw rows are written with the raw export's schema (the pandas engine's split files have it);
    other tables (features) with the types they have.
    """
    from dask import delayed

    with atomic_folder(folder) as tmp:
        tasks = [
            delayed(_write_part)(p, str(tmp / f"part-{i:05d}.parquet"), raw) for i, p in enumerate(frame.to_delayed())
        ]
        rows = int(sum(compute(*tasks, what=what)))
    return rows


def ingest(source: str, out: str | Path) -> None:
    """Copy a parquet export (a folder of parts, one ``.parquet`` file, or an ``s3://`` prefix) into ``out``.

    Raises:
        ChurnError: The source is missing, empty, or not parquet (the Dask engine reads parquet).

    """
    with atomic_folder(out) as tmp:
        if source.startswith("s3://"):
            from churn.io import list_s3, s3_client

            client = s3_client()
            try:
                bucket, _, keys = list_s3(source.rstrip("/") + "/", client=client)
                keys = sorted(k for k in keys if k.endswith(".parquet"))
                if not keys:
                    raise ChurnError(f"{source} holds no .parquet objects")
                for i, key in enumerate(keys):
                    client.download_file(bucket, key, str(tmp / f"part-{i:05d}.parquet"))
            except ChurnError:
                raise
            except Exception as exc:  # boto3 raises many kinds; each means "cannot read it"
                raise ChurnError(f"cannot read {source}: {exc}") from None
            return
        path = Path(source.removeprefix("file://"))
        if path.is_dir():
            files = sorted(path.glob("*.parquet"))
        elif path.is_file() and path.suffix == ".parquet":
            files = [path]
        elif path.is_file():
            raise ChurnError(f"{source}: the dask engine reads parquet (a folder of part-*.parquet or one .parquet)")
        else:
            raise ChurnError(f"data source {source} does not exist")
        if not files:
            raise ChurnError(f"{source} holds no .parquet files")
        for i, file in enumerate(files):
            shutil.copyfile(file, tmp / f"part-{i:05d}.parquet")


def split(
    raw: str | Path,
    outputs: dict[str, str | Path],
    *,
    seed: int = 42,
    validation_size: float = 0.15,
    test_size: float = 0.15,
) -> dict[str, int]:
    """Split a validated partitioned export by a seeded hash of ``customer_id`` into typed parquet folders."""
    from churn.scale.frames import typed
    from churn.scale.split import hash_split

    parts = hash_split(typed(read_raw(raw)), seed=seed, validation_size=validation_size, test_size=test_size)
    return {f"{name}_rows": write_parts(parts[name], outputs[name], what=f"{name} split") for name in parts}


def _sample(frame: dd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    from churn.scale.features import fit_sample

    return fit_sample(frame, rows, seed=seed)


def train(
    family: str,
    client: Client,
    train_path: str | Path,
    validation_path: str | Path,
    *,
    params: dict[str, Any],
    n_jobs: int = 1,
    seed: int = 42,
    sample_rows: int = SINGLE_NODE_SAMPLE_ROWS,
) -> ChurnModel:
    """Train one family on split folders: boosters on every row, the others on a seeded sample.

    The feature pipeline is fitted on a bounded sample (see :mod:`churn.scale.features`).
    """
    from churn.scale.cluster import cluster_size
    from churn.scale.features import fit_pipeline
    from churn.scale.training import DASK_FAMILIES, train_dask
    from churn.training.models import train_family

    train_frame, validation_frame = read_raw(train_path), read_raw(validation_path)
    start = time.perf_counter()
    if family in DASK_FAMILIES:
        features = fit_pipeline(train_frame, seed=seed)
        features_seconds = time.perf_counter() - start
        # Each worker's booster uses the worker's threads: n_jobs more would oversubscribe the cores.
        threads = min(int(w["nthreads"]) for w in client.scheduler_info()["workers"].values())
        model = train_dask(family, client, features, train_frame, validation_frame, params, n_jobs=threads, seed=seed)
        model.info["features_seconds"] = features_seconds
    else:
        sample_train = _sample(train_frame, sample_rows, seed)
        sample_validation = _sample(validation_frame, sample_rows, seed)
        model = train_family(family, sample_train, sample_validation, params, n_jobs=n_jobs, seed=seed)
        model.info["sampled_rows"] = len(sample_train)
        model.info["engine"] = "dask"
    model.info["cluster"] = cluster_size(client)
    return model


def _probabilities(part: pd.DataFrame, model: ChurnModel) -> pd.Series:
    return pd.Series(model.predict_proba(part), index=part.index, dtype=np.float64)


def probabilities(model: ChurnModel, frame: dd.DataFrame) -> np.ndarray:
    """The model's churn probability for every row, computed per partition; one float per row reaches the driver."""
    (p,) = compute(frame.map_partitions(_probabilities, model, meta=pd.Series(dtype=np.float64)), what="scoring")
    return np.asarray(p, dtype=np.float64)


def labels(frame: dd.DataFrame) -> np.ndarray:
    """The label column of every row, in partition order."""
    (y,) = compute(frame[LABEL], what="labels")
    return np.asarray(y, dtype=np.int64)


def scorer(test_path: str | Path) -> tuple[np.ndarray, Callable[[ChurnModel], np.ndarray]]:
    """The test labels and a function that scores a model on every test row, on the current Dask client."""
    test = read_raw(test_path)
    return labels(test), lambda model: probabilities(model, test)


def row_count(path: str | Path) -> int:
    """Rows of a partitioned dataset, from the parts' parquet footers (no data is read)."""
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(part).num_rows for part in Path(path).glob(PART_GLOB))


def fits_in_process(path: str | Path, rows: int = SINGLE_NODE_SAMPLE_ROWS) -> bool:
    """Whether a dataset is small enough for one process: then a cluster would only add its start-up time."""
    return row_count(path) <= rows


def head(path: str | Path, rows: int) -> pd.DataFrame:
    """The first ``rows`` rows of a partitioned dataset (read from its first part only)."""
    import pyarrow.parquet as pq

    first = sorted(Path(path).glob(PART_GLOB))[0]
    frame: pd.DataFrame = pq.read_table(first).slice(0, rows).to_pandas(date_as_object=False)
    return frame


def label_column(path: str | Path) -> pd.Series:
    """The label column of a partitioned dataset, read alone."""
    import pyarrow.parquet as pq

    return pd.Series(pq.read_table(str(path), columns=[LABEL]).column(LABEL).to_numpy(), name=LABEL)


def sample(path: str | Path, rows: int = SINGLE_NODE_SAMPLE_ROWS, *, seed: int = 0) -> pd.DataFrame:
    """A seeded, bounded sample of a partitioned dataset's rows (on the current Dask client)."""
    return _sample(read_raw(path), rows, seed)
