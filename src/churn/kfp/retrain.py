"""Alert-triggered retraining: start a training run, locally or on a Kubeflow Pipelines backend.

The monitoring pipeline's retraining task calls :func:`retrain_on_alert`: it gathers the facts
(the last retraining's record, whether it still runs), lets
:func:`churn.stages.monitoring.retraining_reason` decide, and on a yes records the start and
calls :func:`trigger_training`. Either way the
new model only registers as ``@challenger``; the training pipeline's promotion gate still
decides whether it becomes ``@champion``. No pipeline definition is imported here (the
training pipeline's own components import this module):

- ``local``: the training pipeline runs under KFP's local runner in a child interpreter,
  ``python -m churn.kfp.local`` (the function ``churn pipeline run training`` uses). Inside
  a KFP task ``kfp.dsl`` is the runtime subset that cannot build pipelines anyway.
- ``kfp``: the compiled training pipeline shipped with this package is submitted to the KFP
  API (``kfp.Client(host=...).create_run_from_pipeline_package``), its tasks on the
  component image of this library version in ``CHURN_IMAGE_REGISTRY`` (the chart's
  ``imageRegistry``), as compiling it in the task would.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from churn.config import get_settings
from churn.data.generator import parse_date
from churn.errors import ChurnError
from churn.kfp.packages import write_packaged_pipeline
from churn.kfp.schedule import submit_run
from churn.monitoring.retraining import FAILED, RUNNING, SUBMITTED, RetrainingRecord, read_record, write_record
from churn.stages.monitoring import RetrainingDecision, retraining_reason

MODES = ("local", "kfp")
#: KFP run states after which nothing of the run goes on (the deploy step, the rollout, is its last task).
FINISHED_STATES = ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED")
#: A local run still "running" after this long died without writing its outcome (local runs take minutes).
STALE_LOCAL_RUN = dt.timedelta(hours=24)


def retrain_on_alert(
    verdict: str,
    performance: dict[str, Any] | None,
    parameters: dict[str, Any],
    *,
    mode: str = "local",
    kfp_host: str = "",
    as_of: str = "",
    client_factory: Callable[..., Any] | None = None,
) -> tuple[RetrainingDecision, str]:
    """Decide whether this monitoring run retrains and, if so, record the start and start it.

    The record (:mod:`churn.monitoring.retraining`, under ``CHURN_MONITORING__RETRAINING_RECORD_URI``)
    is written before a local run starts (``running``) and again with its outcome; a KFP run is
    recorded as ``submitted`` with its id, and the next monitoring run asks KFP whether it still
    runs. The cooldown is ``CHURN_MONITORING__RETRAIN_COOLDOWN_DAYS``, counted in monitoring days
    (``as_of``; today, UTC, when empty).

    Returns:
        The decision and what was started (``""`` when nothing was).

    Raises:
        ChurnError: The record cannot be read or written, or the training run could not start.

    """
    settings = get_settings()
    root = settings.retraining_record_uri
    today = parse_date(as_of or None)
    last = read_record(root)
    running = retraining_running(last, host=kfp_host, client_factory=client_factory)
    decision = retraining_reason(
        verdict,
        performance,
        last=last,
        running=running,
        today=today,
        cooldown_days=settings.monitoring.retrain_cooldown_days,
    )
    if not decision.retrain:
        return decision, ""
    record = RetrainingRecord.start(today, decision.reason, decision.champion_version, mode)
    if mode == "local":
        write_record(root, record)
    try:
        started = trigger_training(parameters, mode=mode, kfp_host=kfp_host, client_factory=client_factory)
    except ChurnError:
        if mode == "local":
            write_record(root, record.ended(FAILED))
        raise
    if mode == "local":
        write_record(root, record.ended(started.rsplit(" ", 1)[-1], started))
    else:
        write_record(root, record.ended(SUBMITTED, started))
    return decision, started


def retraining_running(
    record: RetrainingRecord | None, *, host: str = "", client_factory: Callable[..., Any] | None = None
) -> bool:
    """Whether the recorded retraining still runs (its rollout included).

    A local run is ``running`` until it writes its outcome (unless older than a day: it died);
    a KFP run is asked of the KFP API, and counts as running until its state is final. When
    the API cannot answer, it counts as running: a second retraining is the costlier mistake.
    """
    if record is None:
        return False
    if record.status == RUNNING:
        return dt.datetime.now(dt.UTC) - record.started < STALE_LOCAL_RUN
    if record.status != SUBMITTED:
        return False
    run_id = record.run.removeprefix("KFP run ").strip()
    try:
        client = _client(host, client_factory)
        state = str(client.get_run(run_id).state)
    except Exception as exc:  # the KFP client raises many types (HTTP, auth, connection)
        print(f"cannot ask KFP at {host or 'in-cluster'} about run {run_id} ({exc}): taken as still running")
        return True
    return state.upper() not in FINISHED_STATES


def trigger_training(
    parameters: dict[str, Any],
    *,
    mode: str = "local",
    kfp_host: str = "",
    client_factory: Callable[..., Any] | None = None,
) -> str:
    """Start a training run and say what was started.

    Args:
        parameters: Training pipeline parameters (``rows``, ``date``, ``source_uri``, ...);
            empty strings and None are left to the pipeline's defaults.
        mode: ``local`` (run it here, wait for the gate) or ``kfp`` (submit, do not wait).
        kfp_host: KFP API endpoint for ``kfp`` mode (empty: the in-cluster default).
        client_factory: Builds the KFP client (``kfp.Client`` unless given; tests pass a stand-in).

    Returns:
        ``local training run: promoted|rejected`` or ``KFP run <id>``.

    Raises:
        ChurnError: Unknown mode, a failed local run, or a KFP API that refuses the run.

    """
    given = {k: v for k, v in parameters.items() if v not in ("", None)}
    if mode == "local":
        return run_in_child(given)
    if mode == "kfp":
        return submit_training(given, host=kfp_host, client_factory=client_factory)
    raise ChurnError(f"retrain mode must be one of {', '.join(MODES)}, not {mode!r}")


def run_in_child(parameters: dict[str, Any]) -> str:
    """Run the training pipeline locally in a child interpreter (``python -m churn.kfp.local``); say what it decided."""
    env = {k: v for k, v in os.environ.items() if k != "_KFP_RUNTIME"}
    done = subprocess.run(
        [sys.executable, "-m", "churn.kfp.local", json.dumps(parameters)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ChurnError(f"the retraining run failed: {done.stderr.strip()[-2000:]}")
    return f"local training run: {done.stdout.strip().splitlines()[-1]}"


def submit_training(
    arguments: dict[str, Any],
    *,
    host: str = "",
    experiment: str = "churn-retraining",
    client_factory: Callable[..., Any] | None = None,
) -> str:
    """Submit the packaged training pipeline to a KFP backend; return ``KFP run <id>``."""
    # In a cluster the run deploys what its gate promotes, under the chart's deployer account.
    arguments = {"deploy_mode": "cluster", **arguments}
    with tempfile.TemporaryDirectory() as tmp:
        package = write_packaged_pipeline("training", Path(tmp))
        try:
            client = _client(host, client_factory)
        except Exception as exc:  # the KFP client raises many types (HTTP, auth, connection)
            raise ChurnError(f"could not reach KFP at {host or 'in-cluster'}: {exc}") from exc
        run = submit_run(
            client,
            package,
            arguments,
            experiment=experiment,
            service_account=get_settings().deploy.service_account,
            run_name=f"retraining on drift {time.strftime('%Y-%m-%d %H:%M:%S')}",
            host=host,
        )
    return f"KFP run {run['run_id']}"


def _client(host: str, client_factory: Callable[..., Any] | None) -> Any:
    if client_factory is None:
        import kfp  # the KFP client: heavy, only when talking to KFP

        client_factory = kfp.Client
    return client_factory(host=host or None)
