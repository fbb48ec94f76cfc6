"""Real Prometheus binaries and servers for the tests and the rollout benchmark (nothing mocked).

The binaries are Debian's ``prometheus`` and ``prometheus-pushgateway`` packages, installed by
``scripts/install_prometheus.sh`` when missing (a fresh CI machine); servers run on
127.0.0.1 with temporary storage and are always stopped.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BINARIES = ("promtool", "prometheus", "prometheus-pushgateway")


def prometheus_binaries() -> dict[str, str]:
    """Paths of promtool, prometheus and prometheus-pushgateway (installed now if missing; fails, never skips)."""
    script = ROOT / "scripts" / "install_prometheus.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        pytest.fail(f"{script} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    paths = {name: shutil.which(name) for name in BINARIES}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        pytest.fail(f"{script} succeeded but {', '.join(missing)} is not on PATH")
    return {name: str(path) for name, path in paths.items()}


@contextmanager
def server(command: list[str], log: Path, ready_url: str) -> Iterator[None]:
    """Run a server until the block ends; wait until ``ready_url`` answers 200 first (fail with its log)."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not ready(ready_url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{command[0]} not ready at {ready_url}:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        process.kill()  # no-op once it has exited
        process.wait()


def ready(url: str) -> bool:
    """Whether ``url`` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
