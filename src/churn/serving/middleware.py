"""The ASGI middleware in front of KServe's app: what the Open Inference Protocol asks that KServe leaves out."""

from __future__ import annotations

import asyncio
import json
import re
import time
import zlib
from collections.abc import Mapping
from typing import Any

import orjson

from churn.serving.json_input import check_json_body
from churn.serving.metrics import (
    count_server_error,
    count_validation_failure,
    end_request,
    observe_request,
    start_request,
)
from churn.serving.refusal import RequestError
from churn.serving.rest_fast import Message, Receive, RestFastPath, Scope, Send
from churn.serving.state import ServerState

#: Largest request body, before and after gzip decoding (a bound on what a gzip bomb can cost).
MAX_BODY_BYTES = 256 * 1024 * 1024
#: Labels of an inference body read as JSON although they do not say so (``_json_by_default``).
_UNLABELLED = (b"", b"application/x-www-form-urlencoded")
_JSON_LABELS = (*_UNLABELLED, b"application/json")
_VERSIONED = re.compile(r"^(/v2/models/(?P<name>[^/]+))/versions/(?P<version>[^/]+)(?P<rest>/ready|/infer)?$")


class ServiceMiddleware:
    """ASGI middleware: what the Open Inference Protocol asks of a server that KServe leaves out.

    - ``/v2/models/{name}/versions/{v}[/ready|/infer]``: the loaded version answers as the
      unversioned URL does, any other version is a 404 (KServe answered 501).
    - Request bodies are read here, with a deadline (408) and a size bound (413);
      ``Content-Encoding: gzip`` is decoded, any other encoding is a 415.
    - An inference body with no label, or curl's default form label, is read as the JSON it is.
    - A JSON inference body is checked at the door (:func:`churn.serving.json_input.check_json_body`):
      UTF-8, valid, at most 32 levels deep, an object; else a 400 saying what arrived.
    - A V2 ``/infer`` request it can answer whole goes down :mod:`churn.serving.rest_fast`
      (``fast``): KServe's data plane called with the body parsed here, the answer written once.
    - Every server-side failure is counted in ``churn_request_errors_total`` and, on a front
      door, every inference request timed in ``churn_request_duration_seconds``, both under the
      model version that answered (:mod:`churn.serving.metrics`).
    """

    def __init__(self, app: Any, state: ServerState, fast: RestFastPath | None = None) -> None:
        self.app = app
        self.state = state
        self.fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        held: Message | None = None  # a JSON answer's start, held until its body is cleaned of nulls
        clean = scope["path"].startswith("/v2")
        status = 0
        timed = self.state.front_door and _is_inference(scope["path"])
        started = time.perf_counter()
        token = start_request()

        async def watch(message: Message) -> None:
            nonlocal held, status
            if message["type"] == "http.response.start":
                status = message["status"]
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
            refusal = _route_version(scope, self.state.model_versions)
            headers = {name.lower(): value for name, value in scope["headers"]}
            body = None
            if refusal is None and scope["method"] in ("POST", "PUT"):
                refusal, receive, body = await _read_body(scope, headers, receive, self.state.body_read_timeout_seconds)
            if refusal is not None:
                await _answer(send, *refusal)
                return
            inference = _is_inference(scope["path"])
            if inference and _json_by_default(headers):
                scope["headers"] = [
                    *((k, v) for k, v in scope["headers"] if k.lower() != b"content-type"),
                    (b"content-type", b"application/json"),
                ]
            parsed = None
            if inference and body is not None and _is_json(headers):
                try:
                    parsed = check_json_body(body, v1=not scope["path"].endswith("/infer"))
                except RequestError as exc:
                    await _answer(send, 400, exc.message, reason=exc.reason)
                    return
            if self.fast is not None and inference and body:
                answered = await self.fast.answer(scope, receive, send, watch, body, parsed, _label(headers))
                if answered is not None:
                    status = answered
                    return
            await self.app(scope, receive, watch)
        except Exception:
            status = 500
            raise
        finally:
            if timed:
                observe_request(time.perf_counter() - started, failed=status >= 500)
            elif status >= 500:
                count_server_error()
            end_request(token)


def _is_inference(path: str) -> bool:
    return path.endswith(("/infer", ":predict", ":explain"))


def _json_by_default(headers: dict[bytes, bytes]) -> bool:
    """A body to read as JSON although its label does not say so.

    tritonclient's HTTP client sends pure-JSON requests with no Content-Type (KServe would
    take them for binary) and ``curl -d`` labels its body a form, which no V1 or V2 body is.
    """
    return b"inference-header-content-length" not in headers and _label(headers) in _UNLABELLED


def _is_json(headers: dict[bytes, bytes]) -> bool:
    """A body the server will parse as JSON: labelled so, or read so by default (above)."""
    return b"inference-header-content-length" not in headers and _label(headers) in _JSON_LABELS


def _label(headers: dict[bytes, bytes]) -> bytes:
    """The body's media type, without parameters, lower case (``b""`` when there is none)."""
    return headers.get(b"content-type", b"").split(b";")[0].strip().lower()


def _without_nulls(body: bytes) -> bytes:
    """A V2 JSON answer's text without the ``null`` members KServe's response models add."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(answer, dict):
        return body
    return orjson.dumps(without_nulls(answer))


def without_nulls(answer: dict[str, Any]) -> dict[str, Any]:
    """A V2 JSON answer without the ``null`` members KServe's response models add.

    The spec has optional objects or arrays there (``parameters``, ``versions``); absent is
    what it allows, ``null`` is not.
    """
    answer = {k: v for k, v in answer.items() if v is not None}
    for key in ("inputs", "outputs"):
        if isinstance(answer.get(key), list):
            answer[key] = [
                {k: v for k, v in item.items() if v is not None} if isinstance(item, dict) else item
                for item in answer[key]
            ]
    return answer


def _route_version(scope: Scope, versions: Mapping[str, str]) -> tuple[int, str] | None:
    """Serve a versioned URL of a loaded model as the unversioned one; another version is a 404."""
    match = _VERSIONED.match(scope["path"])
    if not match:
        return None
    if match["name"] not in versions:
        return 404, f"model {match['name']!r} is not served here; it serves {', '.join(map(repr, versions))}"
    loaded = versions[match["name"]]
    if match["version"] != loaded:
        return 404, f"model {match['name']!r} has no version {match['version']!r}; version {loaded!r} is loaded"
    scope["path"] = match.group(1) + (match["rest"] or "")
    scope["raw_path"] = scope["path"].encode()
    return None


async def _read_body(
    scope: Scope, headers: dict[bytes, bytes], receive: Receive, timeout: float
) -> tuple[tuple[int, str] | None, Receive, bytes | None]:
    """The whole request body, read within ``timeout`` seconds and decoded.

    Returns a refusal, or a receive that replays the body and the body itself.
    """
    encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
    if encoding not in ("identity", "gzip"):
        return (
            (415, f"Content-Encoding {encoding!r} is not supported; send the body plain or gzip-encoded"),
            receive,
            None,
        )
    chunks: list[bytes] = []
    size = 0
    more = True
    try:
        async with asyncio.timeout(timeout):
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return (400, "the client closed the connection before the body was complete"), receive, None
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
                if size > MAX_BODY_BYTES:
                    return (413, f"the request body is over {MAX_BODY_BYTES} bytes"), receive, None
    except TimeoutError:
        return (408, f"the request body did not arrive within {timeout:g} s"), receive, None
    body = b"".join(chunks)
    if encoding == "gzip":
        try:
            body = _gunzip(body)
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            return (400, f"the body is not valid gzip data ({exc})"), receive, None
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

    return None, replay, body


def _gunzip(body: bytes) -> bytes:
    decoder = zlib.decompressobj(wbits=31)  # gzip container
    out = decoder.decompress(body, MAX_BODY_BYTES + 1)
    if len(out) > MAX_BODY_BYTES:
        raise ValueError(f"it decodes to more than {MAX_BODY_BYTES} bytes")
    if not decoder.eof:
        raise ValueError("the gzip stream is truncated")
    return out


async def _answer(send: Send, status: int, error: str, *, reason: str = "malformed_request") -> None:
    if status == 400:
        count_validation_failure(reason)
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 408:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
