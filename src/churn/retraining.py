"""Alert-triggered retraining: start a training run, locally or on a Kubeflow Pipelines backend.

The monitoring pipeline calls :func:`trigger_training` when retraining is switched on and
:func:`retraining_reason` finds an alert: the drift checks' verdict, or the realized
performance (the champion's ROC-AUC on cohorts whose labels have arrived). Either way the
new model only registers as ``@challenger``; the training pipeline's promotion gate still
decides whether it becomes ``@champion``.

- ``local``: the training pipeline runs here, under KFP's local runner, through the same
  function ``churn pipeline run training`` uses (:func:`churn.kfp_runner.run_local`).
  Inside a KFP task (``_KFP_RUNTIME=true``, where ``kfp.dsl`` is the runtime subset that
  cannot build pipelines) it runs in a child interpreter, ``python -m churn.retraining``.
- ``kfp``: the training pipeline is compiled from this very package and submitted to the
  KFP API (``kfp.Client(host=...).create_run_from_pipeline_package``), so the run uses the
  component image of the library version that triggered it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from churn.config import Settings, get_settings
from churn.errors import ChurnError
from churn.telemetry import telemetry_off_by_default

MODES = ("local", "kfp")


def retraining_reason(drift_verdict: str, performance_levels: dict[str, str] | None = None) -> str:
    """Why a monitoring run retrains ("" = it does not): a drift alert, a realized-performance alert, or both.

    Only the realized level counts among the performance checks: the estimate (CBPE) follows
    the inputs, which the drift checks already judge, and overdue labels are a data problem
    that a new model would not fix.
    """
    reasons = []
    if drift_verdict == "alert":
        reasons.append("drift alert")
    if (performance_levels or {}).get("realized") == "alert":
        reasons.append("realized performance alert")
    return " and ".join(reasons)


def trigger_training(
    parameters: dict[str, Any],
    *,
    mode: str = "local",
    kfp_host: str = "",
    settings: Settings | None = None,
    client_factory: Callable[..., Any] | None = None,
) -> str:
    """Start a training run and say what was started.

    Args:
        parameters: Training pipeline parameters (``rows``, ``date``, ``source_uri``, ...);
            empty strings and None are left to the pipeline's defaults.
        mode: ``local`` (run it here, wait for the gate) or ``kfp`` (submit, do not wait).
        kfp_host: KFP API endpoint for ``kfp`` mode (empty: the in-cluster default).
        settings: Settings of a local run (the configured ones when omitted).
        client_factory: Builds the KFP client (``kfp.Client`` unless given; tests pass a stand-in).

    Returns:
        ``local training run: promoted|rejected`` or ``KFP run <id>``.

    Raises:
        ChurnError: Unknown mode, a failed local run, or a KFP API that refuses the run.

    """
    given = {k: v for k, v in parameters.items() if v not in ("", None)}
    if mode == "local":
        if os.environ.get("_KFP_RUNTIME") == "true":
            return _run_in_child(given)
        return f"local training run: {run_training_locally(given, settings or get_settings())}"
    if mode == "kfp":
        return submit_training(given, host=kfp_host, client_factory=client_factory)
    raise ChurnError(f"retrain mode must be one of {', '.join(MODES)}, not {mode!r}")


def run_training_locally(parameters: dict[str, Any], settings: Settings) -> str:
    """Run the training pipeline with KFP's local runner; return the gate decision."""
    from churn.kfp_runner import local_parameters, run_local

    log = (settings.data_dir / "kfp" / f"retraining-{time.strftime('%Y%m%d-%H%M%S')}.log").resolve()
    run = run_local("training", settings, log=log, **local_parameters(settings, "training", **parameters))
    return str(run.output)


def _run_in_child(parameters: dict[str, Any]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "_KFP_RUNTIME"}
    done = subprocess.run(
        [sys.executable, "-m", "churn.retraining", json.dumps(parameters)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ChurnError(f"the retraining run failed: {done.stderr.strip()[-2000:]}")
    return f"local training run: {done.stdout.strip().splitlines()[-1]}"


def main(argv: list[str] | None = None) -> int:
    """``python -m churn.retraining '<json parameters>'``: one local training run; prints the gate decision."""
    telemetry_off_by_default()
    args = sys.argv[1:] if argv is None else argv
    parameters = json.loads(args[0]) if args else {}
    try:
        decision = run_training_locally(parameters, get_settings())
    except ChurnError as error:
        print(error, file=sys.stderr)
        return 1
    print(decision)
    return 0


def submit_training(
    arguments: dict[str, Any],
    *,
    host: str = "",
    experiment: str = "churn-retraining",
    client_factory: Callable[..., Any] | None = None,
) -> str:
    """Compile the training pipeline and submit it to a KFP backend; return ``KFP run <id>``."""
    from churn.kfp_runner import compile_pipeline
    from churn.schedule import submit_run

    if client_factory is None:
        import kfp

        client_factory = kfp.Client
    # In a cluster the run deploys what its gate promotes, under the chart's deployer account.
    arguments = {"deploy_mode": "cluster", **arguments}
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline("training", Path(tmp))
        try:
            client = client_factory(host=host or None)
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


if __name__ == "__main__":
    sys.exit(main())
