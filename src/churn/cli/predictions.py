"""``churn predictions``: the prediction log (every answer the model gave)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from churn.cli.console import day_option, err, out
from churn.config import get_settings

predictions_app = typer.Typer(help="The prediction log (every answer the model gave).", no_args_is_help=True)


@predictions_app.command("compact")
def predictions_compact_command(
    root: Annotated[
        str | None,
        typer.Option(help="The log: folder or s3:// prefix [default: CHURN_PERFORMANCE__PREDICTION_LOG_URI]."),
    ] = None,
    start: Annotated[str | None, typer.Option(help="First day to compact, YYYY-MM-DD [default: the oldest].")] = None,
    end: Annotated[
        str | None,
        typer.Option(help="Last day to compact, YYYY-MM-DD [default: yesterday (UTC); today's log is still written]."),
    ] = None,
) -> None:
    """Merge each day's small prediction-log objects into one parquet object per day (atomic, idempotent)."""
    from churn.predictions.log import compact_prediction_log

    first, last = day_option(start, "--start"), day_option(end, "--end")
    last = last or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    where = root or get_settings().prediction_log_uri
    with err.status(f"compacting {where}..."):
        days = compact_prediction_log(where, start=first, end=last)
    out.print(f"[bold]prediction log[/bold] {where}: {len(days)} day(s) through {last}", highlight=False)
    for day in days:
        out.print(f"  {day.line()}", highlight=False)
