"""What is inside the built images, and how each starts.

Every image is run as the chart runs it (uid 10001, read-only root filesystem, a tmpfs
``/tmp``, all capabilities dropped); every shared library the locked wheels link against
resolves; nothing of the build machine (its CA bundle, build-only helpers, build secrets)
reaches a final image; the serving image holds no training or pipeline stack and stays small;
the MLflow image starts with its default command and stores artifacts in S3.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from churn.serving.local import free_port
from servers import s3_client

pytestmark = pytest.mark.images
Engine = Images = Any  # conftest.Engine, conftest.Images (tests are not a package)
ROOT = Path(__file__).resolve().parents[2]
#: The serving image's size aim (issue "Containers for real"): the training stack is 1.5 GB.
SERVING_MAX_BYTES = 700 * 10**6
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _in_image(engine: Engine, image: str, script: str, *, secure: bool = True) -> str:
    flags = list(engine.SECURE) if secure else []
    return str(engine.run("run", "--rm", *flags, "--entrypoint", "sh", image, "-c", script).stdout)


def test_component_image_runs_as_the_chart_runs_it_and_imports_every_family(engine: Engine, images: Images) -> None:
    help_text = engine.run("run", "--rm", *engine.SECURE, images.churn, "churn", "--help").stdout
    assert "pipeline" in help_text and "serve" in help_text
    script = (
        "import os, kfp, evidently, mlflow, sklearn.ensemble, sklearn.linear_model, xgboost, lightgbm; "
        "import churn.stages.training; print(os.getuid(), lightgbm.__version__, xgboost.__version__)"
    )
    uid, *versions = engine.run("run", "--rm", *engine.SECURE, images.churn, "python", "-c", script).stdout.split()
    assert uid == "10001"
    import lightgbm
    import xgboost

    assert versions == [lightgbm.__version__, xgboost.__version__], "the image must hold the locked versions"


#: In the component image: a LocalCluster as a Dask-engine task starts one, and what its workers are.
DASK_WORKERS_SCRIPT = """
import json, os, sys
from churn.config import DaskSettings
from churn.engine.dask.cluster import dask_client

def probe():
    return [os.getppid(), "churn.engine.dask.stages" in sys.modules]

if __name__ == "__main__":
    with dask_client(DaskSettings(n_workers=2, memory_limit="512MiB")) as client:
        print(json.dumps({"caller": os.getpid(), "workers": sorted(client.run(probe).values())}))
"""


def test_dask_workers_are_forked_from_the_fork_server_under_the_charts_security_context(
    engine: Engine, images: Images
) -> None:
    """Read-only root, uid 10001, no capabilities: the fork server's socket and the workers' space live in /tmp."""
    done = engine.run("run", "--rm", *engine.SECURE, images.churn, "python", "-c", DASK_WORKERS_SCRIPT)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    parents = {parent for parent, _ in seen["workers"]}
    assert len(seen["workers"]) == 2 and len(parents) == 1 and parents != {seen["caller"]}
    assert all(preloaded for _, preloaded in seen["workers"]), "the workers did not come from the preloaded fork server"


def test_serving_image_holds_serving_only_and_loads_every_family(engine: Engine, images: Images) -> None:
    script = (
        "import importlib.util as u, churn.serving.predictor, churn.serving.transformer, "
        "mlflow.sklearn, mlflow.xgboost, mlflow.lightgbm, sklearn.ensemble, xgboost, lightgbm; "
        "print([m for m in ('kfp', 'evidently', 'pandera', 'sqlalchemy', 'flask') if u.find_spec(m)])"
    )
    done = engine.run("run", "--rm", *engine.SECURE, "--entrypoint", "python", images.serving, "-c", script)
    assert done.stdout.strip() == "[]", f"training/pipeline packages in the serving image: {done.stdout}"
    size = int(engine.inspect(images.serving)["Size"])  # type: ignore[call-overload]
    churn_size = int(engine.inspect(images.churn)["Size"])  # type: ignore[call-overload]
    print(f"serving image {size / 1e6:.0f} MB, component image {churn_size / 1e6:.0f} MB")
    assert size <= SERVING_MAX_BYTES, f"serving image is {size / 1e6:.0f} MB (aim <= 700 MB)"
    assert size < churn_size


@pytest.mark.parametrize("which", ["churn", "serving", "mlflow"])
def test_every_shared_library_in_the_venv_resolves(engine: Engine, images: Images, which: str) -> None:
    """ldd over every .so in /opt/venv: a wheel's library the base image lacks is 'not found' (libgomp was).

    Libraries a wheel vendors (auditwheel's ``<pkg>.libs/``) find each other at run time
    through the RPATH of the extension that loads them, not their own: ldd runs with the
    library's own folder on the search path, as that loader sees it.
    """
    image = getattr(images, which)
    script = (
        "find /opt/venv -name '*.so*' -type f | while read -r f; do "
        'LD_LIBRARY_PATH="$(dirname "$f")" ldd "$f" 2>&1 | sed -n "s|^|$f: |; /not found/p"; done; '
        "echo checked $(find /opt/venv -name '*.so*' -type f | wc -l)"
    )
    out = _in_image(engine, image, script, secure=False)
    missing = [line for line in out.splitlines() if "not found" in line]
    assert not missing, "shared libraries missing:\n" + "\n".join(missing[:40])
    assert int(out.split("checked")[-1]) > 20  # the scan saw the wheels' libraries


def _machine_only_certificates() -> list[str]:
    """Certificates in this machine's CA bundle that Debian's ca-certificates does not ship.

    On networks that re-sign TLS (these build machines), the re-signing CA is one of them:
    the build needs it (as a build secret) and no image may keep it.
    """
    bundle = HOST_CA_BUNDLE.read_text() if HOST_CA_BUNDLE.exists() else ""
    certs = re.findall(r"-----BEGIN CERTIFICATE-----\n(.*?)-----END CERTIFICATE-----", bundle, re.DOTALL)
    shipped = Path("/usr/share/ca-certificates")
    known = {
        "".join(p.read_text().split("-----")[2].split()) for p in shipped.rglob("*.crt") if "-----" in p.read_text()
    }
    return ["".join(c.split()) for c in certs if "".join(c.split()) not in known]


@pytest.mark.parametrize("which", ["churn", "serving", "mlflow"])
def test_each_image_runs_with_mlflow_telemetry_off_by_default(engine: Engine, images: Images, which: str) -> None:
    image = getattr(images, which)
    env = dict(item.split("=", 1) for item in engine.inspect(image)["Config"]["Env"])  # type: ignore[index]
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true" and env["DO_NOT_TRACK"] == "true", which
    # MLflow itself, inside the image, agrees (CI variables are not passed into the container).
    script = "from mlflow.telemetry.utils import is_telemetry_disabled as off; print(off())"
    done = engine.run("run", "--rm", *engine.SECURE, "--entrypoint", "python", image, "-c", script)
    assert done.stdout.strip() == "True", which


@pytest.mark.parametrize("which", ["churn", "serving", "mlflow"])
def test_nothing_of_the_build_machine_is_in_a_final_image(engine: Engine, images: Images, which: str) -> None:
    image = getattr(images, which)
    config = engine.inspect(image)["Config"]
    env = " ".join(config.get("Env") or [])  # type: ignore[union-attr]
    for name in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "ca_bundle"):
        assert name not in env, f"{which}: {name} in the image's environment"
    history = engine.run("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    assert "BEGIN CERTIFICATE" not in history
    listing = _in_image(engine, image, "ls -A /run/secrets 2>/dev/null; command -v with-build-ca; true", secure=False)
    assert listing.strip() == "", f"{which}: build-only files in the final image: {listing}"
    extra = _machine_only_certificates()
    if not extra:
        return  # this machine's bundle is Debian's own: nothing machine-specific to look for
    needle = extra[0][100:160]  # a line's worth of the machine's own CA, as it would appear in any PEM copy
    roots = "/bin /etc /home /lib /opt /root /sbin /srv /usr /var"  # the image's files, not /proc or /sys
    found = _in_image(engine, image, f"grep -rlF -- '{needle[:64]}' {roots} 2>/dev/null; true", secure=False)
    assert found.strip() == "", f"{which}: this machine's CA certificate is in the image: {found}"


def test_mlflow_image_starts_with_its_default_command(engine: Engine, images: Images) -> None:
    port = free_port()
    name = f"churn-test-mlflow-default-{port}"
    engine.run("run", "-d", "--name", name, "--user", "10001:10001", "-p", f"127.0.0.1:{port}:5000", images.mlflow)
    try:
        engine.wait_ready(name, f"http://127.0.0.1:{port}/health", 90)
    finally:
        engine.run("rm", "-f", "-t", "2", name, check=False)


def test_the_mlflow_image_runs_the_charts_authenticated_server(
    engine: Engine, images: Images, helm: str, tmp_path: Path
) -> None:
    """The image with the chart's own auth settings and generated admin: churn-auth loads, anonymous is refused."""
    rendered = subprocess.run(
        [helm, "template", "churn", str(ROOT / "helm" / "churn-mlops"), "--show-only", "templates/secrets.yaml"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    secrets = {d["metadata"]["name"]: d["stringData"] for d in yaml.safe_load_all(rendered) if d}
    config = tmp_path / "auth.ini"
    config.write_text(secrets["churn-mlflow-auth-config"]["auth.ini"])
    config.chmod(0o644)
    admin = secrets["churn-mlflow-admin"]
    data = tmp_path / "data"  # the chart's volume at /data: runs and users side by side
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    port = free_port()
    name = f"churn-test-mlflow-auth-{port}"
    env = [f"--env={k}={v}" for k, v in {**admin, "MLFLOW_AUTH_CONFIG_PATH": "/etc/mlflow-auth/auth.ini"}.items()]
    engine.run(
        "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:5000", *engine.SECURE, "-v", f"{data}:/data",
        "-v", f"{config}:/etc/mlflow-auth/auth.ini:ro", *env, images.mlflow,
        "--host", "0.0.0.0", "--port", "5000", "--workers", "1", "--backend-store-uri", "sqlite:////data/mlflow.db",
        "--app-name", "churn-auth",
    )  # fmt: skip
    try:
        uri = f"http://127.0.0.1:{port}"
        engine.wait_ready(name, f"{uri}/health", 120)
        search = f"{uri}/api/2.0/mlflow/experiments/search?max_results=1"
        assert requests.get(search, timeout=10).status_code == 401
        as_admin = (admin["MLFLOW_AUTH_ADMIN_USERNAME"], admin["MLFLOW_AUTH_ADMIN_PASSWORD"])
        assert requests.get(search, auth=as_admin, timeout=10).status_code == 200
        # The users Job's command, from here, with the chart's generated users.
        env_setup = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CHURN_"))}
        env_setup |= {"CHURN_MLFLOW__TRACKING_URI": uri, "MLFLOW_TRACKING_USERNAME": as_admin[0]}
        env_setup |= {"MLFLOW_TRACKING_PASSWORD": as_admin[1]}
        for role in ("pipeline", "gate", "reader"):
            user = secrets[f"churn-mlflow-{role}"]
            env_setup[f"CHURN_MLFLOW_AUTH_{role.upper()}_USERNAME"] = user["MLFLOW_TRACKING_USERNAME"]
            env_setup[f"CHURN_MLFLOW_AUTH_{role.upper()}_PASSWORD"] = user["MLFLOW_TRACKING_PASSWORD"]
        done = subprocess.run(
            [str(Path(sys.executable).parent / "churn"), "mlflow-auth", "setup"],
            env=env_setup,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        reader = secrets["churn-mlflow-reader"]
        as_reader = (reader["MLFLOW_TRACKING_USERNAME"], reader["MLFLOW_TRACKING_PASSWORD"])
        experiment = requests.get(
            f"{uri}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": "churn"},
            auth=as_reader,
            timeout=10,
        )
        assert experiment.status_code == 200
        created = requests.post(
            f"{uri}/api/2.0/mlflow/runs/create",
            json={"experiment_id": experiment.json()["experiment"]["experiment_id"]},
            auth=as_reader,
            timeout=10,
        )
        assert created.status_code == 403
        assert {"mlflow.db", "basic_auth.db"} <= {p.name for p in data.iterdir()}  # users beside the runs
    finally:
        engine.run("rm", "-f", "-t", "2", name, check=False)


def test_a_model_logged_through_the_mlflow_image_lands_in_s3(
    mlflow_container: str, s3_endpoint: str, s3_bucket: str, aws_env: dict[str, str], tmp_path: Path
) -> None:
    # The client (this test) writes artifacts straight to S3, as the pipeline's tasks do.
    script = (
        "import mlflow, sklearn.linear_model as lm, numpy as np\n"
        f"mlflow.set_tracking_uri('{mlflow_container}')\n"
        "mlflow.set_experiment('image-test')\n"
        "with mlflow.start_run() as run:\n"
        "    m = lm.LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1])\n"
        "    info = mlflow.sklearn.log_model(m, name='model', registered_model_name='image-test-model')\n"
        "print(run.info.run_id, info.registered_model_version)\n"
    )
    # No MLFLOW_* from this process: mlflow.set_tracking_uri/set_registry_uri in earlier tests
    # export theirs, and a registry URI left over would send the registration elsewhere.
    client_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    client_env |= {**aws_env, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    done = subprocess.run(
        [sys.executable, "-c", script], env=client_env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_id, version = done.stdout.split()[-2:]
    # This model version's own files are in the bucket, where the server says they are.
    answer = requests.get(
        f"{mlflow_container}/api/2.0/mlflow/model-versions/get",
        params={"name": "image-test-model", "version": version},
        timeout=10,
    )
    assert answer.status_code == 200, (answer.status_code, answer.text, done.stdout, done.stderr[-2000:])
    assert answer.json()["model_version"]["run_id"] == run_id
    uri = requests.get(
        f"{mlflow_container}/api/2.0/mlflow/model-versions/get-download-uri",
        params={"name": "image-test-model", "version": version},
        timeout=10,
    ).json()["artifact_uri"]
    assert uri.startswith(f"s3://{s3_bucket}/"), uri
    prefix = uri.removeprefix(f"s3://{s3_bucket}/").rstrip("/") + "/"
    listed = s3_client(s3_endpoint).list_objects_v2(Bucket=s3_bucket, Prefix=prefix)
    assert any(o["Key"].endswith("/MLmodel") for o in listed.get("Contents", [])), (prefix, listed)


@pytest.mark.parametrize(("which", "name", "inside"), [
    ("churn", "churn", "/opt/churn/sbom.cdx.json"),
    ("serving", "churn-serving", "/opt/churn/sbom.cdx.json"),
    ("mlflow", "mlflow", "/opt/mlflow/sbom.cdx.json"),
])  # fmt: skip
def test_every_image_has_a_cyclonedx_sbom_of_its_venv(
    engine: Engine, images: Images, which: str, name: str, inside: str
) -> None:
    """Written at build over the image's venv, shipped in the image and copied beside it (dist/sbom)."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    beside = root / "dist" / "sbom" / f"{name}-{version}.cdx.json"
    sbom = json.loads(beside.read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    components = {c["name"].lower(): c["version"] for c in sbom["components"]}
    image = getattr(images, which)
    listed = _in_image(engine, image, "ls /opt/venv/lib/python3.11/site-packages | grep -c 'dist-info$'", secure=False)
    assert len(components) >= int(listed.strip()) - 1  # every installed distribution (the project may be one)
    locked = {p["name"]: p["version"] for p in tomllib.loads((root / "uv.lock").read_text())["package"]}
    for package in {"churn": ("kserve", "kfp", "lightgbm"), "serving": ("kserve", "lightgbm"), "mlflow": ("mlflow",)}[
        which
    ]:
        assert components[package] == locked[package], package
    assert (
        _in_image(engine, getattr(images, which), f"cat {inside}", secure=False).strip() == beside.read_text().strip()
    )
