"""The ``trained`` fixture's copy of the session's champion stands alone (tests/components/conftest.py).

Each module works on a copy of one trained data folder; MLflow's sqlite store holds absolute
paths, rewritten on copying. Here: nothing in the copy's store names the template any more,
the copy's champion and its reference load from the copy, and what a new run logs and
registers lands in the copy while the template stays byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
import pytest
from mlflow import MlflowClient

from churn.config import Settings
from churn.data import generate_customers
from churn.registry.mlflow_registry import (
    connect,
    connect_registry,
    load_churn_model,
    load_reference,
    log_candidate,
    register_challenger,
)

pytestmark = pytest.mark.components


def _fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    assert parsed.scheme == "file", uri
    return Path(url2pathname(parsed.path))


def _values_naming(database: Path, text: str) -> list[str]:
    """``table.column = value`` for every text value in the sqlite store that contains ``text``."""
    found = []
    with sqlite3.connect(database) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in db.execute(f'PRAGMA table_info("{table}")').fetchall():
                rows = db.execute(f'SELECT "{column[1]}" FROM "{table}"').fetchall()
                found += [f"{table}.{column[1]} = {v}" for (v,) in rows if isinstance(v, str) and text in v]
    db.close()
    return found


def test_the_copys_store_names_the_copy_only(trained: Settings, champion_template: Path) -> None:
    database = trained.data_dir / "mlflow" / "mlflow.db"
    assert trained.data_dir.resolve() != (champion_template / "data").resolve()
    assert _values_naming(database, str(champion_template)) == []
    assert _values_naming(database, str(trained.data_dir.resolve())), "the copy's store names no path of its own"
    leftovers = [
        p
        for p in trained.data_dir.rglob("*")
        if p.is_file() and p.suffix != ".db" and str(champion_template).encode() in p.read_bytes()
    ]
    assert leftovers == []  # nor does any file (a model's MLmodel, the training run's task outputs)
    connect_registry(trained.tracking_uri)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(trained.mlflow.experiment)
    assert experiment is not None
    assert experiment.artifact_location == (trained.data_dir.resolve() / "mlflow" / "artifacts").as_uri()
    champion = client.get_model_version_by_alias(trained.mlflow.model_name, "champion")
    stored = client.get_model_version_download_uri(trained.mlflow.model_name, champion.version)
    assert _local_path(stored).is_relative_to(trained.data_dir.resolve()) and _local_path(stored).is_dir()
    assert _local_path(client.get_run(str(champion.run_id)).info.artifact_uri).is_dir()


def test_the_copys_champion_loads_and_a_new_version_is_written_in_the_copy(
    trained: Settings, champion_template: Path
) -> None:
    template = _fingerprint(champion_template / "data")
    connect_registry(trained.tracking_uri)
    champion = load_churn_model(f"models:/{trained.mlflow.model_name}@champion")
    assert load_reference(f"models:/{trained.mlflow.model_name}@champion").rows == 2_100
    rows = generate_customers(200, "2026-01-06", seed=3).frame
    probabilities = champion.predict_proba(rows)
    assert len(probabilities) == 200 and ((probabilities >= 0) & (probabilities <= 1)).all()

    # What a retraining run does: log a model in a new run, register it, move @challenger.
    connect(
        trained.tracking_uri,
        experiment=trained.mlflow.experiment,
        artifact_location=trained.artifact_location_for(trained.tracking_uri),
    )
    with mlflow.start_run() as run:
        model_uri = log_candidate(champion, example=rows.head(3), metrics={}, tags={})
    version = register_challenger(model_uri, trained.mlflow.model_name, tags={})
    client = MlflowClient()
    artifacts = _local_path(client.get_run(run.info.run_id).info.artifact_uri)
    assert artifacts.is_relative_to(trained.data_dir.resolve()) and any(artifacts.rglob("*"))
    registered = client.get_model_version(trained.mlflow.model_name, version)
    stored = _local_path(client.get_model_version_download_uri(trained.mlflow.model_name, registered.version))
    assert stored.is_relative_to(trained.data_dir.resolve()) and (stored / "MLmodel").is_file()
    assert str(client.get_model_version_by_alias(trained.mlflow.model_name, "challenger").version) == str(version)
    again = load_churn_model(f"models:/{trained.mlflow.model_name}/{version}")
    assert (again.predict_proba(rows) == probabilities).all()
    assert _fingerprint(champion_template / "data") == template  # the template is untouched
