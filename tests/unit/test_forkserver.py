"""The fork server: programs forked from a preloaded process behave as ``python -m`` would run them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from churn.forkserver import ForkServer

pytestmark = pytest.mark.unit

PROBE = """
import atexit
import os
import sys
import threading
import time

IMPORTED_IN = os.getpid()


def main():
    what = sys.argv[1]
    atexit.register(lambda: print("atexit ran", flush=True))
    print("argv", sys.argv[1:], "cwd", os.getcwd(), "probe", os.environ.get("PROBE"), flush=True)
    print("own session", os.getsid(0) == os.getpid(), "preloaded", IMPORTED_IN != os.getpid(), flush=True)
    if what == "sleep":
        time.sleep(120)
    elif what == "fail":
        raise ValueError("boom")
    elif what == "exit":
        sys.exit("error: a clear line")
    elif what == "import":
        print("imported", __import__(sys.argv[2]).__file__, "first on the path", sys.path[1], flush=True)
    elif what == "thread":  # a non-daemon thread: the interpreter waits for it before it exits
        threading.Thread(target=lambda: (time.sleep(0.5), print("thread done", flush=True))).start()
"""


@pytest.fixture
def programs(tmp_path: Path) -> Path:
    folder = tmp_path / "programs"
    folder.mkdir()
    (folder / "probe.py").write_text(textwrap.dedent(PROBE))
    (folder / "starts_a_thread.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    )
    return folder


def _environ(programs: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(programs), *sys.path]), **extra}


@pytest.fixture
def server(programs: Path) -> Iterator[ForkServer]:
    started = ForkServer(["probe"], _environ(programs))
    yield started
    started.stop()


def _output(path: Path, expected: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if expected in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{expected!r} not in {path.read_text() if path.exists() else '(no file)'}")


def test_a_forked_program_runs_as_python_dash_m_would(server: ForkServer, programs: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.log"
    process = server.spawn("probe", ["thread", "x"], _environ(programs, PROBE="given"), output, timeout=60)
    assert process is not None
    assert process.wait(timeout=30) == 0
    text = output.read_text()
    assert f"argv ['thread', 'x'] cwd {Path.cwd()} probe given" in text
    assert "own session True preloaded True" in text  # its own session; imported before the fork
    assert text.index("thread done") < text.index("atexit ran")  # a normal interpreter exit
    assert process.poll() == 0 and process.returncode == 0


@pytest.mark.parametrize(
    ("what", "expected"),
    [("fail", "ValueError: boom"), ("exit", "error: a clear line")],
)
def test_a_failing_program_exits_1_with_its_error_in_its_output(
    server: ForkServer, programs: Path, tmp_path: Path, what: str, expected: str
) -> None:
    output = tmp_path / "out.log"
    process = server.spawn("probe", [what], _environ(programs), output, timeout=60)
    assert process is not None
    assert process.wait(timeout=30) == 1
    assert expected in output.read_text()


def test_signals_reach_the_program_and_its_exit_is_reported(server: ForkServer, programs: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.log"
    process = server.spawn("probe", ["sleep"], _environ(programs), output, timeout=60)
    assert process is not None
    _output(output, "own session True")
    assert process.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.3)
    os.killpg(process.pid, signal.SIGTERM)  # its own process group, as Popen's start_new_session gives
    assert process.wait(timeout=30) == -signal.SIGTERM
    process.kill()  # known to have ended: no signal goes to a pid that may be reused
    assert process.returncode == -signal.SIGTERM


def test_the_fork_server_ends_its_programs_when_its_caller_goes(programs: Path, tmp_path: Path) -> None:
    server = ForkServer(["probe"], _environ(programs))
    output = tmp_path / "out.log"
    process = server.spawn("probe", ["sleep"], _environ(programs), output, timeout=60)
    assert process is not None
    _output(output, "own session True")
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)


def test_a_program_that_would_load_differently_is_not_forked(
    server: ForkServer, programs: Path, tmp_path: Path
) -> None:
    environ = _environ(programs, OMP_NUM_THREADS="7")  # read when OpenMP loads: the server has another value
    assert not server.serves(environ)
    assert server.spawn("probe", ["exit"], environ, tmp_path / "out.log", timeout=60) is None
    assert not (tmp_path / "out.log").exists()
    assert server.serves(_environ(programs, CHURN_ANYTHING="read at run time"))


def test_a_program_s_own_pythonpath_comes_first_on_its_path(server: ForkServer, programs: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "helper_module.py").write_text("")
    environ = _environ(programs)
    environ["PYTHONPATH"] = os.pathsep.join([str(extra), environ["PYTHONPATH"]])
    assert server.serves(environ)  # PYTHONPATH is not a reason to start cold
    output = tmp_path / "out.log"
    process = server.spawn("probe", ["import", "helper_module"], environ, output, timeout=60)
    assert process is not None and process.wait(timeout=30) == 0
    assert f"imported {extra / 'helper_module.py'} first on the path {extra}" in output.read_text()


def test_a_pythonpath_holding_a_preloaded_module_is_not_forked(
    server: ForkServer, programs: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "probe.py").write_text("def main():\n    print('the other probe')\n")  # the server imported its own
    environ = _environ(programs)
    environ["PYTHONPATH"] = os.pathsep.join([str(other), environ["PYTHONPATH"]])
    assert server.spawn("probe", ["exit"], environ, tmp_path / "out.log", timeout=60) is None
    assert not server.ended()  # refused this one only
    process = server.spawn("probe", ["exit"], _environ(programs), tmp_path / "out.log", timeout=60)
    assert process is not None and process.wait(timeout=30) == 1


def test_a_preload_that_starts_a_thread_makes_the_server_refuse_to_fork(programs: Path, tmp_path: Path) -> None:
    server = ForkServer(["starts_a_thread"], _environ(programs))
    try:
        assert server.spawn("probe", ["exit"], _environ(programs), tmp_path / "out.log", timeout=60) is None
        assert server.ended() and server.loaded is False
    finally:
        server.stop()
