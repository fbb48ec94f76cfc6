"""A champion the training pipeline registered, for the short pipelines that run against it.

The training pipeline runs once per test session (``champion_template``: under pytest-xdist
the first worker to need it trains it, the others wait on a file lock and reuse it); each
test module then gets its own copy of the data folder (``trained``), because its tests
change it: they publish increments, log predictions, retrain and promote. MLflow's sqlite
store records absolute artifact paths, so the copy's store is rewritten to point at the
copy (:func:`copy_data_folder`); ``test_trained_copy.py`` checks that the copy stands alone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from churn.config import Settings
from churn.kfp.local import local_parameters, run_local

TRAINING_DAY = "2026-01-05"
#: The folder (under the session's shared temporary folder) holding the one trained data folder.
TEMPLATE = "trained-champion"


def _session_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every worker of this run shares (xdist's workers each have a subfolder of it), else this run's."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _train(root: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.delenv("CHURN_DATA_DIR", raising=False)
        settings = Settings(data_dir=root / "data")
        run = run_local(
            "training",
            settings,
            log=root / "training.log",
            **local_parameters(settings, "training", rows=3_000, date=TRAINING_DAY),
        )
        assert run.output == "promoted"


@pytest.fixture(scope="session")
def champion_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose ``data/`` holds a champion trained on 3,000 rows (its reference logged with it).

    Trained once per run: the training pipeline under KFP's local runner is the costliest
    setup of the suite. Nothing may change it; tests use copies (``trained``).
    """
    shared = _session_folder(tmp_path_factory)
    root = (shared / TEMPLATE).resolve()
    with (shared / f"{TEMPLATE}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even when training fails
        if not (root / "done").is_file():
            shutil.rmtree(root, ignore_errors=True)  # what a failed attempt left
            root.mkdir()
            _train(root)
            (root / "done").touch()
    return root


def copy_data_folder(template: Path, root: Path) -> None:
    """Copy ``template/data`` to ``root/data``, every path in it that names the template renamed.

    The sqlite store keeps absolute paths (experiment artifact locations, run artifact
    URIs, model version sources and storage locations, logged models' locations), and so do
    text files (a model's ``MLmodel``, the task outputs of the training run): every text
    value naming the template's folder is rewritten to name ``root``'s.
    """
    shutil.copytree(template / "data", root / "data", symlinks=True)
    old, new = str(template), str(root)
    for path in (root / "data").rglob("*"):
        if path.is_file() and not path.is_symlink() and path.suffix != ".db":
            body = path.read_bytes()
            if old.encode() in body and b"\0" not in body:  # text only: a binary's lengths would break
                path.write_bytes(body.replace(old.encode(), new.encode()))
    with sqlite3.connect(root / "data" / "mlflow" / "mlflow.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in db.execute(f'PRAGMA table_info("{table}")').fetchall():
                name, kind = column[1], str(column[2]).upper()
                if "CHAR" in kind or "TEXT" in kind or "CLOB" in kind:
                    db.execute(
                        f'UPDATE "{table}" SET "{name}" = replace("{name}", ?, ?) WHERE instr("{name}", ?) > 0',
                        (old, new, old),
                    )
    db.close()


@pytest.fixture(scope="module")
def trained(champion_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """This module's own copy of the trained data folder (the session's champion), as the working folder."""
    root = tmp_path_factory.mktemp("trained").resolve()
    copy_data_folder(champion_template, root)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.delenv("CHURN_DATA_DIR", raising=False)
        yield Settings(data_dir=root / "data")
