"""``churn rollout``: see and overrule a rollout, compare a shadow with the champion."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from churn.cli.console import day_option, err, out
from churn.config import get_settings

if TYPE_CHECKING:
    from churn.rollout.kserve import KServeTraffic

rollout_app = typer.Typer(
    help="Safe rollout: see and overrule a progressive rollout, compare a shadow with the champion.",
    no_args_is_help=True,
)

VersionOption = Annotated[
    str, typer.Option("--version", help="Model version [default: the cluster's canary, else the latest].")
]
ModelOption = Annotated[str, typer.Option("--model", help="Registered model [default: CHURN_SERVING__MODEL_NAME].")]
ClusterOption = Annotated[
    bool,
    typer.Option(
        "--cluster/--no-cluster",
        help="Also read (and, for promote/abort without a running rollout, change) the InferenceService "
        "through the Kubernetes API (in-cluster, else the kubeconfig context).",
    ),
]


@rollout_app.command("status")
def rollout_status_command(
    version: VersionOption = "", model: ModelOption = "", cluster: ClusterOption = False
) -> None:
    """Show a version's rollout tags (status, step, reason, an operator's word) and, in a cluster, the traffic."""
    from churn.rollout.operator import rollout_status

    name, traffic = _connect(model, cluster)
    for line in rollout_status(name, version, traffic).lines():
        out.print(line, highlight=False)


@rollout_app.command("promote")
def rollout_promote_command(
    version: VersionOption = "", model: ModelOption = "", cluster: ClusterOption = False
) -> None:
    """Promote the canary now: a running rollout does at its next poll; without one, the InferenceService at once."""
    _overrule("promote", version, model, cluster)


@rollout_app.command("abort")
def rollout_abort_command(version: VersionOption = "", model: ModelOption = "", cluster: ClusterOption = False) -> None:
    """Roll the canary back now (all traffic to the stable version, ``@champion`` back as the gate's user)."""
    _overrule("abort", version, model, cluster)


def _overrule(word: Literal["promote", "abort"], version: str, model: str, cluster: bool) -> None:
    from churn.rollout.operator import overrule

    name, traffic = _connect(model, cluster)
    identity = get_settings().mlflow.gate_identity
    out.print(overrule(name, word, version=version, traffic=traffic, identity=identity), highlight=False)


def _connect(model: str, cluster: bool) -> tuple[str, KServeTraffic | None]:
    """MLflow connected; the model's name and, with ``cluster``, its InferenceService's traffic split."""
    from churn.deploy import ServingTarget
    from churn.registry.mlflow_registry import connect_registry
    from churn.rollout.kserve import KServeTraffic, cluster_api

    settings = get_settings()
    with err.status(f"connecting to MLflow at {settings.tracking_uri}..."):
        connect_registry(settings.tracking_uri)
    name = model or settings.serving.model_name
    traffic = KServeTraffic(cluster_api(), ServingTarget.from_settings(settings, name=name)) if cluster else None
    return name, traffic


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
