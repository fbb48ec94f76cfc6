"""The raw export's file format: customer rows as CSV or parquet with the schema's types.

Files are written through :func:`churn.storage.atomic_path`, so a crash or an exception
leaves the old file or the new one, never a mix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from churn.data import schema
from churn.storage import atomic_path

FileFormat = Literal["csv", "parquet"]

_ARROW_TYPES = {
    schema.Kind.ID: pa.string(),
    schema.Kind.DATE: pa.date32(),
    schema.Kind.INT: pa.int64(),
    schema.Kind.FLOAT: pa.float64(),
    schema.Kind.CATEGORY: pa.string(),
    schema.Kind.LABEL: pa.int8(),
}
#: Arrow schema of the raw export, so CSV and parquet files carry the same types.
RAW_ARROW_SCHEMA = pa.schema([pa.field(c.name, _ARROW_TYPES[c.kind]) for c in schema.RAW_COLUMNS])


def raw_table(frame: pd.DataFrame) -> pa.Table:
    """Convert a raw customer frame to Arrow with the declared column types."""
    columns = {}
    for field in RAW_ARROW_SCHEMA:
        series = frame[field.name]
        if isinstance(series.dtype, pd.CategoricalDtype):
            series = series.astype(object)
        columns[field.name] = pa.array(series, type=field.type, from_pandas=True)
    return pa.table(columns, schema=RAW_ARROW_SCHEMA)


def write_raw(frames: Iterable[pd.DataFrame], path: str | os.PathLike[str], fmt: FileFormat = "csv") -> Path:
    """Stream raw customer frames into one CSV or parquet file, atomically.

    Frames are written as they arrive, so a file larger than memory can be produced
    from a generator of blocks.
    """
    with atomic_path(path) as tmp:
        writer: pa_csv.CSVWriter | pq.ParquetWriter
        if fmt == "csv":
            writer = pa_csv.CSVWriter(
                str(tmp), RAW_ARROW_SCHEMA, write_options=pa_csv.WriteOptions(quoting_style="needed")
            )
        elif fmt == "parquet":
            writer = pq.ParquetWriter(str(tmp), RAW_ARROW_SCHEMA)
        else:
            raise ValueError(f"unknown format {fmt!r}; use 'csv' or 'parquet'")
        with writer:
            for frame in frames:
                writer.write_table(raw_table(frame))
    return Path(path)
