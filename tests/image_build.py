"""The images' build, started in the background as soon as a run is known to need it.

Building the three images (and the base stand-in on a fresh machine) takes minutes of mostly
one core, and the images' tests run last: started when collection ends, the build runs beside
the unit, deploy, component and integration tests on the machine's other core, and the
``images`` fixture waits for it. The build is exactly ``scripts/build_images.sh`` either way.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = "ghcr.io/churn-mlops"
IMAGE_NAMES = ("churn", "churn-serving", "mlflow")


@dataclass
class ImageBuild:
    """One run of scripts/build_images.sh, its log in a file of its own."""

    process: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)
    _out: IO[bytes] | None = None

    @classmethod
    def start(cls) -> ImageBuild:
        log = Path(tempfile.mkdtemp(prefix="churn-images-")) / "build.log"
        out = log.open("wb")
        env = {**os.environ, "CHURN_IMAGE_REGISTRY": REGISTRY, "IMAGES": " ".join(IMAGE_NAMES)}
        process = subprocess.Popen(
            ["bash", "scripts/build_images.sh"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        return cls(process, log, _out=out)

    def wait(self, timeout: float = 3600) -> tuple[int, str]:
        """The build's exit code and log, once it has finished."""
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            if self._out is not None:
                self._out.close()
        return code, self.log.read_text(errors="replace")


BACKGROUND: dict[str, ImageBuild] = {}
"""The build started at the end of collection, if any (key ``build``)."""


def wanted(nodeids: list[str]) -> bool:
    """Whether a run of these tests builds the images (CHURN_TEST_REUSE_IMAGES=1 reuses them)."""
    return os.environ.get("CHURN_TEST_REUSE_IMAGES") != "1" and any(n.startswith("tests/images/") for n in nodeids)
