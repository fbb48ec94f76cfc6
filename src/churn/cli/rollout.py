"""``churn rollout``: see and overrule a rollout, compare a shadow with the champion."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

from churn.cli.console import day_option, err, out
from churn.config import get_settings

rollout_app = typer.Typer(
    help="Safe rollout: see and overrule a progressive rollout, compare a shadow with the champion.",
    no_args_is_help=True,
)


@rollout_app.command("compare")
def rollout_compare_command(
    log: Annotated[
        str | None,
        typer.Option(
            help="The prediction log: folder or s3:// prefix [default: CHURN_PERFORMANCE__PREDICTION_LOG_URI]."
        ),
    ] = None,
    labels: Annotated[
        str | None, typer.Option(help="The churn labels' folder or s3:// prefix [default: the monitoring's].")
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="Days in the window, ending with --end.")] = 7,
    end: Annotated[str | None, typer.Option(help="Last day of the window, YYYY-MM-DD [default: today, UTC].")] = None,
    pushgateway: Annotated[
        str | None,
        typer.Option(
            help="Push the churn_shadow_* metrics here [default: CHURN_MONITORING__PUSHGATEWAY_URL; unset: no push]."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Compare the shadow's answers with the champion's over a window of the prediction log."""
    from churn.rollout.compare import compare_shadow

    settings = get_settings()
    last = day_option(end, "--end") or dt.datetime.now(dt.UTC).date()
    first = last - dt.timedelta(days=days - 1)
    where = log or settings.prediction_log_uri
    with err.status(f"comparing the shadow with the champion in {where}..."):
        comparison = compare_shadow(
            where,
            labels or settings.labels_uri,
            start=first,
            end=last,
            pushgateway_url=pushgateway or settings.monitoring.pushgateway_url,
            push_timeout=settings.monitoring.push_timeout_seconds,
        )
    if as_json:
        out.print_json(json.dumps(comparison.to_dict()))
        return
    for line in comparison.lines():
        out.print(line, highlight=False)
