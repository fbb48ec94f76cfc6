"""``churn serve``: the command a user starts on a laptop, in each serving mode, as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from serving_helpers import NAME, records

from churn.serving.local import free_port

pytestmark = pytest.mark.integration


def _serve(served_champion: Any, tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], dict[str, int]]:
    ports = {name: free_port() for name in ("transformer_http", "transformer_grpc", "predictor_http", "predictor_grpc")}
    env = {
        **os.environ,
        "CHURN_DATA_DIR": str(tmp_path / "data"),
        "CHURN_MLFLOW__TRACKING_URI": served_champion.tracking_uri,
        **{f"CHURN_SERVING__{name.upper()}_PORT": str(port) for name, port in ports.items()},
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "churn", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return process, ports


def test_churn_serve_single_mode_starts_one_server_that_answers_and_stops_on_sigterm(
    served_champion: Any, tmp_path: Path
) -> None:
    process, ports = _serve(served_champion, tmp_path, "--mode", "single")
    try:
        assert process.stdout is not None
        banner = ""
        deadline = time.monotonic() + 180
        while "metrics" not in banner and time.monotonic() < deadline and process.poll() is None:
            banner += process.stdout.readline()
        assert "single pass" in banner and "predictor" not in banner, banner
        url = f"http://127.0.0.1:{ports['transformer_http']}/v1/models/{NAME}:predict"
        answer = requests.post(url, json={"instances": records(served_champion.rows.head(3))}, timeout=30).json()
        assert [set(p) for p in answer["predictions"]] == [{"churn_probability", "churn_label", "customer_id"}] * 3
        # No predictor was started: its ports stay free.
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{ports['predictor_http']}/v2/health/ready", timeout=2)
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert not list((tmp_path / "data" / "serving").glob("predictor.log"))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_an_unknown_mode_is_refused_before_anything_starts(served_champion: Any, tmp_path: Path) -> None:
    process, _ = _serve(served_champion, tmp_path, "--mode", "sidecar")
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "--mode must be one of transformer, single, not 'sidecar'" in output
    assert "Traceback" not in output and not (tmp_path / "data" / "serving").exists()
