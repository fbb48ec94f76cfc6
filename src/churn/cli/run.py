"""``churn run``: the main job end to end on embedded defaults (:mod:`churn.jobs.main_job`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from churn.cli.console import err, out, progress_bar, stage_progress
from churn.cli.pipeline import run_pipeline
from churn.config import Settings, get_settings
from churn.jobs import main_job
from churn.kfp.local import LocalRun


def run(
    rows: Annotated[
        int | None, typer.Option(min=1, help="Rows of the initial load [default: CHURN_DATA__ROWS or 100000].")
    ] = None,
    date: Annotated[
        str | None,
        typer.Option(
            help="Snapshot date YYYY-MM-DD [default: today; with monitoring, two days ago, so that the monitored "
            "days, which follow it, are not in the future]."
        ),
    ] = None,
    train: Annotated[bool, typer.Option(help="Also run the training pipeline on the generated data.")] = True,
    serve: Annotated[
        bool, typer.Option(help="After training, start the service, score a few records over V2, stop it.")
    ] = True,
    monitor: Annotated[
        bool,
        typer.Option(help="After training, monitor two daily increments: a clean day and a drifted day."),
    ] = True,
    score: Annotated[
        bool,
        typer.Option(help="Finally, score the newest day with the scoring pipeline and show the riskiest customers."),
    ] = True,
) -> None:
    """Run the main job end to end on embedded defaults: data, features, training, serving, monitoring, scoring."""
    settings = get_settings()
    date = main_job.snapshot_date(settings, date, train=train, monitor=monitor)
    with progress_bar() as bar:
        summary = main_job.run_main_job(settings, rows=rows, date=date, progress=stage_progress(bar))
    main_job.print_data_summary(out, summary)
    if train:
        main_job.run_pipelines(
            settings,
            summary.raw.path,
            date,
            serve=serve,
            monitor=monitor,
            score=score,
            run_pipeline=_run_pipeline,
            out=out,
            err=err,
        )


def _run_pipeline(name: str, settings: Settings, /, **overrides: Any) -> LocalRun:
    """A pipeline of the main job, on the local runner with its progress bar (its tasks are subprocesses)."""
    return run_pipeline(name, settings, **overrides)
