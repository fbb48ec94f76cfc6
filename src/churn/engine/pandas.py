"""The pandas engine: each stage in one process, on files (CSV or parquet), read whole into memory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churn.data.files import write_raw
from churn.data.increments import fetch
from churn.data.schema import LABEL
from churn.engine.base import MonitoringRows, TestScorer
from churn.errors import ChurnError
from churn.provenance import file_fingerprint

if TYPE_CHECKING:
    from churn.config import MonitoringSettings
    from churn.monitoring.reference import ReferenceProfile
    from churn.scoring.batch import ScoreSummary
    from churn.training.models import ChurnModel


class PandasEngine:
    """One process, one file per dataset (heavy libraries load in the methods that use them)."""

    name = "pandas"
    partitioned = False

    def generate(self, out: Path, *, rows: int, date: str, seed: int, scenario: str, churn_rate: float) -> None:
        """Generate a day's customers as one CSV file."""
        from churn.data import iter_customer_blocks

        blocks = iter_customer_blocks(rows, date or None, seed=seed, scenario=scenario, churn_rate=churn_rate)
        write_raw((b.frame for b in blocks), out, "csv")

    def ingest(self, source_uri: str, out: Path) -> None:
        """Copy the export file at ``source_uri`` (path or ``s3://``)."""
        fetch(source_uri, out)

    def load_increment(self, uri: str, out: Path) -> None:
        """Copy the increment file as CSV (a parquet file is converted)."""
        if uri.lower().endswith((".parquet", ".pq")):
            fetched = out.with_name(out.name + ".parquet")
            fetch(uri, fetched)
            import pyarrow.parquet as pq

            write_raw([pq.read_table(fetched).to_pandas(date_as_object=False)], out, "csv")
            fetched.unlink()
        else:
            fetch(uri, out)

    def fingerprint(self, path: str | Path) -> tuple[str, int]:
        """The file's ``sha256:`` and size."""
        return file_fingerprint(path), Path(path).stat().st_size

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
        """Validate the file with the declared schema; write the report (and summary) whatever the outcome."""
        from churn.validation import validate_and_report

        _, result = validate_and_report(
            raw, report, summary_path=summary, min_rows=min_rows, max_examples=max_examples, source=source
        )
        return result

    def split(
        self, raw: str | Path, outputs: dict[str, str | Path], *, seed: int, validation_size: float, test_size: float
    ) -> dict[str, int]:
        """Parse the validated file (the schema checks are not paid twice) and hash-split it into parquet files."""
        from churn.training.split import SPLITS, hash_split_frame
        from churn.validation import DataValidationError, ValidationReport
        from churn.validation.reader import read_raw_file

        parsed = read_raw_file(raw)
        if parsed.frame is None or parsed.violations:
            raise DataValidationError(ValidationReport(source=str(raw), violations=parsed.violations))
        frame = parsed.frame
        parts = hash_split_frame(frame, seed=seed, validation_size=validation_size, test_size=test_size)
        for name in SPLITS:
            write_raw([parts[name]], outputs[name], "parquet")
        return {f"{name}_rows": len(parts[name]) for name in SPLITS}

    def read(self, path: str | Path) -> pd.DataFrame:
        """The parquet file."""
        import pyarrow.parquet as pq

        frame: pd.DataFrame = pq.read_table(path).to_pandas(date_as_object=False)
        return frame

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
        """Train on the whole split files."""
        from churn.training.models import train_family

        return train_family(family, self.read(train_path), self.read(validation_path), params, n_jobs=n_jobs, seed=seed)

    @contextmanager
    def test_scorer(self, test_path: str | Path) -> Iterator[TestScorer]:
        """The test file in memory."""
        test = self.read(test_path)
        yield test[LABEL].to_numpy(dtype=np.int64), lambda model: model.predict_proba(test)

    def example_and_labels(self, test_path: str | Path) -> tuple[pd.DataFrame, pd.Series]:
        """The first five rows and the labels of the test file."""
        test = self.read(test_path)
        return test.drop(columns=[LABEL]).head(5), test[LABEL]

    def reference_rows(self, train_path: str | Path) -> pd.DataFrame:
        """The whole training file."""
        return self.read(train_path)

    @contextmanager
    def monitoring_rows(
        self, raw: str | Path, profile: ReferenceProfile, model: ChurnModel, settings: MonitoringSettings
    ) -> Iterator[MonitoringRows]:
        """The increment file's rows, checked in memory.

        Raises:
            ChurnError: The file cannot be read.

        """
        from churn.validation.reader import read_raw_file

        parsed = read_raw_file(raw)
        if parsed.frame is None or parsed.violations:
            reasons = "; ".join(v.message for v in parsed.violations) or "unreadable"
            raise ChurnError(f"monitoring failed: the current data cannot be read: {reasons}")
        yield parsed.frame, None

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
        """Score the base's parts one at a time in this process (``source_uri`` is not needed: they are local)."""
        from churn.scoring.batch import Scorer, base_parts, read_part, score_base

        scorer = Scorer.from_model_dir(
            model_dir, model_name=model_name, model_version=model_version, reasons=reasons, method=method
        )
        parts = (read_part(p) for p in base_parts(base_dir))
        return score_base(parts, scorer, table_dir, part_rows=part_rows)

    def score_source(self, source: str, location: str, **common: Any) -> ScoreSummary:
        """:func:`churn.scoring.batch.score_source` in this process."""
        from churn.scoring.batch import score_source

        return score_source(source, location, **common)
