"""The Dockerfiles, checked as far as a machine without a container engine can.

No image is built here (no Docker engine on these machines); what is checked is what
makes a built image right: every file the build copies exists, dependencies come from
the committed uv.lock (frozen) with the same uv as local runs, the runtime user is not
root, no secret is baked in, no CUDA wheel is in the locked runtime set, and every
entry point the images run exists in the package.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from components._image import IMAGE

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {name: ROOT / "images" / name / "Dockerfile" for name in ("churn", "serving", "mlflow")}
UV = shutil.which("uv") or str(ROOT / ".tools" / "uv" / "bin" / "uv")  # as scripts/bootstrap.sh finds it


def _final_stage(text: str) -> str:
    return text[text.rindex("\nFROM ") :]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_builds_from_the_lock_as_non_root(name: str) -> None:
    text = DOCKERFILES[name].read_text()
    if name == "serving":  # the component image plus an entry point: same environment, same lock
        assert re.search(r"^ARG BASE_IMAGE=ghcr.io/churn-mlops/churn:", text, re.MULTILINE)
        assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.MULTILINE)
        assert re.findall(r"^USER (\S+)", text, re.MULTILINE)[-1] == "10001"
        return
    assert re.search(r"uv (sync|export) --frozen", text), "dependencies must come from uv.lock, frozen"
    bootstrap_uv = re.search(r'UV_VERSION="([^"]+)"', (ROOT / "scripts/bootstrap.sh").read_text())
    assert bootstrap_uv and f"uv=={bootstrap_uv.group(1)}" in text, "the image uses the uv local runs use"
    final = _final_stage(text)
    user = re.findall(r"^USER (\S+)", final, re.MULTILINE)
    assert user and user[-1] not in ("root", "0"), "the runtime stage must not run as root"
    assert "--no-dev" in text or "--only-group" in text, "no test tooling in the image"
    assert not re.search(r"(?i)(password|secret|token|access_key)\s*=", text), "no secrets in images"
    for source in re.findall(r"^COPY (?!--from)(\S+(?: \S+)*) \S+$", text, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), f"{name}: COPY source {path} is missing"


def test_entry_points_exist() -> None:
    serving = DOCKERFILES["serving"].read_text()
    modules = re.findall(r"churn\.serving\.\w+", serving)
    assert {"churn.serving.predictor", "churn.serving.transformer"} <= set(modules)
    for module in set(modules):
        assert importlib.util.find_spec(module) is not None, module
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["churn"] == "churn.cli:main"
    assert "mlflow" in " ".join(project["dependency-groups"]["mlflow-server"])
    assert 'ENTRYPOINT ["mlflow", "server"]' in DOCKERFILES["mlflow"].read_text()


def test_component_image_is_built_by_a_dockerfile() -> None:
    """components/_image.py names ghcr.io/churn-mlops/churn:<version>; scripts/build_images.sh builds that name."""
    build = (ROOT / "scripts/build_images.sh").read_text()
    name = IMAGE.rsplit("/", 1)[1].split(":")[0]
    assert f"[{name}]=images/churn/Dockerfile" in build
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert IMAGE.endswith(f":{version}")


def test_locked_runtime_set_has_no_cuda_wheels() -> None:
    exported = subprocess.run(
        [str(UV), "export", "--frozen", "--no-hashes", "--no-dev", "--no-emit-project"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "mlflow==" in exported and "kserve==" in exported
    assert not re.search(r"^nvidia-|^torch==", exported, re.MULTILINE)
