"""End-to-end jobs composed from the library stages; the CLI and pipelines are shells around these."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from churn.config import Settings
from churn.data.generator import iter_customer_blocks, parse_date
from churn.data.schema import ID
from churn.errors import ChurnError
from churn.features.build import FeatureOutputs, build_features
from churn.io import FileFormat, write_parquet, write_raw
from churn.validation import ValidationReport, validate_and_report

Progress = Callable[[int], None]
#: Called as ``report(stage, done, total)`` while the main job runs.
StageProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class GeneratedFile:
    """A raw export written by :func:`generate_file` and, when asked for, its truth file."""

    path: Path
    rows: int
    churn_rate: float
    truth: Path | None = None


def raw_file_name(date: dt.date, fmt: FileFormat) -> str:
    """``customers_YYYYMMDD.<fmt>``: the name every stage expects of a day's export."""
    return f"customers_{date:%Y%m%d}.{fmt}"


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


@dataclass
class RunSummary:
    """What the main job produced."""

    raw: GeneratedFile
    report: Path
    features: FeatureOutputs
    seconds: dict[str, float] = field(default_factory=dict)


def features_for(settings: Settings, raw: pd.DataFrame, source: Path) -> FeatureOutputs:
    """Fit features on validated raw data; outputs under ``data/features/``."""
    table_path = settings.features_dir / f"{source.name.split('.')[0]}.features.parquet"
    return build_features(
        raw, table_path, settings.features_dir, rfm_bins=settings.features.rfm_bins, source=str(source)
    )


def run_main_job(
    settings: Settings,
    *,
    rows: int | None = None,
    date: str | dt.date | None = None,
    progress: StageProgress | None = None,
) -> RunSummary:
    """The README's main job on embedded defaults: generate -> validate -> build features.

    Args:
        settings: Where to write and how to generate.
        rows: Rows of the initial load (default: ``settings.data.rows``).
        date: Snapshot date (default: ``settings.data.date``, else today).
        progress: Stage progress callback.

    Raises:
        DataValidationError: The generated file failed validation (its report is written).

    """
    report = progress or (lambda stage, done, total: None)
    rows = settings.data.rows if rows is None else rows
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    generated = generate_file(settings, rows=rows, date=date, progress=lambda done: report("generate", done, rows))
    seconds["generate"] = time.perf_counter() - start

    start = time.perf_counter()
    report("validate", 0, 1)
    frame, _, report_path = validate_to_report(settings, generated.path)
    report("validate", 1, 1)
    seconds["validate"] = time.perf_counter() - start

    start = time.perf_counter()
    report("features", 0, 1)
    outputs = features_for(settings, frame, generated.path)
    report("features", 1, 1)
    seconds["features"] = time.perf_counter() - start
    return RunSummary(generated, report_path, outputs, seconds)


def serving_demo(settings: Settings, raw_path: Path, *, rows: int = 5) -> list[dict[str, object]]:
    """Start predictor and transformer on the champion, score ``rows`` records of ``raw_path``, stop both.

    Returns:
        One answer per record: customer id, churn probability and label, model version.

    """
    from churn.serving.client import answer_rows, predict_records, read_records_file
    from churn.serving.local import LocalService, ServiceConfig

    records = read_records_file(raw_path)[:rows]
    config = ServiceConfig.from_settings(settings)
    with LocalService(config).start(timeout=settings.serving.start_timeout_seconds):
        answer = predict_records(config.transformer_url, config.model_name, records)
    return [row | {"model_version": answer.get("model_version")} for row in answer_rows(answer)]


def log_day_predictions(settings: Settings, raw_path: Path, *, label_delay_days: int | None = None) -> dict[str, Any]:
    """Score a published day with the champion, log the predictions and emit the day's delayed labels.

    This stands in for the daily batch scoring run (it logs through the same
    :func:`~churn.serving.prediction_log.write_prediction_log`) and for the outcomes that
    arrive ``label_delay_days`` later (the generator's ``labels_YYYYMMDD.csv``), so the
    main job can show the performance loop on a laptop.

    Returns:
        What was written: ``predictions`` (objects), ``labels`` (files), ``version``, ``rows``.

    """
    from mlflow import MlflowClient

    from churn.data.labels import publish_labels
    from churn.registry.mlflow_registry import CHAMPION, connect_registry, load_churn_model
    from churn.serving.prediction_log import write_prediction_log
    from churn.validation.reader import read_raw_file

    connect_registry(settings.tracking_uri, timeout=settings.mlflow.timeout_seconds)
    name = settings.mlflow.model_name
    version = str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    model = load_churn_model(f"models:/{name}/{version}")
    parsed = read_raw_file(raw_path)
    if parsed.frame is None or parsed.violations:
        raise ChurnError(f"cannot score {raw_path}: " + "; ".join(v.message for v in parsed.violations))
    frame = parsed.frame
    probabilities = model.predict_proba(frame)
    scored = pd.DataFrame(
        {
            ID: frame[ID],
            "churn_probability": probabilities,
            "churn_label": (probabilities >= model.threshold).astype("int8"),
        }
    )
    day = pd.Timestamp(frame["snapshot_date"].iloc[0]).date()
    when = dt.datetime.combine(day, dt.time(6, 0), tzinfo=dt.UTC)
    written = write_prediction_log(
        scored,
        settings.prediction_log_uri,
        run_id=f"batch-{day:%Y%m%d}",
        model_name=name,
        model_version=version,
        scored_at=when,
    )
    delay = settings.performance.label_delay_days if label_delay_days is None else label_delay_days
    labels = publish_labels(frame, delay, settings.labels_uri)
    return {"predictions": written, "labels": labels, "version": version, "rows": len(frame)}
