"""The prediction log's ``variant`` column: who answered (champion, canary, shadow), old objects read as champion."""

from __future__ import annotations

import datetime as dt
import gzip
import io
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churn.errors import ChurnError
from churn.predictions.log import compact_prediction_log, read_prediction_log, write_prediction_log
from churn.predictions.logger import PredictionLogger
from churn.predictions.records import COLUMNS

DAY = dt.date(2026, 1, 6)
NOON = dt.datetime(2026, 1, 6, 12, tzinfo=dt.UTC)


def _scored(n: int) -> pd.DataFrame:
    probabilities = np.linspace(0.05, 0.95, n)
    customers = [f"c{i}" for i in range(n)]
    labels = probabilities > 0.5
    return pd.DataFrame({"customer_id": customers, "churn_probability": probabilities, "churn_label": labels})


def _old_records(n: int) -> list[dict[str, object]]:
    """Records as the writers wrote them before the ``variant`` column (no such field)."""
    return [
        {
            "request_id": "old",
            "customer_id": f"o{i}",
            "scored_at": "2026-01-06T10:00:00.000Z",
            "model_name": "churn-model",
            "model_version": "3",
            "churn_probability": 0.25,
            "churn_label": 0,
            "source": "online",
        }
        for i in range(n)
    ]


def _write_old_objects(root: Path) -> None:
    folder = root / "date=2026-01-06"
    folder.mkdir(parents=True)
    lines = b"\n".join(orjson.dumps(r) for r in _old_records(2)) + b"\n"
    (folder / "online-20260106T100000.000Z-aaaaaaaaaaaa.jsonl.gz").write_bytes(gzip.compress(lines))
    frame = pd.DataFrame(_old_records(3))
    frame["scored_at"] = pd.to_datetime(frame["scored_at"], utc=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    assert "variant" not in table.column_names
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    (folder / "batch-20260106T100000.000Z-bbbbbbbbbbbb.parquet").write_bytes(buffer.getvalue())


def test_variant_is_the_last_column_and_batch_scoring_is_the_champion(tmp_path: Path) -> None:
    write_prediction_log(_scored(4), tmp_path, run_id="run-1", model_name="m", model_version="1", scored_at=NOON)
    frame = read_prediction_log(tmp_path)
    assert COLUMNS[-1] == "variant"
    assert list(frame.columns) == [*COLUMNS, "date"]
    assert frame["variant"].tolist() == ["champion"] * 4


def test_a_shadow_batch_keeps_its_variant_and_an_unknown_variant_is_refused(tmp_path: Path) -> None:
    write_prediction_log(
        _scored(3), tmp_path, run_id="r", model_name="m", model_version="2", scored_at=NOON, variant="shadow"
    )
    assert read_prediction_log(tmp_path)["variant"].tolist() == ["shadow"] * 3
    with pytest.raises(ChurnError, match="variant must be one of"):
        write_prediction_log(_scored(1), tmp_path, run_id="r", model_name="m", model_version="2", variant="ghost")


def test_the_online_logger_writes_each_answers_variant_and_the_version_that_answered(tmp_path: Path) -> None:
    logger = PredictionLogger(tmp_path, model_name="churn-model", model_version="7", flush_seconds=60)
    ids = ["a", "b"]
    logger.record("req-1", ids, np.array([0.2, 0.8]), np.array([0, 1]))
    logger.record("req-1", ids, np.array([0.3, 0.6]), np.array([0, 1]), variant="shadow", model_version="8")
    assert logger.flush() == 4
    frame = read_prediction_log(tmp_path).sort_values(["variant", "customer_id"])
    assert frame[["variant", "model_version", "request_id"]].values.tolist() == [
        ["champion", "7", "req-1"],
        ["champion", "7", "req-1"],
        ["shadow", "8", "req-1"],
        ["shadow", "8", "req-1"],
    ]
    assert frame.loc[frame["variant"] == "shadow", "churn_probability"].tolist() == [0.3, 0.6]


def test_objects_written_before_the_column_existed_read_as_the_champions(tmp_path: Path) -> None:
    _write_old_objects(tmp_path)
    frame = read_prediction_log(tmp_path)
    assert len(frame) == 5
    assert frame["variant"].tolist() == ["champion"] * 5
    assert frame["model_version"].tolist() == ["3"] * 5


def test_compaction_of_old_and_new_objects_keeps_every_variant(tmp_path: Path) -> None:
    _write_old_objects(tmp_path)
    write_prediction_log(
        _scored(2), tmp_path, run_id="r", model_name="m", model_version="9", scored_at=NOON, variant="shadow"
    )
    before = read_prediction_log(tmp_path)
    (done,) = compact_prediction_log(tmp_path)
    assert done.merged == 3
    assert sorted(p.name for p in (tmp_path / "date=2026-01-06").iterdir()) == ["compacted.parquet"]
    after = read_prediction_log(tmp_path)
    assert after["variant"].value_counts().to_dict() == {"champion": 5, "shadow": 2}
    key = ["variant", "customer_id"]
    pd.testing.assert_frame_equal(
        before.sort_values(key).reset_index(drop=True), after.sort_values(key).reset_index(drop=True)
    )


def test_an_old_compacted_object_without_the_column_reads_and_compacts_again(tmp_path: Path) -> None:
    _write_old_objects(tmp_path)
    compact_prediction_log(tmp_path)
    # Rewrite the compacted object as an old writer would have: same records and metadata, no variant column.
    path = tmp_path / "date=2026-01-06" / "compacted.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["variant"]).replace_schema_metadata(table.schema.metadata), path)
    write_prediction_log(
        _scored(1), tmp_path, run_id="r", model_name="m", model_version="9", scored_at=NOON, variant="canary"
    )
    compact_prediction_log(tmp_path)
    assert read_prediction_log(tmp_path)["variant"].value_counts().to_dict() == {"champion": 5, "canary": 1}
