"""``churn mlflow-auth``: the MLflow users and permissions of a server run with ``--app-name churn-auth``."""

from __future__ import annotations

from typing import Annotated

import typer

from churn.cli.console import out
from churn.config import get_settings
from churn.errors import ChurnError

mlflow_auth_app = typer.Typer(
    help="MLflow users and permissions, for a server run with --app-name churn-auth.", no_args_is_help=True
)


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
