"""Shadow mode: the transformer also sends each request to a challenger's predictor, off the request path.

The caller gets only the champion's answer. The shadow gets the same model matrix (the
champion's feature pipeline: a shadow compares models on the same features; a predictor
whose width differs refuses it, counted as ``error``) in an asyncio task started as the
champion's call goes out; the request never awaits it. Its answer (probability, its label at
the threshold the shadow's predictor reports, its model version) goes to the prediction log
as variant ``shadow`` with the caller's request id, so ``churn rollout compare`` can pair it
with the champion's answer.

Bounds, so that a shadow that is down, slow or erroring cannot hurt the caller:

- at most ``max_in_flight`` shadow calls at a time; a request beyond it is not shadowed
  (``churn_shadow_requests{outcome="dropped"}``), so a slow shadow cannot pile up tasks,
  sockets and memory in the transformer;
- each call is cancelled after ``timeout_seconds`` (``outcome="timeout"``);
- every failure is caught and counted (``outcome="error"``), never raised into the request;
- no retries (gRPC's default retry policy is off on the shadow's channel).

Metrics: ``churn_shadow_requests{outcome}`` (ok, error, timeout, dropped),
``churn_shadow_latency_seconds`` (answered calls) and ``churn_shadow_in_flight``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferRequest, InferResponse, RESTConfig
from prometheus_client import Counter, Gauge, Histogram

from churn.serving.predictor import PROBABILITY_OUTPUT, THRESHOLD_PARAMETER

if TYPE_CHECKING:
    from churn.predictions.logger import PredictionLogger

log = logging.getLogger(__name__)

#: The variant the shadow's answers carry in the prediction log.
SHADOW_VARIANT = "shadow"
OUTCOMES = ("ok", "error", "timeout", "dropped")

SHADOW_REQUESTS = Counter(
    "churn_shadow_requests", "Requests sent (or not: dropped) to the shadow predictor, by outcome.", ["outcome"]
)
SHADOW_LATENCY = Histogram(
    "churn_shadow_latency_seconds",
    "Time the shadow predictor took to answer (answered calls only).",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SHADOW_IN_FLIGHT = Gauge("churn_shadow_in_flight", "Shadow calls waiting for their answer.")
for _outcome in OUTCOMES:
    SHADOW_REQUESTS.labels(outcome=_outcome)


class ShadowPredictor:
    """Sends copies of the transformer's predictor requests to a shadow predictor and logs its answers.

    Args:
        host: The shadow predictor's ``host:port`` (its gRPC port for ``grpc-v2``, its REST port for ``v2``).
        protocol: ``grpc-v2`` or ``v2``, as the champion's predictor.
        model_name: The model name the shadow predictor answers to.
        timeout_seconds: Longest wait for one answer; then the call is cancelled.
        max_in_flight: Most calls waiting at once; beyond it requests are not shadowed (dropped, counted).
        default_threshold: The label threshold when the shadow's answer does not report its own.
        prediction_log: Where the shadow's answers are recorded (None: counted only).

    """

    def __init__(
        self,
        host: str,
        *,
        protocol: str,
        model_name: str,
        timeout_seconds: float,
        max_in_flight: int,
        default_threshold: float,
        prediction_log: PredictionLogger | None = None,
    ) -> None:
        if protocol not in ("grpc-v2", "v2"):
            raise ValueError(f"shadow protocol must be grpc-v2 or v2, not {protocol!r}")
        if timeout_seconds <= 0 or max_in_flight < 1:
            raise ValueError("shadow: timeout must be > 0 seconds and max_in_flight >= 1")
        self.host = host
        self.protocol = protocol
        self.model_name = model_name
        self.timeout_seconds = timeout_seconds
        self.max_in_flight = max_in_flight
        self.default_threshold = default_threshold
        self.prediction_log = prediction_log
        self.in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._grpc: InferenceGRPCClient | None = None
        self._rest: InferenceRESTClient | None = None

    def send(self, request: InferRequest, request_id: str, customer_ids: Sequence[str] | None) -> None:
        """Start the shadow call of one request and return at once (called on the transformer's event loop)."""
        if self.in_flight >= self.max_in_flight:
            SHADOW_REQUESTS.labels(outcome="dropped").inc()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a synchronous caller): nothing to run the call on
            SHADOW_REQUESTS.labels(outcome="dropped").inc()
            return
        copy = InferRequest(model_name=self.model_name, infer_inputs=request.inputs, request_id=request_id)
        self.in_flight += 1
        SHADOW_IN_FLIGHT.inc()
        task = loop.create_task(self._call(copy, request_id, customer_ids))
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def _call(self, request: InferRequest, request_id: str, customer_ids: Sequence[str] | None) -> None:
        start = time.perf_counter()
        try:
            response = await asyncio.wait_for(self._infer(request), self.timeout_seconds)
            SHADOW_LATENCY.observe(time.perf_counter() - start)
            self._record(response, request_id, customer_ids)
            SHADOW_REQUESTS.labels(outcome="ok").inc()
        except TimeoutError:
            SHADOW_REQUESTS.labels(outcome="timeout").inc()
        except Exception as exc:  # whatever the shadow did, the caller's request is not concerned
            SHADOW_REQUESTS.labels(outcome="error").inc()
            log.debug("shadow predictor %s: %s", self.host, exc)
        finally:
            self.in_flight -= 1
            SHADOW_IN_FLIGHT.dec()

    async def _infer(self, request: InferRequest) -> InferResponse:
        # A little past our own timeout: asyncio.wait_for cancels the call first.
        client_timeout = self.timeout_seconds + 1
        if self.protocol == "grpc-v2":
            if self._grpc is None:  # built on the event loop that runs the calls (gRPC aio binds to it)
                self._grpc = InferenceGRPCClient(
                    self.host,
                    timeout=client_timeout,
                    retries=0,
                    channel_args=[
                        ("grpc.enable_retries", 0),
                        ("grpc.max_send_message_length", -1),
                        ("grpc.max_receive_message_length", -1),
                        ("grpc.max_reconnect_backoff_ms", 1_000),
                    ],
                )
            response: Any = await self._grpc.infer(request)
        else:
            if self._rest is None:
                self._rest = InferenceRESTClient(RESTConfig(protocol="v2", timeout=client_timeout, retries=0))
            response = await self._rest.infer(f"http://{self.host}", data=request, model_name=self.model_name)
        if not isinstance(response, InferResponse):
            raise TypeError("the shadow predictor did not answer on the V2 protocol")
        return response

    def _record(self, response: InferResponse, request_id: str, customer_ids: Sequence[str] | None) -> None:
        output = response.get_output_by_name(PROBABILITY_OUTPUT) or response.outputs[0]
        probabilities = np.asarray(output.as_numpy(), dtype=np.float64).reshape(-1)
        labels = (probabilities >= answer_threshold(response, self.default_threshold)).astype(np.int32)
        if self.prediction_log is not None:
            version = str(response.model_version) if response.model_version else None
            self.prediction_log.record(
                request_id, customer_ids, probabilities, labels, variant=SHADOW_VARIANT, model_version=version
            )

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the calls in flight (tests and shutdown); those past ``timeout`` seconds are left running."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


def answer_threshold(response: InferResponse, default: float) -> float:
    """The label threshold a predictor reports in its answer's parameters, else ``default``."""
    value = (response.parameters or {}).get(THRESHOLD_PARAMETER)
    if value is None:
        return default
    text = getattr(value, "string_param", value)  # gRPC: an InferParameter; REST: the string itself
    try:
        return float(text)
    except (TypeError, ValueError):
        return default
