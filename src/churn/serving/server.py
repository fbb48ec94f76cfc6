"""Start a KServe model server for one role, with the service's error handling and metrics.

KServe's ``ModelServer`` is used as is, with three additions: it can bind a given
address (KServe always binds all interfaces; ``churn serve`` keeps to 127.0.0.1),
FastAPI's request-validation errors become 400s that name the field (KServe leaves
them as 422s), and every server-side failure is counted in ``churn_request_errors_total``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent import futures
from typing import Any

import orjson

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


#: Versions of the models this server holds, by name (filled by :func:`serve`).
MODEL_VERSIONS: dict[str, str] = {}
#: Longest wait for the rest of a request body: a client that sends less than its
#: Content-Length gets a 408 instead of holding the connection until it gives up
#: (``CHURN_SERVING__BODY_READ_TIMEOUT_SECONDS``, set by :func:`serve`).
BODY_READ_TIMEOUT_SECONDS = 30.0
#: Largest request body, before and after gzip decoding (a bound on what a gzip bomb can cost).
MAX_BODY_BYTES = 256 * 1024 * 1024
_VERSIONED = re.compile(r"^(/v2/models/(?P<name>[^/]+))/versions/(?P<version>[^/]+)(?P<rest>/ready|/infer)?$")


class _ServiceMiddleware:
    """ASGI middleware: what the Open Inference Protocol asks of a server that KServe leaves out.

    - ``/v2/models/{name}/versions/{v}[/ready|/infer]``: the loaded version answers as the
      unversioned URL does, any other version is a 404 (KServe answered 501).
    - Request bodies are read here, with a deadline (408) and a size bound (413);
      ``Content-Encoding: gzip`` is decoded, any other encoding is a 415.
    - An inference body with no label, or curl's default form label, is read as the JSON it is.
    - Every server-side failure is counted in ``churn_request_errors_total``.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        held: Message | None = None  # a JSON answer's start, held until its body is cleaned of nulls
        clean = scope["path"].startswith("/v2")

        async def watch(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                if message["status"] >= 500:
                    REQUEST_ERRORS.inc()
                if clean and (b"content-type", b"application/json") in message.get("headers", []):
                    held = message
                    return
            elif message["type"] == "http.response.body" and held is not None:
                start, held = held, None
                if not message.get("more_body"):
                    body = _without_nulls(message.get("body", b""))
                    headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                    await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                    await send({**message, "body": body})
                    return
                await send(start)
            await send(message)

        try:
            refusal = _route_version(scope)
            headers = {name.lower(): value for name, value in scope["headers"]}
            if refusal is None and scope["method"] in ("POST", "PUT"):
                refusal, receive = await _read_body(scope, headers, receive)
            if refusal is not None:
                await _answer(send, *refusal)
                return
            if _is_inference(scope["path"]) and _json_by_default(headers):
                scope["headers"] = [
                    *((k, v) for k, v in scope["headers"] if k.lower() != b"content-type"),
                    (b"content-type", b"application/json"),
                ]
            await self.app(scope, receive, watch)
        except Exception:
            REQUEST_ERRORS.inc()
            raise


def _is_inference(path: str) -> bool:
    return path.endswith(("/infer", ":predict", ":explain"))


def _json_by_default(headers: dict[bytes, bytes]) -> bool:
    """A body to read as JSON although its label does not say so.

    tritonclient's HTTP client sends pure-JSON requests with no Content-Type (KServe would
    take them for binary) and ``curl -d`` labels its body a form, which no V1 or V2 body is.
    """
    if b"inference-header-content-length" in headers:
        return False
    label = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    return label in (b"", b"application/x-www-form-urlencoded")


def _without_nulls(body: bytes) -> bytes:
    """A V2 JSON answer without the ``null`` members KServe's response models add.

    The spec has optional objects or arrays there (``parameters``, ``versions``); absent is
    what it allows, ``null`` is not.
    """
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(answer, dict):
        return body
    answer = {k: v for k, v in answer.items() if v is not None}
    for key in ("inputs", "outputs"):
        if isinstance(answer.get(key), list):
            answer[key] = [
                {k: v for k, v in item.items() if v is not None} if isinstance(item, dict) else item
                for item in answer[key]
            ]
    return orjson.dumps(answer)


def _route_version(scope: Scope) -> tuple[int, str] | None:
    """Serve a versioned URL of a loaded model as the unversioned one; another version is a 404."""
    match = _VERSIONED.match(scope["path"])
    if not match:
        return None
    if match["name"] not in MODEL_VERSIONS:
        return 404, f"model {match['name']!r} is not served here; it serves {', '.join(map(repr, MODEL_VERSIONS))}"
    loaded = MODEL_VERSIONS[match["name"]]
    if match["version"] != loaded:
        return 404, f"model {match['name']!r} has no version {match['version']!r}; version {loaded!r} is loaded"
    scope["path"] = match.group(1) + (match["rest"] or "")
    scope["raw_path"] = scope["path"].encode()
    return None


async def _read_body(
    scope: Scope, headers: dict[bytes, bytes], receive: Receive
) -> tuple[tuple[int, str] | None, Receive]:
    """The whole request body, read with a deadline and decoded; a refusal, or a receive that replays it."""
    encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
    if encoding not in ("identity", "gzip"):
        return (415, f"Content-Encoding {encoding!r} is not supported; send the body plain or gzip-encoded"), receive
    chunks: list[bytes] = []
    size = 0
    more = True
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT_SECONDS):
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return (400, "the client closed the connection before the body was complete"), receive
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
                if size > MAX_BODY_BYTES:
                    return (413, f"the request body is over {MAX_BODY_BYTES} bytes"), receive
    except TimeoutError:
        return (408, f"the request body did not arrive within {BODY_READ_TIMEOUT_SECONDS:g} s"), receive
    body = b"".join(chunks)
    if encoding == "gzip":
        try:
            body = _gunzip(body)
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            return (400, f"the body is not valid gzip data ({exc})"), receive
        scope["headers"] = [
            (name, value)
            for name, value in scope["headers"]
            if name.lower() not in (b"content-encoding", b"content-length")
        ] + [(b"content-length", str(len(body)).encode())]
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()  # after the body: wait for the disconnect, as the server would
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return None, replay


def _gunzip(body: bytes) -> bytes:
    decoder = zlib.decompressobj(wbits=31)  # gzip container
    out = decoder.decompress(body, MAX_BODY_BYTES + 1)
    if len(out) > MAX_BODY_BYTES:
        raise ValueError(f"it decodes to more than {MAX_BODY_BYTES} bytes")
    if not decoder.eof:
        raise ValueError("the gzip stream is truncated")
    return out


async def _answer(send: Send, status: int, error: str) -> None:
    if status == 400:
        VALIDATION_FAILURES.labels(reason="malformed_request").inc()
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 408:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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


def _decode_bodies_strictly(dataplane: Any) -> None:
    """Decode binary-extension bodies with :mod:`churn.serving.binary`, and V1 bodies orjson refuses.

    KServe's reader turned malformed header lengths, sizes and short bodies into 500s; ours
    answers 400 naming the input. V2 JSON bodies keep KServe's path. The data plane is our
    own server's instance: nothing outside it changes.
    """
    from kserve.errors import InvalidInput

    from churn.serving.binary import HEADER, parse_request
    from churn.serving.contract import RequestError

    json_bodies = dataplane.decode_inference_request
    decode = dataplane.decode

    def decode_v1(body: Any, headers: dict[str, str], protocol_version: str = "v1", model_name: Any = None) -> Any:
        """V1 bodies orjson refuses (NaN tokens, lone surrogates), read by Python's parser instead.

        The contract then names the field, as it does for every other request form; a body
        that is not JSON at all keeps KServe's own message.
        """
        if isinstance(body, bytes) and protocol_version == "v1":
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError:
                with contextlib.suppress(ValueError):
                    body = json.loads(body)
        return decode(body, headers, protocol_version=protocol_version, model_name=model_name)

    def decode_inference_request(body: Any, headers: dict[str, str], model_name: str) -> Any:
        if not isinstance(body, bytes):
            return json_bodies(body, headers, model_name)
        try:
            return parse_request(body, headers.get(HEADER), model_name)
        except RequestError as exc:
            VALIDATION_FAILURES.labels(reason=exc.reason).inc()
            raise InvalidInput(exc.message) from None

    dataplane.decode_inference_request = decode_inference_request
    dataplane.decode = decode_v1


_LOG = logging.getLogger("kserve.churn")  # under KServe's logger: its handler and format


class VersionNotFoundError(Exception):
    """A request named a model version this server does not hold (gRPC NOT_FOUND)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _rest_server_class(base: type) -> type:
    """KServe's REST server, whose answer to a caller's mistake is one log line, not a traceback.

    KServe logs every InvalidInput (our 400s) with its stack: a hostile client writes hundreds
    of tracebacks into the log. Its handlers are installed when the app is created, so ours
    go in right after.
    """
    from fastapi.responses import JSONResponse
    from kserve.errors import InvalidInput, ModelNotFound

    async def client_error(request: Any, exc: Exception) -> JSONResponse:
        _LOG.warning("400 %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(status_code=400, content={"error": str(exc)})

    async def no_such_model(request: Any, exc: Exception) -> JSONResponse:
        _LOG.warning("404 %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(status_code=404, content={"error": str(exc)})

    class ChurnRESTServer(base):  # type: ignore[misc]
        def create_application(self) -> None:
            from kserve.model_server import app

            super().create_application()
            app.add_exception_handler(InvalidInput, client_error)
            app.add_exception_handler(ModelNotFound, no_such_model)

    return ChurnRESTServer


def _client_errors_in_one_line(base: type) -> type:
    """KServe's gRPC error interceptor, logging a caller's mistake in one line (no stack)."""
    from grpc import StatusCode
    from kserve.errors import InvalidInput, ModelNotFound

    class Interceptor(base):  # type: ignore[misc]
        async def handle_exception(self, ex: Exception, request: Any, context: Any, method_name: str) -> None:
            if isinstance(ex, InvalidInput):
                _LOG.warning("INVALID_ARGUMENT %s: %s", method_name, ex)
                await context.abort(StatusCode.INVALID_ARGUMENT, ex.reason)
            if isinstance(ex, (ModelNotFound, VersionNotFoundError)):
                _LOG.warning("NOT_FOUND %s: %s", method_name, ex)
                await context.abort(StatusCode.NOT_FOUND, ex.reason)
            await super().handle_exception(ex, request, context, method_name)

    return Interceptor


def _versioned_servicer(base: type) -> type:
    """KServe's gRPC servicer, holding requests to the loaded model version (KServe ignores ``model_version``)."""

    async def check(name: str, version: str, context: Any) -> None:
        loaded = MODEL_VERSIONS.get(name)
        if version and loaded is not None and version != loaded:
            raise VersionNotFoundError(f"model {name!r} has no version {version!r}; version {loaded!r} is loaded")

    class VersionedServicer(base):  # type: ignore[misc]
        async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802 (the gRPC method name)
            await check(request.name, request.version, context)
            return await super().ModelReady(request, context)

        async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
            await check(request.name, request.version, context)
            response = await super().ModelMetadata(request, context)
            if request.name in MODEL_VERSIONS:
                response.versions.append(MODEL_VERSIONS[request.name])
            return response

        async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
            await check(request.model_name, request.model_version, context)
            return await super().ModelInfer(request, context)

    return VersionedServicer


def _complete_metadata(dataplane: Any) -> None:
    """Model metadata with the fields the protocol declares as arrays filled (KServe sends ``versions: null``)."""
    metadata = dataplane.model_metadata

    async def model_metadata(model_name: str) -> dict[str, Any]:
        answer = dict(await metadata(model_name))
        version = MODEL_VERSIONS.get(model_name)
        answer["versions"] = [version] if version else []
        answer["platform"] = "churn-mlops"
        return answer

    dataplane.model_metadata = model_metadata


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
                interceptors=(LoggingInterceptor(), _client_errors_in_one_line(ExceptionToStatusInterceptor)()),
                options=[
                    ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                    ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
                ],
            )
            servicer = _versioned_servicer(InferenceServicer)(self._data_plane, self._model_repository_extension)
            grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
            # Every interface, as KServe's own server listens: IPv6 and IPv4.
            host = "[::]" if self._host in ("0.0.0.0", "::") else f"[{self._host}]" if ":" in self._host else self._host
            self._server.add_insecure_port(f"{host}:{self._port}")
            await self._server.start()
            await self._server.wait_for_termination()

    class _ChurnModelServer(ModelServer):  # type: ignore[misc]
        def start(self, models: list[Any]) -> None:
            if self.workers > 1:
                super().start(models)  # KServe's own multi-process start (every interface, its gRPC servicer)
                return
            self._register_and_check_atleast_one_model_is_ready(models)
            self._rest_server = _rest_server_class(RESTServer)(
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
    from churn.config import get_settings

    global BODY_READ_TIMEOUT_SECONDS
    BODY_READ_TIMEOUT_SECONDS = get_settings().serving.body_read_timeout_seconds
    MODEL_VERSIONS[model.name] = model.served.version
    _decode_bodies_strictly(server.dataplane)
    _complete_metadata(server.dataplane)
    if not args.log_requests:  # KServe logs an access line and two timing lines per request
        for name in ("uvicorn.access", "kserve.trace"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # ... and its gRPC interceptor one "grpc method" line per call on the main kserve logger.
        logging.getLogger("kserve").addFilter(lambda record: record.funcName != "intercept_service")
    server.start([model])
