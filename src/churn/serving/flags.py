"""The command line of a model server: KServe's flags, the shared model flags and ours."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from churn.serving.loading import add_model_arguments

if TYPE_CHECKING:
    from churn.config import ServingSettings


def build_parser(description: str) -> argparse.ArgumentParser:
    """A parser on top of KServe's (``--model_name``, ports, ``--predictor_*``...) plus the shared model flags."""
    # kserve is heavy (FastAPI, gRPC, its model server): imported when a server builds its parser.
    from kserve import model_server

    parser = argparse.ArgumentParser(description=description, parents=[model_server.parser])
    add_model_arguments(parser)
    parser.add_argument(
        "--log_requests",
        action="store_true",
        help="Log an access line per request (off: at ~1,000 req/s the log lines cost more than the predictions; "
        "/metrics keeps counts and latencies).",
    )
    # One log line per request costs more than a prediction; KServe's /metrics keeps the latencies.
    parser.set_defaults(model_name="churn-model", enable_latency_logging=False)
    return parser


def add_shadow_arguments(parser: argparse.ArgumentParser, serving: ServingSettings) -> None:
    """The front server's ``--variant`` and shadow flags (defaults from ``CHURN_SERVING__...``)."""
    parser.add_argument(
        "--variant",
        choices=("champion", "canary"),
        default=serving.variant,
        help="What this server's answers are in the prediction log [default: CHURN_SERVING__VARIANT].",
    )
    parser.add_argument(
        "--shadow_predictor_host",
        default=serving.shadow_predictor_host or "",
        help="host:port of a shadow predictor also sent every request, off the request path, over "
        "--predictor_protocol; its answers are logged as variant shadow (empty: no shadow) "
        "[default: CHURN_SERVING__SHADOW_PREDICTOR_HOST].",
    )
    parser.add_argument(
        "--shadow_model_name",
        default=serving.shadow_model_name or "",
        help="Model name the shadow predictor answers to [default: --model_name].",
    )
    parser.add_argument(
        "--shadow_timeout_seconds",
        type=float,
        default=serving.shadow_timeout_seconds,
        help="Longest wait for a shadow answer, then the call is cancelled and counted.",
    )
    parser.add_argument(
        "--shadow_max_in_flight",
        type=int,
        default=serving.shadow_max_in_flight,
        help="Most shadow calls waiting at once; beyond it requests are not shadowed (counted as dropped).",
    )
