"""The Dockerfiles and the build script, checked statically (fast, no engine needed).

tests/images builds and runs the images; what is checked here is what makes a built image
right before any build: every file the build copies exists, dependencies come from the
committed uv.lock (frozen) with the same uv as local runs, the runtime user is not root, the
build machine's CA bundle only ever enters as a build secret, no secret is baked in, no CUDA
wheel is in the locked runtime set, the serving group holds no training or pipeline stack,
and every entry point the images run exists in the package.
"""

from __future__ import annotations

import importlib.util
import os
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
    assert re.search(r"uv (sync|export) --frozen", text), "dependencies must come from uv.lock, frozen"
    bootstrap_uv = re.search(r'UV_VERSION="([^"]+)"', (ROOT / "scripts/bootstrap.sh").read_text())
    assert bootstrap_uv and f"uv=={bootstrap_uv.group(1)}" in text, "the image uses the uv local runs use"
    final = _final_stage(text)
    user = re.findall(r"^USER (\S+)", final, re.MULTILINE)
    assert user and user[-1] not in ("root", "0"), "the runtime stage must not run as root"
    assert "--no-dev" in text or "--only-group" in text, "no test tooling in the image"
    assert not re.search(r"(?i)(password|secret|token|access_key)\s*=", text), "no secrets in images"
    # The build machine's CA bundle (needed behind TLS-re-signing networks) enters only as a
    # build secret, in build stages, through images/with-build-ca.sh.
    for run in re.findall(r"^RUN .*(?:uv|pip) (?:sync|install|export).*$", text, re.MULTILINE):
        assert "--mount=type=secret,id=ca_bundle with-build-ca" in run, f"{name}: {run}"
    assert "with-build-ca" not in final and "SSL_CERT_FILE" not in final and "ca_bundle" not in final
    assert re.search(r"apt-get install .*libgomp1", final) or name == "mlflow", "LightGBM needs libgomp1"
    for source in re.findall(r"^COPY (?!--from)(\S+(?: \S+)*) \S+$", text, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), f"{name}: COPY source {path} is missing"


UV_CACHE_MOUNT = "--mount=type=cache,target=/root/.cache/uv"


def _instructions(text: str) -> list[str]:
    """A Dockerfile's instructions, comments dropped and continuation lines joined."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.startswith("#")))
    return [line for line in joined.splitlines() if line.strip()]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_uv_keeps_its_cache_out_of_every_layer(name: str) -> None:
    """uv's downloads and unpacked wheels (about 1 GB per image) sit in a cache mount the three
    builds share, never in a layer: every build-stage step that runs uv mounts it, and copies
    out of it (UV_LINK_MODE=copy) rather than hard-linking into a folder the image will not have."""
    text = DOCKERFILES[name].read_text()
    build, final = text[: text.rindex("\nFROM ")], _final_stage(text)
    steps = [step for step in _instructions(build) if step.startswith("RUN") and re.search(r"\buv |write-sbom", step)]
    assert steps, f"{name}: no build step runs uv"
    for step in steps:
        assert UV_CACHE_MOUNT in step, f"{name}: {step[:120]}"
    assert "UV_LINK_MODE=copy" in build and "type=cache" not in final


def test_the_three_build_stages_share_their_first_layers() -> None:
    """Up to uv's install the build stages are the same instructions: a build of all three makes those layers once."""
    prefixes = set()
    for text in (path.read_text() for path in DOCKERFILES.values()):
        steps = _instructions(text[text.index("\nFROM ") :])
        install_uv = next(i for i, step in enumerate(steps) if "pip install --no-cache-dir uv==" in step)
        prefixes.add(tuple(steps[: install_uv + 1]))
    assert len(prefixes) == 1, prefixes


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_stage_of_every_image_runs_with_telemetry_off(name: str) -> None:
    """Build stages and the final image: nothing of ours sends MLflow usage data unless switched on."""
    stages = DOCKERFILES[name].read_text().split("\nFROM ")[1:]
    assert len(stages) >= 2
    for stage in stages:
        env = " ".join(re.findall(r"^ENV (.*)$", stage, re.MULTILINE))
        assert "MLFLOW_DISABLE_TELEMETRY=true" in env and "DO_NOT_TRACK=true" in env, f"{name}: {stage[:40]}"


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


def test_serving_group_holds_no_training_or_pipeline_stack() -> None:
    exported = subprocess.run(
        [str(UV), "export", "--frozen", "--no-hashes", "--no-emit-project", "--only-group", "serving"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = set(re.findall(r"^([a-z0-9][a-z0-9._-]*)==", exported, re.MULTILINE))
    assert {"kserve", "mlflow-skinny", "xgboost-cpu", "lightgbm", "scikit-learn"} <= names
    assert not names & {"kfp", "kfp-kubernetes", "evidently", "pandera", "mlflow", "sqlalchemy", "flask"}, names
    assert "--only-group serving" in DOCKERFILES["serving"].read_text()


def test_a_docker_client_without_a_daemon_is_never_picked(tmp_path: Path) -> None:
    """As on these machines: `docker` is on PATH but no daemon answers, so podman is chosen."""
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CONTAINER_ENGINE", "CONTAINERS_CONF")}
    env["PATH"] = f"{tmp_path}:{env['PATH']}"
    done = subprocess.run(
        ["bash", "-c", 'source scripts/container_env.sh && echo "$CONTAINER_ENGINE $CONTAINERS_CONF"'],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,  # installs podman from Debian's packages on a machine that lacks it
    )
    assert done.returncode == 0, done.stderr
    engine, conf = done.stdout.split()
    assert engine == "podman"
    assert 'runtime = "runc"' in Path(conf).read_text()


def test_the_lock_pins_hashes_and_matches_the_project() -> None:
    """Every locked distribution carries its hash, and the lock is current (what `--frozen` builds trust)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    artifacts = 0
    for package in lock["package"]:
        if package.get("source", {}).get("editable") or package.get("source", {}).get("virtual"):
            continue  # the project itself
        for artifact in [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]:
            artifacts += 1
            assert str(artifact.get("hash", "")).startswith("sha256:"), f"{package['name']}: {artifact}"
    assert artifacts > 200
    checked = subprocess.run([str(UV), "lock", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
