"""Every parse of a caller's JSON: bounded nesting, a message that says what arrived.

Python's parser recurses once per level and raised RecursionError (a 500) on a 10,000-level
body; orjson stops at 1,024 levels. Both are far beyond what a request needs (a V2 body is
5 levels deep), so anything deeper than :data:`MAX_JSON_DEPTH` is refused with a 400 that
names the limit, before any code walks it. The REST middleware checks whole JSON bodies
(V1, V2, ``:explain``) at the door; the ``records`` input's elements, the binary
extension's JSON header and V1 bodies orjson refuses go through :func:`parse_json` too.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from churn.serving.refusal import RequestError

#: Deepest JSON nesting a caller may send; a V2 inference body needs 5 levels, a record 2.
MAX_JSON_DEPTH = 32
_CONTAINERS = frozenset({dict, list})
_GZIP_MAGIC = b"\x1f\x8b"


def parse_json(data: bytes | str, what: str) -> Any:
    """``data`` parsed (orjson; Python's parser for what orjson refuses: NaN tokens, lone surrogates).

    Raises RequestError naming ``what`` when it is not UTF-8 JSON or nests deeper than
    :data:`MAX_JSON_DEPTH`. Values Python's parser reads but the contract forbids (NaN)
    are left for the field rules, which name the field.
    """
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):  # orjson's own bound (1,024 levels)
            raise _too_deep(what) from None
        if isinstance(data, bytes) and not is_utf8(data):
            raise _not_utf8(what, data) from None
        try:
            parsed = json.loads(data)
        except RecursionError:
            raise _too_deep(what) from None
        except ValueError:
            raise RequestError("malformed_request", f"{what} is not valid JSON: {exc}") from None
    if json_depth(parsed) > MAX_JSON_DEPTH:
        raise _too_deep(what)
    return parsed


def check_json_body(body: bytes, *, v1: bool) -> dict[str, Any] | None:
    """A JSON inference body: UTF-8, valid, nested at most :data:`MAX_JSON_DEPTH` deep, and an object.

    Returns the parsed object (None for an empty body, which the handlers answer themselves).
    """
    if not body:
        return None
    parsed = parse_json(body, "the request body")
    if not isinstance(parsed, dict):
        expected = "'instances' (V1)" if v1 else "an 'inputs' array (V2)"
        raise RequestError(
            "malformed_request",
            f"the request body is {_describe_json(parsed)}; an inference request is a JSON object with {expected}",
        )
    return parsed


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of parsed JSON (a scalar 0, ``[]`` 1), counted level by level without recursion.

    Stops counting at ``limit + 1``. A list of scalars is skipped with one C-level pass over its
    element types, so a 1,000-row batch costs well under a millisecond.
    """
    depth = 0
    level = [value] if type(value) in _CONTAINERS else []
    while level and depth <= limit:
        depth += 1
        children: list[Any] = []
        for item in level:
            members = item.values() if type(item) is dict else item
            if not _CONTAINERS.isdisjoint(map(type, members)):
                children.extend(v for v in members if type(v) in _CONTAINERS)
        level = children
    return depth


def _too_deep(what: str) -> RequestError:
    return RequestError(
        "too_deeply_nested",
        f"{what} is JSON nested more than {MAX_JSON_DEPTH} levels deep; the limit is {MAX_JSON_DEPTH}",
    )


def _not_utf8(what: str, data: bytes) -> RequestError:
    hint = ""
    if data.startswith(_GZIP_MAGIC):
        hint = " (it starts like gzip data: send a compressed body with the header Content-Encoding: gzip)"
    return RequestError("malformed_request", f"{what} is not UTF-8 JSON text{hint}")


def _describe_json(value: Any) -> str:
    """``a JSON string ("inputs")``: what a caller sent, in JSON's terms, shortened."""
    kind = {str: "string", bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}
    name = "null" if value is None else kind.get(type(value), type(value).__name__)
    text = json.dumps(value, default=str)
    return f"a JSON {name} ({text[:40]}{'...' if len(text) > 40 else ''})"


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
