"""Start a KServe model server for one role, with the service's error handling and metrics.

KServe's ``ModelServer`` is used as is, with three additions: it can bind a given
address (KServe always binds all interfaces; ``churn serve`` keeps to 127.0.0.1),
FastAPI's request-validation errors become 400s that name the field (KServe leaves
them as 422s), and every server-side failure is counted in ``churn_request_errors_total``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent import futures
from typing import Any

from churn.serving.metrics import REQUEST_ERRORS, VALIDATION_FAILURES

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def build_parser(description: str) -> argparse.ArgumentParser:
    """A parser on top of KServe's (``--model_name``, ports, ``--predictor_*``...) plus the shared model flags."""
    from kserve import model_server

    from churn.serving.loading import add_model_arguments

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


class _ServiceMiddleware:
    """ASGI middleware: count server errors; read an unlabelled V2 body as the JSON it is.

    tritonclient's HTTP client sends pure-JSON requests without a Content-Type, which
    KServe would otherwise take for the binary extension and refuse.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].endswith("/infer"):
            names = {name.lower() for name, _ in scope["headers"]}
            if b"content-type" not in names and b"inference-header-content-length" not in names:
                scope["headers"] = [*scope["headers"], (b"content-type", b"application/json")]

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 500:
                REQUEST_ERRORS.inc()
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            REQUEST_ERRORS.inc()
            raise


def _install_http_handlers() -> None:
    import grpc
    import httpx
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from kserve.model_server import app
    from starlette.exceptions import HTTPException as StarletteHTTPException

    async def bad_request(_: Any, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = []
        errors = [e for e in exc.errors() if tuple(e.get("loc", ()))[:1] != ("bytes",)] or exc.errors()
        for error in errors[:5]:
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        VALIDATION_FAILURES.labels(reason="malformed_request").inc()
        return JSONResponse(status_code=400, content={"error": "malformed request: " + "; ".join(problems)})

    async def http_error(_: Any, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:
            VALIDATION_FAILURES.labels(reason="malformed_request").inc()
        return JSONResponse(status_code=exc.status_code, content={"error": str(exc.detail)}, headers=exc.headers)

    async def predictor_failed(_: Any, exc: Exception) -> JSONResponse:
        """The transformer could not get an answer from the predictor: 503/504, saying so plainly."""
        status, detail = 502, str(exc)
        if isinstance(exc, grpc.aio.AioRpcError):
            code = exc.code()
            status = {grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504}.get(code, 502)
            detail = f"{code.name}: {exc.details()}"
        elif isinstance(exc, httpx.TimeoutException):
            status = 504
        elif isinstance(exc, httpx.TransportError):
            status = 503
        return JSONResponse(status_code=status, content={"error": f"the predictor did not answer ({detail})"})

    app.add_exception_handler(grpc.aio.AioRpcError, predictor_failed)
    app.add_exception_handler(httpx.TransportError, predictor_failed)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(StarletteHTTPException, http_error)  # same {"error": ...} shape as KServe's
    app.add_middleware(_ServiceMiddleware)


def serve(model: Any, args: argparse.Namespace) -> None:
    """Run the REST (and gRPC) server for ``model`` until SIGTERM/SIGINT."""
    from kserve import ModelServer
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
    from kserve.protocol.grpc.server import GRPCServer
    from kserve.protocol.rest.server import RESTServer

    class _BoundGRPCServer(GRPCServer):  # type: ignore[misc]
        """KServe's gRPC server, listening on ``host`` rather than every interface."""

        def __init__(self, host: str, *pargs: Any, **kwargs: Any) -> None:
            super().__init__(*pargs, **kwargs)
            self._host = host

        async def start(self, max_workers: int) -> None:
            from grpc import aio
            from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
            from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
            from kserve.protocol.grpc.servicer import InferenceServicer

            self._server = aio.server(
                futures.ThreadPoolExecutor(max_workers=max_workers),
                interceptors=(LoggingInterceptor(), ExceptionToStatusInterceptor()),
                options=[
                    ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                    ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
                ],
            )
            servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
            grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
            host = f"[{self._host}]" if ":" in self._host else self._host
            self._server.add_insecure_port(f"{host}:{self._port}")
            await self._server.start()
            await self._server.wait_for_termination()

    class _ChurnModelServer(ModelServer):  # type: ignore[misc]
        def start(self, models: list[Any]) -> None:
            if self.workers > 1 or args.bind_host in ("0.0.0.0", "::"):
                super().start(models)  # KServe's own start binds every interface
                return
            self._register_and_check_atleast_one_model_is_ready(models)
            self._rest_server = RESTServer(
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
                self._grpc_server = _BoundGRPCServer(
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

    from kserve.predictor_config import PredictorConfig

    _install_http_handlers()
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
    if not args.log_requests:  # KServe logs an access line and two timing lines per request
        for name in ("uvicorn.access", "kserve.trace"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # ... and its gRPC interceptor one "grpc method" line per call on the main kserve logger.
        logging.getLogger("kserve").addFilter(lambda record: record.funcName != "intercept_service")
    server.start([model])
