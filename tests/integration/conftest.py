"""Real services for the integration tests: an S3 endpoint and an MLflow tracking server on loopback.

Nothing here is mocked: ``s3_endpoint`` is a real ``moto_server`` process speaking the S3
HTTP API (no MinIO binary is available on these machines), and ``mlflow_server`` is a
real ``mlflow server`` process with a sqlite backend store whose default artifact root is
that S3 endpoint. Tests talk to both over TCP, exactly as the pipeline does in a cluster.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

BUCKET = "mlflow"
#: Dummy credentials: moto accepts anything, but boto3 refuses to sign without some.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, *, seconds: float, ok: set[int] | None) -> None:
    """Poll ``url`` until it answers (with a status in ``ok``, or any status when ``ok`` is None)."""
    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _stop(process)
            pytest.fail(f"{process.args} exited with {process.returncode}:\n{log.read_text(errors='replace')[-5000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                last = response.status
        except urllib.error.HTTPError as exc:  # an HTTP answer, even an error, means it is up
            last = exc.code
        except (urllib.error.URLError, OSError) as exc:
            last = exc
            time.sleep(0.2)
            continue
        if ok is None or last in ok:
            return
        time.sleep(0.2)
    _stop(process)
    pytest.fail(f"{url} not ready after {seconds} s (last: {last}):\n{log.read_text(errors='replace')[-5000:]}")


@pytest.fixture(scope="session")
def aws_env() -> dict[str, str]:
    """The dummy ``AWS_*`` variables both servers run with; S3 clients need them too."""
    return dict(AWS_ENV)


@pytest.fixture(scope="session")
def s3_bucket() -> str:
    """The bucket holding the MLflow server's default artifact root."""
    return BUCKET


@pytest.fixture
def closed_port_uri() -> str:
    """An ``http://`` URI on loopback where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real S3 endpoint (``moto_server``) on loopback, with the bucket ``mlflow`` created."""
    import boto3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **AWS_ENV},
        )
    try:
        _wait_http(url, process, log, seconds=10, ok=None)
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=AWS_ENV["AWS_DEFAULT_REGION"],
        )
        s3.create_bucket(Bucket=BUCKET)
        yield url
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def mlflow_server(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of a real ``mlflow server`` (sqlite backend, artifacts in ``s3://mlflow/`` on ``s3_endpoint``)."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = root / "mlflow_server.log"
    env = {
        **os.environ,
        **AWS_ENV,
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        # One worker and no job runner: ~0.5 GB instead of ~2.5 GB (see shared/ENVIRONMENT.md).
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        str(_BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--default-artifact-root",
        f"s3://{BUCKET}/",
        "--workers",
        "1",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    try:
        _wait_http(f"{uri}/health", process, log, seconds=60, ok={200})
        yield uri
    finally:
        _stop(process)
