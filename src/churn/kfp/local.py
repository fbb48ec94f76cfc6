"""Run the pipelines with KFP's local runner (no cluster): parameters, task environment, the run itself.

``python -m churn.kfp.local '<json parameters>'`` runs one training pipeline and prints the
gate's decision: a retraining task starts it so (:mod:`churn.kfp.retrain`), in a child
interpreter, because the task's ``kfp.dsl`` cannot build pipelines.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from churn.config import Settings, environment, get_settings
from churn.errors import ChurnError
from churn.kfp.catalog import LIGHT_PIPELINES, pipeline_definition, pipeline_inputs
from churn.kfp.diagnose import failure
from churn.kfp.logs import follow, output_to, strip_colours
from churn.kfp.patches import containers_kept_until_read, own_run_folder
from churn.kfp.warm import warm_tasks
from churn.telemetry import telemetry_environment, telemetry_off_by_default

#: Where tasks run: subprocesses of this Python, or containers of the component image.
Runner = Literal["subprocess", "docker"]
#: What a pod gets from the chart's S3 Secret and pipeline-env ConfigMap (pipelines/_cluster.py);
#: a container task gets them from the caller's environment instead, when set there.
CONTAINER_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",  # read before AWS_DEFAULT_REGION (churn.storage.s3.s3_settings)
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "MLFLOW_S3_ENDPOINT_URL",
    "CHURN_MLFLOW__TRACKING_URI",
    "CHURN_MONITORING__PUSHGATEWAY_URL",
)


@dataclass(frozen=True)
class LocalRun:
    """A finished local pipeline run."""

    name: str
    output: Any
    root: Path
    seconds: float
    #: This run's folder of task outputs (``<root>/<pipeline>-<timestamp>``).
    run_dir: Path | None = None


def local_parameters(settings: Settings, pipeline: str = "training", **overrides: Any) -> dict[str, Any]:
    """Parameters of a local run of ``pipeline``: the embedded MLflow store unless one is configured.

    Defaults come from the settings and are kept only where the pipeline has such a
    parameter; ``overrides`` (None values skipped) are passed as given.
    """
    params: dict[str, Any] = {
        "rows": settings.data.daily_rows if pipeline == "data" else settings.data.rows,
        "retrain_rows": settings.data.rows,
        "pushgateway_url": settings.monitoring.pushgateway_url or "",
        "seed": settings.training.seed,
        "n_jobs": settings.training.n_jobs,
        "mlflow_tracking_uri": settings.tracking_uri,
        "mlflow_experiment": settings.mlflow.experiment,
        "model_name": settings.mlflow.model_name,
        "gate_margin": settings.training.gate_margin,
        "min_rows": settings.validation.min_rows,
        "engine": settings.engine,
    }
    if settings.data.date:
        params["date"] = settings.data.date.isoformat()
    accepted = pipeline_inputs(pipeline)
    params = {k: v for k, v in params.items() if k in accepted}
    params.update({k: v for k, v in overrides.items() if v is not None})
    return params


@contextmanager
def task_environment(settings: Settings) -> Iterator[None]:
    """Environment the tasks (subprocesses) inherit, set for the run only and restored after.

    The data folder is pinned so tasks resolve it as we do; OpenMP threads that spin
    while waiting would collapse XGBoost and LightGBM on a busy 2-core machine; MLflow's
    telemetry stays off as in the images (:mod:`churn.telemetry`).
    """
    wanted = {"CHURN_DATA_DIR": str(settings.data_dir.resolve()), **telemetry_environment()}
    wanted.setdefault("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    with environment(wanted):
        yield


def _docker_runner(root: Path, tracking_uri: str, environment: Mapping[str, str] | None) -> Any:
    """A ``DockerRunner`` for the component image: host network, the chart's env from ours.

    The tasks run as the image's user (uid 10001) and KFP mounts the pipeline root at the
    same path, so the root is made writable by every user (sticky, like /tmp). A local sqlite
    store would not be in the container: the tasks need a tracking server.
    """
    import docker
    import kfp.local

    if not tracking_uri.startswith(("http://", "https://")):
        raise ChurnError(f"tasks in containers need an http(s) MLflow tracking URI, not {tracking_uri!r}")
    try:
        docker.from_env(timeout=10).ping()
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "the default socket")
        raise ChurnError(
            f"no Docker API answers at {where} ({exc}); with podman: `podman system service --time=0 "
            "unix:///tmp/podman.sock &` and DOCKER_HOST=unix:///tmp/podman.sock"
        ) from None
    root.chmod(0o1777)
    env = {name: os.environ[name] for name in CONTAINER_ENV if name in os.environ}
    env.update(environment or {})
    # Host networking: services the caller reaches on loopback (MLflow, S3) are reachable from the tasks too.
    return kfp.local.DockerRunner(network_mode="host", environment=env)


def run_local(
    name: str,
    settings: Settings,
    *,
    log: Path | None = None,
    on_task: Callable[[str, str], None] | None = None,
    runner: Runner = "subprocess",
    environment: Mapping[str, str] | None = None,
    warm: bool = True,
    **parameters: Any,
) -> LocalRun:
    """Run a pipeline end to end with KFP's local runner.

    With ``runner="subprocess"`` each task runs as a subprocess of this Python; with
    ``"docker"`` in a container of the component image (``components/_image.py``) through
    the Docker API at ``DOCKER_HOST`` (Docker, or ``podman system service``). Either way
    it is exactly the component code that runs in a cluster pod; outputs land in
    ``<data_dir>/kfp/<pipeline>-<timestamp>/<task>/``.

    Args:
        name: Pipeline name (see :data:`churn.kfp.catalog.PIPELINES`).
        settings: Settings; the data folder holds the pipeline root.
        log: Write the runner's task logs here instead of the terminal.
        on_task: Called with (task name, status) as tasks finish (needs ``log``).
        runner: "subprocess" or "docker".
        environment: Docker only: environment of every task, over the :data:`CONTAINER_ENV`
            variables set in ours.
        warm: Subprocess only: fork each task from a process that has imported the stack
            (:mod:`churn.kfp.warm`; the same task, without ~7 s of imports each) rather than
            start a new interpreter per task.
        **parameters: Pipeline parameters.

    Raises:
        PipelineRunError: A task failed; the message names it, lists the violations when it
            was a validation, and says where the outputs and the log are.

    """
    import kfp.local  # the third-party kfp (absolute import), heavy: only when running

    root = (settings.data_dir / "kfp").resolve()
    root.mkdir(parents=True, exist_ok=True)
    tracking_uri = str(parameters.get("mlflow_tracking_uri", ""))
    if runner == "docker":
        task_runner = _docker_runner(root, tracking_uri, environment)
    elif runner == "subprocess":
        task_runner = kfp.local.SubprocessRunner(use_venv=False)
    else:
        raise ChurnError(f"unknown runner {runner!r}; known: subprocess, docker")
    start = time.perf_counter()
    pipeline = pipeline_definition(name)
    if tracking_uri.startswith(("http://", "https://")):
        # Fail before any task runs when the tracking server is unreachable (the register
        # task would fail too, but only after every model has trained). The registry imports
        # MLflow and the training stack: only here.
        from churn.registry.mlflow_registry import connect_registry

        connect_registry(tracking_uri, timeout=settings.mlflow.timeout_seconds, retries=settings.mlflow.max_retries)
    kfp.local.init(runner=task_runner, pipeline_root=str(root), raise_on_error=True)
    # init makes a temporary workspace folder on every call; KFP removes it when the pipeline has run,
    # but a run that failed before (bad parameters) left it in the temporary folder. So init comes
    # after the server check, and the folder goes when the run ends (only if empty).
    workspace = Path(kfp.local.config.LocalExecutionConfig.instance.workspace_root)
    stop = threading.Event()
    follower = None
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()
        if on_task:
            follower = threading.Thread(target=follow, args=(log, on_task, stop), daemon=True)
            follower.start()
    folders: list[str] = []
    try:
        with ExitStack() as stack:
            stack.enter_context(task_environment(settings))
            stack.enter_context(own_run_folder(folders))
            if runner == "docker":
                stack.enter_context(containers_kept_until_read())
            elif warm:
                stack.enter_context(warm_tasks(start_server=name not in LIGHT_PIPELINES))
            if log:
                stack.enter_context(output_to(log))
            task = pipeline(**parameters)
    except RuntimeError as exc:
        raise failure(name, exc, root / folders[0] if folders else None, log) from None
    finally:
        with suppress(OSError):
            workspace.rmdir()
        stop.set()
        if follower:
            follower.join(timeout=5)
        if log:
            strip_colours(log)
    output = getattr(task, "output", None)
    return LocalRun(name, output, root, time.perf_counter() - start, root / folders[0] if folders else None)


def run_training_locally(parameters: dict[str, Any], settings: Settings) -> str:
    """Run the training pipeline with KFP's local runner; return the gate decision."""
    log = (settings.data_dir / "kfp" / f"retraining-{time.strftime('%Y%m%d-%H%M%S')}.log").resolve()
    run = run_local("training", settings, log=log, **local_parameters(settings, "training", **parameters))
    return str(run.output)


def main(argv: list[str] | None = None) -> int:
    """``python -m churn.kfp.local '<json parameters>'``: one local training run; prints the gate decision."""
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


if __name__ == "__main__":
    sys.exit(main())
