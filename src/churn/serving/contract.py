"""What a caller may send to score customers, and the checks that turn anything else into a 400.

The contract is built from the one declaration of the raw export
(:data:`churn.data.schema.RAW_COLUMNS`): every column the feature code reads is a
required field, ``customer_id`` is optional and echoed back, and nothing else is
allowed. Three request shapes carry the same records:

* V2 tensors: one input per field, shape ``[n]`` or ``[n, 1]``; ``BYTES`` for dates
  (``YYYY-MM-DD``) and categories, any numeric datatype for numbers.
* V2 JSON records: a single ``BYTES`` input named ``records`` whose elements are JSON
  objects (one per customer) or JSON arrays of objects.
* V1: ``{"instances": [{...}, ...]}``.

A missing value is ``null`` (JSON) or, inside a binary numeric tensor where ``null``
cannot be written, NaN; either is accepted only in the columns the export may leave
empty. Every check is vectorised over the batch, so one row and ten thousand rows go
through the same code; the first problem found is reported with the field, the row and
the rule it broke.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import chain
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import orjson

from churn.data.schema import COLUMNS_BY_NAME, ID, Kind, RawColumn
from churn.features.derive import FEATURE_INPUTS, MISSING, Columns
from churn.serving.json_input import MAX_JSON_DEPTH, is_utf8, json_depth, parse_json
from churn.serving.refusal import RequestError

RECORDS_INPUT = "records"
#: Fields a request must carry (the feature inputs), in the export's order.
REQUIRED_FIELDS: tuple[RawColumn, ...] = tuple(COLUMNS_BY_NAME[name] for name in FEATURE_INPUTS)
OPTIONAL_FIELDS: tuple[str, ...] = (ID,)
_ALLOWED = frozenset(FEATURE_INPUTS) | frozenset(OPTIONAL_FIELDS)
_REQUIRED_NAMES = frozenset(FEATURE_INPUTS)
#: Integers orjson reads as integers: a larger one goes to the general path, whose parser reads it as a float.
_INT64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _record_field(column: RawColumn) -> Any:
    """What msgspec takes in ``column``: the values the contract takes there, already in the feature code's terms.

    A number is an int64 or a float; a date a calendar date written ``YYYY-MM-DD``; a category
    one of the declared values; null only where the export may leave the field empty. Anything
    else (an empty string for missing, an unknown category, a date out of the calendar) is left
    to the general read, whose refusal names the field and the row.
    """
    field: Any
    if column.kind in (Kind.INT, Kind.FLOAT):
        return _INT64 | float | None  # null or not: NaN, judged with the other numbers
    if column.kind is Kind.DATE:
        field = date
    elif column.kind is Kind.CATEGORY:
        field = Literal[column.categories]  # the declared values
    else:  # pragma: no cover - every text field is a date or a category
        field = str
    return field | None if column.nullable else field


#: One record of the records input as msgspec reads it: per field, only the JSON the contract takes.
_RECORD = msgspec.defstruct(
    "Record",
    [(c.name, _record_field(c)) for c in REQUIRED_FIELDS]
    + [(ID, str | _INT64 | None | msgspec.UnsetType, msgspec.UNSET)],  # absent (UNSET) is not null
    forbid_unknown_fields=True,
    gc=False,  # flat records of scalars: nothing for the collector to walk
)
_RECORD_DECODER = msgspec.json.Decoder(_RECORD)
_NUMERIC_POSITIONS = [i for i, c in enumerate(REQUIRED_FIELDS) if c.kind in (Kind.INT, Kind.FLOAT)]
_FIELD_GETTERS = tuple(operator.itemgetter(c.name) for c in REQUIRED_FIELDS)
_NUMERIC_FIELDS = tuple(c for c in REQUIRED_FIELDS if c.kind in (Kind.INT, Kind.FLOAT))
_REQUIRED = np.asarray([not c.nullable for c in _NUMERIC_FIELDS])
_LOW = np.asarray([-np.inf if c.min is None else c.min for c in _NUMERIC_FIELDS])
_HIGH = np.asarray([np.inf if c.max is None else c.max for c in _NUMERIC_FIELDS])
_WHOLE = np.asarray([c.kind is Kind.INT for c in _NUMERIC_FIELDS])
_NUMBER_TYPES = frozenset({int, float, type(None)})
_TEXT_TYPES = frozenset({str, type(None)})
#: C0 and C1 control characters: no field of a record holds one (NUL, escapes, line breaks, DEL...).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CATEGORIES = {c.name: frozenset((*c.categories, None)) for c in REQUIRED_FIELDS if c.kind is Kind.CATEGORY}
#: A category column's text dtype, wide enough for its values and MISSING: numpy need not measure them (2x faster).
_CATEGORY_DTYPES = {
    c.name: np.dtype(f"<U{max(map(len, (*c.categories, MISSING)))}") for c in REQUIRED_FIELDS if c.kind is Kind.CATEGORY
}
#: Longest customer_id echoed back.
MAX_ID_LENGTH = 128
_NUMERIC_DATATYPES = frozenset(
    {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)


@dataclass(frozen=True)
class Batch:
    """Validated records as columns: what the feature pipeline reads, plus the optional ids."""

    columns: Columns
    customer_ids: list[str] | None

    @property
    def rows(self) -> int:
        return len(self.columns[FEATURE_INPUTS[0]])


def tensor_type(column: RawColumn) -> str:
    """V2 datatype a client should use for ``column`` (numbers as FP64 so integers and NaN both fit)."""
    return "FP64" if column.kind in (Kind.INT, Kind.FLOAT) else "BYTES"


def input_metadata() -> list[dict[str, Any]]:
    """The model metadata ``inputs``: one tensor per field, plus the JSON-records alternative."""
    fields = [{"name": c.name, "datatype": tensor_type(c), "shape": [-1]} for c in REQUIRED_FIELDS]
    fields.append({"name": ID, "datatype": "BYTES", "shape": [-1]})
    fields.append({"name": RECORDS_INPUT, "datatype": "BYTES", "shape": [-1]})
    return fields


def check_batch_size(rows: int, max_rows: int) -> None:
    """Refuse an empty batch or one over the configured limit."""
    if rows == 0:
        raise RequestError("empty_batch", "the request holds no records (empty batch)")
    if rows > max_rows:
        raise RequestError("batch_too_large", f"the request holds {rows} records; the limit is {max_rows}")


def from_records(records: Any, *, max_rows: int, where: str = "instances") -> Batch:
    """Validate a list of record objects (V1 ``instances`` or the V2 ``records`` input)."""
    if isinstance(records, Mapping):
        records = [records]
    if not isinstance(records, Sequence) or isinstance(records, (str, bytes)):
        raise RequestError("malformed_request", f"{where} must be a list of customer records (JSON objects)")
    check_batch_size(len(records), max_rows)
    # The common case in C-level passes: every record a dict, with one of a few key orders, each allowed.
    key_orders = set(map(tuple, records)) if set(map(type, records)) == {dict} else None
    if key_orders is None or not all(map(_allowed_fields, key_orders)):
        _name_the_record_at_fault(records, where)
    values = _values_by_field(records, key_orders)
    columns = {c.name: _column_from_values(c, v, where) for c, v in zip(REQUIRED_FIELDS, values, strict=True)}
    ids = None
    if any(ID in r for r in records):
        ids = _check_ids([record.get(ID) for record in records])
    return _checked(columns, ids, where)


def _allowed_fields(names: tuple[str, ...]) -> bool:
    return _ALLOWED.issuperset(names) and _REQUIRED_NAMES.issubset(names)


def _values_by_field(records: Sequence[Any], key_orders: set[tuple[str, ...]] | None) -> list[list[Any]]:
    """Each required field's values (every field is present), in REQUIRED_FIELDS' order."""
    if key_orders is not None and len(key_orders) == 1:
        # One key order in every record (one client's serializer): all values in one C-level pass, then sliced.
        (keys,) = key_orders
        flat = list(chain.from_iterable(map(dict.values, records)))
        return [flat[keys.index(c.name) :: len(keys)] for c in REQUIRED_FIELDS]
    return [list(map(getter, records)) for getter in _FIELD_GETTERS]


def _name_the_record_at_fault(records: Sequence[Any], where: str) -> None:
    """Refuse the first record that is not an object or whose fields are not the contract's."""
    checked_keys = None
    for row, record in enumerate(records):
        if type(record) is not dict and not isinstance(record, Mapping):  # the exact type first: the ABC is slow
            raise RequestError(
                "malformed_request", f"{where}[{row}] must be a JSON object, got {type(record).__name__}"
            )
        if record.keys() != checked_keys:  # records of a batch mostly share one key set: check it once
            _check_field_names(record.keys(), f"{where}[{row}]")
            checked_keys = record.keys()


def from_records_tensor(elements: Sequence[Any], *, max_rows: int) -> Batch:
    """Validate the V2 ``records`` input: JSON objects, or JSON arrays of objects, one per element."""
    typed = _typed_at_once(elements, max_rows)
    if typed is not None:
        return typed
    records = _parsed_at_once(elements, max_rows)
    if records is not None:
        try:
            return from_records(records, max_rows=max_rows, where=RECORDS_INPUT)
        except (RequestError, RecursionError):
            # Records the contract took hold no container (every field's values are scalars), so
            # only a refused batch can hold JSON nested past the limit: refused for that first,
            # element by element below, as it was before any field was looked at.
            if json_depth(records, MAX_JSON_DEPTH + 1) <= MAX_JSON_DEPTH + 1:
                raise
    records = []
    for index, element in enumerate(elements):
        text = element
        if isinstance(element, bytes):
            try:
                text = element.decode("utf-8")
            except UnicodeDecodeError:
                raise RequestError(
                    "wrong_type", f"input {RECORDS_INPUT!r} element {index} is not valid UTF-8 text"
                ) from None
        if not isinstance(text, str):
            raise RequestError("wrong_type", f"input {RECORDS_INPUT!r} element {index} must be a JSON string")
        parsed = parse_json(text, f"input {RECORDS_INPUT!r} element {index}")
        records.extend(parsed if isinstance(parsed, list) else [parsed])
        if len(records) > max_rows:  # stop reading: the rest need not be parsed to refuse the request
            raise RequestError(
                "batch_too_large", f"the request holds more than {max_rows} records; the limit is {max_rows}"
            )
    return from_records(records, max_rows=max_rows, where=RECORDS_INPUT)


def _typed_at_once(elements: Sequence[Any], max_rows: int) -> Batch | None:
    """A records input whose every element is one record of the contract's JSON types, read in C; else None.

    msgspec reads each element straight into a typed record (no dict; numbers, calendar dates,
    declared categories or nulls where the contract takes them; no unknown or missing field),
    about three times faster than reading dicts and checking their keys and types in Python. The
    records are turned into columns in C, and the numbers, ids and cross-field rules go through
    the same checks as any record (the type, date and category checks msgspec made are not made
    twice). Anything msgspec refuses (a JSON array of records, a wrong type, a missing field, an
    unknown category, a date that is not ``YYYY-MM-DD`` in the calendar, malformed JSON, an
    integer past int64) returns None and is read again by the general path, whose refusal
    names the element, the field and the row.
    """
    if not 0 < len(elements) <= max_rows:
        return None
    try:
        records = list(map(_RECORD_DECODER.decode, elements))
    except (msgspec.DecodeError, TypeError, ValueError):  # ValidationError is a DecodeError
        return None
    *values, ids = zip(*map(msgspec.structs.astuple, records), strict=True)  # fields x rows, in C
    numbers = iter(np.array([values[i] for i in _NUMERIC_POSITIONS], dtype=np.float64))  # None -> NaN
    columns = {c.name: _typed_column(c, v, numbers) for c, v in zip(REQUIRED_FIELDS, values, strict=True)}
    checked_ids = None
    if ids.count(msgspec.UNSET) < len(ids):
        checked_ids = _check_ids([None if v is msgspec.UNSET else v for v in ids])
    return _checked(columns, checked_ids, RECORDS_INPUT)


def _parsed_at_once(elements: Sequence[Any], max_rows: int) -> list[Any] | None:
    """The records of a well-formed ``records`` input in one C-level pass; None for anything else.

    The common case (every element a JSON object that orjson reads, at most ``max_rows`` of
    them) costs one orjson call per element; their nesting is looked at only if the contract
    refuses them (:func:`from_records_tensor`). Elements that are arrays are walked for depth
    here. Anything else returns None and goes element by element, which names the element at
    fault, reads what only Python's parser reads (NaN tokens) and stops at the row limit.
    """
    if len(elements) > max_rows:
        return None
    try:
        parsed = list(map(orjson.loads, elements))
    except (orjson.JSONDecodeError, TypeError):
        return None
    if set(map(type, parsed)) == {dict}:
        return parsed
    if json_depth(parsed, MAX_JSON_DEPTH + 1) > MAX_JSON_DEPTH + 1:  # the list is a level
        return None
    records: list[Any] = []
    for item in parsed:
        records.extend(item if type(item) is list else [item])
    return records if len(records) <= max_rows else None


def from_tensors(tensors: Mapping[str, tuple[str, Sequence[int], np.ndarray | list[Any]]], *, max_rows: int) -> Batch:
    """Validate V2 inputs given as ``name -> (datatype, shape, values)``, one per field.

    ``values`` is a list when the tensor came as JSON ``data`` and an array when it came as
    binary data (the REST binary extension or gRPC contents). JSON values are held to the
    records' rules (numbers are JSON numbers, NaN is refused, null means missing) with the
    same messages; in a binary numeric tensor, where null cannot be written, NaN means missing.
    """
    _check_field_names(tensors.keys(), "the request")
    rows: int | None = None
    flat: dict[str, tuple[str, np.ndarray | list[Any]]] = {}
    for name, (datatype, shape, values) in tensors.items():
        shape = list(shape)
        items = values if isinstance(values, list) else values.reshape(-1)
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or len(items) != shape[0]:
            raise RequestError(
                "wrong_shape", f"input {name!r} has shape {shape}; expected [n] or [n, 1] with one value per record"
            )
        if rows is None:
            rows = shape[0]
        elif shape[0] != rows:
            raise RequestError("wrong_shape", f"input {name!r} has {shape[0]} values but other inputs have {rows}")
        flat[name] = (datatype, items)
    check_batch_size(rows or 0, max_rows)
    columns: Columns = {}
    for column in REQUIRED_FIELDS:
        datatype, values = flat[column.name]
        if column.kind in (Kind.INT, Kind.FLOAT):
            if datatype not in _NUMERIC_DATATYPES:
                raise RequestError("wrong_type", f"input {column.name!r} must be numeric (e.g. FP64), not {datatype}")
            if isinstance(values, list):
                columns[column.name] = _column_from_values(column, values, "the request")
                continue
            try:
                columns[column.name] = values.astype(np.float64)
            except (TypeError, ValueError, OverflowError):
                raise RequestError("wrong_type", f"input {column.name!r} holds values that are not numbers") from None
        else:
            if datatype != "BYTES":
                raise RequestError("wrong_type", f"input {column.name!r} must be BYTES (strings), not {datatype}")
            columns[column.name] = _column_from_values(column, _texts(column.name, values), "the request")
    ids = None
    if ID in flat:
        if flat[ID][0] != "BYTES":
            raise RequestError("wrong_type", f"input {ID!r} must be BYTES (strings), not {flat[ID][0]}")
        ids = _check_ids(_texts(ID, flat[ID][1]))
    return _checked(columns, ids, "the request")


def _texts(name: str, values: Sequence[Any] | np.ndarray) -> list[Any]:
    """BYTES tensor elements as text; an empty string is how a BYTES tensor says "missing"."""
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)  # plain list: fast to walk
    try:
        texts = [v.decode("utf-8") if type(v) is bytes else v for v in items]
    except UnicodeDecodeError:
        row = next(i for i, v in enumerate(items) if type(v) is bytes and not is_utf8(v))
        raise RequestError("wrong_type", f"{name!r} in row {row} is not valid UTF-8 text") from None
    return [None if v == "" else v for v in texts]


def _check_field_names(names: Any, where: str) -> None:
    present = set(names)
    unknown = sorted(str(n) for n in present - _ALLOWED)
    if unknown:
        raise RequestError(
            "unknown_field", f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; expected the raw columns"
        )
    missing = [name for name in FEATURE_INPUTS if name not in present]
    if missing:
        raise RequestError("missing_field", f"{where}: missing field(s) {', '.join(map(repr, missing))}")


def _column_from_values(column: RawColumn, values: list[Any], where: str) -> np.ndarray:
    """Check the types of Python values (from JSON) of one field; return the feature code's array.

    The common case (all numbers, or all strings, with nulls) is one C-level conversion;
    the per-value loop only runs to name the value that broke the rule.
    """
    name = column.name
    kinds = set(map(type, values))
    if column.kind in (Kind.INT, Kind.FLOAT):
        if kinds <= _NUMBER_TYPES:
            try:
                numbers = np.array(values, dtype=np.float64)  # None -> NaN
            except OverflowError:
                numbers = None
            if numbers is not None and (float not in kinds or int(np.isnan(numbers).sum()) == values.count(None)):
                return numbers
        for row, value in enumerate(values):
            if value is None:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise RequestError("wrong_type", f"{name!r} in row {row} must be a number, got {_describe(value)}")
            try:
                finite = math.isfinite(value)
            except OverflowError:
                raise RequestError("out_of_range", f"{name!r} in row {row} is too large a number") from None
            if not finite:
                raise RequestError(
                    "not_finite", f"{name!r} in row {row} is {value}; send a finite number, or null if unknown"
                )
        raise RequestError("out_of_range", f"{name!r} holds a number too large for a float")  # pragma: no cover
    if not kinds <= _TEXT_TYPES:
        row = next(i for i, v in enumerate(values) if v is not None and not isinstance(v, str))
        raise RequestError("wrong_type", f"{name!r} in row {row} must be a string, got {_describe(values[row])}")
    return _text_column(column, values)


def _typed_column(column: RawColumn, values: Sequence[Any], numbers: Iterator[np.ndarray]) -> np.ndarray:
    """The feature code's array of one field msgspec read (``numbers``: the numeric fields' rows, in order)."""
    if column.kind in (Kind.INT, Kind.FLOAT):
        return next(numbers)
    if column.kind is Kind.DATE:  # numpy converts date objects one by one, 30x slower than their ordinals
        days = np.fromiter(map(date.toordinal, values), dtype=np.int64, count=len(values))
        return (days - _EPOCH_ORDINAL).view("datetime64[D]")
    return _category_array(column.name, values)  # declared values only


def _category_array(name: str, values: Sequence[Any]) -> np.ndarray:
    """A checked category column as the feature code reads it: null as MISSING, in the column's text dtype."""
    if None in values:
        values = [MISSING if v is None else v for v in values]
    return np.asarray(values, dtype=_CATEGORY_DTYPES.get(name, str))


def _text_column(column: RawColumn, values: list[Any]) -> np.ndarray:
    """A text field's values (strings or None): the dates, or the categories, the feature code reads."""
    name = column.name
    if "" in values:  # as in a BYTES tensor, where it is the only way to say so: an empty string is missing
        values = [None if v == "" else v for v in values]
    if not column.nullable and None in values:
        row = values.index(None)
        raise RequestError("null_not_allowed", f"{name!r} in row {row} is null; it is required")
    allowed = _CATEGORIES.get(name)
    declared = allowed is not None and allowed.issuperset(values)
    if not declared:  # declared categories are printable UTF-8: a column of them needs no text checks
        _check_utf8(name, values)
        _check_no_control(name, values)
    if column.kind is Kind.DATE:
        return _dates(name, values)
    if allowed is not None and not declared:
        row = next(i for i, v in enumerate(values) if v not in allowed)
        raise RequestError(
            "unknown_category",
            f"{name!r} in row {row} is {values[row]!r}; expected one of {', '.join(column.categories)}",
        )
    return _category_array(name, values)


def _check_utf8(name: str, values: list[Any]) -> None:
    """Refuse text that cannot be written as UTF-8 (a lone surrogate, from a JSON escape such as ud800)."""
    try:
        "".join(filter(None, values)).encode("utf-8")  # filter(None): nulls (and empty strings) out, at C speed
    except UnicodeEncodeError:
        row = next(i for i, v in enumerate(values) if v is not None and not _encodes(v))
        raise RequestError("wrong_type", f"{name!r} in row {row} is not valid UTF-8 text") from None


def _check_no_control(name: str, values: list[Any]) -> None:
    """Refuse control characters (NUL included: numpy's text arrays would silently drop a trailing one)."""
    if _CONTROL.search("".join(filter(None, values))):
        row = next(i for i, v in enumerate(values) if v is not None and _CONTROL.search(v))
        raise RequestError("bad_text", f"{name!r} in row {row} is {values[row]!r}; it holds a control character")


def _check_ids(values: list[Any]) -> list[str]:
    """``customer_id``: printable text (or a whole number) of at most MAX_ID_LENGTH characters; echoed as text.

    A V1 record or a JSON tensor can hold any JSON value there: the UTF-8 rule looks at the
    strings only, and the type rule names anything else. The common case (all strings, all
    fine) is a few C-level passes; the per-value loop only runs to name the row at fault.
    """
    kinds = set(map(type, values))
    if kinds == {str}:  # the common case: every row has an id, as text
        _check_utf8(ID, values)
        if max(map(len, values)) <= MAX_ID_LENGTH and "".join(values).isprintable():
            return values
    texts = [v for v in values if isinstance(v, str)]
    _check_utf8(ID, [v if isinstance(v, str) else None for v in values])
    all_text = len(texts) + values.count(None) == len(values)
    if all_text and max(map(len, texts), default=0) <= MAX_ID_LENGTH and "".join(texts).isprintable():
        return _ids(values)
    for row, value in enumerate(values):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise RequestError("wrong_type", f"{ID!r} in row {row} must be a string, got {_describe(value)}")
        text = str(value)
        if len(text) > MAX_ID_LENGTH:
            raise RequestError(
                "bad_text", f"{ID!r} in row {row} is {len(text)} characters long; the limit is {MAX_ID_LENGTH}"
            )
        if not text.isprintable():
            raise RequestError("bad_text", f"{ID!r} in row {row} is {text!r}; it must be printable text")
    return _ids(values)


def check_request_id(value: Any) -> None:
    """A request id is echoed in the answer: it must be text that UTF-8 can carry."""
    if value is not None and (not isinstance(value, str) or not _encodes(value)):
        raise RequestError("malformed_request", "the request id must be valid UTF-8 text")
    if value is not None and _CONTROL.search(value):
        raise RequestError("bad_text", f"the request id {value!r} holds a control character")


def requested_outputs(requested: Sequence[Any] | None, known: Sequence[str]) -> list[str] | None:
    """Names of the outputs a request asks for (None: all), refusing names the model does not have."""
    if not requested:
        return None
    names = [output.name for output in requested]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise RequestError(
            "unknown_output", f"unknown output(s) {', '.join(map(repr, unknown))}; this model has {', '.join(known)}"
        )
    return names


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: A date written exactly as ``YYYY-MM-DD`` in ASCII digits; a whole column of them, one per line.
_DATE = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
_DATE_SHAPE = re.compile(_DATE)
_DATE_COLUMN = re.compile(f"{_DATE}(?:\n{_DATE})*")


def _dates(name: str, values: list[Any]) -> np.ndarray:
    """Calendar dates written exactly as ``YYYY-MM-DD``, as ``datetime64[D]``.

    numpy alone would also take ``NaT``, ``today`` (the answer would then depend on the
    server's clock), partial dates, timestamps and signed or padded years: the shape is
    checked first, on the whole column at once (one regular expression over its values, one
    per line: a few microseconds for one row, where numpy's per-call cost is tens), then the
    calendar.
    """
    text = ["" if v is None else v for v in values]
    column = "\n".join(text)
    # A value holding a line break of its own would add a line: counted, so it cannot pass as two dates.
    if not text or (_DATE_COLUMN.fullmatch(column) and column.count("\n") == len(text) - 1):
        try:
            return np.asarray(text, dtype="datetime64[D]")
        except ValueError:  # the shape is right but the calendar is not (2026-02-30, month 13)
            row = next(i for i, v in enumerate(text) if not _is_calendar_date(v))
    else:
        row = next(i for i, v in enumerate(text) if not _DATE_SHAPE.fullmatch(v))
    raise RequestError("bad_date", f"{name!r} in row {row} is {values[row]!r}; expected a date as YYYY-MM-DD")


def _is_calendar_date(value: str) -> bool:
    try:
        np.datetime64(value, "D")
    except ValueError:
        return False
    return True


def _check_numbers(columns: Columns) -> None:
    """Every numeric field at once, as one block: finite, present where required, in range, whole where int."""
    block = np.stack([columns[c.name] for c in _NUMERIC_FIELDS])  # fields x rows

    def first(mask: np.ndarray) -> tuple[RawColumn, int, float]:
        j, row = (int(i) for i in np.argwhere(mask)[0])
        return _NUMERIC_FIELDS[j], row, float(block[j, row])

    infinite = np.isinf(block)
    if infinite.any():
        column, row, value = first(infinite)
        raise RequestError("not_finite", f"{column.name!r} in row {row} is {value}; send a finite number")
    missing = np.isnan(block)
    absent = missing & _REQUIRED[:, None]
    if absent.any():
        column, row, _ = first(absent)
        raise RequestError("null_not_allowed", f"{column.name!r} in row {row} is missing (null/NaN); it is required")
    outside = (block < _LOW[:, None]) | (block > _HIGH[:, None])
    if outside.any():
        column, row, value = first(outside)
        raise RequestError(
            "out_of_range",
            f"{column.name!r} in row {row} is {value:g}; allowed range is {column.min:g} to {column.max:g}",
        )
    fractional = (block != np.floor(block)) & ~missing & _WHOLE[:, None]
    if fractional.any():
        column, row, value = first(fractional)
        raise RequestError("not_whole_number", f"{column.name!r} in row {row} is {value:g}; it must be a whole number")


def _ids(values: list[Any]) -> list[str]:
    return ["" if v is None else str(v) for v in values]


def _checked(columns: Columns, ids: list[str] | None, where: str) -> Batch:
    """Value rules of the numbers, then cross-field rules the features rely on."""
    _check_numbers(columns)
    signup, snapshot = columns["signup_date"], columns["snapshot_date"]
    late = signup > snapshot
    if late.any():
        row = int(np.argmax(late))
        raise RequestError(
            "inconsistent_record",
            f"row {row} has signup_date {signup[row]} after snapshot_date {snapshot[row]}",
        )
    returns, orders = columns["total_returns"], columns["total_orders"]
    over = returns > orders
    if over.any():
        row = int(np.argmax(over))
        raise RequestError(
            "inconsistent_record",
            f"row {row} has total_returns {returns[row]:g} > total_orders {orders[row]:g}",
        )
    return Batch(columns, ids)


def _describe(value: Any) -> str:
    text = json.dumps(value, default=str)
    return f"{type(value).__name__} {text[:40]}"
