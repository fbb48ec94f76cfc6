"""The file jobs: generate a raw export, validate it to its report, fit the features on it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from churn.config import Settings
from churn.data.files import FileFormat, write_raw
from churn.data.generator import iter_customer_blocks, parse_date
from churn.data.increments import raw_file_name
from churn.data.schema import ID
from churn.features.build import FeatureOutputs, build_features
from churn.storage import write_parquet
from churn.validation import ValidationReport, validate_and_report

Progress = Callable[[int], None]


@dataclass(frozen=True)
class GeneratedFile:
    """A raw export written by :func:`generate_file` and, when asked for, its truth file."""

    path: Path
    rows: int
    churn_rate: float
    truth: Path | None = None


def generate_file(
    settings: Settings,
    *,
    rows: int,
    date: str | dt.date | None = None,
    seed: int | None = None,
    scenario: str = "none",
    strength: float = 1.0,
    fmt: FileFormat | None = None,
    out: Path | None = None,
    with_truth: bool = True,
    progress: Progress | None = None,
) -> GeneratedFile:
    """Generate customers and write them to ``data/raw/customers_YYYYMMDD.<fmt>``.

    The true churn probabilities go to ``data/truth/`` (never beside the raw export).
    Both files are written atomically; the blocks stream to disk so memory stays flat.
    """
    day = parse_date(date if date is not None else settings.data.date)
    fmt = fmt or settings.data.format
    path = out or settings.raw_dir / raw_file_name(day, fmt)
    truth: list[pd.DataFrame] = []
    churned = 0

    def frames() -> Iterator[pd.DataFrame]:
        nonlocal churned
        for block in iter_customer_blocks(
            rows,
            day,
            seed=settings.data.seed if seed is None else seed,
            scenario=scenario,
            strength=strength,
            churn_rate=settings.data.churn_rate,
            progress=progress,
        ):
            churned += int(block.frame["churned"].sum())
            if with_truth:
                truth.append(
                    pd.DataFrame({ID: block.frame[ID].to_numpy(), "true_churn_probability": block.true_probability})
                )
            yield block.frame

    write_raw(frames(), path, fmt)
    truth_path = None
    if with_truth:
        truth_path = settings.truth_dir / f"{path.name.split('.')[0]}.truth.parquet"
        write_parquet(pd.concat(truth, ignore_index=True) if truth else pd.DataFrame(), truth_path)
    return GeneratedFile(path, rows, churned / rows if rows else 0.0, truth_path)


def validate_to_report(settings: Settings, path: Path) -> tuple[pd.DataFrame, ValidationReport, Path]:
    """Validate ``path`` and always write its JSON report, valid or not."""
    report_path = settings.reports_dir / f"{path.name.split('.')[0]}.validation.json"
    frame, report = validate_and_report(
        path, report_path, min_rows=settings.validation.min_rows, max_examples=settings.validation.max_examples
    )
    return frame, report, report_path


def features_for(settings: Settings, raw: pd.DataFrame, source: Path) -> FeatureOutputs:
    """Fit features on validated raw data; outputs under ``data/features/``."""
    table_path = settings.features_dir / f"{source.name.split('.')[0]}.features.parquet"
    return build_features(
        raw, table_path, settings.features_dir, rfm_bins=settings.features.rfm_bins, source=str(source)
    )
