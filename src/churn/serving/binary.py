"""The binary tensor data extension of the V2 REST protocol, read strictly.

A binary request is a JSON header of ``Inference-Header-Content-Length`` bytes, then the
raw data of each input that declares ``parameters.binary_data_size``, in order. KServe's
own reader trusts every number in it: a header length that is not a number, a size that
does not fit the datatype and shape, or a body shorter than declared became a 500 with a
Python exception text. Here every number is checked against the body before any tensor is
built, and each mismatch is a :class:`~churn.serving.contract.RequestError` (a 400) that
names the input and both sizes. Binary inputs keep their raw bytes (``as_numpy`` reads them
with ``np.frombuffer``, no per-element Python), so the contract can tell them from JSON data.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from kserve import InferInput, InferOutput, InferRequest
from kserve.protocol.infer_type import RequestedOutput
from kserve.utils.numpy_codec import from_np_dtype

from churn.serving.json_input import parse_json
from churn.serving.refusal import RequestError

HEADER = "inference-header-content-length"
#: Bytes per element of each fixed-size V2 datatype.
ELEMENT_BYTES = {
    "BOOL": 1,
    "UINT8": 1,
    "INT8": 1,
    "UINT16": 2,
    "INT16": 2,
    "FP16": 2,
    "UINT32": 4,
    "INT32": 4,
    "FP32": 4,
    "UINT64": 8,
    "INT64": 8,
    "FP64": 8,
}
DATATYPES = (*ELEMENT_BYTES, "BYTES")


def parse_request(body: bytes, header_length: str | None, model_name: str) -> InferRequest:
    """An :class:`InferRequest` from a binary-extension body, or a RequestError saying what does not add up."""
    json_length = _header_length(header_length, len(body))
    header = parse_json(body[:json_length], f"the first {json_length} bytes (Inference-Header-Content-Length)")
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list) or not header["inputs"]:
        raise RequestError("malformed_request", 'the JSON header must be an object with a non-empty "inputs" list')
    offset = json_length
    inputs = []
    for index, spec in enumerate(header["inputs"]):
        name, datatype, shape, parameters = _input_spec(spec, index)
        if "data" in spec:
            if datatype == "FP16":
                raise RequestError("wrong_type", f"input {name!r}: FP16 can only be sent as binary data")
            inputs.append(InferInput(name, shape, datatype, data=spec["data"], parameters=parameters or None))
            continue
        size = parameters.pop("binary_data_size", None)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RequestError(
                "malformed_request",
                f"input {name!r} has neither data nor a binary_data_size (a whole number of bytes): {size!r}",
            )
        remaining = len(body) - offset
        if size > remaining:
            raise RequestError(
                "malformed_request",
                f"input {name!r} declares {size} bytes of binary data but the body holds only {remaining} more",
            )
        chunk = body[offset : offset + size]
        offset += size
        elements = _checked_elements(name, datatype, shape, chunk)
        if elements is None:
            tensor = InferInput(name, shape, datatype, parameters=parameters or None)
        else:  # split once, here: the contract reads them (tensor_elements)
            tensor = SplitBytesInput(name, shape, datatype, parameters=parameters or None, elements=elements)
        tensor._raw_data = chunk  # what KServe's own reader sets; kept raw instead of turned into a list
        inputs.append(tensor)
    if offset != len(body):
        raise RequestError(
            "malformed_request", f"the body holds {len(body) - offset} bytes after the inputs it declares"
        )
    return InferRequest(
        model_name=model_name,
        infer_inputs=inputs,
        request_id=_request_id(header.get("id")),
        parameters=_parameters(header.get("parameters"), "the request"),
        request_outputs=_outputs(header.get("outputs")),
    )


def _header_length(value: str | None, body_length: int) -> int:
    if value is None:
        raise RequestError("malformed_request", "a binary body needs the Inference-Header-Content-Length header")
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise RequestError(
            "malformed_request", f"Inference-Header-Content-Length must be a whole number of bytes, got {value!r}"
        )
    length = int(text)
    if not 0 < length <= body_length:
        raise RequestError(
            "malformed_request",
            f"Inference-Header-Content-Length is {length} but the body holds {body_length} bytes",
        )
    return length


def _input_spec(spec: Any, index: int) -> tuple[str, str, list[int], dict[str, Any]]:
    if not isinstance(spec, dict):
        raise RequestError("malformed_request", f"inputs[{index}] must be an object")
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    if not isinstance(name, str) or not name:
        raise RequestError("malformed_request", f"inputs[{index}] needs a name")
    if datatype not in DATATYPES:
        raise RequestError("wrong_type", f"input {name!r} has datatype {datatype!r}; known: {', '.join(DATATYPES)}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise RequestError("wrong_shape", f"input {name!r} needs a shape of non-negative whole numbers, got {shape!r}")
    return name, datatype, shape, dict(_parameters(spec.get("parameters"), f"input {name!r}") or {})


class SplitBytesInput(InferInput):  # type: ignore[misc]
    """A binary BYTES input whose raw data was split (and checked) as the body was read."""

    def __init__(
        self, name: str, shape: list[int], datatype: str, *, parameters: dict[str, Any] | None, elements: list[bytes]
    ) -> None:
        super().__init__(name, shape, datatype, parameters=parameters)
        self.elements = elements


def tensor_elements(tensor: InferInput) -> list[bytes]:
    """The elements of a BYTES tensor's raw data: split when a binary body was read, else now (gRPC)."""
    if isinstance(tensor, SplitBytesInput):
        return tensor.elements
    return bytes_elements(tensor.name, tensor.shape, tensor._raw_data)


def _checked_elements(name: str, datatype: str, shape: list[int], chunk: bytes) -> list[bytes] | None:
    """The raw data of one input must be exactly what its datatype and shape describe; a BYTES input's elements."""
    if datatype == "BYTES":
        return bytes_elements(name, shape, chunk)
    expected = math.prod(shape) * ELEMENT_BYTES[datatype]
    if len(chunk) != expected:
        raise RequestError(
            "wrong_shape",
            f"input {name!r}: {datatype} with shape {shape} needs {expected} bytes; binary_data_size is {len(chunk)}",
        )
    return None


_LENGTH = struct.Struct("<I")


def bytes_elements(name: str, shape: Sequence[int], chunk: bytes) -> list[bytes]:
    """The elements of a BYTES tensor's raw data: each a 4-byte little-endian length, then that many bytes.

    The raw form of both the REST binary extension and gRPC's ``raw_input_contents``. KServe's
    own reader (``as_numpy``) formats a struct pattern per element and raises struct.error
    (a 500) on a length that runs past the data; this one is about ten times faster and
    answers a RequestError naming the input and the element.
    """
    fixed = _fixed_width_elements(shape, chunk)
    if fixed is not None:
        return fixed
    unpack = _LENGTH.unpack_from
    elements: list[bytes] = []
    position, end = 0, len(chunk)
    while position < end:
        if position + 4 > end:
            raise RequestError(
                "wrong_shape", f"input {name!r}: BYTES element {len(elements)} has a truncated length prefix"
            )
        (length,) = unpack(chunk, position)
        start = position + 4
        position = start + length
        if position > end:
            raise RequestError(
                "wrong_shape", f"input {name!r}: BYTES element {len(elements)} runs past the end of the input's data"
            )
        elements.append(chunk[start:position])
    count = math.prod(shape)
    if len(elements) != count:
        raise RequestError(
            "wrong_shape", f"input {name!r} holds {len(elements)} BYTES elements; shape {list(shape)} needs {count}"
        )
    return elements


#: Below this many elements the loop is as fast as setting up the arrays.
_FIXED_WIDTH_MIN_ELEMENTS = 64


def _fixed_width_elements(shape: Sequence[int], chunk: bytes) -> list[bytes] | None:
    """The elements when all have the first one's length (dates, codes): read as one array; else None.

    A column of dates or country codes is a grid: each row a 4-byte length and that many bytes.
    When every length prefix equals the first and the data ends where the grid does, the
    elements are its rows, without a Python step per element. A zero byte anywhere sends it to
    the loop: numpy's fixed-width bytes would drop a trailing NUL, which the contract refuses.
    """
    count = math.prod(shape)
    if count < _FIXED_WIDTH_MIN_ELEMENTS or len(chunk) < 4:
        return None
    (width,) = _LENGTH.unpack_from(chunk, 0)
    if width == 0 or len(chunk) != count * (4 + width):
        return None
    grid = np.frombuffer(chunk, dtype=np.uint8).reshape(count, 4 + width)
    if not (np.ascontiguousarray(grid[:, :4]).view("<u4") == width).all():
        return None
    data = grid[:, 4:]
    if not data.all():
        return None
    elements: list[bytes] = np.ascontiguousarray(data).view(f"S{width}").ravel().tolist()  # tolist: a new list
    return elements


def raw_bytes_tensor(items: Sequence[bytes]) -> bytes:
    """The raw data of a BYTES tensor (the inverse of :func:`bytes_elements`), six times faster than KServe's."""
    pack = _LENGTH.pack
    return b"".join([pack(len(item)) + item for item in items])


class ListedOutput(InferOutput):  # type: ignore[misc]
    """An output whose JSON data (REST without the binary extension) numpy lists at once.

    KServe's ``InferResponse.to_rest`` writes an output's JSON data with a Python step per
    element (``[v.item() for v in flatten()]``; BYTES through ``np.nditer``): 3 ms of a
    1,000-row answer's 24. Here a one-dimensional number array is ``tolist()`` (the same
    Python floats and ints) and a BYTES array of UTF-8 bytes is decoded in one list; anything
    else, and binary output, is KServe's own.
    """

    def set_data_from_numpy(self, output_tensor: np.ndarray, binary_data: bool = True) -> None:
        data = None if binary_data else _json_list(output_tensor, self.datatype, self.shape)
        if data is None:
            super().set_data_from_numpy(output_tensor, binary_data=binary_data)
            return
        if self.parameters:
            self.parameters.pop("binary_data_size", None)
        self._raw_data = None
        self._data = data


def _json_list(array: Any, datatype: str, shape: Sequence[int]) -> list[Any] | None:
    """``array``'s JSON data as KServe writes it, listed at once; None for what KServe must handle (and refuse)."""
    if not isinstance(array, np.ndarray) or list(array.shape) != list(shape):
        return None
    if array.dtype.kind in "fiu":
        return array.ravel().tolist() if from_np_dtype(array.dtype) == datatype else None
    if array.dtype.kind == "O" and datatype == "BYTES":
        items = array.ravel().tolist()
        if set(map(type, items)) == {bytes}:
            try:
                return [item.decode("utf-8") for item in items]
            except UnicodeDecodeError:
                return None  # KServe's own message
    return None


def raw_text_tensor(texts: Sequence[str]) -> bytes:
    """The raw data of a BYTES tensor of UTF-8 ``texts``: :func:`raw_bytes_tensor` of their encodings.

    Customer ids are mostly ASCII of one width (``C0012345``): then the answer is a grid, each
    row a 4-byte length and the id, written by numpy at once (a 1,000-id answer's 0.6 ms of
    per-id encoding and packing becomes tens of microseconds).
    """
    joined = "".join(texts)
    width = len(texts[0]) if texts else 0
    # n ids of at most the first's width whose lengths add up to n widths are all of that width.
    if (
        len(texts) >= _FIXED_WIDTH_MIN_ELEMENTS
        and joined.isascii()
        and len(joined) == width * len(texts)
        and max(map(len, texts)) == width
    ):
        grid = np.empty((len(texts), 4 + width), dtype=np.uint8)
        grid[:, :4] = np.frombuffer(_LENGTH.pack(width), dtype=np.uint8)
        grid[:, 4:] = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(len(texts), width)
        return grid.tobytes()
    return raw_bytes_tensor([text.encode() for text in texts])


def _parameters(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RequestError("malformed_request", f"{where}: parameters must be an object")
    return value


def _request_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError("malformed_request", f"the request id must be a string, got {type(value).__name__}")
    return value


def _outputs(value: Any) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in value):
        raise RequestError("malformed_request", 'outputs must be a list of {"name": ...} objects')
    return [RequestedOutput(name=o["name"], parameters=_parameters(o.get("parameters"), "outputs")) for o in value]
