"""``churn run``: the main job on embedded defaults, data -> features -> training -> serving -> monitoring -> scoring.

The data stages run here. The pipelines run through the ``run_pipeline`` the caller gives
(the CLI's local runner with its progress bar), so that jobs never import the KFP layer.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console

from churn.config import Settings, environment
from churn.data.generator import parse_date
from churn.features.build import FeatureOutputs
from churn.jobs.demos import log_day_predictions, serving_demo
from churn.jobs.files import GeneratedFile, features_for, generate_file, validate_to_report
from churn.jobs.reports import PipelineRun, monitoring_line, performance_lines
from churn.jobs.show import print_answers, print_highest_risk

#: Called as ``report(stage, done, total)`` while the main job runs.
StageProgress = Callable[[str, int, int], None]
#: The two days the main job monitors: (days after the training snapshot, scenario, what it is).
MONITORED_DAYS = ((1, "none", "clean day"), (2, "price_shock", "drifted day"))
#: Days after scoring when the main job's demo labels arrive (so the loop closes within the demo).
DEMO_LABEL_DELAY_DAYS = 1


class RunPipeline(Protocol):
    """Runs pipeline ``name`` with these parameter overrides and reports it (the CLI's local runner)."""

    def __call__(self, name: str, settings: Settings, /, **overrides: Any) -> PipelineRun: ...


@dataclass
class RunSummary:
    """What the main job produced."""

    raw: GeneratedFile
    report: Path
    features: FeatureOutputs
    seconds: dict[str, float] = field(default_factory=dict)


def snapshot_date(settings: Settings, date: str | None, *, train: bool, monitor: bool) -> str | None:
    """The training snapshot's date: ``date``, else the configured one, else today (two days ago with monitoring).

    Validation refuses snapshots in the future, and the monitored days come after this one.
    """
    if date is None and settings.data.date is None and train and monitor:
        return (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=len(MONITORED_DAYS))).isoformat()
    return date


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


def print_data_summary(out: Console, summary: RunSummary) -> None:
    """What the data stages wrote, one line a file."""
    raw, features, secs = summary.raw, summary.features, summary.seconds
    lines = [
        ("raw data", raw.path, f"{raw.rows} rows, churn rate {raw.churn_rate:.1%}, {secs['generate']:.1f}s"),
        ("truth", raw.truth, "true churn probabilities, kept out of the features"),
        ("validation", summary.report, f"valid, {secs['validate']:.1f}s"),
        ("features", features.table, f"{features.rows} rows x {features.features} features, {secs['features']:.1f}s"),
        ("pipeline", features.pipeline, "fitted feature pipeline (joblib)"),
        ("metadata", features.metadata, "feature names and RFM cut points"),
    ]
    out.print("[bold]churn run: data[/bold]")
    for name, path, details in lines:
        out.print(f"  {name:<11}{Path(path).resolve() if path else '-'}  [dim]({details})[/dim]", soft_wrap=True)


def run_pipelines(
    settings: Settings,
    raw_path: Path,
    date: str | None,
    *,
    serve: bool,
    monitor: bool,
    score: bool,
    run_pipeline: RunPipeline,
    out: Console,
    err: Console,
) -> None:
    """Train on ``raw_path``, then (as asked) serve a few records, monitor two days, score the newest day."""
    run_pipeline("training", settings, source_uri=str(raw_path.resolve()))
    if serve:
        _serving_demo(settings, raw_path, out, err)
    if monitor:
        _monitoring_demo(settings, date, run_pipeline, out)
    if score:
        _scoring_demo(settings, run_pipeline, out)


def _scoring_demo(settings: Settings, run_pipeline: RunPipeline, out: Console) -> None:
    """Score the newest customers_YYYYMMDD file with the scoring pipeline; print the ten riskiest, with reasons."""
    raw_dir = str(settings.raw_dir.resolve()) + "/"
    # The monitoring days above already logged this day's predictions (as this run would): not twice.
    run_pipeline("scoring", settings, source_uri=raw_dir, latest_only=True, log_predictions=False)
    print_highest_risk(out, settings.scored_uri, 10)


def _monitoring_demo(settings: Settings, date: str | None, run_pipeline: RunPipeline, out: Console) -> None:
    """Publish two daily increments, score and log them, run the monitoring pipeline on each, print the verdicts."""
    snapshot = parse_date(date if date is not None else settings.data.date)
    # The pipeline's tasks (subprocesses) read the expected label delay from the environment.
    with environment({"CHURN_PERFORMANCE__LABEL_DELAY_DAYS": str(DEMO_LABEL_DELAY_DAYS)}):
        verdicts = _monitored_days(settings, snapshot, run_pipeline)
    out.print("[bold]monitoring[/bold] (drift checks of daily increments against the champion's reference)")
    for day, scenario, what, run in verdicts:
        out.print(f"  {day} {what:<12} scenario {scenario:<12} verdict: {monitoring_line(run)}", highlight=False)
    out.print(
        f"[bold]performance[/bold] (logged predictions joined with the labels that have arrived, as of "
        f"{verdicts[-1][0]}; labels come {DEMO_LABEL_DELAY_DAYS} day after scoring here, "
        f"CHURN_PERFORMANCE__LABEL_DELAY_DAYS={settings.performance.label_delay_days} in production)"
    )
    for line in performance_lines(verdicts[-1][3]):
        out.print(f"  {line}", highlight=False)


def _monitored_days(
    settings: Settings, snapshot: dt.date, run_pipeline: RunPipeline
) -> list[tuple[dt.date, str, str, PipelineRun]]:
    """Publish, score and log, then monitor each of :data:`MONITORED_DAYS` after ``snapshot``."""
    verdicts = []
    for offset, scenario, what in MONITORED_DAYS:
        day = snapshot + dt.timedelta(days=offset)
        # A seed per day: each increment holds new customers, as a real day would.
        data = run_pipeline("data", settings, date=day.isoformat(), scenario=scenario, seed=int(f"{day:%Y%m%d}"))
        # The day's customers scored and logged (as the batch scoring run does); their labels arrive a day later.
        log_day_predictions(settings, Path(str(data.output)), label_delay_days=DEMO_LABEL_DELAY_DAYS)
        run = run_pipeline("monitoring", settings, current_uri=str(data.output), as_of=day.isoformat())
        verdicts.append((day, scenario, what, run))
    return verdicts


def _serving_demo(settings: Settings, raw_path: Path, out: Console, err: Console) -> None:
    start = time.perf_counter()
    with err.status("starting predictor + transformer (KServe, V2) on the champion..."):
        answers = serving_demo(settings, raw_path)
    out.print(
        f"[bold]serving[/bold] (KServe predictor + transformer on {settings.serving.host}, "
        f"{time.perf_counter() - start:.0f}s incl. start and stop): {len(answers)} records scored in a real V2 request"
    )
    print_answers(out, answers)
