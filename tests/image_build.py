"""The images' build, started in the background as soon as a run is known to need it.

Building the three images (and the base stand-in on a fresh machine) takes minutes of mostly
one core, and the images' tests run last: started when collection ends, the build runs beside
the unit, deploy, component and integration tests, and the ``images`` fixture waits for it.
The build is exactly ``scripts/build_images.sh`` either way.

`make test` runs the suite on pytest-xdist workers. The controller process starts the one
build (it sees every worker's collection first) in a folder it named before the workers
started (``BUILD_DIR_VARIABLE``, inherited by them); the build writes its log and, when it
ends, its exit code there, and a worker's ``images`` fixture waits for that file. So the
images are built once per run however many workers test them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = "ghcr.io/churn-mlops"
IMAGE_NAMES = ("churn", "churn-serving", "mlflow")
BUILD_DIR_VARIABLE = "CHURN_TEST_IMAGE_BUILD_DIR"
"""The folder of this run's build, set by the xdist controller for its workers."""


# Test containers a killed run left behind (exited or never started, named churn-test-*) go first: each holds its
# image, which the build could otherwise not remove when it replaces it.
REMOVE_EXITED_TEST_CONTAINERS = (
    "( source scripts/container_env.sh && $CONTAINER_ENGINE ps -a -q --filter name=^churn-test-"
    " --filter status=exited --filter status=created | xargs -r $CONTAINER_ENGINE rm -f ) >/dev/null 2>&1"
)
WRITE_RC = 'echo $? >"$1/rc.tmp"; mv "$1/rc.tmp" "$1/rc"'


@dataclass
class ImageBuild:
    """One run of scripts/build_images.sh: its folder holds ``started``, ``build.log`` and, at the end, ``rc``."""

    directory: Path
    process: subprocess.Popen[bytes] | None = None
    """Set only in the process that started the build."""

    @property
    def log(self) -> Path:
        return self.directory / "build.log"

    @property
    def started(self) -> float:
        """Wall-clock time the build started (``time.time()``)."""
        return float((self.directory / "started").read_text())

    @classmethod
    def start(cls, directory: Path | None = None) -> ImageBuild:
        """Start a build in ``directory`` (the run's shared folder) or a new temporary one."""
        directory = directory or Path(tempfile.mkdtemp(prefix="churn-images-"))
        directory.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CHURN_IMAGE_REGISTRY": REGISTRY, "IMAGES": " ".join(IMAGE_NAMES)}
        # The exit code goes to a file (written whole, then renamed) so that other processes can wait for it.
        script = f'{REMOVE_EXITED_TEST_CONTAINERS}; bash scripts/build_images.sh >"$1/build.log" 2>&1; {WRITE_RC}'
        (directory / "started").write_text(repr(time.time()))
        process = subprocess.Popen(
            ["bash", "-c", script, "build", str(directory)], cwd=ROOT, env=env, start_new_session=True
        )
        return cls(directory, process)

    @classmethod
    def started_elsewhere(cls) -> ImageBuild | None:
        """The build the xdist controller started for this run, if it started one."""
        shared = os.environ.get(BUILD_DIR_VARIABLE)
        if shared and (Path(shared) / "started").exists():
            return cls(Path(shared))
        return None

    def wait(self, timeout: float = 3600) -> tuple[int, str]:
        """The build's exit code and log, once it has finished."""
        deadline = time.monotonic() + timeout
        rc = self.directory / "rc"
        while not rc.exists():
            if self.process is not None and self.process.poll() is not None and not rc.exists():
                return self.process.returncode or 1, self._text() + "\n(the build's wrapper ended without a code)"
            if time.monotonic() > deadline:
                return 1, self._text() + f"\n(still building after {timeout:.0f} s)"
            time.sleep(1)
        return int(rc.read_text().strip() or 1), self._text()

    def stop(self) -> None:
        """End a build nobody waited for, with everything it started (podman included)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def _text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


BACKGROUND: dict[str, ImageBuild] = {}
"""The build this process started at the end of collection, if any (key ``build``)."""


def wanted(nodeids: list[str]) -> bool:
    """Whether a run of these tests builds the images (CHURN_TEST_REUSE_IMAGES=1 reuses them)."""
    return os.environ.get("CHURN_TEST_REUSE_IMAGES") != "1" and any(n.startswith("tests/images/") for n in nodeids)
