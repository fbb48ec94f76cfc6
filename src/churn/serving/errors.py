"""How the REST server answers errors: one ``{"error": ...}`` shape, 400s that name the field, one log line.

KServe leaves FastAPI's request-validation errors as 422s, answers a predictor that does not
answer with a 500, and logs every caller's mistake with its stack; these handlers answer
400/503/504 saying what went wrong and log a caller's mistake in one line.
"""

from __future__ import annotations

import logging
from typing import Any

from churn.serving.metrics import count_validation_failure

LOG = logging.getLogger("kserve.churn")  # under KServe's logger: its handler and format


def install_http_handlers(app: Any) -> None:
    """Add the error handlers to KServe's FastAPI ``app`` (before the server creates its routes)."""
    # grpc, httpx, FastAPI and Starlette come with kserve: loaded only by a server that starts.
    import grpc
    import httpx
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    async def bad_request(_: Any, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = []
        errors = [e for e in exc.errors() if tuple(e.get("loc", ()))[:1] != ("bytes",)] or exc.errors()
        for error in errors[:5]:
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        count_validation_failure("malformed_request")
        return JSONResponse(status_code=400, content={"error": "malformed request: " + "; ".join(problems)})

    async def http_error(_: Any, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:
            count_validation_failure("malformed_request")
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


def rest_server_class(base: type, *, timing_lines: bool) -> type:
    """KServe's REST server, whose answer to a caller's mistake is one log line, not a traceback.

    KServe logs every InvalidInput (our 400s) with its stack: a hostile client writes hundreds
    of tracebacks into the log. Its handlers are installed when the app is created, so ours
    go in right after. Without ``timing_lines``, KServe's timing middleware is left out: all
    it makes is two ``kserve.trace`` log lines per request (kept with ``--log_requests``), and
    it matched every request against each route to name them.
    """
    from fastapi.responses import JSONResponse
    from kserve.errors import InvalidInput, ModelNotFound

    async def client_error(request: Any, exc: Exception) -> JSONResponse:
        LOG.warning("400 %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(status_code=400, content={"error": str(exc)})

    async def no_such_model(request: Any, exc: Exception) -> JSONResponse:
        LOG.warning("404 %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(status_code=404, content={"error": str(exc)})

    class ChurnRESTServer(base):  # type: ignore[misc]
        def create_application(self) -> None:
            from kserve.model_server import app

            super().create_application()
            if not timing_lines:
                from timing_asgi import TimingMiddleware

                app.user_middleware[:] = [m for m in app.user_middleware if m.cls is not TimingMiddleware]
            app.add_exception_handler(InvalidInput, client_error)
            app.add_exception_handler(ModelNotFound, no_such_model)

    return ChurnRESTServer
