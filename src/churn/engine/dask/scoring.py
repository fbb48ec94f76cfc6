"""Batch scoring on Dask: each partition scored by the pandas path's own function, one committed table.

The workers run :meth:`churn.scoring.batch.Scorer.score_frame` on their partitions through
``map_partitions`` (the same ``score_table`` the pandas engine calls on each part: the
model directory's feature pipeline, predictor, threshold, stored deciles and reasons).
The driver takes the scored partitions in order, a few in flight at a time, and writes
them with the pandas engine's writer (:func:`churn.scoring.batch.write_scored`): the same
parts, manifest-last commit and run numbers. Scored rows pass through the driver, one
partition at a time, so its memory holds a few partitions, not the table.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from churn.config import DaskSettings
from churn.engine.dask.frames import meta_of, read_raw, typed
from churn.errors import ChurnError
from churn.scoring.batch import PART_ROWS, Scorer, ScoreSummary, write_scored
from churn.scoring.reasons import SHAP

if TYPE_CHECKING:
    import dask.dataframe as dd

#: Scored partitions computed ahead of the one the driver is writing, per worker.
AHEAD_PER_WORKER = 2


def scored_partitions(frame: dd.DataFrame, scorer: Scorer) -> dd.DataFrame:
    """``frame`` (typed raw records) scored partition by partition with ``scorer.score_frame``."""
    meta = scorer.score_frame(meta_of(frame))  # an empty partition scores to the empty table of the schema
    return frame.map_partitions(scorer.score_frame, meta=meta)


def score_frame_dask(frame: dd.DataFrame, scorer: Scorer, location: str, *, part_rows: int = PART_ROWS) -> ScoreSummary:
    """Score a typed Dask DataFrame on the current client and commit the table at ``location`` atomically.

    Raises:
        ChurnError: Scoring or writing failed (workers died repeatedly, storage refused); the
            previous table is left in place.

    """
    schema = scorer.score_table(meta_of(frame)).schema
    tables = (
        pa.Table.from_pandas(part, schema=schema, preserve_index=False)
        for part in _in_order(scored_partitions(frame, scorer))
    )
    return write_scored(tables, scorer, location, part_rows=part_rows)


def _in_order(frame: dd.DataFrame) -> Iterator[pd.DataFrame]:
    """The partitions of ``frame``, computed on the cluster a few ahead, yielded in order."""
    from distributed import KilledWorker, get_client

    client = get_client()
    ahead = max(1, AHEAD_PER_WORKER * len(client.scheduler_info().get("workers", {})))
    pending: deque[Any] = deque()
    try:
        for part in frame.to_delayed():
            pending.append(client.compute(part))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except KilledWorker as exc:
        raise ChurnError(
            f"scoring failed: Dask workers died repeatedly while scoring ({exc}); they may be short of memory "
            "(raise CHURN_DASK__MEMORY_LIMIT or add workers); the previous table stays"
        ) from None
    finally:
        client.cancel(list(pending))


def score_source_dask(
    source: str | Path,
    location: str,
    *,
    model_dir: Path,
    model_name: str,
    model_version: str,
    reasons: bool = True,
    validate: bool = True,
    min_rows: int = 1,
    part_rows: int = PART_ROWS,
    method: str = SHAP,
    settings: DaskSettings | None = None,
) -> ScoreSummary:
    """:func:`churn.scoring.batch.score_source` on a Dask cluster (see :func:`churn.engine.dask.cluster.dask_client`).

    Args:
        source: A parquet export: a folder of parts, one file, or an ``s3://`` prefix (read by the workers).
        location: Where the scored table is committed (folder or ``s3://``).
        model_dir: The downloaded model directory.
        model_name: Registered model name written with every row.
        model_version: Its version.
        reasons: Add each customer's top reasons.
        validate: Validate the base first (the pandas path's rules, per partition and across them).
        min_rows: Fewest rows a valid base may have.
        part_rows: Largest part of the scored table.
        method: Reasons method of the boosters.
        settings: Where the cluster comes from; the configured one when omitted.

    Raises:
        ChurnError: The base is not parquet, is invalid, or scoring failed; the previous table stays.

    """
    from churn.engine.dask.cluster import dask_client
    from churn.validation import DataValidationError

    with dask_client(settings, name="churn-scoring"):
        raw = read_raw(source)
        if validate:
            from churn.engine.dask.validation import validate_dask

            try:
                frame, _ = validate_dask(raw, source=str(source), min_rows=min_rows)
            except DataValidationError as exc:
                raise ChurnError(f"the customer base is invalid: {exc}") from None
        else:
            frame = typed(raw)
        scorer = Scorer.from_model_dir(
            model_dir, model_name=model_name, model_version=model_version, reasons=reasons, method=method
        )
        return score_frame_dask(frame, scorer, location, part_rows=part_rows)
