"""Patches to the data plane of our own server's KServe instance (nothing outside it changes).

Each patch wraps one data-plane method, for a gap between KServe 0.21 and the Open
Inference Protocol or the request contract:

- ``decode_inference_request``: KServe's reader of binary-extension bodies turned malformed
  header lengths, sizes and short bodies into 500s; :mod:`churn.serving.binary` answers
  400 naming the input.
- ``decode``: orjson refuses V1 bodies that Python's parser reads (NaN tokens, lone
  surrogates), so KServe answered them with a generic message; the contract then names the field.
- ``model_metadata``: KServe sends ``versions: null`` and no platform; the protocol declares
  ``versions`` an array, so the loaded version is listed (and the platform named).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from churn.serving.binary import HEADER, parse_request
from churn.serving.json_input import parse_json
from churn.serving.metrics import count_validation_failure
from churn.serving.refusal import RequestError


def decode_bodies_strictly(dataplane: Any) -> None:
    """Decode binary-extension bodies with :mod:`churn.serving.binary`, and V1 bodies orjson refuses.

    KServe's reader turned malformed header lengths, sizes and short bodies into 500s; ours
    answers 400 naming the input. V2 JSON bodies keep KServe's path. The data plane is our
    own server's instance: nothing outside it changes.
    """
    from kserve.errors import InvalidInput

    json_bodies = dataplane.decode_inference_request
    decode = dataplane.decode

    def decode_v1(body: Any, headers: dict[str, str], protocol_version: str = "v1", model_name: Any = None) -> Any:
        """V1 bodies orjson refuses (NaN tokens, lone surrogates), read by Python's parser instead.

        The contract then names the field, as it does for every other request form; a body
        that is not JSON, not UTF-8 or nested too deeply is refused naming the problem.
        """
        if isinstance(body, bytes) and protocol_version == "v1":
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError:
                try:
                    body = parse_json(body, "the request body")
                except RequestError as exc:
                    count_validation_failure(exc.reason)
                    raise InvalidInput(exc.message) from None
        return decode(body, headers, protocol_version=protocol_version, model_name=model_name)

    def decode_inference_request(body: Any, headers: dict[str, str], model_name: str) -> Any:
        if not isinstance(body, bytes):
            return json_bodies(body, headers, model_name)
        try:
            return parse_request(body, headers.get(HEADER), model_name)
        except RequestError as exc:
            count_validation_failure(exc.reason)
            raise InvalidInput(exc.message) from None

    dataplane.decode_inference_request = decode_inference_request
    dataplane.decode = decode_v1


def complete_metadata(dataplane: Any, versions: Mapping[str, str]) -> None:
    """Model metadata with the fields the protocol declares as arrays filled (KServe sends ``versions: null``)."""
    metadata = dataplane.model_metadata

    async def model_metadata(model_name: str) -> dict[str, Any]:
        answer = dict(await metadata(model_name))
        version = versions.get(model_name)
        answer["versions"] = [version] if version else []
        answer["platform"] = "churn-mlops"
        return answer

    dataplane.model_metadata = model_metadata
