"""The pipeline stages' work on the Dask engine: the same inputs and outputs as the pandas engine's.

A dataset between stages is a folder of ``part-*.parquet`` (the pandas engine writes one
file); every stage reads it with Dask, so no process holds more than a partition, a
bounded sample, or a column of results. The models that come out are the same plain
single-node ``ChurnModel`` the pandas engine saves, so selection, registry, gate, serving
and monitoring do not change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churn.data import dataset
from churn.data.schema import LABEL
from churn.engine.dask.frames import compute, read_raw
from churn.errors import ChurnError
from churn.storage import Location, copy, s3

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


@contextmanager
def engine_client(settings: DaskSettings | None = None, *, name: str = "churn") -> Iterator[Client]:
    """The run's Dask client (see :func:`churn.engine.dask.cluster.dask_client`)."""
    from churn.engine.dask.cluster import dask_client

    with dask_client(settings, name=name) as client:
        yield client


def _write_part(part: pd.DataFrame, destination: str, raw: bool) -> int:
    import pyarrow as pa

    from churn.data.files import raw_table

    table = raw_table(part.reset_index(drop=True)) if raw else pa.Table.from_pandas(part, preserve_index=False)
    dataset.write_table(table, destination)
    return len(part)


def write_parts(frame: dd.DataFrame, folder: str | Path, *, what: str, raw: bool = True) -> int:
    """Write each partition as ``part-NNNNN.parquet`` from the workers, as the dataset at ``folder``; the row count.

    The parts go into ``folder`` itself, or under a new S3 work prefix it points at (see
    :mod:`churn.data.dataset`). Raw rows are written with the raw export's schema (the pandas
    engine's split files have it); other tables (features) with the types they have.
    """
    from dask import delayed

    with dataset.writing(folder) as target:
        tasks = [
            delayed(_write_part)(p, f"{target}part-{i:05d}.parquet", raw) for i, p in enumerate(frame.to_delayed())
        ]
        rows = int(sum(compute(*tasks, what=what)))
    return rows


def ingest(source: str, out: str | Path) -> None:
    """Copy a parquet export (a folder of parts, one ``.parquet`` file, or an ``s3://`` prefix) as the dataset ``out``.

    Raises:
        ChurnError: The source is missing, empty, or not parquet (the Dask engine reads parquet).

    """
    where = Location.parse(source)
    if where.is_s3:
        try:
            keys = s3.list_objects(where.folder()).keys
        except Exception as exc:  # boto3 raises many kinds; each means "cannot read it"
            raise ChurnError(f"cannot read {source}: {exc}") from None
        files = [str(Location.s3(where.bucket, k)) for k in sorted(keys) if k.endswith(".parquet")]
        if not files:
            raise ChurnError(f"{source} holds no .parquet objects")
    else:
        path = where.path
        if path.is_dir():
            files = [str(f) for f in sorted(path.glob("*.parquet"))]
        elif path.is_file() and path.suffix == ".parquet":
            files = [str(path)]
        elif path.is_file():
            raise ChurnError(f"{source}: the dask engine reads parquet (a folder of part-*.parquet or one .parquet)")
        else:
            raise ChurnError(f"data source {source} does not exist")
        if not files:
            raise ChurnError(f"{source} holds no .parquet files")
    try:
        with dataset.writing(out) as target:
            for i, file in enumerate(files):
                copy(file, f"{target}part-{i:05d}.parquet")
    except (ChurnError, OSError):
        raise
    except Exception as exc:  # boto3 raises many kinds; each means "cannot copy it"
        raise ChurnError(f"cannot copy {source}: {exc}") from None


def _split_part(part: pd.DataFrame, cuts: Any, seed: int, index: int, targets: dict[str, str]) -> list[int]:
    """Type one raw partition once and write its rows of each split: the rows per split."""
    from churn.engine.dask.frames import typed_partition
    from churn.training.split import SPLITS, assign

    rows = typed_partition(part)
    which = assign(rows, cuts, seed)
    counts = []
    for k, name in enumerate(SPLITS):
        mine = pd.DataFrame(rows.loc[which == k])
        _write_part(mine, f"{targets[name]}part-{index:05d}.parquet", raw=True)
        counts.append(len(mine))
    return counts


def split(
    raw: str | Path,
    outputs: dict[str, str | Path],
    *,
    seed: int = 42,
    validation_size: float = 0.15,
    test_size: float = 0.15,
) -> dict[str, int]:
    """Split a validated partitioned export by a seeded hash of ``customer_id`` into typed parquet datasets.

    The cut points come from the id and label columns alone; then one pass types each raw
    partition once and writes its rows of all three splits (the same rows as
    :func:`churn.engine.dask.split.hash_split`).
    """
    from contextlib import ExitStack

    from dask import delayed

    from churn.data.schema import ID
    from churn.engine.dask.frames import typed
    from churn.engine.dask.split import dask_split_cuts
    from churn.training.split import SPLITS

    frame = read_raw(raw)
    keys = typed(frame[[ID, LABEL]]) if ID in frame.columns and LABEL in frame.columns else frame
    cuts = dask_split_cuts(keys, seed=seed, validation_size=validation_size, test_size=test_size)
    with ExitStack() as stack:
        targets = {name: stack.enter_context(dataset.writing(outputs[name])) for name in SPLITS}
        tasks = [delayed(_split_part)(p, cuts, seed, i, targets) for i, p in enumerate(frame.to_delayed())]
        counts = np.sum(compute(*tasks, what="split"), axis=0)
    return {f"{name}_rows": int(counts[k]) for k, name in enumerate(SPLITS)}


def train(
    family: str,
    client: Client | None,
    train_path: str | Path,
    validation_path: str | Path,
    *,
    params: dict[str, Any],
    n_jobs: int = 1,
    seed: int = 42,
    sample_rows: int = SINGLE_NODE_SAMPLE_ROWS,
) -> ChurnModel:
    """Train one family on split folders: boosters on every row on ``client``, the others on a seeded sample.

    The boosters' feature pipeline is fitted on a bounded sample (see :mod:`churn.engine.dask.features`).
    Logistic Regression and Random Forest are fitted with scikit-learn in this process on
    :func:`sample` of each split, which needs no cluster (``client`` may be ``None``): a forest
    on millions of rows would take hours and many GiB in one process.

    Raises:
        ChurnError: a booster without a Dask client.

    """
    from churn.engine.dask.training import DASK_FAMILIES, train_dask
    from churn.training.models import train_family

    if family not in DASK_FAMILIES:
        sample_train = sample(train_path, sample_rows, seed=seed)
        model = train_family(
            family, sample_train, sample(validation_path, sample_rows, seed=seed), params, n_jobs=n_jobs, seed=seed
        )
        model.info["sampled_rows"] = len(sample_train)
        model.info["engine"] = "dask"
        # Tags of where it ran: one process, on a sample of the split (no cluster).
        model.info["cluster"] = {"engine": "dask", "dask.sample_rows": str(len(sample_train))}
        return model
    if client is None:
        raise ChurnError(f"{family} trains on a Dask cluster: no client given")
    from churn.engine.dask.cluster import cluster_size
    from churn.engine.dask.features import fit_pipeline

    train_frame, validation_frame = read_raw(train_path), read_raw(validation_path)
    start = time.perf_counter()
    features = fit_pipeline(train_frame, seed=seed)
    features_seconds = time.perf_counter() - start
    # Each worker's booster uses the worker's threads: n_jobs more would oversubscribe the cores.
    threads = min(int(w["nthreads"]) for w in client.scheduler_info()["workers"].values())
    model = train_dask(family, client, features, train_frame, validation_frame, params, n_jobs=threads, seed=seed)
    model.info["features_seconds"] = features_seconds
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
    """Rows of a dataset, from the parts' parquet footers (no data is read)."""
    return int(dataset.arrow_dataset(path).count_rows())


def fits_in_process(path: str | Path, rows: int = SINGLE_NODE_SAMPLE_ROWS) -> bool:
    """Whether a dataset is small enough for one process: then a cluster would only add its start-up time."""
    return row_count(path) <= rows


def head(path: str | Path, rows: int) -> pd.DataFrame:
    """The first ``rows`` rows of a dataset."""
    frame: pd.DataFrame = dataset.arrow_dataset(path).head(rows).to_pandas(date_as_object=False)
    return frame


def label_column(path: str | Path) -> pd.Series:
    """The label column of a dataset, read alone."""
    column = dataset.arrow_dataset(path).to_table(columns=[LABEL]).column(LABEL)
    return pd.Series(column.to_numpy(), name=LABEL)


def sample(path: str | Path, rows: int = SINGLE_NODE_SAMPLE_ROWS, *, seed: int = 0) -> pd.DataFrame:
    """A seeded, bounded sample of a partitioned dataset's rows, read here, part by part, without a cluster.

    The rows :func:`churn.engine.dask.features.fit_sample` takes on a cluster (the same salted hash of
    ``customer_id``), typed as the pandas path types a file. A sample is one process's work
    anyway: reading the parts here skips the cluster's start and shipping the rows back to the
    driver (measured at 1M rows: 57 s on a LocalCluster for the Logistic Regression stage).
    Memory holds one part (250K rows, ~160 MB) beside the sample.
    """
    from churn.data.schema import ID
    from churn.engine.dask.features import sample_mask
    from churn.engine.dask.frames import typed_partition

    data = dataset.arrow_dataset(path)
    total = int(data.count_rows())
    pieces = []
    for fragment in data.get_fragments():
        part = fragment.to_table().to_pandas()
        if total > rows:
            part = part[sample_mask(part[ID], rows / total, seed)]
        pieces.append(typed_partition(part))
    return pd.concat(pieces, ignore_index=True)
