"""The REST inference fast path: a V2 ``/infer`` body the middleware already holds, answered in one pass.

On KServe's own path a V2 JSON body was parsed twice (the middleware's depth check with orjson,
then Starlette's ``json.loads``), walked by FastAPI's dependency solver, its answer built as a
pydantic model, turned into a dict by ``jsonable_encoder`` (Python, element by element),
written by orjson and then read and written once more to drop its nulls. Here the body the
middleware parsed builds KServe's ``InferenceRequest`` directly; KServe's data plane then does
what its route does (the same ``decode``, ``infer`` and ``encode`` calls, so the model's
preprocess, predict and postprocess, KServe's metrics and ours, the prediction log and the
requested outputs are those of the route), and the answer is written once, without nulls.

Errors go to the app's own exception handlers, as Starlette's exception middleware would send
them. Anything this path does not fully handle (another route, a cloud event, a body pydantic
refuses, a binary body with another label) is declined before anything runs, and KServe's
route answers it as before. :class:`churn.serving.middleware.ServiceMiddleware` calls it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import orjson

from churn.serving.binary import HEADER

# ASGI's shapes, as this path and the middleware that calls it (churn.serving.middleware) see them.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_INFER = re.compile(r"^/v2/models/(?P<name>[^/]+)/infer$")
#: Labels of a binary-extension body this path reads: tritonclient's HTTP client sends none, others
#: octet-stream. FastAPI hands the route both as bytes, as here (others are left to the route).
_BINARY_LABELS = (b"", b"application/octet-stream")


class RestFastPath:
    """Answers a V2 REST inference request through KServe's data plane without FastAPI or a second JSON pass.

    Args:
        dataplane: The server's KServe data plane (with :mod:`churn.serving.dataplane`'s patches).
        exception_handlers: The FastAPI app's handlers (filled when KServe creates its routes;
            read per error, so those added later are seen).
        model_names: The models this server serves; a request for another goes to KServe's 404.
        without_nulls: How the middleware cleans a V2 JSON answer (the same function, on the answer's dict).

    """

    def __init__(
        self,
        dataplane: Any,
        exception_handlers: Mapping[Any, Any],
        model_names: frozenset[str],
        without_nulls: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        # kserve, pydantic and starlette come with the server; this class exists only in one that starts.
        from kserve.constants.constants import PredictorProtocol
        from kserve.errors import ModelNotReady
        from kserve.protocol.rest.v2_datamodels import InferenceRequest, InferenceResponse
        from pydantic import ValidationError
        from starlette.datastructures import Headers

        self.dataplane = dataplane
        self.exception_handlers = exception_handlers
        self.model_names = model_names
        self.without_nulls = without_nulls
        self._rest_v2 = PredictorProtocol.REST_V2.value
        self._request_model = InferenceRequest
        self._response_model = InferenceResponse
        self._invalid = ValidationError
        self._headers = Headers
        self._not_ready = ModelNotReady

    async def answer(
        self, scope: Scope, receive: Receive, send: Send, send_cleaned: Send, body: bytes, parsed: Any, label: bytes
    ) -> int | None:
        """Answer one request, or decline it (None) before anything of it ran.

        Args:
            scope: The ASGI scope (versioned URL already routed, headers as the route would see them).
            receive: The replaying receive the middleware made.
            send: Where the answer goes.
            send_cleaned: Where an error handler's answer goes (the middleware's null-cleaning ``send``).
            body: The decoded request body.
            parsed: The JSON body as the middleware parsed it; None for a body that is not JSON.
            label: The body's media type (``b""`` when there is none), as the client sent it.

        Returns:
            The HTTP status sent, or None when the request is left to KServe's route.

        """
        if scope["method"] != "POST":
            return None
        match = _INFER.match(scope["path"])
        if match is None or match["name"] not in self.model_names:
            return None
        name = match["name"]
        headers = dict(self._headers(scope=scope))
        if any(key.startswith("ce-") for key in headers):  # a cloud event: KServe's route wraps the answer
            return None
        request_body: Any
        if parsed is not None:
            if not isinstance(parsed, dict):
                return None
            try:
                request_body = self._request_model.model_validate(parsed)
            except self._invalid:
                return None  # FastAPI's 400 names the field its own way
        elif HEADER in headers and label in _BINARY_LABELS:
            request_body = body
        else:
            return None
        try:
            content, response_headers = await self._infer(name, request_body, headers)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # the server's 500, as on KServe's route
            response = await handler(_request(scope, receive), exc)
            status = int(response.status_code)
            await response(scope, receive, send_cleaned)
            return status
        if isinstance(content, bytes):  # binary outputs: KServe's raw response, as its route sends it
            extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response_headers.items()]
            await send({"type": "http.response.start", "status": 200, "headers": extra})
            await send({"type": "http.response.body", "body": content})
            return 200
        answer = self._response_model.model_validate(content).model_dump(mode="json", by_alias=True)
        encoded = orjson.dumps(self.without_nulls(answer))
        out = [
            (b"content-type", b"application/json"),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in response_headers.items()),
            (b"content-length", str(len(encoded)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": out})
        await send({"type": "http.response.body", "body": encoded})
        return 200

    async def _infer(self, name: str, request_body: Any, headers: dict[str, str]) -> tuple[Any, dict[str, str]]:
        """What KServe's V2 infer route does between reading the body and writing the answer."""
        dataplane = self.dataplane
        if not await dataplane.model_ready(name, True):  # True: as the route, no predictor health check
            raise self._not_ready(name)
        infer_request, _ = dataplane.decode(request_body, headers, protocol_version=self._rest_v2, model_name=name)
        response, response_headers = await dataplane.infer(model_name=name, request=infer_request, headers=headers)
        content, encoded_headers = dataplane.encode(
            model_name=name, response=response, headers=headers, req_attributes={}
        )
        response_headers.update(encoded_headers)
        response_headers.pop("content-length", None)
        response_headers.pop("content-type", None)
        return content, response_headers

    def _handler(self, exc: Exception) -> Any:
        """The app's handler of ``exc``, looked up as Starlette's exception middleware does (500s excluded)."""
        from starlette.exceptions import HTTPException

        handlers = self.exception_handlers
        if isinstance(exc, HTTPException) and exc.status_code in handlers and exc.status_code != 500:
            return handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None  # FastAPI gives Exception's handler to the outermost error middleware
            if cls in handlers:
                return handlers[cls]
        return None


def _request(scope: Scope, receive: Receive) -> Any:
    from starlette.requests import Request

    return Request(scope, receive)
