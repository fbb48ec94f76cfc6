"""Real servers the tests start on loopback, shared by every test level (tests are not a package;
pytest puts tests/ on sys.path through tests/conftest.py)."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from churn.serving.local import free_port

BUCKET = "mlflow"
#: Dummy credentials: moto accepts anything, but boto3 refuses to sign without some. The secret
#: key is new every session, so a test can search every output of a run for it.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": f"churn-test-secret-{secrets.token_hex(12)}",
    "AWS_DEFAULT_REGION": "us-east-1",
}
BIN = Path(sys.executable).parent


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, *, seconds: float, ok: set[int] | None) -> None:
    """Poll ``url`` until it answers (with a status in ``ok``, or any status when ``ok`` is None)."""
    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stop(process)
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
    stop(process)
    pytest.fail(f"{url} not ready after {seconds} s (last: {last}):\n{log.read_text(errors='replace')[-5000:]}")


def s3_client(url: str) -> Any:
    """A boto3 S3 client for the endpoint at ``url``, with the dummy credentials."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_ENV["AWS_DEFAULT_REGION"],
    )


@contextlib.contextmanager
def mlflow_server_process(
    root: Path, s3_endpoint: str, *, app_name: str = "", env: dict[str, str] | None = None
) -> Iterator[str]:
    """A real ``mlflow server`` in ``root`` (sqlite backend, artifacts in ``s3://mlflow/``); yields its URI.

    ``app_name`` starts it with ``--app-name`` (e.g. ``churn-auth``), configured by ``env``.
    """
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = root / "mlflow_server.log"
    server_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        **AWS_ENV,
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        # One worker and no job runner: ~0.5 GB instead of ~2.5 GB (see shared/ENVIRONMENT.md).
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        **(env or {}),
    }
    command = [
        str(BIN / "mlflow"),
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
        *(["--app-name", app_name] if app_name else []),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=server_env, cwd=root)
    try:
        wait_http(f"{uri}/health", process, log, seconds=180, ok={200})  # returns once up; generous under load
        yield uri
    finally:
        stop(process)
