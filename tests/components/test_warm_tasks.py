"""Warm task interpreters (churn.kfp.warm): a task forked from the task server is the task KFP would have started.

Each test runs real lightweight components with KFP's real local ``SubprocessRunner``, once the
warm way and once KFP's own way, and compares what the task saw and did.
"""

# No ``from __future__ import annotations``: KFP reads the components' annotations as types.
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import kfp.local
import pytest
import yaml
from kfp import dsl

from churn.config import Settings
from churn.kfp.local import task_environment
from churn.kfp.warm import PRELOAD, SERVE_AFTER, Task, task_of, task_server, warm_tasks

pytestmark = pytest.mark.components

ROOT = Path(__file__).resolve().parents[2]


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def describe(marker: str, out: dsl.Output[dsl.Artifact]) -> str:
    """What a task sees, and an interpreter's exit: a non-daemon thread and an atexit handler that write files."""
    import atexit
    import json
    import os
    import sys
    import threading
    import time
    from pathlib import Path

    def late() -> None:
        time.sleep(0.5)
        Path(out.path + ".thread").write_text("joined")

    threading.Thread(target=late).start()
    atexit.register(lambda: Path(out.path + ".atexit").write_text("ran"))
    print(f"marker {marker} on stdout")
    print(f"marker {marker} on stderr", file=sys.stderr)
    Path(out.path).write_text(marker)
    seen = {
        "variable": os.environ.get("CHURN_WARM_TEST"),
        "kfp_runtime": os.environ.get("_KFP_RUNTIME"),
        "cwd": str(Path.cwd()),
        "argv0": sys.argv[0],
        "path": sys.path[:2],  # the component's folder (KFP puts it first), then the working folder
        "parent": os.getppid(),
    }
    return json.dumps(seen)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def exit_with(code: int) -> None:
    """Print, then end the interpreter with ``code``."""
    import sys

    print("ending on purpose")
    sys.exit(code)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def raise_error() -> None:
    """Fail with an exception of the task's own."""
    raise ValueError("the task's own error")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def imported(names: list) -> str:  # type: ignore[type-arg]  # KFP reads a bare list as a JSON list
    """Which of ``names`` the task has as it starts, and its parent."""
    import json
    import os
    import sys

    return json.dumps({"imported": [name in sys.modules for name in names], "parent": os.getppid()})


@pytest.fixture
def local_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """KFP's local subprocess runner, its pipeline root in ``tmp_path``, the test's variable set.

    The tasks' environment is a local run's (:func:`churn.kfp.local.task_environment`), as the
    task server's is when an earlier run in this process started it.
    """
    monkeypatch.setenv("CHURN_WARM_TEST", "seen")
    monkeypatch.chdir(tmp_path)
    # A workspace of the test's own: init would make one in /tmp, which only a pipeline run removes.
    (tmp_path / "workspace").mkdir()
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        workspace_root=str(tmp_path / "workspace"),
    )
    with task_environment(Settings(data_dir=tmp_path / "data")):
        yield tmp_path


def _describe(marker: str, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], Path, str]:
    task = describe(marker=marker)
    artifact = Path(task.outputs["out"].path)
    return json.loads(task.outputs["Output"]), artifact, capsys.readouterr().out


def test_a_warm_task_sees_and_does_what_a_cold_one_does(local_runner: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cold, cold_artifact, cold_output = _describe("cold", capsys)
    with warm_tasks():
        server = task_server()
        assert server.wait_loaded(timeout=300), "the task server could not load the stack"
        warm, warm_artifact, warm_output = _describe("warm", capsys)
    assert warm["parent"] == server.pid != cold["parent"], "the warm task was not forked from the server"
    for seen in (cold, warm):
        assert seen["variable"] == "seen" and seen["kfp_runtime"] == "true"
        assert seen["cwd"] == seen["path"][1] == str(local_runner)
        assert Path(seen["path"][0]).name.startswith("tmp")
    assert warm["argv0"] == cold["argv0"] and warm["argv0"].endswith("kfp/dsl/executor_main.py")
    for artifact, marker, output in ((cold_artifact, "cold", cold_output), (warm_artifact, "warm", warm_output)):
        assert artifact.read_text() == marker
        assert Path(f"{artifact}.thread").read_text() == "joined", "a non-daemon thread was not waited for"
        assert Path(f"{artifact}.atexit").read_text() == "ran", "atexit handlers did not run"
        assert f"marker {marker} on stdout" in output and f"marker {marker} on stderr" in output


def test_the_server_serves_once_it_has_the_first_modules_and_imports_the_rest_while_serving(
    local_runner: Path,
) -> None:
    names = list(PRELOAD)
    seen = []
    with warm_tasks():
        server = task_server()
        assert server.wait_loaded(timeout=300)
        deadline = time.monotonic() + 300
        while not seen or (not all(seen[-1]["imported"]) and time.monotonic() < deadline):
            seen.append(json.loads(imported(names=names).output))
    assert {s["parent"] for s in seen} == {server.pid}, "a task was not forked from the server"
    # Forked as soon as it served: the first modules are there in every task.
    assert all(all(s["imported"][:SERVE_AFTER]) for s in seen)
    # The rest came while it served, between and beside the tasks: a later task has everything.
    missing = [name for name, there in zip(names, seen[-1]["imported"], strict=True) if not there]
    assert not missing, f"the server never imported {missing}"


def test_a_task_with_other_load_time_settings_runs_cold(
    local_runner: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with warm_tasks():
        server = task_server()
        assert server.wait_loaded(timeout=300)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")  # OpenMP reads it when the library loads
        seen, artifact, _ = _describe("other", capsys)
    assert seen["parent"] != server.pid and artifact.read_text() == "other"


def test_when_the_server_dies_the_tasks_run_cold_and_a_new_run_starts_another(
    local_runner: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with warm_tasks():
        server = task_server()
        assert server.wait_loaded(timeout=300)
        os.kill(server.pid, signal.SIGKILL)
        seen, artifact, output = _describe("orphan", capsys)
        assert seen["parent"] != server.pid and artifact.read_text() == "orphan" and "marker orphan" in output
    with warm_tasks():
        again = task_server()
        assert again.pid != server.pid and again.wait_loaded(timeout=300)
        seen, _, _ = _describe("new server", capsys)
    assert seen["parent"] == again.pid


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_a_failing_task_fails_the_run_with_its_output(
    local_runner: Path, capsys: pytest.CaptureFixture[str], warm: bool
) -> None:
    with warm_tasks() if warm else nullcontext():
        assert not warm or task_server().wait_loaded(timeout=300)
        with pytest.raises(RuntimeError, match="exit-with"):
            exit_with(code=3)
        assert "ending on purpose" in capsys.readouterr().out
        with pytest.raises(RuntimeError, match="raise-error"):
            raise_error()
        output = capsys.readouterr().out
    assert "ValueError: the task's own error" in output and "Traceback" in output


def test_the_pipelines_tasks_are_the_script_the_server_runs() -> None:
    """Every task of every compiled pipeline is KFP's plain lightweight script: all of them can run warm."""
    from kfp.local.subprocess_task_handler import replace_python_executable

    commands = 0
    for compiled in sorted((ROOT / "pipelines" / "compiled").glob("*.yaml")):
        for executor in next(yaml.safe_load_all(compiled.read_text()))["deploymentSpec"]["executors"].values():
            container = executor["container"]
            command = replace_python_executable([*container["command"], *container["args"]], sys.executable)
            task = task_of(command)
            assert isinstance(task, Task), f"{compiled.name}: a task would run cold: {container['command'][:3]}"
            assert task.code == container["command"][3] and "--executor_input" in task.arguments
            commands += 1
    assert commands >= 20
    script = ["sh", "-c", "python3 -m pip install x && python3 -m kfp.dsl.executor_main", "code"]
    assert task_of(script) is None
