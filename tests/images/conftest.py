"""The project's images, built by its own script and run by a real container engine.

``images`` builds all three with scripts/build_images.sh once per session (podman/buildah
here; layers cached between runs on the same machine, a fresh machine builds from scratch)
and hands the tests their tags. ``engine`` runs the engine with the settings that script
chose, so a test runs exactly what a user's ``make images`` built.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from churn.serving.local import free_port
from image_build import BACKGROUND, REGISTRY, ImageBuild

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@dataclass(frozen=True)
class Engine:
    """A container engine that answers (podman here), with the environment it needs."""

    command: str
    env: dict[str, str]
    #: The chart's securityContext as `run` flags: uid 10001, read-only root, a tmpfs /tmp, no privileges.
    SECURE: ClassVar[tuple[str, ...]] = (
        *("--user", "10001:10001", "--read-only", "--tmpfs", "/tmp:rw,size=512m"),
        *("--cap-drop", "ALL", "--security-opt", "no-new-privileges"),
    )

    def run(
        self, *args: str, check: bool = True, timeout: float = 600, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.command, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            pytest.fail(f"{self.command} {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}")
        return done

    def inspect(self, image: str) -> dict[str, object]:
        return dict(json.loads(self.run("image", "inspect", image).stdout)[0])

    def wait_ready(self, container: str, url: str, seconds: float) -> float:
        """Seconds until ``url`` answers 200; fails with the container's log if it exits or times out."""
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            state = json.loads(self.run("inspect", container).stdout)[0]["State"]
            if not state["Running"]:
                pytest.fail(f"{container} exited {state['ExitCode']}:\n{self.logs(container)}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - start
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        pytest.fail(f"{url} not ready after {seconds} s:\n{self.logs(container)}")

    def logs(self, container: str) -> str:
        done = self.run("logs", container, check=False)
        return (done.stdout + done.stderr)[-5000:]


@dataclass(frozen=True)
class Images:
    """Tags of the images scripts/build_images.sh built, and what it printed."""

    churn: str
    serving: str
    mlflow: str
    build_log: str

    def all(self) -> Sequence[str]:
        return (self.churn, self.serving, self.mlflow)


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The engine scripts/container_env.sh picks (installing podman when nothing works)."""
    probe = subprocess.run(
        ["bash", "-c", "source scripts/container_env.sh >&2 && env -0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    env = dict(item.split("=", 1) for item in probe.stdout.split("\0") if "=" in item)
    return Engine(env["CONTAINER_ENGINE"], env)


@pytest.fixture(scope="session")
def images(engine: Engine) -> Images:
    """Build every image with the project's own script (what `make images` runs).

    CHURN_TEST_REUSE_IMAGES=1 skips the build and uses the images already tagged (a
    development shortcut while iterating on tests; CI always builds).
    """
    tags = [f"{REGISTRY}/{name}:{VERSION}" for name in ("churn", "churn-serving", "mlflow")]
    if os.environ.get("CHURN_TEST_REUSE_IMAGES") == "1":
        for tag in tags:
            engine.run("image", "exists", tag)
        return Images(*tags, build_log="(reused)")
    # Started when collection ended (tests/conftest.py; by the xdist controller when the run has workers),
    # so it ran beside the other tests; else now.
    build = BACKGROUND.pop("build", None) or ImageBuild.started_elsewhere() or ImageBuild.start()
    code, text = build.wait()
    print(f"images built in {time.time() - build.started:.0f} s (since the build started)")
    assert code == 0, f"scripts/build_images.sh failed:\n{text[-6000:]}"
    return Images(
        f"{REGISTRY}/churn:{VERSION}", f"{REGISTRY}/churn-serving:{VERSION}", f"{REGISTRY}/mlflow:{VERSION}", text
    )


def rootless_run_args() -> list[str]:
    """The chart's securityContext as `run` flags: uid 10001, read-only root, a tmpfs /tmp, no privileges."""
    return [
        "--user",
        "10001:10001",
        "--read-only",
        "--tmpfs",
        "/tmp:rw,size=512m",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
    ]


@pytest.fixture(scope="session")
def mlflow_container(
    engine: Engine, images: Images, s3_endpoint: str, s3_bucket: str, aws_env: dict[str, str]
) -> Iterator[str]:
    """The MLflow image serving on the host network, artifacts in ``s3_endpoint``; yields its URI.

    Host networking lets it reach the S3 endpoint on loopback, and the pipeline's task
    containers (also on the host network) and this process reach it the same way.
    """
    port = free_port()
    name = f"churn-test-mlflow-{port}"
    env = [f"--env={k}={v}" for k, v in {**aws_env, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}.items()]
    engine.run(
        "run", "-d", "--name", name, "--network", "host", *engine.SECURE, *env, images.mlflow,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", "sqlite:////tmp/mlflow.db", "--default-artifact-root", f"s3://{s3_bucket}/",
    )  # fmt: skip
    try:
        uri = f"http://127.0.0.1:{port}"
        engine.wait_ready(name, f"{uri}/health", 120)
        yield uri
    finally:
        engine.run("rm", "-f", "-t", "2", name, check=False)
