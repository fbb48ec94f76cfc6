"""Warm task interpreters for KFP's subprocess runner: each task forked from a process that has imported the stack.

KFP's ``SubprocessRunner`` starts every lightweight task as ``sh -ec <script> <code> <args>``: a
new interpreter that imports kfp, MLflow, pandas, scikit-learn, XGBoost, LightGBM... before it
does any work (about 7 s of CPU on this project's 2-core machines, most of a small task's time;
a training run has ten tasks, the five-day retraining test more than fifty).

Here one *task server* per calling process (``python -m churn.kfp.warm``) imports all of that
once, in the background, and forks a child per task. The child is the task as KFP would have started it: the
task's environment (the caller's plus KFP's, plus ``_KFP_RUNTIME=true`` as the script sets),
its working folder, the component's code written to ``ephemeral_component.py`` in a fresh
temporary folder, ``python -m kfp.dsl.executor_main`` run with the same arguments, its output
streamed to the caller line by line as KFP prints it, and its exit code (the interpreter's
normal exit: ``atexit`` handlers and non-daemon threads run as they would). The server itself
never runs a task, so no task sees another's state. Until the server has imported the first
:data:`SERVE_AFTER` modules of :data:`PRELOAD`, tasks run cold beside it (a short run never
waits for it); it imports the rest while it serves (about 20 s of CPU in all).

A task goes the cold way (KFP's own ``run_local_subprocess``) whenever the warm one could
differ: a command that is not the plain lightweight-component script (``pip install`` lines,
another Python), or an environment whose load-time variables (:data:`churn.forkserver.LOAD_TIME`:
OpenMP, BLAS and Python settings read when a library loads, telemetry, which MLflow reads on
import) differ from the server's, or a server that has ended (the next run starts a new one).
The protocol's primitives are :mod:`churn.forkserver`'s, which starts the local model servers
the same way.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any, NoReturn

from churn.forkserver import (
    JsonLines,
    become_program,
    close_and_reap,
    fork_program,
    load_time_environment,
    other_threads,
    protocol_streams,
    run_as_main,
    write_line,
)

#: What tasks import that takes the time (measured cold on 2 cores: Evidently 11.6 s, MLflow
#: 4.8 s, kfp 3.2 s, scikit-learn 2.7 s, pandas 0.7 s), in the order the pipelines' tasks need
#: them. Importing is all the server does: no thread is started (telemetry is off in it) and no
#: OpenMP pool, so forking stays safe (checked once the imports are done).
PRELOAD = (
    "kfp.dsl.executor_main",
    "churn.config",
    "pyarrow.parquet",
    "churn.engine.pandas",
    "churn.stages.data",
    "pandera",
    "churn.validation.validate",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.metrics",
    "xgboost",
    "lightgbm",
    "churn.stages.training",
    "mlflow",
    "mlflow.tracking",
    "mlflow.pyfunc",
    "mlflow.sklearn",
    "mlflow.xgboost",
    "mlflow.lightgbm",
    "mlflow.store.tracking.sqlalchemy_store",
    "alembic",
    "skops.io",
    "git",
    "boto3",
    "churn.registry.mlflow_registry",
    "churn.stages.registry",
    "churn.stages.markdown",
    "churn.stages.deploy",
    "churn.stages.scoring",
    "scipy.stats",
    "churn.monitoring.reference",
    "churn.stages.monitoring",
    "evidently",
    "evidently.presets",
    "dask.dataframe",
)

#: How much of :data:`PRELOAD` the server imports before it serves (what every task imports: the
#: executor, the settings, pyarrow and pandas, the data stages; about a third of its CPU). It
#: imports the rest while it serves: between tasks, and while a forked task runs. A task forked
#: before then imports what it still lacks itself, as a cold one would, minus what was there.
SERVE_AFTER = PRELOAD.index("churn.stages.data") + 1

#: KFP's lightweight-component script, once ``python3`` is replaced by the runner's interpreter
#: (``kfp.dsl.component_factory``; ``$0`` is the component's code, ``$@`` the executor's arguments).
_SCRIPT = re.compile(
    r'program_path=\$\(mktemp -d\)\s+printf "%s" "\$0" > "\$program_path/ephemeral_component\.py"\s+'
    r"_KFP_RUNTIME=true (?P<python>\S+) -m kfp\.dsl\.executor_main\s+"
    r'--component_module_path\s+"\$program_path/ephemeral_component\.py"\s+"\$@"\s*'
)


@dataclass(frozen=True)
class Task:
    """A lightweight component's task: its code and the executor's arguments."""

    code: str
    arguments: tuple[str, ...]


def task_of(command: list[str]) -> Task | None:
    """The task a KFP subprocess command runs, or None when it is not the plain lightweight script.

    Args:
        command: The full command KFP's subprocess handler would start.

    Returns:
        The component's code and arguments; None for anything else (which runs cold).

    """
    if len(command) < 4 or command[:2] != ["sh", "-ec"]:
        return None
    script = _SCRIPT.fullmatch(command[2])
    if script is None or script["python"] != sys.executable:
        return None
    return Task(code=command[3], arguments=tuple(command[4:]))


class TaskServer:
    """The caller's side of one task server: start it, run tasks in forks of it, stop it."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "churn.kfp.warm"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # The server prints nothing; a task's output goes to its own file (see run).
            stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._requests = self._process.stdin.fileno()
        self._answers = JsonLines(self._process.stdout.fileno())
        self._lock = threading.Lock()
        self._hello: dict[str, Any] | None = None
        self.loaded: bool | None = None  # None while the server imports; then whether it can serve
        self.broken = False

    @property
    def pid(self) -> int:
        """The server's process id: the parent of every warm task."""
        return self._process.pid

    def ended(self) -> bool:
        """Whether the server has gone or is out of step (its tasks run cold)."""
        return self.broken or self._process.poll() is not None

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Wait until the server has imported what it needs to serve (:data:`SERVE_AFTER`); whether it can."""
        with self._lock:
            self._read_status(timeout)
        return bool(self.loaded)

    def serves(self, environ: Mapping[str, str]) -> bool:
        """Whether a task with this environment runs warm: the server is loaded, as the task would load."""
        with self._lock:
            self._read_status(timeout=0)
        if self.ended() or not self.loaded or self._hello is None:
            return False
        return bool(load_time_environment(environ) == self._hello["environment"])

    def _read_status(self, timeout: float | None) -> None:
        """Take the server's hello and its "loaded" answer when they have come (within ``timeout`` s)."""
        if self._hello is None:
            self._hello = self._answers.next(timeout=timeout)
        if self.loaded is None and self._hello is not None:
            answer = self._answers.next(timeout=timeout)
            if answer is not None:
                self.loaded = bool(answer.get("loaded"))
            elif self._process.poll() is not None:
                self.loaded = False

    def run(self, task: Task, environ: Mapping[str, str]) -> int | None:
        """Run ``task`` in a fork of the server; print its output as it comes; its exit code.

        Returns:
            The task's exit code; None when the server has ended (the task did not run: run it cold).

        """
        folder = Path(tempfile.mkdtemp())
        try:
            module = folder / "ephemeral_component.py"
            module.write_text(task.code, encoding="utf-8")
            output = folder / "output.log"
            output.touch()
            request = {
                "module": str(module),
                "arguments": list(task.arguments),
                "environment": {**environ, "_KFP_RUNTIME": "true"},
                "cwd": str(Path.cwd()),
                "output": str(output),
            }
            with self._lock, output.open(encoding="utf-8", errors="replace") as lines:
                with suppress(BrokenPipeError):  # a server that has ended answers None below
                    write_line(self._requests, request)
                started = self._answers.next()
                if started is None or "pid" not in started:
                    self.broken = True
                    return None
                return self._follow(int(started["pid"]), lines)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def stop(self) -> None:
        """End the server (closing its input ends it) and reap it."""
        close_and_reap(self._process)

    def _follow(self, pid: int, lines: IO[str]) -> int:
        """Print the task's output line by line while it runs, as KFP does; the exit code the server reports."""
        pending = ""
        try:
            while True:
                pending += lines.read()
                complete, _, pending = pending.rpartition("\n")
                if complete:
                    print(complete)
                done = self._answers.next(timeout=0.2)
                if done is not None:
                    print(pending + lines.read(), end="")
                    print("\n")  # KFP's separator after a task's output
                    return int(done["exit"])
                if self._process.poll() is not None:
                    raise RuntimeError("the warm task server ended while a task ran")
        except BaseException:
            # The task does not outlive a caller that gave up on it, and a server whose answers
            # are out of step is not used again: later tasks of this process run cold.
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._process.kill()
            self.broken = True
            raise


class _ThisProcess:
    """The task server of the calling process: started at the first warm run, replaced by a run once it ended."""

    server: TaskServer | None = None


def task_server() -> TaskServer:
    """The calling process's task server, started on first use (its imports overlap the caller's work)."""
    if _ThisProcess.server is None:
        _ThisProcess.server = TaskServer()
    return _ThisProcess.server


def run_subprocess_task(original: Any, full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
    """KFP's ``run_local_subprocess``, warm when it can be (see the module's docstring)."""
    task = task_of(full_command)
    environ = {**os.environ, **(env_vars or {})}
    server = task_server()
    if task is not None and server.serves(environ):
        code = server.run(task, environ)
        if code is not None:
            return code
    return int(original(full_command=full_command, env_vars=env_vars))


@contextmanager
def warm_tasks(start_server: bool = True) -> Iterator[None]:
    """Run KFP's subprocess tasks through :func:`run_subprocess_task` for the duration of a run.

    Args:
        start_server: Start this process's task server if it has none; else (a run of a few
            light tasks, for which the server's imports cost more than they save) use one only
            if an earlier run started it.

    """
    from kfp.local import subprocess_task_handler  # heavy: only when running

    if not start_server and _ThisProcess.server is None:
        yield
        return
    original = subprocess_task_handler.run_local_subprocess
    if _ThisProcess.server is not None and _ThisProcess.server.ended():
        _ThisProcess.server.stop()  # killed, or out of step: a new run starts a new one
        _ThisProcess.server = None
    task_server()

    def run(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        return run_subprocess_task(original, full_command, env_vars)

    subprocess_task_handler.run_local_subprocess = run
    try:
        yield
    finally:
        subprocess_task_handler.run_local_subprocess = original


# The server's side --------------------------------------------------------------------------


def _serve(requests: JsonLines, answers: int, pending: list[str]) -> None:
    """Fork a child per task; answer its pid when it starts and its exit code when it ends.

    While ``pending`` modules remain, they are imported one at a time whenever no request is
    waiting and while a child runs: never while a fork happens, in this one thread.
    """
    while True:
        request = requests.next(timeout=0 if pending else None)
        if request is None:
            if requests.closed or not pending:
                return
            _import(pending.pop(0))
            continue
        # gc.freeze'd before it forks: a child's exit takes 0.3 s, not 2.9. An import that started a
        # thread makes it refuse (no pid: the caller runs this task and the next ones cold).
        pid = fork_program(requests, answers, partial(_run_task, request))
        if pid is None:
            continue
        status = None
        while pending and status is None:
            done, now = os.waitpid(pid, os.WNOHANG)
            if done:
                status = now
            else:
                _import(pending.pop(0))
        if status is None:
            _, status = os.waitpid(pid, 0)
        write_line(answers, {"exit": os.waitstatus_to_exitcode(status)})


def _import(name: str) -> None:
    with suppress(Exception):  # a task that needs it imports it itself, and fails as it would cold
        __import__(name)


def _run_task(request: dict[str, Any]) -> NoReturn:
    """In the forked child: become the task ``python -m kfp.dsl.executor_main`` would have been."""
    become_program(request["cwd"], request["environment"], request["output"])
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    from kfp.dsl import executor_main  # imported already: the server preloaded it

    sys.argv = [str(executor_main.__file__), "--component_module_path", request["module"], *request["arguments"]]
    run_as_main(executor_main.executor_main)  # what ``python -m kfp.dsl.executor_main`` runs


def main() -> None:
    """The server: say hello (with its load-time environment), import :data:`PRELOAD`, say so, serve."""
    requests, answers = protocol_streams()
    # As the tasks see it: the runtime flavour of kfp.dsl.
    os.environ["_KFP_RUNTIME"] = "true"
    write_line(answers, {"environment": load_time_environment(os.environ)})
    for name in PRELOAD[:SERVE_AFTER]:
        _import(name)
    threads = other_threads()
    if threads:  # forking with a thread running could copy a lock it holds: the tasks run cold
        write_line(answers, {"loaded": False, "threads": threads})
        while requests.next():  # stay, so that the caller does not start another to no avail
            pass
        return
    write_line(answers, {"loaded": True})
    _serve(requests, answers, list(PRELOAD[SERVE_AFTER:]))


if __name__ == "__main__":
    main()
