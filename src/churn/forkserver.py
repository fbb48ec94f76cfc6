"""A preloaded Python process that starts programs by forking: their imports are paid once.

A KServe model server of ours spends about 13 s of CPU on 2 cores importing KServe, MLflow,
scikit-learn and the model libraries before it loads a model; a test run starts about
thirty-five of them, and ``churn serve`` two or three at once. A *fork server* (``python -m
churn.forkserver MODULE...``) imports the modules it is given once and then forks a child per
program: the child sets up what ``python -m module args`` would have (its own session, the
caller's environment and working folder, its output file, ``sys.argv``) and calls the module's
``main()``. It ends as that interpreter would (``atexit`` handlers, non-daemon threads): a
server's prediction log flushes at exit.

Only the fork server is the child's parent, so it reports each exit to the caller
(:class:`ForkedProcess` is the caller's ``subprocess.Popen``-like handle); when the caller goes
(its end of the pipe closes) the fork server ends what it started. It never forks with a thread
running (a copied lock could be held forever), and it refuses a program whose load-time
environment (:data:`LOAD_TIME`) differs from its own: the caller then starts that one the cold
way. :mod:`churn.kfp.warm` runs KFP tasks on the same protocol primitives.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

#: Environment variables read when the interpreter starts or a library loads (OpenMP's and the
#: BLAS libraries' settings, Python's own, MLflow's telemetry, KServe's log level and TLS flag
#: defaults, prometheus_client's multiprocess mode): a program whose values differ from the fork
#: server's does not run in a fork of it.
LOAD_TIME = re.compile(
    r"^(OMP_|GOMP_|KMP_|MKL_|OPENBLAS_|PYTHON|KSERVE_|MLFLOW_DISABLE_TELEMETRY$|DO_NOT_TRACK$"
    r"|PROMETHEUS_MULTIPROC_DIR$|prometheus_multiproc_dir$)"
)

#: How often the fork server looks for children that have ended while no request comes (seconds).
_REAP_INTERVAL = 0.1


def load_time_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``environ`` that take effect when the interpreter or a library loads."""
    return {name: value for name, value in environ.items() if LOAD_TIME.match(name)}


def other_threads() -> list[str]:
    """The names of this process's threads besides the main one (a fork must not copy their locks)."""
    return [thread.name for thread in threading.enumerate() if thread is not threading.main_thread()]


class JsonLines:
    """JSON lines read from a file descriptor, with a timeout (no buffering that ``select`` cannot see)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._unread = b""
        self.closed = False  # the writer closed its end: nothing more will come

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next line, or None at the end (or when none came within ``timeout`` s)."""
        while b"\n" not in self._unread:
            if self.closed or (timeout is not None and not select.select([self.fd], [], [], timeout)[0]):
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self.closed = True
                return None
            self._unread += chunk
        line, _, self._unread = self._unread.partition(b"\n")
        return dict(json.loads(line))


def write_line(fd: int, message: dict[str, Any]) -> None:
    """Write ``message`` to ``fd`` as one JSON line."""
    os.write(fd, json.dumps(message).encode() + b"\n")


def fork_program(requests: JsonLines, answers: int, program: Callable[[], NoReturn]) -> int | None:
    """Fork a child that runs ``program`` (which ends it) and answer its pid.

    Returns:
        The child's pid; None when a thread runs here (a fork could copy a lock it holds
        forever): the answer is a refusal and the caller starts the program the cold way.

    """
    threads = other_threads()
    if threads:
        write_line(answers, {"refused": threads})
        return None
    # What was imported stays out of every collection, the children's included: a child's exit
    # does not walk (and copy) the parent's half a million objects. Nothing buffered is copied.
    gc.freeze()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(requests.fd)
        os.close(answers)
        program()
    write_line(answers, {"pid": pid})
    return pid


def close_and_reap(server: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """End a server of this protocol by closing its input (it ends once it sees that); kill it after ``timeout`` s."""
    if server.stdin:
        with suppress(BrokenPipeError):
            server.stdin.close()
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# The caller's side ---------------------------------------------------------------------------


class ForkedProcess:
    """A program running in a fork of a :class:`ForkServer`: the parts of ``subprocess.Popen`` callers use.

    Its process id is also its process group's and session's (``start_new_session`` as Popen
    has it), so ``os.killpg(process.pid, sig)`` reaches it and whatever it started.
    """

    def __init__(self, server: ForkServer, pid: int, args: list[str]) -> None:
        self._server = server
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code if the program has ended (negative: the signal that ended it), else None."""
        if self.returncode is None:
            self.returncode = self._server.exit_code(self.pid, timeout=0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the program to end; its exit code.

        Raises:
            subprocess.TimeoutExpired: It still runs after ``timeout`` seconds.

        """
        if self.returncode is None:
            self.returncode = self._server.exit_code(self.pid, timeout=timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the program, unless it is known to have ended (its pid may be reused)."""
        if self.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The caller's side of one fork server: start it, fork programs from it, stop it.

    Args:
        preload: The modules to import once (the programs' own included).
        environ: The fork server's environment; a program runs in a fork only when its
            load-time variables (:data:`LOAD_TIME`) are the same.

    """

    def __init__(self, preload: Sequence[str], environ: Mapping[str, str]) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "churn.forkserver", *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # the server prints nothing; each program writes to its own file
            env=dict(environ),
            start_new_session=True,  # a terminal's Ctrl-C is for the caller, which stops its programs
            bufsize=0,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._requests = self._process.stdin.fileno()
        self._answers = JsonLines(self._process.stdout.fileno())
        self._lock = threading.Lock()
        self._environment = _without_path(load_time_environment(environ))  # what a program's must equal
        self._exits: dict[int, int] = {}
        self.loaded: bool | None = None  # None while the server imports; then whether it can fork

    @property
    def pid(self) -> int:
        """The fork server's process id: the parent of every program it starts."""
        return self._process.pid

    def ended(self) -> bool:
        """Whether the fork server has gone (or can never fork): programs start the cold way."""
        return self.loaded is False or self._process.poll() is not None

    def serves(self, environ: Mapping[str, str]) -> bool:
        """Whether a program with this environment would load as the fork server has.

        ``PYTHONPATH`` may differ: the child puts its folders on ``sys.path`` as the interpreter
        would have, and the fork server refuses a program whose folders hold a module it has
        already imported (the program would have imported that one instead).
        """
        return _without_path(load_time_environment(environ)) == self._environment and not self.ended()

    def spawn(
        self, module: str, argv: Sequence[str], environ: Mapping[str, str], output: Path, timeout: float
    ) -> ForkedProcess | None:
        """Start ``python -m module *argv`` as a fork, its output appended to ``output``.

        Args:
            module: A module with a ``main()`` that reads ``sys.argv`` (as ``python -m`` runs it).
            argv: Its arguments.
            environ: Its whole environment.
            output: The file its stdout and stderr go to (created when missing).
            timeout: How long to wait for the fork server to finish its imports (seconds).

        Returns:
            The running program; None when it cannot start here (the server has ended, did not
            finish its imports in time, or loads differently): start it the cold way.

        """
        if not self.serves(environ):
            return None
        request = {
            "module": module,
            "argv": list(argv),
            "environment": dict(environ),
            "cwd": str(Path.cwd()),
            "output": str(output),
        }
        with self._lock:
            if not self._wait_loaded(timeout):
                return None
            with suppress(BrokenPipeError):  # a server that has ended answers nothing below
                write_line(self._requests, request)
            while True:
                answer = self._answers.next(timeout=30)
                if answer is None:  # no pid in time: a late one could not be matched, so fork no more here
                    self.loaded = False
                    return None
                if "pid" in answer and "exit" not in answer:
                    return ForkedProcess(self, int(answer["pid"]), [sys.executable, "-m", module, *argv])
                if "refused" in answer:
                    return None
                self._take(answer)

    def exit_code(self, pid: int, timeout: float | None) -> int | None:
        """The exit code of a program this server started, once it has ended (within ``timeout`` s)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while pid not in self._exits:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                answer = self._answers.next(timeout=left)
                if answer is not None:
                    self._take(answer)
                    continue
                if self._answers.closed:  # the server was killed: it reports nothing more
                    return None if _alive(pid) else -signal.SIGKILL
                return None
            return self._exits[pid]

    def stop(self) -> None:
        """End the fork server: it ends the programs still running (SIGTERM, then SIGKILL) and exits."""
        close_and_reap(self._process)

    def _wait_loaded(self, timeout: float) -> bool:
        if self.loaded is None:
            answer = self._answers.next(timeout=timeout)
            if answer is not None:
                self.loaded = bool(answer.get("loaded"))
            elif self._answers.closed:
                self.loaded = False
        return bool(self.loaded)

    def _take(self, answer: dict[str, Any]) -> None:
        if "exit" in answer:
            self._exits[int(answer["pid"])] = int(answer["exit"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# The fork server's side ----------------------------------------------------------------------


def _serve(requests: JsonLines, answers: int) -> None:
    """Fork a child per request; answer its pid when it starts and its exit code when it ends."""
    children: set[int] = set()
    while not requests.closed:
        request = requests.next(timeout=_REAP_INTERVAL if children else None)
        _report_exits(children, answers)
        if request is None:
            continue
        shadowed = _shadowed_modules(request["environment"].get("PYTHONPATH", ""), request["cwd"])
        if shadowed:  # the program would import its own copy of a module imported here: it starts cold
            write_line(answers, {"refused": shadowed})
            continue
        pid = fork_program(requests, answers, partial(_run_program, request))
        if pid is not None:
            children.add(pid)
    _end_children(children, answers)


def _report_exits(children: set[int], answers: int) -> None:
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        children.discard(pid)
        with suppress(BrokenPipeError):
            write_line(answers, {"pid": pid, "exit": os.waitstatus_to_exitcode(status)})


def _end_children(children: set[int], answers: int, grace: float = 10.0) -> None:
    """The caller has gone: end what it started (each program's whole process group), as it would have."""
    for pid in children:
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while children and time.monotonic() < deadline:
        time.sleep(_REAP_INTERVAL)
        _report_exits(children, answers)
    for pid in children:
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    for pid in children:
        os.waitpid(pid, 0)


def protocol_streams() -> tuple[JsonLines, int]:
    """Take this process's stdin and stdout for the protocol (requests in, answers out).

    Anything else that prints, the preloaded libraries included, goes to stderr from then on.
    """
    requests, answers = JsonLines(os.dup(0)), os.dup(1)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    return requests, answers


def become_program(cwd: str, environment: Mapping[str, str], output: str) -> None:
    """In a forked child: take the program's working folder, environment and output file (stdin: nothing)."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(environment)
    out = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    os.close(null)
    sys.path[0] = str(Path.cwd())  # as ``python -m`` sets it


def run_as_main(entry: Callable[[], object]) -> NoReturn:
    """Run a program's entry point, then end the interpreter as ``python -m`` would (an error: traceback, exit 1)."""
    try:
        entry()
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        raise SystemExit(1) from None
    raise SystemExit(0)


#: The fork server's own ``PYTHONPATH`` (its folders are on its ``sys.path``; a program's replace them).
_SERVER_PATH, _SERVER_CWD = os.environ.get("PYTHONPATH", ""), str(Path.cwd())


def _without_path(environment: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in environment.items() if name != "PYTHONPATH"}


def _path_entries(pythonpath: str, cwd: str) -> list[str]:
    """The folders ``PYTHONPATH`` puts on ``sys.path`` (an empty entry is the working folder)."""
    return [entry or cwd for entry in pythonpath.split(os.pathsep)] if pythonpath else []


def _shadowed_modules(pythonpath: str, cwd: str) -> list[str]:
    """Modules imported here that a folder of ``pythonpath`` not on ``sys.path`` holds a copy of."""
    imported = {name.partition(".")[0] for name in sys.modules}
    shadowed: list[str] = []
    for folder in map(Path, _path_entries(pythonpath, cwd)):
        if str(folder) in sys.path or not folder.is_dir():
            continue
        shadowed += sorted({entry.name.partition(".")[0] for entry in folder.iterdir()} & imported)
    return shadowed


def _run_program(request: dict[str, Any]) -> NoReturn:
    """In the forked child: become ``python -m module argv...`` in its own session."""
    os.setsid()
    become_program(request["cwd"], request["environment"], request["output"])
    # Its PYTHONPATH's folders right after the program's own, as the interpreter puts them; the fork server's go.
    own = _path_entries(request["environment"].get("PYTHONPATH", ""), request["cwd"])
    served = set(_path_entries(_SERVER_PATH, _SERVER_CWD))
    sys.path[1:] = [*own, *(folder for folder in sys.path[1:] if folder not in own and folder not in served)]

    def entry() -> None:
        module = importlib.import_module(request["module"])
        sys.argv = [str(module.__file__), *request["argv"]]
        module.main()

    run_as_main(entry)


def main() -> None:
    """The fork server: import the modules named on the command line, say whether it can fork, serve."""
    preload, sys.argv = sys.argv[1:], sys.argv[:1]  # KServe parses sys.argv when it is imported
    requests, answers = protocol_streams()
    for name in preload:
        with suppress(Exception):  # a program that needs it imports it itself, and fails as it would cold
            importlib.import_module(name)
    threads = other_threads()
    write_line(answers, {"loaded": not threads, "threads": threads})
    if threads:  # forking with a thread running could copy a lock it holds: programs start cold
        while requests.next():
            write_line(answers, {"refused": threads})
        return
    _serve(requests, answers)


if __name__ == "__main__":
    main()
