"""The training pipeline's Dask-engine stages on partitioned folders: the same results as the pandas stages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import Client

from churn.data import dataset, increments
from churn.data.files import write_raw
from churn.engine.dask import stages as dask_steps
from churn.engine.dask.features import fit_sample
from churn.engine.dask.frames import read_raw, typed
from churn.errors import ChurnError
from churn.stages import data as data_stage
from churn.stages import registry, training
from churn.stages.monitoring import load_current
from churn.storage import copy, write_object
from churn.training.split import SPLITS, hash_split_frame
from churn.validation.reader import parse_columns

Writer = Callable[[pd.DataFrame, Path, int], Path]


def _typed(raw: pd.DataFrame) -> pd.DataFrame:
    frame = parse_columns(raw.reset_index(drop=True)).frame
    assert frame is not None
    return frame


def _fingerprint(path: Path) -> str:
    return dataset.fingerprint(path)[0]


def _split_folders(
    raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path, *, seed: int
) -> tuple[dict[str, Path], dict[str, int]]:
    """``raw`` as 3 parts, split on the cluster into train/validation/test folders: the folders and row counts."""
    outputs = {name: tmp_path / name for name in SPLITS}
    return outputs, dask_steps.split(write_partitions(raw, tmp_path / "raw", 3), outputs, seed=seed)


def test_split_writes_the_hash_split_as_part_folders(
    client: Client, raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path
) -> None:
    outputs, counts = _split_folders(raw, write_partitions, tmp_path, seed=5)
    expected = hash_split_frame(_typed(raw), seed=5)
    for name in SPLITS:
        assert counts[f"{name}_rows"] == len(expected[name])
        assert len(list(outputs[name].glob("part-*.parquet"))) == 3
        # Read back by the pandas reader (it takes the folder too): what a one-file split would hold.
        one_file = write_raw([expected[name]], tmp_path / f"{name}.parquet", "parquet")
        pd.testing.assert_frame_equal(training.read_split(outputs[name]), training.read_split(one_file))
    assert not list(tmp_path.glob(".[!.]*")), "a temporary folder was left behind"


def test_write_parts_leaves_the_old_folder_when_a_part_fails(
    client: Client, raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path
) -> None:
    target = write_partitions(raw.head(100), tmp_path / "target", 1)
    before = sorted(p.read_bytes() for p in target.iterdir())
    broken = typed(read_raw(write_partitions(raw, tmp_path / "raw", 2))).map_partitions(
        lambda part: part.assign(customer_id=object()), meta=typed(read_raw(tmp_path / "raw"))._meta
    )
    with pytest.raises(Exception, match=r"customer_id|object"):
        dask_steps.write_parts(broken, target, what="broken")
    assert sorted(p.read_bytes() for p in target.iterdir()) == before
    assert not list(tmp_path.glob(".target*"))


def test_scoring_and_sampling_per_partition_match_the_whole(
    client: Client, raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path
) -> None:
    from churn.training.models import train_family

    data = hash_split_frame(_typed(raw), seed=1)
    model = train_family("logistic_regression", data["train"], data["validation"], {}, n_jobs=1)
    folder = tmp_path / "test"
    dask_steps.write_parts(typed(read_raw(write_partitions(data["test"], tmp_path / "t", 3))), folder, what="test")
    labels, score = dask_steps.scorer(folder)
    np.testing.assert_array_equal(labels, data["test"]["churned"].to_numpy())
    np.testing.assert_allclose(score(model), model.predict_proba(data["test"]), rtol=0, atol=1e-12)
    # A sample smaller than the folder is the seeded hash sample: the same rows on every call.
    first, second = dask_steps.sample(folder, 200, seed=3), dask_steps.sample(folder, 200, seed=3)
    pd.testing.assert_frame_equal(first, second)
    # Read here part by part, it holds the rows a cluster's fit_sample takes, typed the same way.
    on_cluster = fit_sample(read_raw(folder), 200, seed=3)
    pd.testing.assert_frame_equal(first, _typed(on_cluster))
    assert 100 < len(first) < 300 and set(first["customer_id"]) <= set(data["test"]["customer_id"])
    assert dask_steps.row_count(folder) == len(data["test"])
    assert dask_steps.fits_in_process(folder, len(data["test"])) and not dask_steps.fits_in_process(folder, 10)


def test_ingest_copies_parquet_folders_files_and_s3_prefixes(
    raw: pd.DataFrame,
    write_partitions: Writer,
    tmp_path: Path,
    s3_env: str,
    s3_bucket: str,
) -> None:
    folder = write_partitions(raw, tmp_path / "export", 3)
    dask_steps.ingest(str(folder), tmp_path / "copy")
    assert _fingerprint(tmp_path / "copy") == _fingerprint(folder)
    dask_steps.ingest(str(folder / "part-00001.parquet"), tmp_path / "one")
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["part-00000.parquet"]

    for part in sorted(folder.iterdir()):
        copy(part, f"s3://{s3_bucket}/exports/customers_20260630/{part.name}")
    dask_steps.ingest(f"s3://{s3_bucket}/exports/customers_20260630", tmp_path / "from-s3")
    assert _fingerprint(tmp_path / "from-s3") == _fingerprint(folder)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing", "does not exist"),
        ("export.csv", "the dask engine reads parquet"),
        ("empty", "holds no .parquet files"),
        ("s3://no-such-bucket/exports/", "cannot read s3://no-such-bucket/exports/"),
    ],
)
def test_ingest_refuses_what_it_cannot_read_and_leaves_nothing(
    source: str,
    message: str,
    tmp_path: Path,
    s3_env: str,
) -> None:
    (tmp_path / "export.csv").write_text("customer_id\nC1\n")
    (tmp_path / "empty").mkdir()
    where = source if source.startswith("s3://") else str(tmp_path / source)
    with pytest.raises(ChurnError, match=message):
        dask_steps.ingest(where, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_an_unknown_engine_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ChurnError, match="engine must be pandas or dask, got 'spark'"):
        data_stage.load_data(tmp_path / "raw", rows=10, engine="spark")
    assert not (tmp_path / "raw").exists()


def test_a_folder_increment_on_s3_counts_once_marked_complete(
    raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path, s3_env: str, s3_bucket: str
) -> None:
    folder = write_partitions(raw, tmp_path / "day", 2)
    where = f"s3://{s3_bucket}/increments-{tmp_path.name}/"
    published = increments.publish_increment(folder, date="2026-06-30", destination=where)
    assert published == f"{where}customers_20260630/"
    # An older CSV day beside it; and a newer folder still being written (no marker yet) is not picked.
    write_object(where, "customers_20260629.csv", b"x")
    copy(folder / "part-00000.parquet", f"{where}customers_20260701/part-00000.parquet")
    assert increments.latest_increment(where) == published
    info = load_current(tmp_path / "current", source_uri=where)
    assert info["source"] == published.rstrip("/")
    assert info["fingerprint"] == _fingerprint(folder)
    # Locally the folder is published whole, and found as the latest day.
    local = increments.publish_increment(folder, date="2026-06-30", destination=str(tmp_path / "raw"))
    assert Path(local).is_dir() and increments.latest_increment(tmp_path / "raw") == local


@pytest.mark.slow
def test_with_a_work_uri_tasks_pass_only_pointers_and_workers_use_s3(
    tmp_path: Path, s3_env: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers that cannot see a task's folder (a DaskCluster in Kubernetes) read and write the parts on S3."""
    work = f"s3://{s3_bucket}/dask-work-{tmp_path.name}"
    monkeypatch.setenv("CHURN_DASK__WORK_URI", work)
    monkeypatch.setenv("CHURN_DASK__N_WORKERS", "1")
    monkeypatch.setenv("CHURN_DASK__MEMORY_LIMIT", "1GiB")
    raw = tmp_path / "raw"
    info = data_stage.load_data(raw, rows=4_000, date="2026-06-30", engine="dask")
    assert info["fingerprint"].startswith("sha256:") and info["bytes"] > 0
    data_stage.validate(raw, tmp_path / "report.json", min_rows=100)
    outputs = {name: tmp_path / name for name in SPLITS}
    counts = data_stage.split(raw, outputs, seed=3)
    for folder in (raw, *outputs.values()):
        # Each task's artifact is only a pointer to a new prefix under the work URI.
        assert [p.name for p in folder.iterdir()] == [dataset.POINTER], folder
        assert dataset.location(folder).startswith(work + "/")
    assert len({dataset.location(f) for f in (raw, *outputs.values())}) == 4
    assert dask_steps.row_count(outputs["test"]) == counts["test_rows"] == len(training.read_split(outputs["test"]))
    # The same rows as the pandas engine's split of the same export.
    whole = training.read_split(raw)
    expected = hash_split_frame(_typed(whole), seed=3)
    assert set(training.read_split(outputs["train"])["customer_id"]) == set(expected["train"]["customer_id"])
    model_info = training.train(
        "xgboost",
        outputs["train"],
        outputs["validation"],
        tmp_path / "model",
        params={"n_estimators": 30, "max_depth": 3},
        n_jobs=1,
    )
    assert model_info["engine"] == "dask" and model_info["train_rows"] == counts["train_rows"]
    # A sampled family reads its sample from S3 in the task's process, with no cluster.
    sampled = training.train("logistic_regression", outputs["train"], outputs["validation"], tmp_path / "lr", params={})
    assert sampled["sampled_rows"] == counts["train_rows"] and sampled["cluster"]["dask.sample_rows"] == str(
        counts["train_rows"]
    )
    example, labels = registry.example_and_test_labels(outputs["test"])
    assert len(example) == 5 and len(labels) == counts["test_rows"]
    # The data pipeline's publish step copies the parts from the work prefix to the raw folder.
    published = increments.publish_increment(raw, date="2026-06-30", destination=str(tmp_path / "published"))
    assert sorted(p.name for p in Path(published).iterdir()) == ["part-00000.parquet"]
    assert _fingerprint(Path(published)).startswith("sha256:")


def test_a_sample_of_any_split_is_the_size_asked_for(
    client: Client, raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path
) -> None:
    """The split and the sample hash customer_id with the same seed: unsalted, validation's sample was empty."""
    outputs, counts = _split_folders(raw, write_partitions, tmp_path, seed=42)
    for name in SPLITS:
        wanted = counts[f"{name}_rows"] // 3
        got = len(dask_steps.sample(outputs[name], wanted, seed=42))
        assert abs(got - wanted) <= 4 * wanted**0.5, (name, got, wanted)
