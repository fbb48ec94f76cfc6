"""MLflow's telemetry stays off in our processes, and the race it caused cannot happen.

The race (seen once as a failed ``promote-model`` task in the component image): MLflow keeps its
telemetry session id in ``os.environ`` and removes it from a thread when its endpoint cannot be
reached; ``requests`` iterates ``os.environ`` on every call (proxy lookup). The interleaving is
reproduced here deterministically in a child process, without threads: an iteration over
``os.environ.items()`` is held half-way while MLflow does what its thread does.

The children run with an environment cleaned of every variable by which MLflow turns telemetry off
by itself (CI variables, ``PYTEST_CURRENT_TEST``), as a user's process or a container has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from churn.config import Settings
from churn.kfp.local import task_environment
from churn.telemetry import TELEMETRY_OFF, telemetry_environment, telemetry_off_by_default

pytestmark = pytest.mark.unit

# What MLflow 3.17 checks in mlflow.telemetry.utils._is_ci_env_or_testing, and our own switches.
NOT_A_USER = {
    "PYTEST_CURRENT_TEST", "GITHUB_ACTIONS", "CI", "CIRCLECI", "GITLAB_CI", "JENKINS_URL", "TRAVIS", "TF_BUILD",
    "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ARN", "BUILDKITE", "TEAMCITY_VERSION", "CLOUD_RUN_EXECUTION",
    "RUNBOT_HOST_URL", "RUNBOT_BUILD_NAME", "RUNBOT_WORKER_ID", *TELEMETRY_OFF,
}  # fmt: skip

RACE = """
import json, os, sys
if sys.argv[1] == "ours":
    from churn.telemetry import telemetry_off_by_default
    telemetry_off_by_default()
import mlflow  # starts MLflow's telemetry client unless it is off
from mlflow.telemetry import client

started = client.get_telemetry_client() is not None
had_session = "_MLFLOW_TELEMETRY_SESSION_ID" in os.environ
items = iter(os.environ.items())  # requests' proxy lookup, half-way through the environment
for _ in range(len(os.environ) // 2):
    next(items)
client._set_telemetry_client(None)  # what its config thread does when the endpoint cannot be reached
try:
    for _ in items:
        pass
    error = ""
except (KeyError, RuntimeError) as exc:
    error = type(exc).__name__
print(json.dumps({"started": started, "had_session": had_session, "error": error}))
"""


def user_environment(**extra: str) -> dict[str, str]:
    """This process's environment as a user's shell or a container would have it."""
    return {**{k: v for k, v in os.environ.items() if k not in NOT_A_USER}, **extra}


def run_child(script: str, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=user_environment() if env is None else env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_with_mlflows_default_the_race_happens_deterministically() -> None:
    """The control: it shows the check below can fail (and that MLflow still behaves as we found)."""
    seen = run_child(RACE, "mlflow-default")
    assert seen["started"] and seen["had_session"]
    assert seen["error"] in ("KeyError", "RuntimeError")


def test_with_our_default_telemetry_never_starts_and_the_environment_never_changes() -> None:
    seen = run_child(RACE, "ours")
    assert seen == {"started": False, "had_session": False, "error": ""}


def test_the_users_choice_stands() -> None:
    assert telemetry_environment({}) == dict(TELEMETRY_OFF)
    assert telemetry_environment({"MLFLOW_DISABLE_TELEMETRY": "false"}) == {"MLFLOW_DISABLE_TELEMETRY": "false"}
    environ = {"DO_NOT_TRACK": "false", "PATH": "/bin"}
    telemetry_off_by_default(environ)
    assert environ == {"DO_NOT_TRACK": "false", "PATH": "/bin"}
    # Switched on by the user: MLflow's client starts, as MLflow documents.
    script = (
        "import mlflow, json; from mlflow.telemetry import client; "
        "print(json.dumps({'on': client.get_telemetry_client() is not None}))"
    )
    on = run_child(
        "from churn.telemetry import telemetry_off_by_default as f; f(); " + script,
        env=user_environment(MLFLOW_DISABLE_TELEMETRY="false"),
    )
    assert on == {"on": True}


ENTRY = """
import json, os, sys
from importlib import import_module
module, function, *argv = sys.argv[1:]
main = getattr(import_module(module), function)
try:
    main(argv) if argv else (sys.argv.__setitem__(slice(1, None), ["--help"]), main())
except SystemExit:
    pass
print(json.dumps({k: os.environ.get(k) for k in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")}))
"""


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("churn.cli", []),
        ("churn.serving.predictor", ["--help"]),
        ("churn.serving.transformer", ["--help"]),
    ],
)
def test_every_entry_point_switches_telemetry_off_first(module: str, argv: list[str]) -> None:
    seen = run_child(ENTRY, module, "main", *argv)
    assert seen == dict(TELEMETRY_OFF)


def test_local_pipeline_tasks_inherit_telemetry_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in TELEMETRY_OFF:
        monkeypatch.delenv(name, raising=False)
    with task_environment(Settings(data_dir=tmp_path)):
        task_env = {name: os.environ.get(name) for name in TELEMETRY_OFF}
    assert task_env == dict(TELEMETRY_OFF)
    assert not any(name in os.environ for name in TELEMETRY_OFF)  # restored after the run
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")
    with task_environment(Settings(data_dir=tmp_path)):
        assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false" and "DO_NOT_TRACK" not in os.environ
