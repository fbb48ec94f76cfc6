"""A rollout on this machine, with real parts: model servers, Prometheus, V2 clients, the controller.

Shared by ``tests/integration/test_rollout.py`` and ``scripts/bench_rollout.py``. A stable
pair of model servers (predictor + transformer) serves the champion; each case starts a
canary pair serving another registered version, puts the weighted router
(:class:`churn.rollout.router.WeightedRouter`, the only stand-in: for Knative/Gateway
traffic splitting) in front of both, sends real V2 traffic (tritonclient over HTTP) through
it from background threads, and runs :func:`churn.rollout.controller.run_rollout` with
:func:`churn.rollout.analysis.analyse_step` asking a real Prometheus that scrapes all the
servers every second: the same PromQL a cluster runs.

The canaries are registered model versions: a retrained model (good) and the champion's
trained estimator wrapped by :mod:`rollout_faults` (errors on a segment, slow, constant),
which the servers import from this folder (``PYTHONPATH``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prometheus_helpers import server
from rollout_faults import Constant, RaisesOnSegment, Sleeps
from serving_helpers import NAME, records, triton_inputs

from churn.config import RolloutSettings
from churn.data import generate_customers
from churn.rollout.analysis import Prometheus, analyse_step
from churn.rollout.controller import run_rollout
from churn.rollout.decisions import RolloutResult
from churn.rollout.router import WeightedRouter
from churn.serving.local import LocalService, ServiceConfig, free_port
from churn.training import split_frame, train_family
from churn.training.models import ChurnModel

HERE = Path(__file__).resolve().parent
#: Rows per request: enough predictions in a few seconds for the probability histograms to be compared.
ROWS_PER_REQUEST = 16
#: The cases, in the order the test and the benchmark run them.
CASES = ("good", "errors", "slow", "constant")


def service_config(model_uri: str, tracking_uri: str, log_dir: Path) -> ServiceConfig:
    """A transformer-mode pair on free ports that can load the faulty models (this folder on PYTHONPATH)."""
    return ServiceConfig.on_free_ports(
        model_uri,
        tracking_uri=tracking_uri,
        mode="transformer",
        log_dir=log_dir,
        extra_env={"PYTHONPATH": str(HERE)},
    )


def scrape_targets(configs: list[ServiceConfig]) -> list[str]:
    """Every server's ``host:port`` for Prometheus (predictors too, as a cluster scrapes every pod)."""
    return [
        f"{config.host}:{port}"
        for config in configs
        for port in (config.predictor_http_port, config.transformer_http_port)
    ]


@contextmanager
def prometheus_server(binary: str, targets: list[str], workdir: Path) -> Iterator[str]:
    """A real Prometheus scraping ``targets`` every second; yields its URL."""
    address = f"127.0.0.1:{free_port()}"
    config = workdir / "prometheus-rollout.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [{"job_name": "churn-serving", "static_configs": [{"targets": targets}]}],
            }
        )
    )
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb-rollout'}",
        f"--web.listen-address={address}",
    ]
    with server(command, workdir / "prometheus-rollout.log", f"http://{address}/-/ready"):
        yield f"http://{address}"


def wait_until_scraped(prometheus_url: str, version: str, seconds: float = 30) -> None:
    """Wait until Prometheus holds ``version``'s series (its servers are up and were scraped)."""
    prometheus = Prometheus(prometheus_url)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if prometheus.query(f'churn_request_duration_seconds_count{{model_version="{version}"}}'):
            return
        time.sleep(0.3)
    raise AssertionError(f"Prometheus at {prometheus_url} did not scrape version {version} within {seconds} s")


# --------------------------------------------------------------------------- the canary versions


def segment_of(matrix: np.ndarray, share: float) -> tuple[int, float]:
    """A customer segment: the feature with the most distinct values, above its ``1 - share`` quantile."""
    column = int(np.argmax([len(np.unique(matrix[:, j])) for j in range(matrix.shape[1])]))
    return column, float(np.quantile(matrix[:, column], 1 - share))


def log_canaries(
    champion: ChurnModel, retrained: ChurnModel, rows: pd.DataFrame, slow_seconds: float
) -> dict[str, str]:
    """Register the four canaries as new versions of the model (MLflow is already connected); case -> version."""
    import mlflow

    from churn.registry.mlflow_registry import log_candidate, register_challenger

    matrix = champion.features.transform(rows)
    column, cut = segment_of(matrix, share=0.02)
    family, estimator = champion.family, champion.estimator
    faulty = {
        "errors": RaisesOnSegment(family, estimator, column, cut),
        "slow": Sleeps(family, estimator, slow_seconds),
        "constant": Constant(family, estimator, float(np.median(champion.predict_matrix(matrix)))),
    }
    models = {"good": retrained} | {
        case: ChurnModel("random_forest", champion.features, wrapper, champion.threshold, {"fault": case})
        for case, wrapper in faulty.items()
    }
    example = rows[matrix[:, column] <= cut].head(3)  # the example is scored when logged: keep it off the segment
    versions = {}
    for case in CASES:
        with mlflow.start_run(run_name=f"canary-{case}"):
            uri = log_candidate(models[case], example=example, metrics={}, tags={"rollout_case": case})
        versions[case] = register_challenger(uri, NAME, tags={"rollout_case": case})
    return versions


# --------------------------------------------------------------------------- traffic


@dataclass
class Traffic:
    """Real V2 clients (tritonclient, HTTP, binary tensors) sending batches to ``url`` from background threads."""

    url: str
    rows: list[dict[str, Any]]
    threads: int = 3
    statuses: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Traffic:
        for number in range(self.threads):
            worker = threading.Thread(target=self._send, args=(number,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> Counter[str]:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)
        return self.statuses

    def _send(self, number: int) -> None:
        import tritonclient.http as httpclient
        from tritonclient.utils import InferenceServerException

        client = httpclient.InferenceServerClient(url=self.url.removeprefix("http://"), network_timeout=30)
        rng = np.random.default_rng(number)
        while not self._stop.is_set():
            start = int(rng.integers(0, len(self.rows) - ROWS_PER_REQUEST))
            try:
                client.infer(NAME, triton_inputs(self.rows[start : start + ROWS_PER_REQUEST]))
                outcome = "ok"
            except InferenceServerException as exc:
                outcome = str(exc.status() or "error")
            with self._lock:
                self.statuses[outcome] += 1


def front_door_latency(url: str, rows: list[dict[str, Any]], requests: int = 60) -> tuple[float, float]:
    """Median and 95th percentile seconds of ``requests`` sequential batches to one front door."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    seconds = []
    for i in range(requests):
        start = (i * ROWS_PER_REQUEST) % (len(rows) - ROWS_PER_REQUEST)
        began = time.perf_counter()
        client.infer(NAME, triton_inputs(rows[start : start + ROWS_PER_REQUEST]))
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), float(np.quantile(seconds, 0.95))


# --------------------------------------------------------------------------- one rollout


@dataclass(frozen=True)
class CaseRun:
    """What one rollout did, how long it took and what the clients saw."""

    result: RolloutResult
    seconds: float
    statuses: Counter[str]


def roll_out(
    router: WeightedRouter, prometheus_url: str, settings: RolloutSettings, rows: list[dict[str, Any]]
) -> CaseRun:
    """Send traffic through ``router`` (stable and canary set) and run the controller, asking ``prometheus_url``."""
    traffic = Traffic(router.url, rows).start()
    try:
        analyse = functools.partial(analyse_step, Prometheus(prometheus_url, timeout=3), settings=settings)
        began = time.monotonic()
        result = run_rollout(router, analyse, settings, model_name=NAME)
        seconds = time.monotonic() - began
    finally:
        statuses = traffic.stop()
    return CaseRun(result, seconds, statuses)


def closed_prometheus_url() -> str:
    """A Prometheus URL where nothing listens (Prometheus down)."""
    return f"http://127.0.0.1:{free_port()}"


# --------------------------------------------------------------------------- the whole lab


@dataclass(frozen=True)
class Lab:
    """The stable pair, the canaries' configs and versions, Prometheus, and the rows the clients send."""

    stable: LocalService
    stable_version: str
    versions: dict[str, str]
    canaries: dict[str, LocalService]
    prometheus_url: str
    rows: list[dict[str, Any]]
    slow_seconds: float


def retrained_like(champion: ChurnModel) -> ChurnModel:
    """The good canary: the same recipe on another sample of customers, at the champion's decision threshold.

    A retrained threshold moved 0.61 -> 0.48 on these data, and the churn-share check rightly
    calls that a change of behaviour: a good canary here is one that behaves like the champion.
    """
    parts = split_frame(generate_customers(6_000, "2026-01-05", seed=23).frame, seed=5)
    params = {"n_estimators": 150, "max_depth": 3, "learning_rate": 0.1, "early_stopping_rounds": 20}
    trained = train_family("xgboost", parts["train"], parts["validation"], params)
    return dataclasses.replace(trained, threshold=champion.threshold)


@contextmanager
def running_lab(
    champion: ChurnModel, rows: pd.DataFrame, tracking_uri: str, prometheus_binary: str, workdir: Path
) -> Iterator[Lab]:
    """Serve ``models:/churn-model@champion`` as the stable pair, register the canaries, start Prometheus.

    MLflow must already be connected to ``tracking_uri`` (the canaries are logged there).
    """
    from churn.registry.mlflow_registry import resolve_version

    stable_version = resolve_version(f"models:/{NAME}@champion")
    sent = records(rows)
    stable_config = service_config(f"models:/{NAME}/{stable_version}", tracking_uri, workdir / "stable")
    with LocalService(stable_config).start(timeout=120) as stable:
        _, p95 = front_door_latency(stable_config.transformer_url, sent)
        # At least 100 ms late on every request, and three times the stable's quiet p95: the stable's p95
        # grows with the machine's load (the CI's other tests) while a sleep does not, and +50 ms once
        # read as less than 2x a loaded stable's p95. The canary's server sleeps in its event loop, so
        # its requests queue behind each other: its p95 is a multiple of the sleep, and it answers at
        # most 1 / sleep requests a second (the slow case's window is long enough for min_requests).
        slow_seconds = max(0.1, 3 * p95)
        versions = log_canaries(champion, retrained_like(champion), rows, slow_seconds)
        configs = [service_config(f"models:/{NAME}/{v}", tracking_uri, workdir / case) for case, v in versions.items()]
        targets = scrape_targets([stable_config, *configs])
        with prometheus_server(prometheus_binary, targets, workdir) as prometheus_url, started(configs) as canaries:
            for version in versions.values():
                wait_until_scraped(prometheus_url, version)
            by_case = dict(zip(versions, canaries, strict=True))
            yield Lab(stable, stable_version, versions, by_case, prometheus_url, sent, slow_seconds)


@contextmanager
def started(configs: list[ServiceConfig], timeout: float = 300) -> Iterator[list[LocalService]]:
    """Start the servers of every config at once (their start-up is mostly waiting on imports), stop them after."""
    services = [LocalService(config) for config in configs]
    errors: list[BaseException] = []

    def start(service: LocalService) -> None:
        try:
            service.start(timeout=timeout)
        except BaseException as exc:  # reported below, from this thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(service,)) for service in services]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        yield services
    finally:  # in parallel too: each drains for a few seconds after SIGTERM
        stoppers = [threading.Thread(target=service.stop) for service in services]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()


def run_case(lab: Lab, case: str, settings: RolloutSettings) -> CaseRun:
    """Roll ``case``'s canary out against the lab's stable pair, the analysis asking ``settings.prometheus_url``."""
    stable_url, canary_url = lab.stable.config.transformer_url, lab.canaries[case].config.transformer_url
    with WeightedRouter(stable_url, lab.stable_version, canary_url, lab.versions[case]) as router:
        return roll_out(router, settings.prometheus_url, settings, lab.rows)
