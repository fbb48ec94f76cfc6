"""The Engine seam: every operation a pipeline stage needs that runs differently on pandas and on Dask.

A stage is given an engine (:func:`churn.engine.engine_for`) and calls it; it never asks
which engine it holds. Both engines produce the same outputs (files or datasets, reports,
models, tables) from the same inputs; what they share per row or per partition (validation
rules, the feature transform, the scorer, drift counts) lives in the domain packages.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from churn.config import MonitoringSettings
    from churn.monitoring.reference import ReferenceProfile
    from churn.monitoring.report import DriftReport
    from churn.scoring.batch import ScoreSummary
    from churn.training.models import ChurnModel

#: A test split's labels and a function giving a model's probabilities on its rows.
TestScorer = tuple[np.ndarray, Callable[["ChurnModel"], np.ndarray]]
#: The current rows the monitoring reports show, and the drift check to run instead of the in-memory one (or None).
MonitoringRows = tuple[pd.DataFrame, Callable[[], "DriftReport"] | None]


class Engine(Protocol):
    """What the stages ask of an engine (``pandas``: one process and files; ``dask``: folders of parts on a cluster)."""

    name: str
    #: Whether the engine's datasets are folders of ``part-*.parquet`` (what ``churn data generate`` writes).
    partitioned: bool

    def generate(self, out: Path, *, rows: int, date: str, seed: int, scenario: str, churn_rate: float) -> None:
        """Generate a day's customers as the dataset ``out``."""
        ...

    def ingest(self, source_uri: str, out: Path) -> None:
        """Copy an existing export (path or ``s3://``) as the dataset ``out``."""
        ...

    def load_increment(self, uri: str, out: Path) -> None:
        """Copy the daily increment at ``uri`` as the dataset ``out`` that monitoring checks."""
        ...

    def fingerprint(self, path: str | Path) -> tuple[str, int]:
        """The data version (``sha256:...``) of a dataset and its size in bytes."""
        ...

    def validate(
        self,
        raw: str | Path,
        report: str | Path,
        *,
        summary: str | Path | None = None,
        min_rows: int = 100,
        max_examples: int = 5,
        source: str | None = None,
    ) -> Any:
        """Validate a raw export and write its report (the :class:`ValidationReport`); raise after writing."""
        ...

    def split(
        self, raw: str | Path, outputs: dict[str, str | Path], *, seed: int, validation_size: float, test_size: float
    ) -> dict[str, int]:
        """Split a validated export into train, validation and test datasets; the rows of each."""
        ...

    def read(self, path: str | Path) -> pd.DataFrame:
        """A split read whole into memory (dates as ``datetime64``)."""
        ...

    def train(
        self,
        family: str,
        train_path: str | Path,
        validation_path: str | Path,
        *,
        params: dict[str, Any],
        n_jobs: int,
        seed: int,
    ) -> ChurnModel:
        """Train one model family on the train and validation splits."""
        ...

    def test_scorer(self, test_path: str | Path) -> AbstractContextManager[TestScorer]:
        """The test split's labels and a scoring function, valid inside the ``with`` block."""
        ...

    def example_and_labels(self, test_path: str | Path) -> tuple[pd.DataFrame, pd.Series]:
        """Five input rows (a model's logged example) and the label column of the test split."""
        ...

    def reference_rows(self, train_path: str | Path) -> pd.DataFrame:
        """The training rows a monitoring reference is fitted on."""
        ...

    def monitoring_rows(
        self, raw: str | Path, profile: ReferenceProfile, model: ChurnModel, settings: MonitoringSettings
    ) -> AbstractContextManager[MonitoringRows]:
        """The current rows to show and the drift check to run, valid inside the ``with`` block."""
        ...

    def score_base(
        self,
        base_dir: str | Path,
        table_dir: str,
        *,
        model_dir: Path,
        model_name: str,
        model_version: str,
        reasons: bool,
        method: str,
        part_rows: int,
        source_uri: str = "",
    ) -> ScoreSummary:
        """Score a validated base (a folder of parts) into a committed table at ``table_dir``."""
        ...

    def score_source(self, source: str, location: str, **common: Any) -> ScoreSummary:
        """Validate and score the export at ``source`` into a committed table at ``location`` (the CLI)."""
        ...
