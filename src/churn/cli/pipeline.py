"""``churn pipeline`` (compile, run locally, submit) and ``churn schedule``: the Kubeflow pipelines."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from churn.cli.console import out, resolve_engine
from churn.config import Settings, get_settings, redact
from churn.errors import ChurnError
from churn.jobs.reports import monitoring_line, performance_lines
from churn.kfp.catalog import PIPELINES, TASK_COUNTS, pipeline_inputs
from churn.kfp.compile import compile_pipeline
from churn.kfp.local import LocalRun, Runner, local_parameters, run_local
from churn.kfp.packages import COMPILED_DIR
from churn.kfp.schedule import Release, cluster_parameters, schedule_all, submit_run, typed_arguments

pipeline_app = typer.Typer(help="Compile Kubeflow pipelines or run them locally (no cluster).", no_args_is_help=True)


def run_pipeline(
    name: str, settings: Settings, *, runner: Runner = "subprocess", warm: bool = True, **overrides: Any
) -> LocalRun:
    """Run a pipeline locally with a progress bar over its tasks, then print what it produced."""
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
            warm=warm,
            **local_parameters(settings, name, **overrides),
        )
    where = "tasks in the component image" if runner == "docker" else "KFP local runner"
    out.print(f"[bold]{name} pipeline[/bold] ({where}): {result.output} in {result.seconds:.0f}s")
    out.print(f"  task outputs  {result.run_dir or result.root}")
    out.print(f"  task logs     {log}")
    if name == "training":
        _print_training_summary(settings)
    if name == "monitoring":
        out.print(f"  verdict       {monitoring_line(result)}", highlight=False)
        for line in performance_lines(result):
            out.print(f"  performance   {line}", highlight=False)
    return result


def _print_training_summary(settings: Settings) -> None:
    from churn.registry.mlflow_registry import describe_model

    summary = describe_model(settings.tracking_uri, settings.mlflow.model_name)
    out.print(f"  mlflow        {redact(settings.tracking_uri)}  (experiment {settings.mlflow.experiment!r})")
    for line in summary:
        out.print(f"  {line}")


@pipeline_app.command("compile")
def pipeline_compile(
    out_dir: Annotated[Path, typer.Option(help="Folder for the compiled YAML.")] = Path("pipelines/compiled"),
) -> None:
    """Compile every pipeline to YAML for upload to the KFP UI or API."""
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
    warm: Annotated[
        bool,
        typer.Option(
            "--warm/--cold",
            help="subprocess runner: fork each task from a process that has imported the stack (warm), or start "
            "a new interpreter per task as KFP does (cold; the same tasks, ~7 s more each).",
        ),
    ] = True,
) -> None:
    """Run a pipeline end to end with KFP's local runner (no cluster)."""
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
        resolve_engine(engine, get_settings())
    if name == "monitoring":  # its training parameters are those of the retraining run
        given["retrain_rows"], given["retrain_source_uri"] = given.pop("rows"), given.pop("source_uri")
    if runner not in ("subprocess", "docker"):
        raise ChurnError(f"unknown runner {runner!r}; known: subprocess, docker")
    run_pipeline(name, get_settings(), runner=cast("Runner", runner), warm=warm, **_accepted(name, given))


def _accepted(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """The options given on the command line, or an error naming those ``name`` does not take."""
    given = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(given) - pipeline_inputs(name))
    if unknown:
        options = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise ChurnError(f"the {name} pipeline does not take {options}")
    return given


_Release = Annotated[
    str, typer.Option(help="Helm release of the chart: its <release>-s3 Secret and <release>-pipeline-env ConfigMap.")
]


_ServiceAccount = Annotated[
    str, typer.Option(help="Service account of the runs [default: <release>-deployer, which may deploy].")
]


_IncrementsUri = Annotated[
    str, typer.Option(help="s3:// prefix where data runs publish each day and monitoring reads the newest.")
]


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
