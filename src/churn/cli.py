"""The ``churn`` command line: thin commands over :mod:`churn.jobs` and the library."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from churn import __version__
from churn.config import Settings, environment, get_settings, redact
from churn.errors import ChurnError
from churn.io import FileFormat

if TYPE_CHECKING:
    from churn.kfp_runner import LocalRun, Runner

app = typer.Typer(
    help="churn-mlops: synthetic churn data, validation, features (and, later, training, serving, monitoring).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Generate and validate raw customer exports.", no_args_is_help=True)
features_app = typer.Typer(help="Build feature tables and the fitted feature pipeline.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
pipeline_app = typer.Typer(help="Compile Kubeflow pipelines or run them locally (no cluster).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.add_typer(config_app, name="config")
mlflow_auth_app = typer.Typer(
    help="MLflow users and permissions, for a server run with --app-name churn-auth.", no_args_is_help=True
)
app.add_typer(pipeline_app, name="pipeline")
predictions_app = typer.Typer(help="The prediction log (every answer the model gave).", no_args_is_help=True)
app.add_typer(predictions_app, name="predictions")
app.add_typer(mlflow_auth_app, name="mlflow-auth")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@contextmanager
def _progress() -> Iterator[Progress]:
    bar = Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
    with bar:
        yield bar


def _version(value: bool) -> None:
    if value:
        out.print(f"churn-mlops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """churn-mlops command line."""


@app.command()
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
    import datetime as dt

    from churn.jobs import run_main_job

    settings = get_settings()
    if date is None and settings.data.date is None and train and monitor:
        # Validation refuses snapshots in the future; the monitored days come after this one.
        date = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=len(MONITORED_DAYS))).isoformat()
    with _progress() as bar:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        summary = run_main_job(settings, rows=rows, date=date, progress=report)
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
    if not train:
        return
    _run_pipeline("training", settings, source_uri=str(raw.path.resolve()))
    if serve:
        _serving_demo(settings, raw.path)
    if monitor:
        _monitoring_demo(settings, date)
    if score:
        _scoring_demo(settings)


def _scoring_demo(settings: Settings) -> None:
    """Score the newest customers_YYYYMMDD file with the scoring pipeline; print the ten riskiest, with reasons."""
    raw_dir = str(settings.raw_dir.resolve()) + "/"
    # The monitoring days above already logged this day's predictions (as this run would): not twice.
    _run_pipeline("scoring", settings, source_uri=raw_dir, latest_only=True, log_predictions=False)
    _print_highest_risk(settings.scored_uri, 10)


#: The two days the main job monitors: (days after the training snapshot, scenario, what it is).
MONITORED_DAYS = ((1, "none", "clean day"), (2, "price_shock", "drifted day"))


def _monitoring_demo(settings: Settings, date: str | None) -> None:
    """Publish two daily increments, score and log them, run the monitoring pipeline on each, print the verdicts."""
    from churn.data.generator import parse_date

    snapshot = parse_date(date if date is not None else settings.data.date)
    # The pipeline's tasks (subprocesses) read the expected label delay from the environment.
    with environment({"CHURN_PERFORMANCE__LABEL_DELAY_DAYS": str(DEMO_LABEL_DELAY_DAYS)}):
        verdicts = _monitored_days(settings, snapshot)
    out.print("[bold]monitoring[/bold] (drift checks of daily increments against the champion's reference)")
    for day, scenario, what, run in verdicts:
        out.print(f"  {day} {what:<12} scenario {scenario:<12} verdict: {_monitoring_line(run)}", highlight=False)
    out.print(
        f"[bold]performance[/bold] (logged predictions joined with the labels that have arrived, as of "
        f"{verdicts[-1][0]}; labels come {DEMO_LABEL_DELAY_DAYS} day after scoring here, "
        f"CHURN_PERFORMANCE__LABEL_DELAY_DAYS={settings.performance.label_delay_days} in production)"
    )
    for line in _performance_lines(verdicts[-1][3]):
        out.print(f"  {line}", highlight=False)


#: Days after scoring when the main job's demo labels arrive (so the loop closes within the demo).
DEMO_LABEL_DELAY_DAYS = 1


def _monitored_days(settings: Settings, snapshot: Any) -> list[tuple[Any, str, str, LocalRun]]:
    """Publish, score and log, then monitor each of :data:`MONITORED_DAYS` after ``snapshot``."""
    import datetime as dt

    from churn.jobs import log_day_predictions

    verdicts = []
    for offset, scenario, what in MONITORED_DAYS:
        day = snapshot + dt.timedelta(days=offset)
        # A seed per day: each increment holds new customers, as a real day would.
        data = _run_pipeline("data", settings, date=day.isoformat(), scenario=scenario, seed=int(f"{day:%Y%m%d}"))
        # The day's customers scored and logged (as the batch scoring run does); their labels arrive a day later.
        log_day_predictions(settings, Path(str(data.output)), label_delay_days=DEMO_LABEL_DELAY_DAYS)
        run = _run_pipeline("monitoring", settings, current_uri=str(data.output), as_of=day.isoformat())
        verdicts.append((day, scenario, what, run))
    return verdicts


def _performance_lines(run: LocalRun) -> list[str]:
    """One line per cohort from a monitoring run's performance report."""
    import json

    report = run.run_dir / "check-performance" / "report" if run.run_dir else None
    if report is None or not report.is_file():
        return ["(no performance report)"]
    found = json.loads(report.read_text())
    return list(found["lines"]) or [f"no predictions logged ({'; '.join(found['notes'])})"]


def _monitoring_line(run: LocalRun) -> str:
    """``alert (flagged: a, b)`` from a monitoring run's output and report."""
    import json

    report = run.run_dir / "check-drift" / "report" if run.run_dir else None
    if report is None or not report.is_file():
        return str(run.output)
    found = json.loads(report.read_text())
    lists = (("flagged", "flagged"), ("warned", "warn"))
    details = [f"{name}: {', '.join(found[key])}" for key, name in lists if found[key]]
    others = {check: level for check, level in found["levels"].items() if check != "feature_drift"}
    details += [f"{check} {level}" for check, level in others.items() if level != "ok"]
    return f"{found['verdict']}" + (f" ({'; '.join(details)})" if details else "")


def _serving_demo(settings: Settings, raw_path: Path) -> None:
    from churn.jobs import serving_demo

    start = time.perf_counter()
    with err.status("starting predictor + transformer (KServe, V2) on the champion..."):
        answers = serving_demo(settings, raw_path)
    out.print(
        f"[bold]serving[/bold] (KServe predictor + transformer on {settings.serving.host}, "
        f"{time.perf_counter() - start:.0f}s incl. start and stop): {len(answers)} records scored in a real V2 request"
    )
    _print_answers(answers)


def _print_answers(answers: list[dict[str, Any]]) -> None:
    table = Table("customer_id", "churn_probability", "churn_label", "model_version")
    for answer in answers:
        table.add_row(
            str(answer.get("customer_id", "-")),
            f"{answer['churn_probability']:.4f}",
            str(answer["churn_label"]),
            str(answer.get("model_version", "-")),
        )
    out.print(table)


def _run_pipeline(name: str, settings: Settings, *, runner: Runner = "subprocess", **overrides: Any) -> LocalRun:
    """Run a pipeline locally with a progress bar over its tasks, then print what it produced."""
    from churn.kfp_runner import TASK_COUNTS, local_parameters, run_local

    # The process id keeps two runs started in the same second (two terminals) from sharing a log.
    log = (settings.data_dir / "kfp" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log").resolve()
    terminal = Console(file=os.fdopen(os.dup(2), "w"), soft_wrap=True)  # survives the log redirection
    bar = Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        console=terminal,
    )
    with bar:
        task = bar.add_task(name, total=TASK_COUNTS[name], last="")
        result = run_local(
            name,
            settings,
            log=log,
            on_task=lambda done, status: bar.update(task, advance=1, last=f"{done}: {status.lower()}"),
            runner=runner,
            **local_parameters(settings, name, **overrides),
        )
    where = "tasks in the component image" if runner == "docker" else "KFP local runner"
    out.print(f"[bold]{name} pipeline[/bold] ({where}): {result.output} in {result.seconds:.0f}s")
    out.print(f"  task outputs  {result.run_dir or result.root}")
    out.print(f"  task logs     {log}")
    if name == "training":
        _print_training_summary(settings)
    if name == "monitoring":
        out.print(f"  verdict       {_monitoring_line(result)}", highlight=False)
        for line in _performance_lines(result):
            out.print(f"  performance   {line}", highlight=False)
    return result


def _print_training_summary(settings: Settings) -> None:
    from churn.registry.mlflow_registry import describe_model

    summary = describe_model(settings.tracking_uri, settings.mlflow.model_name)
    out.print(f"  mlflow        {redact(settings.tracking_uri)}  (experiment {settings.mlflow.experiment!r})")
    for line in summary:
        out.print(f"  {line}")


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
    from churn.jobs import generate_file

    settings = get_settings()
    total = settings.data.rows if rows is None else rows
    engine = _engine(engine, settings)
    if engine == "dask":
        from churn.scale.generate import generate_partitioned

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
    with _progress() as bar:
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

    from churn.validation import DataValidationError, validate_and_report

    settings = get_settings()
    engine = _engine(engine, settings)
    report_path = report or settings.reports_dir / f"{file.name.split('.')[0]}.validation.json"
    least, examples = min_rows or settings.validation.min_rows, settings.validation.max_examples
    try:
        if engine == "dask":
            from churn.scale.validation import validate_and_report_dask

            result = validate_and_report_dask(
                file, report_path, min_rows=least, max_examples=examples, settings=settings.dask
            )
        else:
            _, result = validate_and_report(file, report_path, min_rows=least, max_examples=examples)
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


@features_app.command("build")
def features_build(
    file: Annotated[Path, typer.Argument(help="Raw export to fit on (.csv or .parquet); validated first.")],
) -> None:
    """Validate a raw export, fit the feature pipeline on it and write the feature table."""
    from churn.jobs import features_for, validate_to_report

    settings = get_settings()
    with _progress() as bar:
        task = bar.add_task("features", total=2)
        frame, _, report_path = validate_to_report(settings, file)
        bar.update(task, advance=1)
        outputs = features_for(settings, frame, file)
        bar.update(task, advance=1)
    out.print(f"validation report: {report_path}")
    out.print(f"feature table: {outputs.table} ({outputs.rows} rows x {outputs.features} features)")
    out.print(f"fitted pipeline: {outputs.pipeline}")


@pipeline_app.command("compile")
def pipeline_compile(
    out_dir: Annotated[Path, typer.Option(help="Folder for the compiled YAML.")] = Path("pipelines/compiled"),
) -> None:
    """Compile every pipeline to YAML for upload to the KFP UI or API."""
    from churn.kfp_runner import PIPELINES, compile_pipeline

    for name in PIPELINES:
        out.print(f"compiled {compile_pipeline(name, out_dir)}")


@pipeline_app.command("run")
def pipeline_run(
    name: Annotated[str, typer.Argument(help="Pipeline to run: training, monitoring, data or scoring.")],
    rows: Annotated[int | None, typer.Option(min=1, help="Rows to generate [default: CHURN_DATA__ROWS].")] = None,
    date: Annotated[str | None, typer.Option(help="Snapshot date of generated data [default: today].")] = None,
    source_uri: Annotated[
        str | None, typer.Option(help="Ingest this export (path or s3://) instead of generating.")
    ] = None,
    scenario: Annotated[str | None, typer.Option(help="Drift scenario of generated data.")] = None,
    gate_margin: Annotated[float | None, typer.Option(help="ROC-AUC margin the challenger must win by.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of generated data and training.")] = None,
    current_uri: Annotated[
        str | None, typer.Option(help="monitoring: increment to check [default: the latest in data/raw].")
    ] = None,
    retrain_on_alert: Annotated[
        bool | None, typer.Option(help="monitoring: start a training run when the verdict is alert.")
    ] = None,
    retrain_mode: Annotated[
        str | None, typer.Option(help="monitoring: retrain `local` (here) or `kfp` (submit to --kfp-host).")
    ] = None,
    kfp_host: Annotated[str | None, typer.Option(help="monitoring: KFP API endpoint for --retrain-mode kfp.")] = None,
    pushgateway_url: Annotated[
        str | None, typer.Option(help="monitoring: Pushgateway [default: CHURN_MONITORING__PUSHGATEWAY_URL].")
    ] = None,
    destination: Annotated[
        str | None,
        typer.Option(help="data: folder or s3:// prefix to publish to [default: data/raw]; scoring: the scored table."),
    ] = None,
    latest_only: Annotated[
        bool | None, typer.Option(help="scoring: score only the newest customers_YYYYMMDD file of --source-uri.")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            help="`pandas` (one process per task) or `dask` (partitioned parquet on a Dask cluster per task) "
            "[default: CHURN_ENGINE]."
        ),
    ] = None,
    runner: Annotated[
        str,
        typer.Option(
            help="Where tasks run: `subprocess` (this environment) or `docker` (the component image, "
            "through the Docker API at DOCKER_HOST: Docker, or `podman system service`; needs an http MLflow)."
        ),
    ] = "subprocess",
) -> None:
    """Run a pipeline end to end with KFP's local runner (no cluster)."""
    from churn.kfp_runner import PIPELINES

    if name not in PIPELINES:
        raise ChurnError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")
    given = {
        "rows": rows,
        "date": date,
        "source_uri": source_uri,
        "scenario": scenario,
        "gate_margin": gate_margin,
        "seed": seed,
        "current_uri": current_uri,
        "retrain_on_alert": retrain_on_alert,
        "retrain_mode": retrain_mode,
        "kfp_host": kfp_host,
        "pushgateway_url": pushgateway_url,
        "destination": destination,
        "latest_only": latest_only,
        "engine": engine,
    }
    if engine is not None:
        _engine(engine, get_settings())
    if name == "monitoring":  # its training parameters are those of the retraining run
        given["retrain_rows"], given["retrain_source_uri"] = given.pop("rows"), given.pop("source_uri")
    if runner not in ("subprocess", "docker"):
        raise ChurnError(f"unknown runner {runner!r}; known: subprocess, docker")
    _run_pipeline(name, get_settings(), runner=cast("Runner", runner), **_accepted(name, given))


def _engine(given: str | None, settings: Settings) -> str:
    """The ``--engine`` given, else the configured one; refused unless it is pandas or dask."""
    engine = given or settings.engine
    if engine not in ("pandas", "dask"):
        raise ChurnError(f"--engine must be pandas or dask, got {engine!r}")
    return engine


def _accepted(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """The options given on the command line, or an error naming those ``name`` does not take."""
    from churn.kfp_runner import pipeline_inputs

    given = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(given) - pipeline_inputs(name))
    if unknown:
        options = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise ChurnError(f"the {name} pipeline does not take {options}")
    return given


@app.command("serve")
def serve_command(
    model: Annotated[
        str | None,
        typer.Option(
            help="Model to serve: models:/NAME@ALIAS, models:/NAME/VERSION or a model directory "
            "[default: models:/<model_name>@champion]."
        ),
    ] = None,
    version: Annotated[int | None, typer.Option(help="Serve this registered version instead of @champion.")] = None,
    protocol: Annotated[
        str | None, typer.Option(help="Transformer -> predictor protocol: grpc-v2 or v2 [default: settings].")
    ] = None,
) -> None:
    """Start predictor and transformer on 127.0.0.1, wait until both are ready, serve until Ctrl-C."""
    from churn.serving.local import LocalService, ServiceConfig

    settings = get_settings()
    if version is not None:
        model = f"models:/{settings.mlflow.model_name}/{version}"
    if protocol not in (None, "grpc-v2", "v2"):
        raise ChurnError(f"--protocol must be grpc-v2 or v2, not {protocol!r}")
    overrides = {"predictor_protocol": protocol} if protocol else {}
    config = ServiceConfig.from_settings(settings, model, **overrides)
    service = LocalService(config)
    with err.status(f"starting predictor and transformer for {config.model_uri}..."):
        service.start(timeout=settings.serving.start_timeout_seconds)
    name = config.model_name
    out.print(f"[bold]serving[/bold] {config.model_uri} as {name!r} (logs in {config.log_dir.resolve()})")
    out.print(f"  transformer  REST {config.transformer_url}  gRPC {config.host}:{config.transformer_grpc_port}")
    out.print(f"  predictor    REST {config.predictor_url}  gRPC {config.host}:{config.predictor_grpc_port}")
    out.print(f"  metrics      {config.transformer_url}/metrics  {config.predictor_url}/metrics")
    out.print("  try          churn predict --file <raw export or JSON records>   (Ctrl-C stops)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a plain `kill` stops the servers too
    try:
        while all(p.poll() is None for p in service.processes.values()):
            time.sleep(0.5)
        err.print("a server exited; stopping")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        err.print("stopping")
    finally:
        service.stop()


@app.command("predict")
def predict_command(
    file: Annotated[
        Path | None,
        typer.Option(help="Raw export (.csv/.parquet) or JSON records/JSON lines; stdin when omitted."),
    ] = None,
    url: Annotated[str | None, typer.Option(help="Transformer URL [default: the local `churn serve`].")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Score only the first N records.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answers as JSON lines.")] = False,
) -> None:
    """Score customer records with the running service (V2 REST, JSON-records input) and print the answers."""
    import json

    from churn.serving.client import answer_rows, predict_records, read_first_records, read_records_file

    settings = get_settings()
    records = read_records_file(file, limit) if file else read_first_records(sys.stdin, limit, source="stdin")
    target = url or f"http://{settings.serving.host}:{settings.serving.transformer_http_port}"
    rows = []
    # The service refuses requests over its batch limit: send the records in batches of that size.
    size = settings.serving.max_batch_size
    for start in range(0, len(records), size):
        answer = predict_records(target.rstrip("/"), settings.serving.model_name, records[start : start + size])
        rows += [row | {"model_version": answer.get("model_version")} for row in answer_rows(answer)]
    if as_json:
        for row in rows:
            out.print(json.dumps(row), highlight=False)
    else:
        _print_answers(rows)


@app.command("score")
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
    from churn.scoring.batch import fetch_model, score_source

    settings = get_settings()
    engine = _engine(engine, settings)
    model_uri = model or f"models:/{settings.mlflow.model_name}@champion"
    location = out_uri or settings.scored_uri
    with err.status(f"scoring {source} with {model_uri} ({engine})..."):
        model_dir, version = fetch_model(model_uri, settings.tracking_uri)
        common: dict[str, Any] = {
            "model_dir": model_dir,
            "model_name": settings.mlflow.model_name,
            "model_version": version,
            "reasons": reasons,
            "part_rows": settings.scoring.part_rows,
            "method": settings.scoring.reasons_method,
        }
        if engine == "dask":
            from churn.scale.scoring import score_source_dask

            summary = score_source_dask(source, location, settings=settings.dask, **common)
        else:
            summary = score_source(source, location, **common)
    out.print(
        f"[bold]scored[/bold] {summary.rows} customers with {model_uri} (version {version}) in {summary.seconds:.1f}s: "
        f"{summary.churned} labelled churn; table {location} "
        f"({summary.parts} part(s), run {summary.manifest['run_id']})",
        highlight=False,
    )
    if top:
        _print_highest_risk(location, top)


def _print_highest_risk(location: str, n: int) -> None:
    """The ``n`` riskiest customers of the committed table, each with its reasons on lines of their own."""
    from churn.scoring.batch import highest_risk, reason_texts
    from churn.scoring.table import read_table

    out.print(f"[bold]{n} highest-risk customers[/bold] ({location})")
    for _, row in highest_risk(read_table(location), n).iterrows():
        out.print(
            f"  {row['customer_id']}  churn probability {row['churn_probability']:.4f}  "
            f"risk decile {row['risk_decile']}",
            highlight=False,
        )
        for text in reason_texts(row):
            out.print(f"      {text}", highlight=False)


def _day_option(text: str | None, name: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date YYYY-MM-DD", param_hint=name) from None


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
    from churn.serving.prediction_log import compact_prediction_log

    first, last = _day_option(start, "--start"), _day_option(end, "--end")
    last = last or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    where = root or get_settings().prediction_log_uri
    with err.status(f"compacting {where}..."):
        days = compact_prediction_log(where, start=first, end=last)
    out.print(f"[bold]prediction log[/bold] {where}: {len(days)} day(s) through {last}", highlight=False)
    for day in days:
        out.print(f"  {day.line()}", highlight=False)


_Release = Annotated[
    str, typer.Option(help="Helm release of the chart: its <release>-s3 Secret and <release>-pipeline-env ConfigMap.")
]
_ServiceAccount = Annotated[
    str, typer.Option(help="Service account of the runs [default: <release>-deployer, which may deploy].")
]
_IncrementsUri = Annotated[
    str, typer.Option(help="s3:// prefix where data runs publish each day and monitoring reads the newest.")
]


@app.command("schedule")
def schedule_command(
    host: Annotated[str, typer.Option(help="KFP API endpoint, e.g. http://ml-pipeline-ui.kubeflow:80.")],
    release: _Release = "churn",
    experiment: Annotated[str, typer.Option(help="KFP experiment of the recurring runs.")] = "churn",
    service_account: _ServiceAccount = "",
    s3_secret: Annotated[str, typer.Option(help="Secret with the S3 keys [default: <release>-s3].")] = "",
    increments_uri: _IncrementsUri = "s3://mlflow/increments/",
    retrain_on_alert: Annotated[
        bool, typer.Option(help="Monitoring submits a training run to the in-cluster KFP API on an alert.")
    ] = False,
    mlflow_tracking_uri: Annotated[
        str, typer.Option(help="Tracking server of the runs [default: the chart's, from <release>-pipeline-env].")
    ] = "",
    scored_uri: Annotated[
        str, typer.Option(help="s3:// prefix where the daily scoring run commits the scored table.")
    ] = "s3://mlflow/scored/",
) -> None:
    """Upload the pipelines, (re)create the recurring runs: data 2:00, training Sun 3, scoring 4:00, monitoring 6:00."""
    from churn.kfp_runner import COMPILED_DIR
    from churn.schedule import Release, cluster_parameters, schedule_all

    params = cluster_parameters(
        release=release,
        s3_secret=s3_secret,
        increments_uri=increments_uri,
        tracking_uri=mlflow_tracking_uri,
        retrain_on_alert=retrain_on_alert,
        scored_uri=scored_uri,
    )
    client = _kfp_client(host)
    account = service_account or Release(release).deployer
    for item in schedule_all(client, COMPILED_DIR, experiment=experiment, params=params, service_account=account):
        out.print(f"  {item['name']:<24} {item['pipeline']:<11} cron {item['cron']}")


@pipeline_app.command("submit")
def pipeline_submit(
    name: Annotated[str, typer.Argument(help="Pipeline to run: training, monitoring, data or scoring.")],
    host: Annotated[str, typer.Option(help="KFP API endpoint, e.g. http://localhost:8888 (port-forwarded).")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE pipeline parameter (repeatable).")
    ] = None,
    release: _Release = "churn",
    experiment: Annotated[str, typer.Option(help="KFP experiment of the run.")] = "churn",
    service_account: _ServiceAccount = "",
    increments_uri: _IncrementsUri = "s3://mlflow/increments/",
    wait: Annotated[float, typer.Option(min=0, help="Seconds to wait for the run; fail unless it succeeds.")] = 0,
) -> None:
    """Start one run of a compiled pipeline on a KFP backend, wired to the chart like the scheduled runs."""
    from churn.kfp_runner import COMPILED_DIR, PIPELINES
    from churn.schedule import Release, cluster_parameters, submit_run, typed_arguments

    if name not in PIPELINES:
        raise ChurnError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")
    given: dict[str, str] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ChurnError(f"--param must be KEY=VALUE, not {item!r}")
        given[key] = value
    package = COMPILED_DIR / f"{name}_pipeline.yaml"
    wired = cluster_parameters(release=release, increments_uri=increments_uri)[name]
    arguments = {**wired, **typed_arguments(package, given)}
    client = _kfp_client(host)
    account = service_account or Release(release).deployer
    out.print(f"submitting the {name} pipeline to {host} ({', '.join(f'{k}={v}' for k, v in arguments.items())})")
    result = submit_run(
        client, package, arguments, experiment=experiment, service_account=account, wait_seconds=wait, host=host
    )
    out.print(f"  run {result['run_id']}: {result['state']}")


def _kfp_client(host: str) -> Any:
    import warnings

    import kfp

    warnings.filterwarnings("ignore", category=FutureWarning, module="kfp")  # "only works with KFP v2": it is v2
    try:
        return kfp.Client(host=host)
    except Exception as exc:
        raise ChurnError(f"cannot reach the KFP API at {host}: {exc}") from None


@mlflow_auth_app.command("setup")
def mlflow_auth_setup(
    pipeline_password: Annotated[
        str, typer.Option(envvar="CHURN_MLFLOW_AUTH_PIPELINE_PASSWORD", help="Password of the pipelines' user.")
    ],
    gate_password: Annotated[
        str, typer.Option(envvar="CHURN_MLFLOW_AUTH_GATE_PASSWORD", help="Password of the promotion gate's user.")
    ],
    reader_password: Annotated[
        str, typer.Option(envvar="CHURN_MLFLOW_AUTH_READER_PASSWORD", help="Password of the read-only user.")
    ],
    pipeline_username: Annotated[str, typer.Option(envvar="CHURN_MLFLOW_AUTH_PIPELINE_USERNAME")] = "churn-pipeline",
    gate_username: Annotated[str, typer.Option(envvar="CHURN_MLFLOW_AUTH_GATE_USERNAME")] = "churn-gate",
    reader_username: Annotated[str, typer.Option(envvar="CHURN_MLFLOW_AUTH_READER_USERNAME")] = "churn-reader",
) -> None:
    """Create or update the pipeline, gate and read-only users and their permissions (idempotent; rotates passwords).

    Runs as the MLflow admin (MLFLOW_TRACKING_USERNAME/_PASSWORD) against CHURN_MLFLOW__TRACKING_URI. Give the
    passwords through the environment, not the command line, so that no process list shows them.
    """
    from churn.mlflow_auth import ensure_identities, identities
    from churn.registry.mlflow_registry import connect_registry, mlflow_errors

    settings = get_settings()
    uri = settings.mlflow.tracking_uri
    if not uri or not uri.startswith(("http://", "https://")):
        raise ChurnError("mlflow-auth setup needs a tracking server: set CHURN_MLFLOW__TRACKING_URI=http://...")
    try:
        users = identities(
            {"pipeline": pipeline_username, "gate": gate_username, "reader": reader_username},
            {"pipeline": pipeline_password, "gate": gate_password, "reader": reader_password},
        )
    except ValueError as exc:
        raise ChurnError(str(exc)) from None
    connect_registry(uri, timeout=settings.mlflow.timeout_seconds, retries=settings.mlflow.max_retries)
    with mlflow_errors(uri, "set up MLflow users"):
        ensure_identities(
            uri,
            experiment=settings.mlflow.experiment,
            model_name=settings.mlflow.model_name,
            users=users,
            log=out.print,
        )


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (defaults overridden by CHURN_* variables) as JSON."""
    from churn.config import redacted

    out.print_json(data=redacted(get_settings().model_dump(mode="json")))  # no password of a URL is printed


def main() -> None:
    """Entry point: a caller's mistake prints one clear line and exits 1, never a traceback."""
    try:
        app()
    except ChurnError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


__all__ = ["app", "main"]
