"""The shared vocabulary of a rollout: traffic, checks, verdicts, records.

A rollout moves traffic from the stable version to the canary in steps. After each
step's analysis interval the canary is compared with the stable version check by check;
every check passing moves on, any failing rolls back, and too little evidence (no
Prometheus, too few requests) holds until a deadline. The controller, the KServe and local
traffic splits, the recorders and the CLI all speak these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

#: What one analysis says: go on, roll back, or not enough evidence yet.
Verdict = Literal["pass", "fail", "wait"]
#: Where a rollout is: running a step, fully promoted, rolled back (by a check, the deadline or an operator).
RolloutStatus = Literal["progressing", "promoted", "rolled_back"]
#: Which model answered: the champion, a canary taking a share of traffic, or a shadow whose answers nobody sees.
Variant = Literal["champion", "canary", "shadow"]


@dataclass(frozen=True)
class TrafficState:
    """Who serves what now."""

    stable_version: str
    canary_version: str | None
    canary_percent: int


class TrafficSplit(Protocol):
    """The traffic a rollout controls: an InferenceService in a cluster, a weighted router on a laptop."""

    def state(self) -> TrafficState:
        """Who serves what now."""
        ...

    def set_canary_percent(self, percent: int) -> None:
        """Send ``percent`` of the traffic to the canary (0..100)."""
        ...

    def promote(self) -> None:
        """Make the canary the stable version with all the traffic (the canary entry goes)."""
        ...

    def abort(self) -> None:
        """Send all the traffic back to the stable version (the canary entry goes or gets 0%)."""
        ...


@dataclass(frozen=True)
class CheckResult:
    """One comparison of canary and stable over an interval (e.g. p95 latency ratio 3.1 > 1.5: failed)."""

    name: str
    canary: float | None
    stable: float | None
    value: float | None
    threshold: float
    passed: bool | None  # None: not enough evidence to judge
    detail: str = ""


@dataclass(frozen=True)
class StepAnalysis:
    """What one analysis of one step found."""

    verdict: Verdict
    checks: tuple[CheckResult, ...]
    reason: str
    canary_requests: float = 0.0
    stable_requests: float = 0.0


@dataclass(frozen=True)
class StepRecord:
    """One step of a rollout as it happened."""

    step: int  # 1-based index into the steps
    percent: int
    started_at: float  # unix seconds
    finished_at: float
    analysis: StepAnalysis | None  # None for a step with nothing to judge (full promotion)


@dataclass(frozen=True)
class RolloutResult:
    """What a rollout did, step by step, and why it ended the way it did."""

    model_name: str
    canary_version: str
    stable_version: str
    status: RolloutStatus
    reason: str
    steps: tuple[StepRecord, ...] = field(default_factory=tuple)


class RolloutRecorder(Protocol):
    """Where a rollout's decisions become visible (MLflow tags, Pushgateway metrics, a Markdown table)."""

    def step(self, result: RolloutResult, record: StepRecord) -> None:
        """A step was judged (``result.status`` is still ``progressing`` unless it was the last)."""
        ...

    def finished(self, result: RolloutResult) -> None:
        """The rollout ended: promoted or rolled back."""
        ...
