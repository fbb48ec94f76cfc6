"""A champion the training pipeline registered, for the short pipelines that run against it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from churn.config import Settings
from churn.kfp.local import local_parameters, run_local

TRAINING_DAY = "2026-01-05"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A data folder with a champion trained on 3,000 rows (its reference logged with it), one per test module."""
    root = tmp_path_factory.mktemp("trained")
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
        yield settings
