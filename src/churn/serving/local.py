"""The model servers as local processes, as KServe runs them as containers.

In ``transformer`` mode a predictor and a transformer (two processes, as KServe runs two
containers), plus a shadow predictor serving another model when ``shadow_model_uri`` is set
(the transformer also sends it every request, off the request path); in ``single`` mode
one single-pass server on the transformer's ports (the service's front door either way).
Used by ``churn serve``, the main job, the integration tests and the serving benchmark:
start them from a model URI or directory, wait until each answers ``/v2/health/ready``,
and stop them (SIGTERM, then SIGKILL) whatever happens.

Each server is a fork of this process's *fork server* (:mod:`churn.forkserver`), which has
imported KServe, MLflow and the model libraries once (about 11 s of CPU on 2 cores): a server
then starts in about half a second of CPU instead of about ten (``make bench-server-start``;
``churn serve`` starts two or three, a test run about thirty-five).
A server whose load-time environment differs from the fork server's, or any server when
``preloaded`` is off, starts as a fresh interpreter (``python -m``), as its container does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from churn.errors import ChurnError
from churn.forkserver import ForkedProcess, ForkServer
from churn.telemetry import telemetry_off_by_default

if TYPE_CHECKING:
    from churn.config import ServingMode, Settings


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceConfig:
    """Where the two servers listen and what they serve."""

    model_uri: str
    tracking_uri: str | None = None
    model_name: str = "churn-model"
    host: str = "127.0.0.1"
    predictor_http_port: int = 8085
    predictor_grpc_port: int = 8086
    transformer_http_port: int = 8080
    transformer_grpc_port: int = 8081
    predictor_protocol: str = "grpc-v2"
    #: ``transformer`` (predictor + transformer) or ``single`` (one server, on the transformer's ports).
    mode: ServingMode = "transformer"
    max_batch_size: int = 10_000
    log_dir: Path = Path("data/serving")
    extra_env: dict[str, str] = field(default_factory=dict)
    #: A challenger served by a shadow predictor (transformer mode only); None: no shadow.
    shadow_model_uri: str | None = None
    shadow_http_port: int = 8087
    shadow_grpc_port: int = 8088
    #: Start the servers as forks of a process that has imported their stack (see the module's
    #: docstring); False: each a fresh interpreter.
    preloaded: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, model_uri: str | None = None, **overrides: Any) -> ServiceConfig:
        """Ports, limits and the registry from settings; the model defaults to ``@champion``."""
        serving = settings.serving
        values: dict[str, Any] = {
            "model_uri": model_uri or f"models:/{settings.mlflow.model_name}@champion",
            "tracking_uri": settings.tracking_uri,
            "model_name": serving.model_name,
            "host": serving.host,
            "predictor_http_port": serving.predictor_http_port,
            "predictor_grpc_port": serving.predictor_grpc_port,
            "transformer_http_port": serving.transformer_http_port,
            "transformer_grpc_port": serving.transformer_grpc_port,
            "predictor_protocol": serving.predictor_protocol,
            "mode": serving.mode,
            "max_batch_size": serving.max_batch_size,
            "log_dir": settings.data_dir / "serving",
        }
        return cls(**(values | overrides))

    @classmethod
    def on_free_ports(cls, model_uri: str, **values: Any) -> ServiceConfig:
        """A config whose four ports are free right now (tests, benchmarks, runs side by side)."""
        roles = ("predictor", "transformer", "shadow")
        ports = {f"{role}_{kind}_port": free_port() for role in roles for kind in ("http", "grpc")}
        return cls(model_uri=model_uri, **(ports | values))

    @property
    def roles(self) -> tuple[str, ...]:
        """The processes this mode runs, the service's front door last."""
        if self.mode != "transformer":
            return ("single",)
        return ("predictor", "shadow", "transformer") if self.shadow_model_uri else ("predictor", "transformer")

    @property
    def front(self) -> str:
        """The role that answers callers: the transformer, or the single-pass server."""
        return self.roles[-1]

    @property
    def urls(self) -> dict[str, str]:
        """Each running role's REST URL."""
        by_role = {"predictor": self.predictor_url, "shadow": self.shadow_url}
        return {role: by_role.get(role, self.transformer_url) for role in self.roles}

    @property
    def transformer_url(self) -> str:
        """The service's front door: the transformer, or the single-pass server on its ports."""
        return f"http://{self.host}:{self.transformer_http_port}"

    @property
    def predictor_url(self) -> str:
        return f"http://{self.host}:{self.predictor_http_port}"

    @property
    def shadow_url(self) -> str:
        return f"http://{self.host}:{self.shadow_http_port}"

    def _model_flags(self, model_uri: str | None = None) -> list[str]:
        model_uri = model_uri or self.model_uri
        source = ["--model_dir", model_uri] if Path(model_uri).is_dir() else ["--model_uri", model_uri]
        tracking = ["--tracking_uri", self.tracking_uri] if self.tracking_uri else []
        return [*source, *tracking, "--model_name", self.model_name, "--bind_host", self.host]

    def predictor_command(self) -> list[str]:
        return self._predictor_command(self.model_uri, self.predictor_http_port, self.predictor_grpc_port)

    def shadow_command(self) -> list[str]:
        """The shadow predictor: the same predictor, serving the challenger on its own ports."""
        if not self.shadow_model_uri:
            raise ChurnError("no shadow model to serve (shadow_model_uri is not set)")
        return self._predictor_command(self.shadow_model_uri, self.shadow_http_port, self.shadow_grpc_port)

    def _predictor_command(self, model_uri: str, http_port: int, grpc_port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "churn.serving.predictor",
            *self._model_flags(model_uri),
            "--http_port",
            str(http_port),
            "--grpc_port",
            str(grpc_port),
            "--max_batch_size",
            str(self.max_batch_size),
        ]

    def transformer_command(self) -> list[str]:
        grpc = self.predictor_protocol == "grpc-v2"
        port = self.predictor_grpc_port if grpc else self.predictor_http_port
        shadow_port = self.shadow_grpc_port if grpc else self.shadow_http_port
        shadow = ["--shadow_predictor_host", f"{self.host}:{shadow_port}"] if self.shadow_model_uri else []
        return [
            *self._front_command("churn.serving.transformer"),
            "--predictor_host",
            f"{self.host}:{port}",
            "--predictor_protocol",
            self.predictor_protocol,
            *shadow,
        ]

    def single_command(self) -> list[str]:
        return self._front_command("churn.serving.single")

    def command(self, role: str) -> list[str]:
        """The command line of one of :attr:`roles`."""
        commands = {
            "predictor": self.predictor_command,
            "shadow": self.shadow_command,
            "transformer": self.transformer_command,
            "single": self.single_command,
        }
        return commands[role]()

    def _front_command(self, module: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            module,
            *self._model_flags(),
            "--http_port",
            str(self.transformer_http_port),
            "--grpc_port",
            str(self.transformer_grpc_port),
            "--max_batch_size",
            str(self.max_batch_size),
        ]


#: What the three server modules and the model loaders import (KServe, MLflow and its SQL
#: stores, scikit-learn, XGBoost, LightGBM, skops): about 11 s of CPU, once per fork server.
PRELOAD = (
    "churn.serving.predictor",
    "churn.serving.transformer",
    "churn.serving.single",
    "mlflow.pyfunc",
    "mlflow.sklearn",
    "mlflow.xgboost",
    "mlflow.lightgbm",
    "skops.io",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
)


class _ThisProcess:
    """The fork server of the calling process: started by the first preloaded service, replaced if killed."""

    server: ForkServer | None = None
    pid = 0  # the process that started it: a fork of the caller starts its own (the pipes are not its)


def _fork_server() -> ForkServer:
    server = _ThisProcess.server
    if server is not None and _ThisProcess.pid == os.getpid() and server.ended() and server.loaded is not False:
        server.stop()  # it was killed; one that cannot fork (a preload started a thread) stays: servers start cold
        server = None
    if server is None or _ThisProcess.pid != os.getpid():
        server = _ThisProcess.server = ForkServer(PRELOAD, _server_environment({}))
        _ThisProcess.pid = os.getpid()
    return server


def _server_environment(extra: dict[str, str]) -> dict[str, str]:
    """A server's environment: this process's, OpenMP's threads asleep when idle, telemetry off by default."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **extra}
    telemetry_off_by_default(env)  # before the server imports MLflow, as its entry point would
    return env


#: A running server: a child process, or a fork of the fork server.
ServerProcess = subprocess.Popen[bytes] | ForkedProcess


class LocalService:
    """The serving processes of a mode; a context manager that always stops them."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.processes: dict[str, ServerProcess] = {}
        self.logs: dict[str, Path] = {}

    def start(self, timeout: float = 120.0) -> Self:
        """Start the mode's servers (predictors first); return once each is ready.

        Raises:
            ChurnError: A shadow is asked for in single mode, a port is taken, a server exits, or
                readiness takes longer than ``timeout`` seconds; the message quotes the end of that
                server's log.

        """
        config = self.config
        if config.shadow_model_uri and config.mode != "transformer":
            raise ChurnError(
                "a shadow model needs transformer mode (the transformer sends the shadow its copies; "
                "the single-pass server calls no predictor)"
            )
        ports = [config.transformer_http_port, config.transformer_grpc_port]
        if "predictor" in config.roles:
            ports += [config.predictor_http_port, config.predictor_grpc_port]
        if "shadow" in config.roles:
            ports += [config.shadow_http_port, config.shadow_grpc_port]
        for port in ports:
            if _listening(config.host, port):
                raise ChurnError(f"port {port} on {config.host} is already in use; choose other serving ports")
        config.log_dir.mkdir(parents=True, exist_ok=True)
        env = _server_environment(config.extra_env)
        deadline = time.monotonic() + timeout
        try:
            for role in config.roles:
                self._spawn(role, config.command(role), env, deadline)
            for role, url in config.urls.items():
                self._wait_ready(role, url, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, role: str, command: Sequence[str], env: dict[str, str], deadline: float) -> None:
        log = self.config.log_dir / f"{role}.log"
        self.logs[role] = log
        with log.open("wb") as out:
            if self.config.preloaded and list(command[:2]) == [sys.executable, "-m"]:
                wait = max(0.0, deadline - time.monotonic())
                forked = _fork_server().spawn(command[2], command[3:], env, log, timeout=wait)
                if forked is not None:
                    self.processes[role] = forked
                    return
            self.processes[role] = subprocess.Popen(
                list(command), stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def _wait_ready(self, role: str, url: str, deadline: float) -> None:
        process = self.processes[role]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ChurnError(f"the {role} exited with code {process.returncode}:\n{self.log_tail(role)}")
            if _ready(url, self.config.model_name):
                return
            time.sleep(0.2)
        raise ChurnError(f"the {role} was not ready at {url} in time:\n{self.log_tail(role)}")

    def log_tail(self, role: str, lines: int = 15) -> str:
        """The last lines a server logged, for error messages."""
        log = self.logs.get(role)
        if log is None or not log.is_file():
            return "(no log)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the servers (KServe drains), SIGKILL whatever is left after ``grace`` seconds."""
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def __enter__(self) -> Self:
        return self if self.processes else self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def _signal_group(process: ServerProcess, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _ready(url: str, model_name: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/models/{model_name}/ready", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def post_json(url: str, body: Any, timeout: float = 30.0) -> tuple[int, Any]:
    """POST ``body`` as JSON; return the status and the decoded answer (errors included)."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        try:
            return int(exc.code), json.loads(payload)
        except ValueError:
            return int(exc.code), {"error": payload.decode(errors="replace")}
