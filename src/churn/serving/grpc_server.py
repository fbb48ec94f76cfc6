"""The gRPC side of a model server: bound to one address, version-aware, errors logged in one line.

KServe's gRPC server listens on every interface, ignores a request's ``model_version`` and
logs every caller's mistake with its stack; these classes extend KServe's own (built on
demand, as KServe's modules are heavy) to bind ``--bind_host``, answer NOT_FOUND for a
version this server does not hold, and log a caller's mistake in one line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent import futures
from typing import Any

from churn.serving.metrics import end_request, observe_request, start_request

LOG = logging.getLogger("kserve.churn")  # under KServe's logger: its handler and format


class VersionNotFoundError(Exception):
    """A request named a model version this server does not hold (gRPC NOT_FOUND)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def client_errors_in_one_line(base: type) -> type:
    """KServe's gRPC error interceptor, logging a caller's mistake in one line (no stack)."""
    from grpc import StatusCode
    from kserve.errors import InvalidInput, ModelNotFound

    class Interceptor(base):  # type: ignore[misc]
        async def handle_exception(self, ex: Exception, request: Any, context: Any, method_name: str) -> None:
            if isinstance(ex, InvalidInput):
                LOG.warning("INVALID_ARGUMENT %s: %s", method_name, ex)
                await context.abort(StatusCode.INVALID_ARGUMENT, ex.reason)
            if isinstance(ex, (ModelNotFound, VersionNotFoundError)):
                LOG.warning("NOT_FOUND %s: %s", method_name, ex)
                await context.abort(StatusCode.NOT_FOUND, ex.reason)
            await super().handle_exception(ex, request, context, method_name)

    return Interceptor


def versioned_servicer(base: type, versions: Mapping[str, str], *, front_door: bool = True) -> type:
    """KServe's gRPC servicer, holding requests to the loaded model version (KServe ignores ``model_version``).

    On a front door each ModelInfer is timed, and counted as a server error unless it failed
    for the caller's request (INVALID_ARGUMENT, NOT_FOUND), as the REST middleware does.
    """
    from kserve.errors import InvalidInput, ModelNotFound

    async def check(name: str, version: str, context: Any) -> None:
        loaded = versions.get(name)
        if version and loaded is not None and version != loaded:
            raise VersionNotFoundError(f"model {name!r} has no version {version!r}; version {loaded!r} is loaded")

    class VersionedServicer(base):  # type: ignore[misc]
        async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802 (the gRPC method name)
            await check(request.name, request.version, context)
            return await super().ModelReady(request, context)

        async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
            await check(request.name, request.version, context)
            response = await super().ModelMetadata(request, context)
            if request.name in versions:
                response.versions.append(versions[request.name])
            return response

        async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
            await check(request.model_name, request.model_version, context)
            if not front_door:
                return await super().ModelInfer(request, context)
            started, failed = time.perf_counter(), False
            token = start_request()
            try:
                return await super().ModelInfer(request, context)
            except (InvalidInput, ModelNotFound):
                raise
            except Exception:
                failed = True
                raise
            finally:
                observe_request(time.perf_counter() - started, failed=failed)
                end_request(token)

    return VersionedServicer


def bound_grpc_server_class(versions: Mapping[str, str], *, front_door: bool = True, log_calls: bool = False) -> type:
    """KServe's gRPC server, listening on one host, with the versioned servicer and the one-line interceptor.

    KServe's logging interceptor (an INFO "grpc method" line per call) is installed only with
    ``log_calls`` (``--log_requests``): otherwise every call built a log record that a filter
    then dropped, about 3% of a single-row request's time.

    Construct it as KServe's ``GRPCServer``, with the host first.
    """
    from kserve.protocol.grpc.server import GRPCServer

    class BoundGRPCServer(GRPCServer):  # type: ignore[misc]
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
                interceptors=(
                    *((LoggingInterceptor(),) if log_calls else ()),
                    client_errors_in_one_line(ExceptionToStatusInterceptor)(),
                ),
                options=[
                    ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                    ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
                ],
            )
            servicer = versioned_servicer(InferenceServicer, versions, front_door=front_door)(
                self._data_plane, self._model_repository_extension
            )
            grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
            # Every interface, as KServe's own server listens: IPv6 and IPv4.
            host = "[::]" if self._host in ("0.0.0.0", "::") else f"[{self._host}]" if ":" in self._host else self._host
            self._server.add_insecure_port(f"{host}:{self._port}")
            await self._server.start()
            await self._server.wait_for_termination()

    return BoundGRPCServer
