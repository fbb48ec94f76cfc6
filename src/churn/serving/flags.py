"""The command line of a model server: KServe's flags, the shared model flags and ours."""

from __future__ import annotations

import argparse

from churn.serving.loading import add_model_arguments


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
