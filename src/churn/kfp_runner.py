"""Compile the pipelines to YAML and run them with KFP's local runner (no cluster)."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from churn.config import Settings, environment
from churn.errors import ChurnError

PIPELINES = ("training", "monitoring", "data", "scoring")
#: Tasks per pipeline, for progress reporting (monitoring: one more when it triggers retraining).
TASK_COUNTS = {"training": 11, "monitoring": 4, "data": 3, "scoring": 4}
_TASK_DONE = re.compile(r"Task \S*'([\w-]+)'\S* finished with status \S*?(SUCCESS|FAILURE)")
#: The colour codes KFP's local runner writes into its messages and logs, whatever the output is.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FAILED_TASK = re.compile(r"Inner task failed: '([\w-]+)'|Task '([\w-]+)' finished with status FAILURE")
COMPILED_DIR = Path("pipelines/compiled")
#: Where tasks run: subprocesses of this Python, or containers of the component image.
Runner = Literal["subprocess", "docker"]
#: What a pod gets from the chart's S3 Secret and pipeline-env ConfigMap (pipelines/_cluster.py);
#: a container task gets them from the caller's environment instead, when set there.
CONTAINER_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "MLFLOW_S3_ENDPOINT_URL",
    "CHURN_MLFLOW__TRACKING_URI",
    "CHURN_MONITORING__PUSHGATEWAY_URL",
)


def _pipeline(name: str) -> Any:
    if name == "training":
        from pipelines.training_pipeline import training_pipeline

        return training_pipeline
    if name == "monitoring":
        from pipelines.monitoring_pipeline import monitoring_pipeline

        return monitoring_pipeline
    if name == "data":
        from pipelines.data_pipeline import data_pipeline

        return data_pipeline
    if name == "scoring":
        from pipelines.scoring_pipeline import scoring_pipeline

        return scoring_pipeline
    raise ChurnError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")


def pipeline_inputs(name: str) -> set[str]:
    """The parameter names of pipeline ``name``."""
    return set(_pipeline(name).component_spec.inputs or {})


def compile_pipeline(name: str, out_dir: Path = COMPILED_DIR) -> Path:
    """Compile one pipeline to ``<out_dir>/<name>_pipeline.yaml`` (the file a user uploads to the KFP UI)."""
    from kfp import compiler

    from churn.io import atomic_path

    path = out_dir / f"{name}_pipeline.yaml"
    with atomic_path(path) as tmp:
        compiler.Compiler().compile(_pipeline(name), str(tmp))
    return path


class PipelineRunError(ChurnError):
    """A local pipeline run failed; the message names the task and, for a validation task, the violations.

    Attributes:
        task: The task that failed (None when KFP did not say).
        run_dir: The run's folder of task outputs.
        violations: The failed task's validation violations (empty when it was not a validation).

    """

    def __init__(self, message: str, task: str | None, run_dir: Path | None, violations: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.task = task
        self.run_dir = run_dir
        self.violations = violations


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
def _output_to(log: Path) -> Iterator[None]:
    """Send task output to ``log``: the runner's prints and logs, and its subprocesses' output.

    Both the file descriptors (inherited by subprocesses) and ``sys.stdout``/``sys.stderr``
    (which pytest or Jupyter may have replaced) point at the log while the pipeline runs.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("a", encoding="utf-8", buffering=1) as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            with redirect_stdout(handle), redirect_stderr(handle):
                yield
        finally:
            handle.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@contextmanager
def _task_environment(settings: Settings) -> Iterator[None]:
    """Environment the tasks (subprocesses) inherit, set for the run only and restored after.

    The data folder is pinned so tasks resolve it as we do; OpenMP threads that spin
    while waiting would collapse XGBoost and LightGBM on a busy 2-core machine.
    """
    wanted = {"CHURN_DATA_DIR": str(settings.data_dir.resolve())}
    wanted.setdefault("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    with environment(wanted):
        yield


def _follow(log: Path, on_task: Callable[[str, str], None], stop: threading.Event) -> None:
    """Report each task that finishes, by reading the runner's log as it grows."""
    with log.open("r", encoding="utf-8", errors="replace") as handle:
        while True:
            line = handle.readline()
            if line:
                if match := _TASK_DONE.search(line):
                    on_task(match.group(1), match.group(2))
            elif stop.is_set():
                return
            else:
                time.sleep(0.2)


@contextmanager
def _own_run_folder(found: list[str]) -> Iterator[None]:
    """Record the folder name KFP gives this run (``<pipeline>-<timestamp>``) in ``found``.

    The local runner names the run's folder but does not return the name. Comparing the
    folders before and after the run picks another run's folder when two runs share the
    pipeline root (two terminals in one checkout), so the name is taken where it is made.
    """
    from kfp.local import executor_input_utils

    original = executor_input_utils.get_local_pipeline_resource_name

    def record(pipeline_name: str) -> str:
        name = str(original(pipeline_name))
        found.append(name)
        return name

    executor_input_utils.get_local_pipeline_resource_name = record
    try:
        yield
    finally:
        executor_input_utils.get_local_pipeline_resource_name = original


def plain(text: str) -> str:
    """``text`` without terminal colour codes."""
    return _ANSI.sub("", text)


def _strip_colours(log: Path) -> None:
    """Rewrite a finished run's log without colour codes (it is a file, not a terminal)."""
    from churn.io import atomic_path

    text = log.read_text(encoding="utf-8", errors="replace")
    if _ANSI.search(text):
        with atomic_path(log) as tmp:
            tmp.write_text(plain(text), encoding="utf-8")


def failed_validation(run_dir: Path | None, task: str | None) -> dict[str, Any] | None:
    """The validation report a failed task wrote (its ``report`` output, ``valid: false``), if any."""
    import json

    if run_dir is None or task is None:
        return None
    try:
        found = json.loads((run_dir / task / "report").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("valid") is False else None


def _failure(name: str, error: RuntimeError, run_dir: Path | None, log: Path | None) -> PipelineRunError:
    text = plain(str(error))
    match = _FAILED_TASK.search(text)
    task = (match.group(1) or match.group(2)) if match else None
    report = failed_validation(run_dir, task)
    violations = [v for v in (report or {}).get("violations", []) if isinstance(v, dict)]
    lines = [f"{name} pipeline failed: task {task!r} failed" if task else f"{name} pipeline failed: {text}"]
    if report is not None:
        lines.append(
            f"{report.get('source', 'the data')}: {len(violations)} violation(s) in {report.get('rows', 0)} rows"
        )
        lines += [f"  - {_violation_line(v)}" for v in violations]
    if run_dir is not None:
        lines.append(f"task outputs: {run_dir}")
    if log is not None:
        lines.append(f"task logs: {log}")
    return PipelineRunError("\n".join(lines), task, run_dir, violations)


def _violation_line(violation: dict[str, Any]) -> str:
    """``column 'age' [in_range(18, 100)]: values outside [18, 100] (3 rows)``."""
    from churn.validation.report import Violation

    column = violation.get("column")
    found = Violation(
        str(violation.get("rule", "?")),
        str(violation.get("message", "")),
        None if column is None else str(column),
        int(violation.get("failed_rows") or 0),
    )
    return found.describe(rule=True, examples=False)


def _run_container(client: Any, image: str, command: list[str], volumes: dict[str, Any], **run_args: Any) -> int:
    """``kfp.local.docker_task_handler.run_docker_container``, but the container outlives its exit.

    KFP starts task containers with ``auto_remove=True`` and, when the container is gone
    before ``logs()`` or ``wait()`` read it, assumes exit code 0. Under podman's Docker API
    (4.3) the container is removed as it exits: the log stream comes back empty and a failed
    task is reported as SUCCESS. Here the container is kept until its logs are streamed and
    its exit code is read, then removed, so a non-zero exit fails the task. Images are not
    pulled explicitly (``containers.run`` pulls a missing one).
    """
    from kfp.local.docker_task_handler import add_latest_tag_if_not_present

    container = client.containers.run(
        image=add_latest_tag_if_not_present(image),
        command=command,
        detach=True,
        stdout=True,
        stderr=True,
        volumes=volumes,
        **run_args,
    )
    try:
        for chunk in container.logs(stream=True, follow=True):
            print(chunk.decode(errors="replace"), end="")
        return int(container.wait()["StatusCode"])
    finally:
        container.remove(force=True)


@contextmanager
def _containers_kept_until_read() -> Iterator[None]:
    """Run KFP's Docker tasks with :func:`_run_container` for the run only.

    KFP picks a task handler by the runner's exact type, so a ``DockerRunner`` subclass would
    not be dispatched, and ``auto_remove`` cannot be overridden through its run arguments
    (KFP passes it itself). The module function that starts the container is the one seam.
    """
    from kfp.local import docker_task_handler

    original = docker_task_handler.run_docker_container
    docker_task_handler.run_docker_container = _run_container
    try:
        yield
    finally:
        docker_task_handler.run_docker_container = original


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
    **parameters: Any,
) -> LocalRun:
    """Run a pipeline end to end with KFP's local runner.

    With ``runner="subprocess"`` each task runs as a subprocess of this Python; with
    ``"docker"`` in a container of the component image (``components/_image.py``) through
    the Docker API at ``DOCKER_HOST`` (Docker, or ``podman system service``). Either way
    it is exactly the component code that runs in a cluster pod; outputs land in
    ``<data_dir>/kfp/<pipeline>-<timestamp>/<task>/``.

    Args:
        name: Pipeline name (see :data:`PIPELINES`).
        settings: Settings; the data folder holds the pipeline root.
        log: Write the runner's task logs here instead of the terminal.
        on_task: Called with (task name, status) as tasks finish (needs ``log``).
        runner: "subprocess" or "docker".
        environment: Docker only: environment of every task, over the :data:`CONTAINER_ENV`
            variables set in ours.
        **parameters: Pipeline parameters.

    Raises:
        PipelineRunError: A task failed; the message names it, lists the violations when it
            was a validation, and says where the outputs and the log are.

    """
    import kfp.local

    root = (settings.data_dir / "kfp").resolve()
    root.mkdir(parents=True, exist_ok=True)
    tracking_uri = str(parameters.get("mlflow_tracking_uri", ""))
    if runner == "docker":
        task_runner = _docker_runner(root, tracking_uri, environment)
    elif runner == "subprocess":
        task_runner = kfp.local.SubprocessRunner(use_venv=False)
    else:
        raise ChurnError(f"unknown runner {runner!r}; known: subprocess, docker")
    kfp.local.init(runner=task_runner, pipeline_root=str(root), raise_on_error=True)
    start = time.perf_counter()
    pipeline = _pipeline(name)
    if tracking_uri.startswith(("http://", "https://")):
        # Fail before any task runs when the tracking server is unreachable (the register
        # task would fail too, but only after every model has trained).
        from churn.registry.mlflow_registry import connect_registry

        connect_registry(tracking_uri, timeout=settings.mlflow.timeout_seconds, retries=settings.mlflow.max_retries)
    stop = threading.Event()
    follower = None
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()
        if on_task:
            follower = threading.Thread(target=_follow, args=(log, on_task, stop), daemon=True)
            follower.start()
    folders: list[str] = []
    try:
        with ExitStack() as stack:
            stack.enter_context(_task_environment(settings))
            stack.enter_context(_own_run_folder(folders))
            if runner == "docker":
                stack.enter_context(_containers_kept_until_read())
            if log:
                stack.enter_context(_output_to(log))
            task = pipeline(**parameters)
    except RuntimeError as exc:
        raise _failure(name, exc, root / folders[0] if folders else None, log) from None
    finally:
        stop.set()
        if follower:
            follower.join(timeout=5)
        if log:
            _strip_colours(log)
    output = getattr(task, "output", None)
    return LocalRun(name, output, root, time.perf_counter() - start, root / folders[0] if folders else None)
