"""The ``churn`` application: its sub-apps and top-level commands, and the entry point."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from churn import __version__
from churn.cli.config import config_app
from churn.cli.console import err, out
from churn.cli.data import data_app
from churn.cli.features import features_app
from churn.cli.mlflow_auth import mlflow_auth_app
from churn.cli.pipeline import pipeline_app, schedule_command
from churn.cli.predictions import predictions_app
from churn.cli.rollout import rollout_app
from churn.cli.run import run
from churn.cli.scoring import score_command
from churn.cli.serving import predict_command, serve_command
from churn.errors import ChurnError
from churn.telemetry import telemetry_off_by_default

app = typer.Typer(
    help="churn-mlops: customer churn end to end: data, validation, features, training, serving, batch scoring, "
    "monitoring and retraining, as Kubeflow pipelines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.add_typer(config_app, name="config")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(predictions_app, name="predictions")
app.add_typer(mlflow_auth_app, name="mlflow-auth")
app.add_typer(rollout_app, name="rollout")
app.command()(run)
app.command("serve")(serve_command)
app.command("predict")(predict_command)
app.command("score")(score_command)
app.command("schedule")(schedule_command)


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


def main() -> None:
    """Entry point: a caller's mistake prints one clear line and exits 1, never a traceback."""
    telemetry_off_by_default()
    try:
        app()
    except ChurnError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
