"""The request contract: what is accepted, and which reason and message everything else gets."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from churn.data.schema import COLUMNS_BY_NAME, LABEL
from churn.features.derive import FEATURE_INPUTS, to_columns
from churn.serving.contract import (
    MAX_ID_LENGTH,
    check_request_id,
    from_records,
    from_records_tensor,
    from_tensors,
    input_metadata,
    tensor_type,
)
from churn.serving.refusal import REASONS, RequestError

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def frame(raw_frame: pd.DataFrame) -> pd.DataFrame:
    return raw_frame.head(500).drop(columns=[LABEL])


@pytest.fixture(scope="module")
def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = json.loads(frame.to_json(orient="records", date_format="iso"))
    return [{k: (v[:10] if k.endswith("_date") else v) for k, v in r.items()} for r in out]


def _same_columns(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    for name in FEATURE_INPUTS:
        if got[name].dtype.kind == "f":
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        else:
            assert (got[name] == want[name]).all(), name


def test_records_give_the_columns_the_training_path_reads(frame: pd.DataFrame, rows: list[dict[str, Any]]) -> None:
    batch = from_records(rows, max_rows=1_000)
    _same_columns(batch.columns, to_columns(frame))
    assert batch.rows == 500 and batch.customer_ids == frame["customer_id"].tolist()


def test_records_in_any_key_order_give_the_same_columns(rows: list[dict[str, Any]]) -> None:
    """One key order for the whole batch (sliced from all values at once), or several (read field by field)."""
    want = from_records(rows, max_rows=1_000)
    reversed_keys = [dict(reversed(r.items())) for r in rows]
    mixed = [r if i % 3 else reversed_keys[i] for i, r in enumerate(rows)]
    for records in (reversed_keys, mixed):
        got = from_records(records, max_rows=1_000)
        _same_columns(got.columns, want.columns)
        assert got.customer_ids == want.customer_ids
    without_ids = [{k: v for k, v in r.items() if k != "customer_id"} for r in mixed]
    assert from_records(without_ids, max_rows=1_000).customer_ids is None


def test_declared_categories_are_printable_text_that_fits_its_column(rows: list[dict[str, Any]]) -> None:
    """What lets a column of declared categories skip the text checks, and be stored at a fixed width."""
    from churn.data.schema import Kind
    from churn.features.derive import MISSING

    for name in FEATURE_INPUTS:
        column = COLUMNS_BY_NAME[name]
        if column.kind is Kind.CATEGORY:
            for value in (*column.categories, MISSING):
                assert value.isprintable() and value.isascii() and value, (name, value)
            values = [*column.categories, None] if column.nullable else list(column.categories)
            got = from_records([{**rows[0], name: v} for v in values], max_rows=100)
            assert got.columns[name].tolist() == [MISSING if v is None else v for v in values]


def test_records_tensor_accepts_objects_and_arrays(rows: list[dict[str, Any]]) -> None:
    elements = [json.dumps(rows[0]), json.dumps(rows[1:4]).encode()]
    batch = from_records_tensor(elements, max_rows=10)
    assert batch.rows == 4


def test_tensors_with_nan_as_missing_in_nullable_columns(frame: pd.DataFrame, rows: list[dict[str, Any]]) -> None:
    tensors = {}
    for name in (*FEATURE_INPUTS, "customer_id"):
        column = COLUMNS_BY_NAME[name]
        values = [r[name] for r in rows]
        if tensor_type(column) == "FP64":
            tensors[name] = ("FP64", [len(values)], np.asarray([np.nan if v is None else v for v in values], float))
        else:
            tensors[name] = ("BYTES", [len(values), 1], np.asarray([b"" if v is None else v.encode() for v in values]))
    batch = from_tensors(tensors, max_rows=1_000)
    _same_columns(batch.columns, to_columns(frame))


def _one(rows: list[dict[str, Any]], **changes: Any) -> list[dict[str, Any]]:
    record = dict(rows[0])
    for key, value in changes.items():
        if value is ...:
            record.pop(key)
        else:
            record[key] = value
    return [record]


@pytest.mark.parametrize(
    ("changes", "reason", "message"),
    [
        ({"age": ...}, "missing_field", "missing field(s) 'age'"),
        ({"churned": 1}, "unknown_field", "unknown field(s) 'churned'"),
        ({"age": "41"}, "wrong_type", "'age' in row 0 must be a number, got str"),
        ({"age": True}, "wrong_type", "must be a number, got bool"),
        ({"age": float("nan")}, "not_finite", "'age' in row 0 is nan"),
        ({"total_spend": float("inf")}, "not_finite", "send a finite number"),
        ({"total_orders": None}, "null_not_allowed", "'total_orders' in row 0 is missing"),
        ({"country": None}, "null_not_allowed", "'country' in row 0 is null"),
        ({"total_returns": -1}, "out_of_range", "'total_returns' in row 0 is -1; allowed range is 0 to 10000"),
        ({"email_open_rate": 1.5}, "out_of_range", "allowed range is 0 to 1"),
        ({"sessions_last_30d": 2.5}, "not_whole_number", "whole number"),
        ({"signup_date": "05/01/2024"}, "bad_date", "expected a date as YYYY-MM-DD"),
        ({"snapshot_date": 20260105}, "wrong_type", "must be a string"),
        ({"signup_date": "2099-01-01"}, "inconsistent_record", "after snapshot_date"),
        ({"snapshot_date": "2026-01-05\x00"}, "bad_text", "'snapshot_date' in row 0 is '2026-01-05\\x00'; it holds a"),
        ({"signup_date": "\x1b[2J2024-01-01"}, "bad_text", "'signup_date' in row 0 is '\\x1b[2J2024-01-01'"),
        ({"gender": "male\r"}, "bad_text", "'gender' in row 0 is 'male\\r'; it holds a control character"),
        ({"country": "D\x85E"}, "bad_text", "'country' in row 0 is 'D\\x85E'"),  # C1 control (NEL)
        ({"country": "ZZ"}, "unknown_category", "'country' in row 0 is 'ZZ'; expected one of "),
        ({"membership_tier": "Gold"}, "unknown_category", "expected one of basic, silver, gold, platinum"),
        ({"customer_id": "a\u2028b"}, "bad_text", "'customer_id' in row 0 is 'a\\u2028b'; it must be printable"),
        ({"customer_id": "x" * (MAX_ID_LENGTH + 1)}, "bad_text", "129 characters long; the limit is 128"),
        ({"customer_id": [1]}, "wrong_type", "'customer_id' in row 0 must be a string, got list"),
        ({"customer_id": 1.5}, "wrong_type", "'customer_id' in row 0 must be a string, got float"),
        ({"customer_id": True}, "wrong_type", "'customer_id' in row 0 must be a string, got bool"),
    ],
)
def test_bad_records_name_field_and_reason(
    rows: list[dict[str, Any]], changes: dict[str, Any], reason: str, message: str
) -> None:
    with pytest.raises(RequestError) as caught:
        from_records(_one(rows, **changes), max_rows=10)
    assert caught.value.reason == reason and reason in REASONS
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "written",
    [
        "NaT",
        "today",
        "2026-1-05",
        "2026-01-5",
        "+2026-01-05",
        "02026-01-05",
        "2026-01-05T00:00",
        "20260105",
        "2026/01/05",
        "2026-02-30",
        "2026-13-01",
        "\uff12\uff10\uff12\uff16-01-05",
        "2026-01-05 ",
        "x" * 10,
    ],
)
def test_a_date_not_written_as_a_calendar_yyyy_mm_dd_is_refused_naming_its_row(
    rows: list[dict[str, Any]], written: str
) -> None:
    """The column-at-once shape check names the same row as a check of each value would."""
    batch = [dict(row, signup_date="2025-01-01", snapshot_date="2026-01-05") for row in rows[:4]]
    batch[2]["signup_date"] = written
    with pytest.raises(RequestError) as caught:
        from_records(batch, max_rows=10)
    assert caught.value.reason == "bad_date"
    assert f"'signup_date' in row 2 is {written!r}; expected a date as YYYY-MM-DD" in str(caught.value)


def test_dates_of_any_batch_size_are_read_as_calendar_days(rows: list[dict[str, Any]]) -> None:
    days = pd.date_range("2024-02-27", periods=len(rows), freq="D").strftime("%Y-%m-%d")  # leap day included
    batch = [dict(row, signup_date=day, snapshot_date="2026-01-05") for row, day in zip(rows, days, strict=True)]
    columns = from_records(batch, max_rows=len(batch)).columns
    assert columns["signup_date"].dtype == np.dtype("datetime64[D]")
    assert list(columns["signup_date"].astype(str)) == list(days)


def test_nullable_fields_accept_null_and_every_declared_category_passes(rows: list[dict[str, Any]]) -> None:
    batch = from_records(_one(rows, age=None, gender=None, country="FR", satisfaction_score=None), max_rows=1)
    assert np.isnan(batch.columns["age"][0]) and batch.columns["gender"][0] == "missing"
    assert batch.columns["country"][0] == "FR"
    for column in (c for c in COLUMNS_BY_NAME.values() if c.categories):
        values = from_records([{**rows[0], column.name: v} for v in column.categories], max_rows=100)
        assert list(values.columns[column.name]) == list(column.categories)
    # An id is printable text or a whole number, echoed as text.
    ids = from_records([{**rows[0], "customer_id": v} for v in ("C-1 ü", 42, "x" * MAX_ID_LENGTH)], max_rows=3)
    assert ids.customer_ids == ["C-1 ü", "42", "x" * MAX_ID_LENGTH]


def test_batch_limits(rows: list[dict[str, Any]]) -> None:
    with pytest.raises(RequestError, match="empty batch"):
        from_records([], max_rows=10)
    with pytest.raises(RequestError, match="holds 3 records; the limit is 2"):
        from_records(rows[:3], max_rows=2)


def test_tensor_shape_and_type_errors(rows: list[dict[str, Any]]) -> None:
    def tensors(**override: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in FEATURE_INPUTS:
            value = rows[0][name]
            if tensor_type(COLUMNS_BY_NAME[name]) == "FP64":
                out[name] = ("FP64", [1], np.asarray([np.nan if value is None else value], float))
            else:
                out[name] = ("BYTES", [1], np.asarray([b"" if value is None else value.encode()], object))
        return out | override

    with pytest.raises(RequestError, match="'age' has shape \\[1, 2\\]") as caught:
        from_tensors(tensors(age=("FP64", [1, 2], np.zeros(2))), max_rows=5)
    assert caught.value.reason == "wrong_shape"
    with pytest.raises(RequestError, match="'country' must be BYTES"):
        from_tensors(tensors(country=("FP64", [1], np.zeros(1))), max_rows=5)
    with pytest.raises(RequestError, match="'age' must be numeric"):
        from_tensors(tensors(age=("BYTES", [1], np.asarray([b"40"], object))), max_rows=5)
    with pytest.raises(RequestError, match="has 2 values but other inputs have 1"):
        from_tensors(tensors(total_orders=("FP64", [2], np.ones(2))), max_rows=5)
    with pytest.raises(RequestError, match="'total_orders' in row 0 is missing"):
        from_tensors(tensors(total_orders=("FP64", [1], np.asarray([np.nan]))), max_rows=5)


def test_metadata_lists_every_field_with_its_type() -> None:
    meta = {item["name"]: item["datatype"] for item in input_metadata()}
    assert set(FEATURE_INPUTS) <= set(meta)
    assert meta["total_orders"] == "FP64" and meta["payment_method"] == "BYTES" and meta["records"] == "BYTES"


def _smallest_valid_record() -> dict[str, Any]:
    """Every number at its minimum, fixed dates, every category its first declared value."""
    record: dict[str, Any] = {n: COLUMNS_BY_NAME[n].min for n in FEATURE_INPUTS}
    record |= {"signup_date": "2025-01-01", "snapshot_date": "2026-01-05"}
    return record | {n: COLUMNS_BY_NAME[n].categories[0] for n in FEATURE_INPUTS if COLUMNS_BY_NAME[n].categories}


@given(name=st.sampled_from(FEATURE_INPUTS), value=st.from_type(object).filter(lambda v: True) | st.none())
def test_any_value_either_passes_or_is_a_request_error(name: str, value: Any) -> None:
    record = _smallest_valid_record()
    record[name] = value
    try:
        from_records([record], max_rows=1)
    except RequestError as exc:
        assert (exc.reason in REASONS and name in str(exc)) or exc.reason == "inconsistent_record"


def test_a_request_id_is_printable_utf8_text() -> None:
    check_request_id("req-1 ü")
    check_request_id(None)
    for bad, reason, message in [
        ("req\x00", "bad_text", "the request id 'req\\x00' holds a control character"),
        ("a\nb", "bad_text", "holds a control character"),
        ("\ud800", "malformed_request", "the request id must be valid UTF-8 text"),
        (5, "malformed_request", "the request id must be valid UTF-8 text"),
    ]:
        with pytest.raises(RequestError) as caught:
            check_request_id(bad)
        assert caught.value.reason == reason and message in str(caught.value)


@pytest.mark.parametrize("value", [{"id": 1}, [1], 1.5, True])
def test_a_customer_id_tensor_holding_json_that_is_not_text_is_a_request_error(value: Any) -> None:
    """A JSON BYTES tensor can carry any JSON value; it was a TypeError (a 500) in the UTF-8 check."""
    record = _smallest_valid_record()
    tensors = {
        name: ("BYTES" if COLUMNS_BY_NAME[name].categories or "date" in name else "FP64", [1], [record[name]])
        for name in FEATURE_INPUTS
    }
    tensors["customer_id"] = ("BYTES", [1], [value])
    with pytest.raises(RequestError) as caught:
        from_tensors(tensors, max_rows=5)
    assert caught.value.reason == "wrong_type" and "'customer_id' in row 0 must be a string" in str(caught.value)


def _deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


@pytest.mark.parametrize("as_bytes", [True, False])
def test_the_records_tensor_reads_at_once_exactly_what_it_reads_element_by_element(
    rows: list[dict[str, Any]], as_bytes: bool
) -> None:
    """The one-pass read of a records tensor refuses and accepts what the element-by-element read does."""

    def encode(texts: list[str]) -> list[Any]:
        return [t.encode() for t in texts] if as_bytes else texts

    flat = [json.dumps(r) for r in rows[:50]]
    batch = from_records_tensor(encode(flat), max_rows=100)
    assert batch.rows == 50 and batch.customer_ids == [r["customer_id"] for r in rows[:50]]
    braces = {**rows[0], "customer_id": "C{[1]}"}  # brackets inside strings: counted, then walked: still fine
    assert from_records_tensor(encode([json.dumps(braces), *flat[1:]]), max_rows=100).customer_ids[0] == "C{[1]}"
    refusals = [
        ([_deep(40), *flat[1:]], "element 0 is JSON nested more than 32 levels deep"),
        # inside a field of an otherwise good record: refused for its depth, not for its type
        ([*flat[:3], json.dumps(rows[3])[:-1] + ', "age": ' + _deep(40) + "}"], "element 3 is JSON nested more"),
        ([json.dumps(rows[0])[:-1] + ', "age": ' + _deep(1_000) + "}"], "element 0 is JSON nested more"),
        ([json.dumps({**rows[0], "age": json.loads(_deep(30))})], "'age' in row 0 must be a number, got dict"),
        # as many brackets as elements, but not one each: a deep element beside bare numbers is still walked
        (["1"] * 39 + [_deep(40)], "element 39 is JSON nested more than 32 levels deep"),
        ([flat[0], "[" + ",".join(flat[1:3]) + "]", '{"a": NaN}'], "unknown field(s) 'a'"),
        ([flat[0], flat[1][:-1]], "element 1 is not valid JSON"),
        ([flat[0], "\ud800"], "element 1 is not valid JSON"),
    ]
    for elements, message in refusals:
        with pytest.raises(RequestError) as refused:
            from_records_tensor(encode(elements) if "\ud800" not in elements else elements, max_rows=100)
        assert message in refused.value.message, (elements[:2], refused.value.message)
    with pytest.raises(RequestError, match="more than 3 records"):
        from_records_tensor(encode([*flat[:2], "[" + ",".join(flat[:2]) + "]"]), max_rows=3)


#: JSON values of every kind a field may be sent, the awkward ones included.
_JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "2026-01-05", "2026-02-30", "DE", "female", "gold", "x\u0000", "é", "C1", " ", "1.5"]),
    # dates and categories at the edges of what the typed read (msgspec's dates, literals) takes
    st.sampled_from(["2026-1-5", "2026-01-05T00:00:00", "2026-01-05 ", "0000-01-01", "0001-01-01", "9999-12-31"]),
    st.sampled_from(["2200-01-01", "1900-02-29", "2024-02-29", "missing", "Gold", "PL", "bank_transfer", "de"]),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@given(
    changes=st.lists(
        st.tuples(
            st.integers(0, 4),
            st.sampled_from([*FEATURE_INPUTS, "customer_id", "unknown_field"]),
            _JSON_VALUES | st.just("<absent>"),
        ),
        max_size=3,
    ),
    as_bytes=st.booleans(),
)
def test_the_typed_read_answers_what_the_general_read_answers(
    rows: list[dict[str, Any]], changes: list[tuple[int, str, Any]], as_bytes: bool
) -> None:
    """The records tensor's typed one-pass read (msgspec) and the general one (dicts) accept and refuse alike.

    Five good records, then up to three changes: a field set to any JSON value, removed, or an
    unknown one added. Either both reads give the same columns and ids, or the same refusal. The
    general read is made to run by sending each record inside a JSON array, which it reads alike.
    """
    records = [dict(r) for r in rows[:5]]
    records[1].pop("customer_id", None)  # one record without an id
    for row, name, value in changes:
        if value == "<absent>":
            records[row].pop(name, None)
        else:
            records[row][name] = value
    texts = [json.dumps(r) for r in records]
    elements: list[Any] = [t.encode() for t in texts] if as_bytes else texts

    def general() -> Any:  # each record inside a JSON array: the typed read takes objects only
        return from_records_tensor([f"[{t}]" for t in texts], max_rows=10)

    try:
        want = general()
    except RequestError as refused:
        with pytest.raises(RequestError) as caught:
            from_records_tensor(elements, max_rows=10)
        assert (caught.value.reason, caught.value.message) == (refused.reason, refused.message)
        return
    got = from_records_tensor(elements, max_rows=10)
    _same_columns(got.columns, want.columns)
    assert got.customer_ids == want.customer_ids
