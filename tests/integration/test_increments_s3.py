"""Daily increments through a real S3 endpoint (``moto_server``): how the cluster's data and monitoring
pipelines hand the day's file over (the data pipeline publishes under a prefix, monitoring picks the newest),
and the other small fact monitoring keeps in the bucket: the record of its last retraining.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from churn.data import increments
from churn.errors import ChurnError
from churn.stages.monitoring import load_current
from churn.storage import write_object

pytestmark = pytest.mark.integration
PREFIX = "increments-test"


@pytest.fixture
def s3_env(s3_endpoint: str, aws_env: dict[str, str]) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_S3_ENDPOINT_URL", raising=False)
        mp.setenv("AWS_ENDPOINT_URL", s3_endpoint)
        for name, value in aws_env.items():
            mp.setenv(name, value)
        yield


def _csv(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def test_monitoring_reads_the_newest_increment_the_data_pipeline_published(
    s3_env: None, s3_bucket: str, tmp_path: Path
) -> None:
    where = f"s3://{s3_bucket}/{PREFIX}/"
    for date in ("2026-03-02", "2026-03-10", "2026-03-09"):
        written = increments.publish_increment(
            _csv(tmp_path, f"{date}.csv", f"day,{date}\n"), date=date, destination=where
        )
        assert written == f"{where}customers_{date.replace('-', '')}.csv"
    # Neither a file in a sub-folder nor one without a date in its name is an increment of this prefix.
    write_object(where, "old/customers_20991231.csv", b"day,old\n")
    write_object(where, "customers_latest.csv", b"day,latest\n")

    assert increments.latest_increment(where) == f"{where}customers_20260310.csv"
    loaded = load_current(tmp_path / "current.csv", source_uri=where)
    assert loaded["source"] == f"{where}customers_20260310.csv"
    assert (tmp_path / "current.csv").read_text() == "day,2026-03-10\n"
    # A file URI is read as given.
    load_current(tmp_path / "given.csv", source_uri=f"{where}customers_20260302.csv")
    assert (tmp_path / "given.csv").read_text() == "day,2026-03-02\n"


def test_an_empty_prefix_says_where_it_looked(s3_env: None, s3_bucket: str, tmp_path: Path) -> None:
    with pytest.raises(ChurnError, match=f"no daily increment .* in s3://{s3_bucket}/nothing-here/"):
        load_current(tmp_path / "current.csv", source_uri=f"s3://{s3_bucket}/nothing-here/")
    assert not list(tmp_path.iterdir())


def test_a_missing_bucket_is_a_clear_error(s3_env: None, tmp_path: Path) -> None:
    with pytest.raises(ChurnError, match="cannot list s3://no-such-bucket/x/"):
        increments.latest_increment("s3://no-such-bucket/x/")


def test_the_latest_local_increment_is_found_by_its_date(tmp_path: Path) -> None:
    for name in ("customers_20260102.csv", "customers_20260110.parquet", "customers_2026011.csv", "notes.csv"):
        (tmp_path / name).write_text("x\n")
    assert increments.latest_increment(tmp_path) == f"{tmp_path}/customers_20260110.parquet"
    assert increments.latest_increment(f"{tmp_path}/") == f"{tmp_path}/customers_20260110.parquet"
    with pytest.raises(ChurnError, match="no daily increment"):
        increments.latest_increment(tmp_path / "missing")


def test_the_retraining_record_round_trips_through_s3_and_a_missing_one_is_none(s3_env: None, s3_bucket: str) -> None:
    """In a cluster the record lives at s3://<bucket>/monitoring/ (the chart's pipeline env)."""
    import datetime as dt

    from churn.monitoring.retraining import RetrainingRecord, read_record, write_record
    from churn.storage import object_exists

    root = f"s3://{s3_bucket}/{PREFIX}-monitoring/"
    assert read_record(root) is None
    record = RetrainingRecord.start(dt.date(2026, 1, 15), "drift alert", "3", "kfp").ended("submitted", "KFP run r-1")
    written = write_record(root, record)
    assert written == f"{root}retraining.json" and object_exists(written)
    assert not object_exists(f"{root}retraining")  # S3 lists by prefix: only the exact key counts
    assert read_record(root) == record
    write_object(root, "retraining.json", b"{not json")
    with pytest.raises(ChurnError, match="is not a retraining record"):
        read_record(root)
