"""``churn data``: generate, validate, list the drift scenarios, emit delayed labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from churn.cli.console import err, out, progress_bar, resolve_engine
from churn.config import get_settings
from churn.data.files import FileFormat
from churn.errors import ChurnError
from churn.jobs.files import generate_file

data_app = typer.Typer(help="Generate and validate raw customer exports.", no_args_is_help=True)


@data_app.command("generate")
def data_generate(
    rows: Annotated[
        int | None, typer.Option(min=0, help="Rows to generate [default: CHURN_DATA__ROWS or 100000].")
    ] = None,
    date: Annotated[str | None, typer.Option(help="Snapshot date YYYY-MM-DD [default: today].")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed [default: CHURN_DATA__SEED or 42].")] = None,
    scenario: Annotated[str, typer.Option(help="Drift scenario (see `churn data scenarios`).")] = "none",
    strength: Annotated[float, typer.Option(min=0.0, max=5.0, help="Scale of the scenario's shifts.")] = 1.0,
    fmt: Annotated[FileFormat | None, typer.Option("--format", help="csv or parquet [default: csv].")] = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="Output file [default: data/raw/customers_YYYYMMDD.<format>].")
    ] = None,
    truth: Annotated[bool, typer.Option(help="Also write true churn probabilities under data/truth/.")] = True,
    engine: Annotated[
        str | None,
        typer.Option(
            help="`dask`: a folder of part-*.parquet (customers_YYYYMMDD/, 250K rows a part, bounded memory) "
            "for the Dask engine [default: CHURN_ENGINE]."
        ),
    ] = None,
) -> None:
    """Generate a raw customer export (initial load or daily increment)."""
    settings = get_settings()
    total = settings.data.rows if rows is None else rows
    if resolve_engine(engine, settings).partitioned:
        from churn.data.partitioned import generate_partitioned

        if strength != 1.0 or fmt == "csv":
            raise ChurnError("--engine dask writes parquet parts at strength 1: drop --strength and --format")
        folder = generate_partitioned(
            total,
            output or settings.raw_dir,
            date or (settings.data.date.isoformat() if settings.data.date else None),
            seed=settings.data.seed if seed is None else seed,
            scenario=scenario,
        )
        parts = len(list(folder.glob("part-*.parquet")))
        out.print(f"wrote {folder}/ ({total} rows in {parts} part-*.parquet; no truth file on this engine)")
        return
    with progress_bar() as bar:
        task = bar.add_task("generate", total=total)
        result = generate_file(
            settings,
            rows=total,
            date=date,
            seed=seed,
            scenario=scenario,
            strength=strength,
            fmt=fmt,
            out=output,
            with_truth=truth,
            progress=lambda done: bar.update(task, completed=done),
        )
    out.print(f"wrote {result.path} ({result.rows} rows, churn rate {result.churn_rate:.1%})")
    if result.truth:
        out.print(f"wrote {result.truth} (true churn probabilities)")


@data_app.command("validate")
def data_validate(
    file: Annotated[Path, typer.Argument(help="Raw export (.csv or .parquet).")],
    report: Annotated[
        Path | None, typer.Option(help="Write the JSON report here [default: data/reports/<name>.validation.json].")
    ] = None,
    min_rows: Annotated[int | None, typer.Option(min=1, help="Fewest rows a valid file may have.")] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            help="`pandas` (one process) or `dask` (a folder of part-*.parquet on a Dask cluster) "
            "[default: CHURN_ENGINE]."
        ),
    ] = None,
) -> None:
    """Validate a raw export against the declared schema; exit 1 listing every violation."""
    from rich.markup import escape

    from churn.validation import DataValidationError

    settings = get_settings()
    chosen = resolve_engine(engine, settings)
    report_path = report or settings.reports_dir / f"{file.name.split('.')[0]}.validation.json"
    least, examples = min_rows or settings.validation.min_rows, settings.validation.max_examples
    try:
        result = chosen.validate(file, report_path, min_rows=least, max_examples=examples)
    except DataValidationError as exc:
        err.print(f"[red]invalid:[/red] {escape(str(exc))}", highlight=False)
        err.print(f"report: {report_path}")
        raise typer.Exit(1) from None
    out.print(result.summary(), highlight=False)
    for warning in result.warnings:
        out.print(f"warning: {warning}")
    out.print(f"report: {report_path}")


@data_app.command("scenarios")
def data_scenarios() -> None:
    """List the drift scenarios and the columns each one moves (a concept drift moves none)."""
    from churn.data import CONCEPT_SCENARIOS, SCENARIOS

    table = Table(show_header=True)
    table.add_column("scenario")
    table.add_column("description")
    table.add_column("moves")
    for scenario in SCENARIOS.values():
        moves = "\n".join(f"{column}: {amount}" for column, amount in scenario.shifts.items()) or "-"
        table.add_row(scenario.name, scenario.description, moves)
    for scenario in CONCEPT_SCENARIOS.values():
        table.add_row(scenario.name, scenario.description, "no column: who churns changes (concept drift)")
    out.print(table)


@data_app.command("labels")
def data_labels(
    file: Annotated[Path, typer.Argument(help="A generated export (.csv or .parquet) with its churned outcomes.")],
    delay: Annotated[
        int | None,
        typer.Option(min=0, max=365, help="Days after the snapshot when the labels arrive [default: 30]."),
    ] = None,
    destination: Annotated[
        str | None, typer.Option(help="Folder or s3:// prefix [default: CHURN_PERFORMANCE__LABELS_URI or data/labels].")
    ] = None,
) -> None:
    """Emit the delayed churn labels of an export: labels_YYYYMMDD.csv dated `delay` days after its snapshot."""
    from churn.data.labels import publish_labels
    from churn.validation.reader import read_raw_file

    settings = get_settings()
    parsed = read_raw_file(file)
    if parsed.frame is None or parsed.violations:
        reasons = "; ".join(v.message for v in parsed.violations) or "unreadable"
        err.print(f"error: cannot read {file}: {reasons}")
        raise typer.Exit(1)
    days = settings.performance.label_delay_days if delay is None else delay
    for written in publish_labels(parsed.frame, days, destination or settings.labels_uri):
        out.print(f"wrote {written} ({len(parsed.frame)} labels, {days} days after scoring)")
