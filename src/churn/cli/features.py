"""``churn features``: fit the feature pipeline on a raw export and write the feature table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from churn.cli.console import out, progress_bar
from churn.config import get_settings
from churn.jobs.files import features_for, validate_to_report

features_app = typer.Typer(help="Build feature tables and the fitted feature pipeline.", no_args_is_help=True)


@features_app.command("build")
def features_build(
    file: Annotated[Path, typer.Argument(help="Raw export to fit on (.csv or .parquet); validated first.")],
) -> None:
    """Validate a raw export, fit the feature pipeline on it and write the feature table."""
    settings = get_settings()
    with progress_bar() as bar:
        task = bar.add_task("features", total=2)
        frame, _, report_path = validate_to_report(settings, file)
        bar.update(task, advance=1)
        outputs = features_for(settings, frame, file)
        bar.update(task, advance=1)
    out.print(f"validation report: {report_path}")
    out.print(f"feature table: {outputs.table} ({outputs.rows} rows x {outputs.features} features)")
    out.print(f"fitted pipeline: {outputs.pipeline}")
