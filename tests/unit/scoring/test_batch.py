"""Batch scoring: the scored table's rows, its risk deciles, and its atomic commit (local and S3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn.data import generate_customers
from churn.data.files import write_raw
from churn.errors import ChurnError
from churn.scoring.batch import (
    BASE_COLUMNS,
    REASON_UNIT_COLUMN,
    Scorer,
    reason_columns,
    reason_texts,
    score_base,
    score_source,
)
from churn.scoring.reasons import Explainer
from churn.scoring.table import MANIFEST, read_manifest, read_table
from servers import s3_client

pytestmark = pytest.mark.unit


def _scorer(logged: Any) -> Scorer:
    return Scorer.from_model_dir(logged.model_dir, model_name="churn-model", model_version="7")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A customer base as a folder of two parquet parts (1,500 customers)."""
    folder = tmp_path_factory.mktemp("base")
    write_raw([generate_customers(1_000, "2026-02-01", seed=1).frame], folder / "part-0.parquet", "parquet")
    write_raw([generate_customers(500, "2026-02-01", seed=2).frame], folder / "part-1.parquet", "parquet")
    return folder


def test_scored_rows_hold_the_models_scores_deciles_and_reasons(logged_model: Any, base: Path, tmp_path: Path) -> None:
    out = tmp_path / "scored"
    summary = score_source(
        str(base),
        str(out),
        model_dir=logged_model.model_dir,
        model_name="churn-model",
        model_version="7",
        part_rows=600,
    )
    table = read_table(str(out))
    assert list(table.columns) == [*BASE_COLUMNS, *reason_columns(), REASON_UNIT_COLUMN]
    assert summary.rows == len(table) == 1_500 and summary.parts == 3  # 600 + 400, then 500 rows
    raw = pd.concat([pd.read_parquet(p) for p in sorted(base.glob("*.parquet"))], ignore_index=True)
    model = logged_model.model
    expected = model.predict_proba(raw)
    np.testing.assert_array_equal(table["customer_id"], raw["customer_id"])
    np.testing.assert_allclose(table["churn_probability"], expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(table["churn_label"], (expected >= model.threshold).astype(int))
    assert summary.churned == int(table["churn_label"].sum())
    assert set(table["risk_decile"]) <= set(range(1, 11))
    assert (table.groupby("risk_decile")["churn_probability"].max().diff().dropna() > 0).all()
    assert set(table["model_version"]) == {"7"} and set(table["model_name"]) == {"churn-model"}
    assert (table["snapshot_date"] == pd.Timestamp("2026-02-01")).all()
    # The reasons are the explainer's, for the same rows.
    top = Explainer(model).top(model.features.transform(raw))
    assert table["reason_1"].astype(str).tolist() == top.names()[:, 0].tolist()
    np.testing.assert_allclose(table["reason_2_contribution"], top.contribution[:, 1])
    texts = reason_texts(table.iloc[0])
    assert len(texts) == 3 and texts[0].startswith(
        f"{table['reason_1'].iloc[0]} = {table['reason_1_value'].iloc[0]} → "
    )


def test_risk_deciles_use_the_stored_cut_points_not_the_batch(logged_model: Any, tmp_path: Path) -> None:
    scorer = _scorer(logged_model)
    raw = generate_customers(2_000, "2026-02-01", seed=3).frame
    scored = scorer.score_frame(raw)
    riskiest = raw[(scored["risk_decile"] == 10).to_numpy()]
    assert 50 < len(riskiest) < 600
    again = scorer.score_frame(riskiest)
    # Recomputed per batch, these would spread over all ten deciles; against the reference they stay in the top one.
    assert set(again["risk_decile"]) == {10}
    # On the training rows themselves, every decile holds about a tenth.
    on_train = scorer.score_frame(logged_model.train)["risk_decile"]
    shares = on_train.value_counts(normalize=True).sort_index()
    assert list(shares.index) == list(range(1, 11))
    assert shares.between(0.07, 0.13).all()


def _parts(frames: list[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    yield from frames


def _check_atomic(location: str, scorer: Scorer, list_run_prefixes: Callable[[], set[str]]) -> None:
    first = generate_customers(300, "2026-02-01", seed=4).frame
    score_base(_parts([first]), scorer, location)
    before = read_table(location)
    old_manifest = read_manifest(location)
    second = generate_customers(400, "2026-02-02", seed=5).frame
    seen_during: list[pd.DataFrame] = []

    def on_part(parts: int, rows: int) -> None:
        seen_during.append(read_table(location))  # a reader while the new run is half written

    score_base(_parts([second, second]), scorer, location, part_rows=150, on_part=on_part)
    assert len(seen_during) == 6
    for seen in seen_during:
        pd.testing.assert_frame_equal(seen, before)
    after = read_table(location)
    assert len(after) == 800 and (after["snapshot_date"] == pd.Timestamp("2026-02-02")).all()
    current = read_manifest(location)
    assert current["run_id"] != old_manifest["run_id"] and current["previous_run_id"] == old_manifest["run_id"]
    # The previous run's parts stay one more run (a reader of the old manifest can finish).
    assert list_run_prefixes() == {f"run-{current['run_id']}", f"run-{old_manifest['run_id']}"}

    # A run that fails half way: a bad partition after two good parts were written.
    broken = second.assign(total_orders="many")

    def failing() -> Iterator[pd.DataFrame]:
        yield second
        yield broken

    with pytest.raises(ChurnError):
        score_base(failing(), scorer, location, part_rows=200)
    pd.testing.assert_frame_equal(read_table(location), after)
    # Nothing of the failed run is left.
    assert list_run_prefixes() == {f"run-{current['run_id']}", f"run-{old_manifest['run_id']}"}

    with pytest.raises(ChurnError, match="no rows"):
        score_base(_parts([second.head(0)]), scorer, location)
    pd.testing.assert_frame_equal(read_table(location), after)
    third = generate_customers(100, "2026-02-03", seed=6).frame
    score_base(_parts([third]), scorer, location)
    newest = read_manifest(location)
    assert list_run_prefixes() == {f"run-{newest['run_id']}", f"run-{current['run_id']}"}  # the first run retired


def test_a_local_table_is_committed_atomically(logged_model: Any, tmp_path: Path) -> None:
    location = tmp_path / "scored"

    def prefixes() -> set[str]:
        return {p.name for p in location.iterdir() if p.name != MANIFEST}

    _check_atomic(str(location), _scorer(logged_model), prefixes)


@pytest.fixture
def s3_env(s3_endpoint: str, aws_env: dict[str, str]) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", s3_endpoint)
        for name, value in aws_env.items():
            mp.setenv(name, value)
        yield


def test_an_s3_table_is_committed_atomically(logged_model: Any, s3_endpoint: str, s3_env: None) -> None:
    client = s3_client(s3_endpoint)
    location = "s3://mlflow/scored/atomic"

    def prefixes() -> set[str]:
        listed = client.list_objects_v2(Bucket="mlflow", Prefix="scored/atomic/").get("Contents", [])
        return {item["Key"].split("/")[2] for item in listed} - {MANIFEST}

    _check_atomic(location, _scorer(logged_model), prefixes)


def test_a_base_under_an_s3_prefix_is_scored(logged_model: Any, base: Path, s3_endpoint: str, s3_env: None) -> None:
    client = s3_client(s3_endpoint)
    for part in sorted(base.glob("*.parquet")):
        client.upload_file(str(part), "mlflow", f"bases/20260201/{part.name}")
    summary = score_source(
        "s3://mlflow/bases/20260201/",
        "s3://mlflow/scored/daily",
        model_dir=logged_model.model_dir,
        model_name="churn-model",
        model_version="7",
    )
    assert summary.rows == 1_500
    assert len(read_table("s3://mlflow/scored/daily")) == 1_500


def test_bad_bases_are_clear_errors_and_keep_the_table(logged_model: Any, base: Path, tmp_path: Path) -> None:
    out = tmp_path / "scored"
    model_dir = logged_model.model_dir
    score_source(str(base), str(out), model_dir=model_dir, model_name="m", model_version="1")
    before = read_table(str(out))
    with pytest.raises(ChurnError, match="does not exist"):
        score_source(str(tmp_path / "nope"), str(out), model_dir=model_dir, model_name="m", model_version="1")
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,total_orders\nC1,3\n")
    with pytest.raises(ChurnError, match=r"bad\.csv"):
        score_source(str(bad), str(out), model_dir=model_dir, model_name="m", model_version="1")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ChurnError, match="holds no customer file"):
        score_source(str(empty), str(out), model_dir=model_dir, model_name="m", model_version="1")
    pd.testing.assert_frame_equal(read_table(str(out)), before)
    with pytest.raises(ChurnError, match="no scored table"):
        read_table(str(tmp_path / "never"))


def test_churn_score_commits_the_table_and_prints_the_riskiest_with_reasons(
    logged_model: Any, base: Path, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {"CHURN_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "churn", "score", str(base), "--model", str(logged_model.model_dir), "--top", "3"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "scored 1500 customers" in done.stdout and "3 highest-risk customers" in done.stdout
    assert "log-odds (raises risk)" in done.stdout
    table = read_table(str(tmp_path / "scored"))
    riskiest = table.nlargest(3, "churn_probability")
    assert all(customer in done.stdout for customer in riskiest["customer_id"])
    refused = subprocess.run(
        [*command[:4], str(tmp_path / "missing.csv"), *command[5:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "does not exist" in refused.stderr


def test_scoring_partitions_one_by_one_equals_scoring_the_whole(logged_model: Any) -> None:
    """What an engine's map_partitions needs of Scorer.score_frame: no row's result depends on its partition."""
    scorer = _scorer(logged_model)
    raw = generate_customers(900, "2026-02-01", seed=12).frame
    whole = scorer.score_frame(raw)
    parts = [raw.iloc[:1], raw.iloc[1:400], raw.iloc[400:]]
    pieces = pd.concat([scorer.score_frame(part) for part in parts], ignore_index=True)
    pd.testing.assert_frame_equal(pieces, whole)
