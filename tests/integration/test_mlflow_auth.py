"""Least privilege on a real ``mlflow server --app-name churn-auth`` (MLflow's basic-auth plus the @champion rule).

The users and their permissions are created by ``churn mlflow-auth setup`` as the admin, as
the chart's Job does. Then: anonymous requests are refused (401); the read-only user cannot
register a version or move an alias (403); the pipeline's user registers and moves
``@challenger`` but not ``@champion`` (403); the whole training pipeline runs as the pipeline's
user with the gate as its own; a wrong password fails fast, without echoing it.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from churn.config import Settings
from churn.errors import ChurnError
from churn.kfp.local import local_parameters, run_local
from churn.registry.mlflow_registry import CHALLENGER, CHAMPION, connect_registry
from churn.stages import registry
from servers import AWS_ENV, BIN, mlflow_server_process

pytestmark = pytest.mark.integration

MODEL = "churn-auth-model"
EXPERIMENT = "auth"
ROLES = ("pipeline", "gate", "reader")


@dataclass(frozen=True)
class AuthServer:
    uri: str
    admin: tuple[str, str]
    users: dict[str, tuple[str, str]]
    log: Path


def _password() -> str:
    return f"pw-{secrets.token_hex(12)}"


def _setup_env(server: AuthServer, passwords: dict[str, str], model: str = MODEL) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CHURN_"))}
    env |= {
        "CHURN_MLFLOW__TRACKING_URI": server.uri,
        "CHURN_MLFLOW__EXPERIMENT": EXPERIMENT,
        "CHURN_MLFLOW__MODEL_NAME": model,
        "MLFLOW_TRACKING_USERNAME": server.admin[0],
        "MLFLOW_TRACKING_PASSWORD": server.admin[1],
    }
    return env | {f"CHURN_MLFLOW_AUTH_{role.upper()}_PASSWORD": passwords[role] for role in ROLES}


def _setup(server: AuthServer, passwords: dict[str, str], model: str = MODEL) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "churn"), "mlflow-auth", "setup"],
        env=_setup_env(server, passwords, model),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def auth_server(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    root = tmp_path_factory.mktemp("mlflow_auth")
    config = root / "auth.ini"
    # As the chart renders it: nobody may do anything unless granted; the users beside the store.
    config.write_text(
        "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{root / 'basic_auth.db'}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 60\n"
    )
    admin = ("admin", _password())
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        "MLFLOW_AUTH_ADMIN_USERNAME": admin[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin[1],
    }
    with mlflow_server_process(root, s3_endpoint, app_name="churn-auth", env=env) as uri:
        passwords = {role: _password() for role in ROLES}
        server = AuthServer(uri, admin, {r: (f"churn-{r}", passwords[r]) for r in ROLES}, root / "mlflow_server.log")
        done = _setup(server, passwords)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count(" created: ") == 3, done.stdout
        yield server


@pytest.fixture
def as_user(auth_server: AuthServer, s3_endpoint: str) -> Iterator[object]:
    """``as_user(role)`` points this process's MLflow clients at the server as that role."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_S3_ENDPOINT_URL", s3_endpoint)
        for name, value in AWS_ENV.items():
            mp.setenv(name, value)

        def become(role: str) -> MlflowClient:
            user, password = auth_server.admin if role == "admin" else auth_server.users[role]
            mp.setenv("MLFLOW_TRACKING_USERNAME", user)
            mp.setenv("MLFLOW_TRACKING_PASSWORD", password)
            return MlflowClient(auth_server.uri, registry_uri=auth_server.uri)

        yield become


def _status(url: str, *, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_anonymous_requests_are_refused(auth_server: AuthServer) -> None:
    api = f"{auth_server.uri}/api/2.0/mlflow"
    assert _status(f"{auth_server.uri}/health") == 200  # probes need no credentials
    assert _status(f"{api}/experiments/search?max_results=1") == 401
    assert _status(f"{api}/experiments/create", data=b'{"name": "anonymous"}') == 401
    body = b'{"name": "%s", "alias": "champion", "version": "1"}' % MODEL.encode()
    assert _status(f"{api}/registered-models/alias", data=body) == 401


def _version(client: MlflowClient) -> str:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    run = client.create_run(experiment.experiment_id)
    return str(client.create_model_version(MODEL, "s3://mlflow/unused", run_id=run.info.run_id).version)


def _denied(call: object) -> None:
    with pytest.raises(MlflowException) as caught:
        call()  # type: ignore[operator]
    assert caught.value.get_http_status_code() == 403, caught.value  # type: ignore[no-untyped-call]


def test_each_identity_has_only_what_it_needs(as_user: object) -> None:
    become = as_user  # type: ignore[assignment]
    pipeline = become("pipeline")  # type: ignore[operator]
    version = _version(pipeline)  # registers versions ...
    pipeline.set_registered_model_alias(MODEL, CHALLENGER, version)  # ... and moves @challenger
    _denied(lambda: pipeline.set_registered_model_alias(MODEL, CHAMPION, version))  # not @champion
    _denied(lambda: pipeline.delete_registered_model(MODEL))

    reader = become("reader")  # type: ignore[operator]
    assert reader.get_model_version_by_alias(MODEL, CHALLENGER).version == version  # reads ...
    _denied(lambda: reader.create_model_version(MODEL, "s3://mlflow/unused"))  # ... registers nothing
    _denied(lambda: reader.set_registered_model_alias(MODEL, CHALLENGER, version))
    _denied(lambda: reader.set_registered_model_alias(MODEL, CHAMPION, version))
    experiment = reader.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    _denied(lambda: reader.create_run(experiment.experiment_id))

    gate = become("gate")  # type: ignore[operator]
    gate.set_registered_model_alias(MODEL, CHAMPION, version)
    assert become("reader").get_model_version_by_alias(MODEL, CHAMPION).version == version  # type: ignore[operator]


def test_a_wrong_password_fails_fast_and_is_not_echoed(auth_server: AuthServer, as_user: object) -> None:
    as_user("reader")  # type: ignore[operator]
    wrong = f"wrong-{secrets.token_hex(8)}"
    os.environ["MLFLOW_TRACKING_PASSWORD"] = wrong  # undone by as_user's monkeypatch
    start = time.perf_counter()
    with pytest.raises(ChurnError, match=re.escape("refused the credentials of user churn-reader (401)")) as caught:
        connect_registry(auth_server.uri, timeout=5, retries=2)
    assert time.perf_counter() - start < 5  # a 401 is not retried
    assert wrong not in str(caught.value) and "MLFLOW_TRACKING_PASSWORD" in str(caught.value)
    # The same through the CLI: one line on stderr, exit 1, no traceback, no password.
    env = _setup_env(auth_server, {role: auth_server.users[role][1] for role in ROLES})
    done = subprocess.run(
        [str(BIN / "churn"), "mlflow-auth", "setup"],
        env=env | {"MLFLOW_TRACKING_PASSWORD": wrong},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "refused the credentials of user admin (401)" in done.stderr
    assert wrong not in done.stdout + done.stderr


def test_setup_is_idempotent_and_rotates_passwords(auth_server: AuthServer, as_user: object) -> None:
    old = auth_server.users["reader"][1]
    with pytest.MonkeyPatch.context() as mp:
        # Verified once, so the server's credential cache (auth_cache_ttl_seconds) holds it before the rotation.
        mp.setenv("MLFLOW_TRACKING_USERNAME", "churn-reader")
        mp.setenv("MLFLOW_TRACKING_PASSWORD", old)
        connect_registry(auth_server.uri)
    rotated = {role: _password() for role in ROLES}
    done = _setup(auth_server, rotated)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(" updated: ") == 3, done.stdout
    short = _setup(auth_server, rotated | {"gate": "short"})
    assert short.returncode == 1 and "gate is shorter than 12 characters" in short.stderr
    os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_USERNAME", "churn-reader")
        mp.setenv("MLFLOW_TRACKING_PASSWORD", old)
        with pytest.raises(ChurnError, match="401"):
            connect_registry(auth_server.uri)
        mp.setenv("MLFLOW_TRACKING_PASSWORD", rotated["reader"])
        connect_registry(auth_server.uri)
    # Put the fixture's passwords back for the other tests.
    assert _setup(auth_server, {role: auth_server.users[role][1] for role in ROLES}).returncode == 0


def test_the_training_pipeline_runs_as_the_pipeline_with_the_gate_as_its_own(
    auth_server: AuthServer, as_user: object, tmp_path: Path
) -> None:
    model = "churn-auth-pipeline"  # a model of its own: the other tests leave a fake champion in MODEL
    assert _setup(auth_server, {role: auth_server.users[role][1] for role in ROLES}, model).returncode == 0
    client = as_user("pipeline")  # type: ignore[operator]
    gate_user, gate_password = auth_server.users["gate"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        mp.setenv("CHURN_DATA_DIR", str(tmp_path / "data"))
        # The local runner's tasks inherit this environment; in a cluster only the gate task gets these two.
        mp.setenv("CHURN_MLFLOW__GATE_USERNAME", gate_user)
        mp.setenv("CHURN_MLFLOW__GATE_PASSWORD", gate_password)
        settings = Settings(data_dir=tmp_path / "data")
        params = local_parameters(
            settings, rows=2000, mlflow_tracking_uri=auth_server.uri, mlflow_experiment=EXPERIMENT, model_name=model
        )
        run = run_local("training", settings, log=tmp_path / "train.log", **params)
    assert run.output == "promoted"
    champion = client.get_model_version_by_alias(model, CHAMPION)
    assert champion.tags.get("gate_decision") == "promoted"
    assert client.get_model_version_by_alias(model, CHALLENGER).version == champion.version
    # No password of either user is in what the run left behind (task logs, artifacts) or in MLflow.
    passwords = [auth_server.users["pipeline"][1].encode(), gate_password.encode()]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()]
    assert len(files) > 20
    for path in files:
        body = path.read_bytes()
        assert not [p for p in passwords if p in body], f"{path} holds an MLflow password"
    run_data = client.get_run(champion.run_id).data
    assert not [p for p in passwords if p.decode() in str(run_data.params) + str(run_data.tags)]

    # The same gate as the pipeline's own user: refused, clearly, and @champion stays where it is.
    assert run.run_dir is not None
    test_split = next(p for p in run.run_dir.rglob("test*") if p.is_file())
    newer = client.copy_model_version(f"models:/{model}/{champion.version}", model).version
    with pytest.raises(
        ChurnError, match=re.escape("user churn-pipeline may not run the promotion gate (move @champion) (403")
    ):
        registry.promote(newer, test_split, tracking_uri=auth_server.uri, model_name=model, margin=-1.0)
    assert client.get_model_version_by_alias(model, CHAMPION).version == champion.version
