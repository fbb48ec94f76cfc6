"""The prediction log: batches written whole, read back exactly, locally and on a real S3 endpoint."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.errors import ChurnError
from churn.predictions.log import read_prediction_log, write_prediction_log
from churn.predictions.logger import PredictionLogger


def _scored(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    return pd.DataFrame(
        {"customer_id": [f"C-{i}" for i in range(n)], "churn_probability": p, "churn_label": (p >= 0.5).astype(int)}
    )


def test_a_batch_run_is_logged_by_day_and_reads_back_exactly(tmp_path: Path) -> None:
    frame = _scored(500)
    when = dt.datetime(2026, 1, 6, 23, 59, tzinfo=dt.UTC)
    written = write_prediction_log(
        frame, tmp_path, run_id="run-1", model_name="churn-model", model_version="3", scored_at=when
    )
    assert [Path(w).parent.name for w in written] == ["date=2026-01-06"]
    back = read_prediction_log(tmp_path)
    assert back["customer_id"].tolist() == frame["customer_id"].tolist()
    np.testing.assert_array_equal(back["churn_probability"], frame["churn_probability"])
    assert back["churn_label"].tolist() == frame["churn_label"].tolist()
    assert set(back["request_id"]) == {"run-1"} and set(back["model_version"]) == {"3"}
    assert set(back["source"]) == {"batch"} and set(back["date"]) == {dt.date(2026, 1, 6)}
    assert read_prediction_log(tmp_path, start=dt.date(2026, 1, 7)).empty


def test_a_leftover_temporary_file_is_never_read(tmp_path: Path) -> None:
    write_prediction_log(_scored(10), tmp_path, run_id="r", model_name="m", model_version="1")
    day = next(tmp_path.glob("date=*"))
    (day / ".online-crashed.parquet.1234.tmp.parquet").write_bytes(b"PAR1 half a file")
    assert len(read_prediction_log(tmp_path)) == 10


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="churn_label"), "no column 'churn_label'"),
        (lambda f: f.assign(churn_probability=1.5), "between 0 and 1"),
        (lambda f: f.assign(churn_label=2), "0 or 1"),
    ],
)
def test_a_bad_scored_frame_is_refused_and_nothing_is_written(tmp_path: Path, change, message: str) -> None:
    with pytest.raises(ChurnError, match=message):
        write_prediction_log(change(_scored(5)), tmp_path, run_id="r", model_name="m", model_version="1")
    assert not list(tmp_path.rglob("*"))


def test_the_logger_writes_in_batches_off_the_caller_and_flushes_on_close(tmp_path: Path) -> None:
    logger = PredictionLogger(tmp_path, model_name="m", model_version="7", flush_seconds=0.2).start()
    for i in range(50):
        logger.record(f"req-{i}", [f"C-{i}", f"D-{i}"], np.array([0.1, 0.9]), np.array([0, 1], dtype=np.int32))
    logger.record("no-ids", None, np.array([0.4]), np.array([0], dtype=np.int32))
    logger.close()
    back = read_prediction_log(tmp_path)
    assert len(back) == 101 and logger.written == 101
    assert back["customer_id"].isna().sum() == 1
    assert set(back["model_version"]) == {"7"} and set(back["source"]) == {"online"}
    assert len(list(tmp_path.glob("date=*/*.jsonl.gz"))) < 51  # batched, not one object per request


def test_a_store_that_cannot_be_written_drops_and_counts_instead_of_failing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    logger = PredictionLogger(blocker, model_name="m", model_version="1", flush_seconds=10)
    logger.record("r", ["C"], np.array([0.5]), np.array([1]))
    assert logger.flush() == 0 and logger.failed_writes == 1


def test_the_log_on_a_real_s3_endpoint(s3_endpoint: str, s3_bucket: str, aws_env: dict[str, str], monkeypatch) -> None:
    for key, value in aws_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    root = f"s3://{s3_bucket}/predictions-{os.getpid()}"
    written = write_prediction_log(_scored(300), root, run_id="r", model_name="m", model_version="2")
    assert written[0].startswith(f"{root}/date=")
    logger = PredictionLogger(root, model_name="m", model_version="2", flush_seconds=0.1).start()
    logger.record("online-1", ["X"], np.array([0.2]), np.array([0]))
    logger.close()
    back = read_prediction_log(root)
    assert len(back) == 301 and set(back["source"]) == {"batch", "online"}
    today = dt.datetime.now(dt.UTC).date()  # a window lists only its days' partitions
    assert len(read_prediction_log(root, start=today - dt.timedelta(days=2), end=today)) == 301
    assert read_prediction_log(root, start=today + dt.timedelta(days=1), end=today + dt.timedelta(days=3)).empty


def test_the_transformers_writer_needs_neither_pyarrow_nor_boto3(tmp_path: Path) -> None:
    """The serving image has neither: the transformer and its log writer import and write without them."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "for name in ('pyarrow', 'boto3', 'botocore'): sys.modules[name] = None\n"
        "import numpy as np, churn.serving.transformer\n"
        "from churn.predictions.logger import PredictionLogger\n"
        f"logger = PredictionLogger({str(tmp_path)!r}, model_name='m', model_version='3').start()\n"
        "logger.record('r-1', ['C-1', None], np.array([0.125, 0.5]), np.array([0, 1]))\n"
        "logger.close()\n"
        "assert logger.written == 2, logger.written\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    (written,) = tmp_path.glob("date=*/online-*.jsonl.gz")
    back = read_prediction_log(tmp_path)
    assert back["customer_id"].tolist() == ["C-1", None] and back["churn_probability"].tolist() == [0.125, 0.5]
    assert back["scored_at"].dt.tz is not None and str(back["date"][0]) == written.parent.name.removeprefix("date=")


def test_a_log_object_that_is_not_what_its_name_says_is_named_in_the_error(tmp_path: Path) -> None:
    day = tmp_path / "date=2026-01-06"
    day.mkdir()
    (day / "online-x.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(ChurnError, match=r"online-x.jsonl.gz is not a readable gzipped JSON-lines file"):
        read_prediction_log(tmp_path)


def test_s3_credentials_missing_fail_the_transformer_at_start(monkeypatch) -> None:
    from churn.predictions.logger import check_writer

    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    with pytest.raises(ChurnError, match="AWS_ACCESS_KEY_ID"):
        check_writer("s3://bucket/predictions/")
    check_writer(str(Path("/nonexistent")))  # a folder is checked when written


# --------------------------------------------------------------------------- compaction


def _many_small_objects(root: str, days: tuple[str, ...] = ("2026-01-06", "2026-01-07"), per_day: int = 12) -> None:
    """What a transformer leaves: one small JSON-lines object per flush, plus a batch run's parquet object."""
    from churn.predictions.logger import encode_jsonl, write_jsonl_objects
    from churn.predictions.records import Scored

    for d, day in enumerate(days):
        midnight = dt.datetime.fromisoformat(f"{day}T00:00:00+00:00").timestamp()
        for i in range(per_day):
            rng = np.random.default_rng(100 * d + i)
            p = rng.random(3)
            items = [Scored(f"req-{day}-{i}", [f"C-{i}-{j}" for j in range(3)], p, (p > 0.5).astype(int), midnight + i)]
            write_jsonl_objects(encode_jsonl(items, "m", "5", "online"), root, "online")
        when = dt.datetime.fromisoformat(f"{day}T06:00:00+00:00")
        write_prediction_log(
            _scored(40, seed=d), root, run_id=f"batch-{day}", model_name="m", model_version="5", scored_at=when
        )


def _rows(frame: pd.DataFrame) -> list[tuple]:
    columns = ["request_id", "customer_id", "scored_at", "churn_probability", "churn_label", "source", "date"]
    return sorted(map(tuple, frame[columns].astype(str).to_numpy().tolist()))


def test_compaction_leaves_one_parquet_object_per_day_with_the_same_records_and_is_idempotent(tmp_path: Path) -> None:
    from churn.predictions.log import compact_prediction_log
    from churn.predictions.records import COMPACTED

    _many_small_objects(str(tmp_path))
    before = read_prediction_log(tmp_path)
    assert len(before) == 2 * (12 * 3 + 40) and len(list(tmp_path.glob("date=*/*"))) == 26
    done = compact_prediction_log(tmp_path)
    assert [(d.day.isoformat(), d.merged, d.records) for d in done] == [("2026-01-06", 13, 76), ("2026-01-07", 13, 76)]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        f"date=2026-01-06/{COMPACTED}",
        f"date=2026-01-07/{COMPACTED}",
    ]
    after = read_prediction_log(tmp_path)
    assert _rows(after) == _rows(before)
    assert after["scored_at"].is_monotonic_increasing  # each day sorted by time
    assert _rows(read_prediction_log(tmp_path, start=dt.date(2026, 1, 7))) == _rows(
        before[before["date"] == dt.date(2026, 1, 7)]
    )
    content = (tmp_path / f"date=2026-01-06/{COMPACTED}").read_bytes()
    again = compact_prediction_log(tmp_path)
    assert [(d.merged, d.deleted) for d in again] == [(0, 0), (0, 0)] and "already compact" in again[0].line()
    assert (tmp_path / f"date=2026-01-06/{COMPACTED}").read_bytes() == content
    # Writers go on: a late object for a compacted day is read beside it, and merged the next time.
    _many_small_objects(str(tmp_path), days=("2026-01-06",), per_day=1)
    grown = read_prediction_log(tmp_path)
    assert len(grown) == len(before) + 3 + 40
    compact_prediction_log(tmp_path, end=dt.date(2026, 1, 6))
    assert _rows(read_prediction_log(tmp_path)) == _rows(grown)
    assert len(list(tmp_path.glob("date=2026-01-06/*"))) == 1


def test_a_compaction_that_stops_before_deleting_leaves_no_duplicates_and_the_next_run_finishes(
    tmp_path: Path, monkeypatch
) -> None:
    import churn.predictions.log as prediction_log

    _many_small_objects(str(tmp_path), days=("2026-01-06",))
    before = read_prediction_log(tmp_path)

    def crash(*args, **kwargs):
        raise ChurnError("killed before deleting")

    with monkeypatch.context() as patched:
        patched.setattr(prediction_log, "_delete", crash)
        with pytest.raises(ChurnError, match="killed"):
            prediction_log.compact_prediction_log(tmp_path)
    assert len(list(tmp_path.glob("date=*/*"))) == 14  # the compacted object beside all 13 it holds
    assert _rows(read_prediction_log(tmp_path)) == _rows(before)  # no duplicates, no gaps
    (done,) = prediction_log.compact_prediction_log(tmp_path)
    assert (done.merged, done.deleted, done.records) == (0, 13, 76)
    assert [p.name for p in tmp_path.glob("date=*/*")] == [prediction_log.COMPACTED]
    assert _rows(read_prediction_log(tmp_path)) == _rows(before)


def test_compaction_on_a_real_s3_endpoint(
    s3_endpoint: str, s3_bucket: str, aws_env: dict[str, str], monkeypatch
) -> None:
    import boto3

    from churn.predictions.log import compact_prediction_log
    from churn.predictions.records import COMPACTED

    for key, value in {**aws_env, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    root = f"s3://{s3_bucket}/compaction-{os.getpid()}"
    _many_small_objects(root, per_day=5)
    before = read_prediction_log(root)
    done = compact_prediction_log(root)
    assert [d.merged for d in done] == [6, 6]
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix=root.removeprefix(f"s3://{s3_bucket}/"))["Contents"]
    assert sorted(o["Key"].split("/", 1)[1] for o in listed) == [
        f"date=2026-01-06/{COMPACTED}",
        f"date=2026-01-07/{COMPACTED}",
    ]
    assert _rows(read_prediction_log(root)) == _rows(before)
    assert [d.merged for d in compact_prediction_log(root)] == [0, 0]


def test_the_compact_command_stops_before_today_and_says_what_it_did(tmp_path: Path) -> None:
    import subprocess
    import sys

    today = dt.datetime.now(dt.UTC).date()
    _many_small_objects(str(tmp_path), days=("2026-01-06", today.isoformat()), per_day=2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CHURN_"))}

    def compact(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "churn", "predictions", "compact", "--root", str(tmp_path), *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    done = compact()
    assert done.returncode == 0, done.stderr
    assert "2026-01-06: 3 objects merged into compacted.parquet (46 records), 3 deleted" in done.stdout
    assert len(list(tmp_path.glob(f"date={today}/*"))) == 3  # today's partition is still being written: left alone
    bad = compact("--end", "2026-02-30")
    assert (
        bad.returncode != 0 and "'2026-02-30' is not a date YYYY-MM-DD" in bad.stderr and "Traceback" not in bad.stderr
    )
