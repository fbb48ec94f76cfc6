"""Where the Dask engine's cluster comes from, and the DaskCluster manifest for the operator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn.config import DaskSettings, get_settings
from churn.errors import ChurnError
from churn.telemetry import telemetry_env_vars

if TYPE_CHECKING:
    from distributed import Client


#: What a LocalCluster's fork server imports once, before it forks the workers (``worker_start``:
#: forkserver): what the engine's tasks run on the workers. Spawned workers each imported it
#: themselves, about 7 s of CPU per worker on this project's machines, paid by every Dask task
#: since each starts its own cluster. Importing starts no thread and no OpenMP pool, so forking
#: from it is safe; a module that fails to import is skipped by the fork server.
WORKER_PRELOAD = (
    "distributed",
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "dask.dataframe",
    "churn.engine.dask.stages",
)


#: The environment and working folder this process's fork server started with (None: not started
#: by us). Its workers get those, not the caller's of the day: see :func:`_start_method`.
_forkserver_context: tuple[dict[str, str], str] | None = None


def _start_method(s: DaskSettings) -> str:
    """``s.worker_start``, unless the fork server would hand the workers an environment or folder gone stale.

    A fork server is started once per process and its children inherit *its* environment and
    working folder, where a spawned worker gets the caller's current ones. A KFP task starts
    one cluster, so it always forks; a long-lived caller (a notebook, a test process) that has
    since changed a variable (an S3 endpoint, a setting) or its folder gets spawned workers.
    """
    if s.worker_start != "forkserver":
        return s.worker_start
    if _forkserver_context is None:
        return "forkserver"
    return "forkserver" if (dict(os.environ), str(Path.cwd())) == _forkserver_context else "spawn"


def in_kubernetes() -> bool:
    """Whether this process runs in a Kubernetes pod (the kubelet sets this variable)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


@contextmanager
def dask_client(settings: DaskSettings | None = None, *, name: str = "churn") -> Iterator[Client]:
    """A ``distributed.Client`` for one run, closed (with any cluster it started) on every path.

    The cluster comes from, in this order: ``settings.scheduler_address`` (an existing
    scheduler, left running); an ephemeral DaskCluster from the Dask operator when
    ``settings.kubernetes`` is on and this process runs in a pod (deleted on close, and
    by the operator after ``idle_timeout_seconds`` should this process die first);
    otherwise a ``LocalCluster`` of worker processes, one per core unless ``n_workers`` says.

    Args:
        settings: The Dask settings; the configured ones when omitted.
        name: Name of a Kubernetes cluster (a DNS label; the operator adds a suffix).

    Raises:
        ChurnError: The scheduler cannot be reached, or the cluster cannot be started.

    """
    from distributed import Client

    s = settings or get_settings().dask
    if s.scheduler_address:
        try:
            client = Client(s.scheduler_address, timeout=s.connect_timeout_seconds)
        except (OSError, TimeoutError) as exc:
            raise ChurnError(f"cannot reach the Dask scheduler at {s.scheduler_address}: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = _start_cluster(s, name)
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def _start_cluster(s: DaskSettings, name: str) -> Any:
    if s.kubernetes and in_kubernetes():
        from dask_kubernetes.operator import KubeCluster

        before = set(KubeCluster._instances)
        try:
            return KubeCluster(
                custom_cluster_spec=make_cluster_spec(s, name=name),
                namespace=s.namespace,
                shutdown_on_close=True,
                quiet=True,
            )
        except Exception as exc:  # the operator client raises many kinds; all mean "no cluster"
            for failed in set(KubeCluster._instances) - before:
                # Delete whatever part of it was created, now rather than in Dask's exit hook
                # (which would print a traceback when, say, there are no credentials).
                with suppress(Exception):
                    failed.close(timeout=10)
                KubeCluster._instances.discard(failed)
            raise ChurnError(f"cannot create a DaskCluster in namespace {s.namespace!r}: {exc}") from None
    global _forkserver_context  # set once per process, as the fork server itself starts once
    import dask
    from distributed import LocalCluster
    from distributed.utils import get_mp_context

    method = _start_method(s)
    # Read by each Nanny as it starts its worker (a worker restarted later is spawned, Dask's default).
    with dask.config.set({"distributed.worker.multiprocessing-method": method}):
        if method == "forkserver":
            # Takes effect when this process's fork server starts (its first forked worker), not after.
            get_mp_context().set_forkserver_preload(list(WORKER_PRELOAD))
        try:
            cluster = LocalCluster(
                n_workers=s.n_workers or os.cpu_count() or 1,
                threads_per_worker=s.threads_per_worker,
                memory_limit=s.memory_limit,
                processes=True,
                # Unset: any free port for its HTTP endpoints (a fixed :8787 clashes between concurrent runs).
                dashboard_address=s.dashboard_address or ":0",
            )
        except (OSError, ValueError, TypeError) as exc:
            raise ChurnError(f"cannot start a local Dask cluster: {exc}") from None
    if method == "forkserver" and _forkserver_context is None:
        # Taken after the start: the Nanny sets its variables (OMP_NUM_THREADS=1...) in this
        # process's environment before the first worker starts, so the fork server has them too.
        _forkserver_context = (dict(os.environ), str(Path.cwd()))
    return cluster


def make_cluster_spec(settings: DaskSettings | None = None, *, name: str = "churn") -> dict[str, Any]:
    """The DaskCluster manifest the Dask operator runs for one pipeline step, built offline.

    Scheduler and workers run the pipeline image (so they have the same code as the
    step), in an explicit namespace (the operator's client otherwise uses ``default``),
    with the worker resources from settings and ``idleTimeout`` as a safety net should
    the step die before it deletes the cluster.

    Args:
        settings: The Dask settings; the configured ones when omitted.
        name: Name of the DaskCluster.

    """
    from dask_kubernetes.operator import make_cluster_spec as operator_spec

    s = settings or get_settings().dask
    limits = {"cpu": s.worker_cpu, "memory": s.worker_memory}
    spec: dict[str, Any] = operator_spec(
        name=name,
        image=s.image,
        n_workers=s.n_workers or 2,
        resources={"requests": dict(limits), "limits": dict(limits)},
        idle_timeout=s.idle_timeout_seconds,
    )
    spec["metadata"]["namespace"] = s.namespace
    telemetry = telemetry_env_vars()
    for role in ("scheduler", "worker"):
        for container in spec["spec"][role]["spec"]["containers"]:
            # The operator writes null, which a PodSpec does not allow; the step's telemetry choice goes along.
            container["env"] = [*(container.get("env") or []), *telemetry]
    worker = spec["spec"]["worker"]["spec"]["containers"][0]
    # Threads and memory per worker follow the settings, not the operator's defaults (Dask reads "4Gi").
    worker["args"] = [*worker["args"], "--nthreads", str(s.threads_per_worker), "--memory-limit", s.worker_memory]
    return spec


def cluster_size(client: Client) -> dict[str, str]:
    """The engine and cluster size as MLflow tags (``engine``, ``dask.workers``, ``dask.threads``)."""
    info = client.scheduler_info()
    workers = info.get("workers", {})
    threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
    return {"engine": "dask", "dask.workers": str(len(workers)), "dask.threads": str(threads)}
