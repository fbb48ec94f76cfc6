"""Real servers the tests start on loopback, shared by every test level (tests are not a package;
pytest puts tests/ on sys.path through tests/conftest.py)."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

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
