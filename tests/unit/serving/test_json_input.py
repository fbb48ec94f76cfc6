"""Every parse of a caller's JSON: bounded nesting, and a message that says what arrived."""

from __future__ import annotations

import gzip
import math
from typing import Any

import pytest

from churn.serving.json_input import MAX_JSON_DEPTH, check_json_body, json_depth, parse_json
from churn.serving.refusal import REASONS, RequestError

pytestmark = pytest.mark.unit


def nested(levels: int, kind: str = "object") -> str:
    if kind == "object":
        return '{"a":' * levels + "1" + "}" * levels
    return "[" * levels + "1" + "]" * levels


@pytest.mark.parametrize(
    ("value", "depth"),
    [
        (1, 0),
        ("text", 0),
        ([], 1),
        ({}, 1),
        ([1, 2, 3], 1),
        ({"inputs": [{"name": "age", "data": [1, 2]}]}, 4),
        ([[1], 2, [3, [4]]], 3),
        ({"a": [1] * 10_000 + [[[1]]]}, 4),  # a deep element after many scalars is found
    ],
)
def test_json_depth_counts_levels(value: Any, depth: int) -> None:
    assert json_depth(value) == depth


def test_json_depth_stops_counting_past_the_limit() -> None:
    value: Any = 1
    for _ in range(5_000):
        value = [value]
    assert json_depth(value, limit=10) == 11


@pytest.mark.parametrize("kind", ["object", "array"])
@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 1_025, 10_000, 100_000])
def test_deeper_than_the_limit_is_refused_naming_the_limit(levels: int, kind: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_json(nested(levels, kind), "the thing")
    assert caught.value.reason == "too_deeply_nested" and caught.value.reason in REASONS
    assert str(caught.value) == f"the thing is JSON nested more than {MAX_JSON_DEPTH} levels deep; the limit is 32"


def test_the_limit_itself_is_allowed() -> None:
    assert json_depth(parse_json(nested(MAX_JSON_DEPTH - 1, "array").encode(), "x")) == MAX_JSON_DEPTH - 1
    assert json_depth(parse_json(nested(MAX_JSON_DEPTH, "array"), "x")) == MAX_JSON_DEPTH


def test_python_only_tokens_still_parse_for_the_field_rules_and_stay_bounded() -> None:
    assert math.isnan(parse_json('{"age": NaN}', "x")["age"])
    assert parse_json('["\\ud800"]', "x") == ["\ud800"]  # a lone surrogate: the contract names the field
    with pytest.raises(RequestError, match="nested more than 32"):
        parse_json("[NaN, " + nested(10_000, "array") + "]", "x")  # orjson stops at NaN; Python's parser recursed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (gzip.compress(b'{"inputs": []}', mtime=0), "is not UTF-8 JSON text (it starts like gzip data: send"),
        (b"\xff\xfe{}", "body is not UTF-8 JSON text"),
        (b'{"inputs": [', "body is not valid JSON: "),
        (b"", "body is not valid JSON: "),
    ],
    ids=["gzip", "latin-1", "truncated", "empty"],  # xdist workers must collect the same ids
)
def test_what_is_not_json_is_named(data: bytes, message: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_json(data, "the body")
    assert message in str(caught.value) and caught.value.reason == "malformed_request"


@pytest.mark.parametrize(
    ("body", "v1", "message"),
    [
        (b'"inputs"', False, 'the request body is a JSON string ("inputs"); an inference request is a JSON object'),
        (b"[1]", False, "a JSON array ([1]); an inference request is a JSON object with an 'inputs' array (V2)"),
        (b"null", True, "a JSON null (null); an inference request is a JSON object with 'instances' (V1)"),
        (b"3.5", True, "a JSON number (3.5)"),
        (b'"' + b"x" * 100 + b'"', False, 'a JSON string ("' + "x" * 39 + "...)"),
    ],
)
def test_a_body_that_is_not_an_object_says_what_it_is(body: bytes, v1: bool, message: str) -> None:
    with pytest.raises(RequestError) as caught:
        check_json_body(body, v1=v1)
    assert message in str(caught.value)


def test_objects_and_empty_bodies_pass_the_door() -> None:
    check_json_body(b'{"inputs": [{"name": "age", "datatype": "FP64", "shape": [1], "data": [1]}]}', v1=False)
    check_json_body(b"", v1=True)  # the handlers answer a missing body themselves
