"""``churn score``: batch-score a customer base with the champion."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from churn.cli.console import err, out, resolve_engine
from churn.config import get_settings
from churn.errors import ChurnError
from churn.jobs.show import print_highest_risk


def score_command(
    source: Annotated[str, typer.Argument(help="Customer base: a .csv/.parquet file, a folder of parts or s3://...")],
    out_uri: Annotated[
        str | None, typer.Option("--out", help="Scored table: folder or s3:// prefix [default: data/scored].")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="models:/NAME@ALIAS, models:/NAME/VERSION or a model directory [default: @champion]."),
    ] = None,
    reasons: Annotated[bool, typer.Option(help="Add each customer's top 3 reasons.")] = True,
    top: Annotated[int, typer.Option(min=0, help="Print this many highest-risk customers with their reasons.")] = 10,
    engine: Annotated[
        str | None,
        typer.Option(
            help="`pandas` (one process) or `dask` (a parquet export scored partition by partition on a Dask "
            "cluster, the same table) [default: CHURN_ENGINE]."
        ),
    ] = None,
) -> None:
    """Score a customer base with the champion and commit the scored table (atomically) where --out says."""
    from churn.scoring.batch import fetch_model

    if not source.strip():
        raise ChurnError(f"the source to score is empty ({source!r}): give a .csv/.parquet file, a folder or s3://...")
    settings = get_settings()
    chosen = resolve_engine(engine, settings)
    model_uri = model or f"models:/{settings.mlflow.model_name}@champion"
    location = out_uri or settings.scored_uri
    with err.status(f"scoring {source} with {model_uri} ({chosen.name})..."):
        model_dir, version = fetch_model(model_uri, settings.tracking_uri)
        common: dict[str, Any] = {
            "model_dir": model_dir,
            "model_name": settings.mlflow.model_name,
            "model_version": version,
            "reasons": reasons,
            "part_rows": settings.scoring.part_rows,
            "method": settings.scoring.reasons_method,
        }
        summary = chosen.score_source(source, location, **common)
    out.print(
        f"[bold]scored[/bold] {summary.rows} customers with {model_uri} (version {version}) in {summary.seconds:.1f}s: "
        f"{summary.churned} labelled churn; table {location} "
        f"({summary.parts} part(s), run {summary.manifest['run_id']})",
        highlight=False,
    )
    if top:
        print_highest_risk(out, location, top)
