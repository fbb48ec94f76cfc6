"""The raw form of BYTES tensors (REST binary extension, gRPC raw contents): split strictly, written back exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kserve.protocol.infer_type import deserialize_bytes_tensor, serialize_byte_tensor

from churn.serving.binary import bytes_elements, raw_bytes_tensor, raw_text_tensor
from churn.serving.refusal import RequestError

pytestmark = pytest.mark.unit


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=50))
def test_our_reader_and_writer_agree_with_kserves(items: list[bytes]) -> None:
    raw = raw_bytes_tensor(items)
    assert raw == serialize_byte_tensor(np.asarray(items, dtype=np.object_)).item()
    assert bytes_elements("records", [len(items)], raw) == items == list(deserialize_bytes_tensor(raw))


@pytest.mark.parametrize(
    ("raw", "shape", "message"),
    [
        (b"\x05\x00\x00\x00abc", [1], "BYTES element 0 runs past the end of the input's data"),
        (raw_bytes_tensor([b"ab"]) + b"\x01\x00", [2], "BYTES element 1 has a truncated length prefix"),
        (raw_bytes_tensor([b"a", b"b"]), [1], "holds 2 BYTES elements; shape [1] needs 1"),
        (raw_bytes_tensor([b"a", b"b"]), [3, 1], "holds 2 BYTES elements; shape [3, 1] needs 3"),
        (b"", [1], "holds 0 BYTES elements; shape [1] needs 1"),
    ],
)
def test_raw_data_that_does_not_add_up_is_refused_naming_the_input(raw: bytes, shape: list[int], message: str) -> None:
    with pytest.raises(RequestError, match="input 'country'") as refused:
        bytes_elements("country", shape, raw)
    assert message in refused.value.message and refused.value.reason == "wrong_shape"


@given(
    st.integers(1, 12).flatmap(
        lambda width: st.lists(st.binary(min_size=width, max_size=width), min_size=64, max_size=300)
    ),
    st.integers(0, 3),
)
def test_a_column_of_one_width_reads_as_kserve_reads_it(items: list[bytes], change: int) -> None:
    """Columns past 64 elements of one width (dates, codes) are read as one grid; what it reads must not differ.

    Zero bytes (a trailing NUL that numpy's fixed-width bytes would drop), one element of
    another width and a shape that does not match are each sent back to the element loop.
    """
    if change == 1:
        items = [*items[:-1], items[-1] + b"x"]  # one element wider: not a grid
    if change == 2:
        items = [item[:-1] + b"\x00" for item in items]  # a trailing NUL in every element
    raw = raw_bytes_tensor(items)
    assert bytes_elements("country", [len(items)], raw) == items == list(deserialize_bytes_tensor(raw))
    if change == 3:
        with pytest.raises(RequestError, match="shape"):
            bytes_elements("country", [len(items) - 1], raw)


@given(
    st.integers(0, 12).flatmap(
        lambda width: st.lists(
            st.text(st.characters(max_codepoint=127), min_size=width, max_size=width), min_size=0, max_size=300
        )
    ),
    st.integers(0, 3),
)
def test_texts_are_written_as_their_utf8_encodings_are(texts: list[str], change: int) -> None:
    """Ids of one ASCII width are written as one grid; any other column goes element by element, the same bytes."""
    if change == 1 and texts:
        texts = [*texts[:-1], texts[-1] + "x"]  # one id wider
    if change == 2 and texts:
        texts = [*texts[:-1], texts[-1][:-1] + "é"] if texts[-1] else [*texts[:-1], "é"]  # not ASCII
    if change == 3 and len(texts) > 1:
        texts = [texts[0] + "ab", *texts[1:-1], texts[-1][:-2] if len(texts[-1]) >= 2 else texts[-1]]  # same total
    assert raw_text_tensor(texts) == raw_bytes_tensor([t.encode() for t in texts])


@pytest.mark.parametrize(
    ("datatype", "array"),
    [
        ("FP64", np.asarray([0.1, 1e-300, 0.0, 1.0, 2 / 3])),
        ("INT32", np.asarray([0, 1, -5, 2**31 - 1], dtype=np.int32)),
        ("BYTES", np.asarray([b"C1", "é".encode(), b""], dtype=np.object_)),
        ("BYTES", np.asarray(["text", "é"], dtype=np.object_)),  # not bytes: KServe's own way
    ],
)
@pytest.mark.parametrize("binary", [False, True])
def test_a_listed_output_is_written_as_kserve_writes_it(datatype: str, array: np.ndarray, binary: bool) -> None:
    from kserve import InferOutput, InferResponse

    from churn.serving.binary import ListedOutput

    def answer(output_class: type) -> Any:
        output = output_class("out", [len(array)], datatype, data=array.copy())
        response = InferResponse("r", "m", infer_outputs=[output], use_binary_outputs=binary)
        return response.to_rest()

    assert answer(ListedOutput) == answer(InferOutput)


def test_a_listed_output_refuses_what_kserve_refuses() -> None:
    from kserve import InferOutput
    from kserve.errors import InferenceError

    from churn.serving.binary import ListedOutput

    for output_class in (ListedOutput, InferOutput):
        with pytest.raises(InferenceError, match="UTF-8"):
            output_class("out", [1], "BYTES").set_data_from_numpy(np.asarray([b"\xff"], np.object_), binary_data=False)
        with pytest.raises(InferenceError, match="shape"):
            output_class("out", [3], "FP64").set_data_from_numpy(np.zeros(2), binary_data=False)
