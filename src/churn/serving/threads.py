"""How many threads the model predicts on: one for a small request, the server's cores for a large batch.

A model server answers one request at a time in its event loop (KServe calls a synchronous
``predict`` there), so a large batch may have every core the server may use, while a
request of a few rows stays on one thread: OpenMP's second thread made one row's answer,
and its TreeSHAP reasons, many times slower on busy cores. A 1,000-row XGBoost batch took
2.4 ms on one thread and 1.8 ms on two here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from churn.training.models import ChurnModel, set_threads

#: Where cgroup v2 puts a container's CPU limit ("max 100000", or quota and period in µs).
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota (a pod's limit)."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
        limit = int(quota) // int(period)  # "max" (no limit) is a ValueError too
    except (OSError, ValueError):
        return cores
    return max(1, min(cores, limit))


@dataclass(frozen=True)
class ThreadedPredict:
    """``model.predict_matrix``, or from ``batch_min_rows`` rows ``batch_model``'s: the model on more threads.

    Two models, not one switched back and forth: a booster reconfigures itself on the call after
    its thread count changes, and a switch back would also race a concurrent small request.
    """

    model: ChurnModel
    batch_model: ChurnModel
    batch_min_rows: int

    @classmethod
    def from_settings(cls, model: ChurnModel, threads: int) -> ThreadedPredict:
        """Set the model to ``threads`` (every request but a large batch); the batch's count comes from the settings."""
        from churn.config import get_settings

        serving = get_settings().serving
        set_threads(model.family, model.estimator, threads)
        batch_threads = serving.batch_threads or usable_cores()
        batch_model = model if batch_threads == threads else model.with_threads(batch_threads)
        return cls(model, batch_model, serving.batch_threads_min_rows)

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        model = self.batch_model if len(matrix) >= self.batch_min_rows else self.model
        return model.predict_matrix(matrix)
