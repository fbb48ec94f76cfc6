"""Start a KServe model server for one role, with the service's error handling and metrics.

KServe's ``ModelServer`` is used as is, with these additions, wired here: it can bind a
given address (KServe always binds all interfaces; ``churn serve`` keeps to 127.0.0.1;
:mod:`churn.serving.grpc_server` for gRPC), FastAPI's request-validation errors become 400s
that name the field (KServe leaves them as 422s; :mod:`churn.serving.errors`), the protocol's
gaps are filled (:mod:`churn.serving.middleware`, :mod:`churn.serving.dataplane`), and every
server-side failure is counted in ``churn_request_errors_total`` and, on a front door, every
inference request timed in ``churn_request_duration_seconds`` (both by model version). The flags are
:mod:`churn.serving.flags`; what these parts share is one :class:`~churn.serving.state.ServerState`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
from typing import Any

from churn.config import get_settings
from churn.serving.dataplane import complete_metadata, decode_bodies_strictly
from churn.serving.errors import install_http_handlers, rest_server_class
from churn.serving.grpc_server import bound_grpc_server_class
from churn.serving.middleware import ServiceMiddleware, without_nulls
from churn.serving.rest_fast import RestFastPath
from churn.serving.state import ServerState


def serve(model: Any, args: argparse.Namespace) -> None:
    """Run the REST (and gRPC) server for ``model`` until SIGTERM/SIGINT."""
    from kserve import ModelServer
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
    from kserve.model_server import app
    from kserve.predictor_config import PredictorConfig
    from kserve.protocol.rest.server import RESTServer

    state = ServerState(
        model_versions={model.name: model.served.version},
        body_read_timeout_seconds=get_settings().serving.body_read_timeout_seconds,
        front_door=getattr(model, "front_door", True),
    )
    grpc_server_class = bound_grpc_server_class(
        state.model_versions, front_door=state.front_door, log_calls=args.log_requests
    )

    class _ChurnModelServer(ModelServer):  # type: ignore[misc]
        def start(self, models: list[Any]) -> None:
            if self.workers > 1:
                super().start(models)  # KServe's own multi-process start (every interface, its gRPC servicer)
                return
            self._register_and_check_atleast_one_model_is_ready(models)
            self._rest_server = rest_server_class(RESTServer, timing_lines=args.log_requests)(
                FASTAPI_APP_IMPORT_STRING,
                self.dataplane,
                self.model_repository_extension,
                self.http_port,
                access_log_format=self.access_log_format,
                workers=1,
                grace_period=self.grace_period,
                event_loop=self.event_loop,
                timeout_keep_alive=self.timeout_keep_alive,
                ssl_certfile=self.ssl_certfile,
                ssl_keyfile=self.ssl_keyfile,
            )
            self._rest_server.config.host = args.bind_host
            self.servers.append(self._rest_server.start())
            if self.enable_grpc:
                self._grpc_server = grpc_server_class(
                    args.bind_host,
                    self.grpc_port,
                    self.dataplane,
                    self.model_repository_extension,
                    kwargs=vars(args),
                    grace_period=self.grace_period,
                )
                self.servers.append(self._grpc_server.start(self.max_threads))
            self.setup_event_loop()
            self.register_signal_handler()
            asyncio.run(self._serve())

    install_http_handlers(app)
    server = _ChurnModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        enable_grpc=args.enable_grpc,
        enable_latency_logging=args.enable_latency_logging,
        # Built from our parsed flags: KServe's module-level defaults were parsed from sys.argv at import.
        predictor_config=PredictorConfig(
            predictor_host=args.predictor_host,
            predictor_protocol=args.predictor_protocol,
            predictor_use_ssl=args.predictor_use_ssl,
            predictor_request_timeout_seconds=args.predictor_request_timeout_seconds,
            predictor_request_retries=args.predictor_request_retries,
            predictor_health_check=args.enable_predictor_health_check,
        ),
    )
    decode_bodies_strictly(server.dataplane)
    complete_metadata(server.dataplane, state.model_versions)
    fast = None
    if get_settings().serving.rest_fast_path:
        fast = RestFastPath(server.dataplane, app.exception_handlers, frozenset(state.model_versions), without_nulls)
    app.add_middleware(ServiceMiddleware, state=state, fast=fast)
    if not args.log_requests:  # KServe logs an access line and two timing lines per request
        for name in ("uvicorn.access", "kserve.trace"):
            logging.getLogger(name).setLevel(logging.WARNING)
    # Everything alive now (the imports, the loaded model, the server) lives as long as the process:
    # out of every collection. A 1,000-record request allocates some 25,000 objects, which set off
    # full collections that walked these few hundred thousand objects each time (a 1,000-record
    # gRPC request's server time went from 25.8 to 21.5 ms with this line alone).
    gc.freeze()
    server.start([model])
