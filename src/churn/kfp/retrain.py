"""Alert-triggered retraining: start a training run, locally or on a Kubeflow Pipelines backend.

The monitoring pipeline's retraining task calls :func:`trigger_training` when retraining is
switched on and :func:`churn.stages.monitoring.retraining_reason` finds an alert. Either way the
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
from churn.errors import ChurnError
from churn.kfp.packages import write_packaged_pipeline
from churn.kfp.schedule import submit_run

MODES = ("local", "kfp")


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
    if client_factory is None:
        import kfp  # the KFP client: heavy, only when submitting

        client_factory = kfp.Client
    # In a cluster the run deploys what its gate promotes, under the chart's deployer account.
    arguments = {"deploy_mode": "cluster", **arguments}
    with tempfile.TemporaryDirectory() as tmp:
        package = write_packaged_pipeline("training", Path(tmp))
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
