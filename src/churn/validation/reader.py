"""Reading a raw export without trusting it.

Files arrive from other systems: they may be empty, binary, in another encoding,
separated by semicolons, cut off mid-row, or hold text where numbers belong. Each of
these becomes a :class:`~churn.validation.report.Violation`, never an exception from a
parser deep inside pandas or Arrow. Values are parsed column by column according to
:mod:`churn.data.schema`; cells that do not parse are reported and set to missing so
the remaining rules can still run on the rest of the file.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from churn.data.files import RAW_ARROW_SCHEMA
from churn.data.schema import COLUMNS_BY_NAME, Kind, RawColumn
from churn.validation.report import Violation

_PARQUET_MAGIC = b"PAR1"
_COLUMN_COUNT = re.compile(r"Expected (\d+) columns, got (\d+): (.*)", re.DOTALL)


@dataclass
class ParsedFile:
    """A file read into a typed frame (``None`` when nothing could be read) and what went wrong."""

    frame: pd.DataFrame | None
    violations: list[Violation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Column -> rows whose value did not parse (now missing in ``frame``).
    unparsed: dict[str, set[int]] = field(default_factory=dict)
    #: The file's own (1-based) line number of each row of ``frame``; None when not a text file.
    lines: np.ndarray | None = None


def read_raw_file(path: str | Path, max_examples: int = 5) -> ParsedFile:
    """Read a raw customer file (``.csv`` or ``.parquet``) into a typed frame.

    Args:
        path: The file. ``.parquet``/``.pq`` is read as parquet, anything else as CSV.
        max_examples: Example rows kept per violation.

    Returns:
        The typed frame plus every problem found while reading and parsing.

    """
    path = Path(path)
    if not path.is_file():
        return ParsedFile(None, [Violation("file_not_found", f"{path} does not exist or is not a file")])
    parsed = _read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else _read_csv(path)
    if parsed.frame is None:
        return parsed
    typed = parse_columns(parsed.frame, max_examples)
    typed.violations[:0] = parsed.violations
    typed.warnings[:0] = parsed.warnings
    typed.lines = parsed.lines
    return typed


def _read_parquet(path: Path) -> ParsedFile:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        return ParsedFile(None, [Violation("not_parquet", f"{path.name} is not a readable parquet file ({exc})")])
    return ParsedFile(table.to_pandas(date_as_object=False))


def _read_csv(path: Path) -> ParsedFile:
    data = path.read_bytes()
    if not data.strip():
        return ParsedFile(None, [Violation("empty_file", f"{path.name} is empty")])
    if data.startswith(_PARQUET_MAGIC):
        return ParsedFile(None, [Violation("not_csv", f"{path.name} is a parquet file, not CSV; name it *.parquet")])
    nul = data.find(b"\x00")  # the whole file: a NUL is the same defect at byte 10 or at byte 10 million
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        message = f"{path.name} is binary, not CSV text: it contains NUL bytes (the first on line {line})"
        return ParsedFile(None, [Violation("not_csv", message)])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1].hex()
        message = f"{path.name} is not UTF-8: byte 0x{byte} at line {line} cannot be decoded; re-export it as UTF-8"
        return ParsedFile(None, [Violation("not_utf8", message)])
    if text.startswith("\ufeff"):
        text, data = text[1:], data[3:]
    if text.lstrip()[:1] in ("{", "["):
        return ParsedFile(None, [Violation("not_csv", f"{path.name} holds JSON, not comma-separated values")])
    header = next(csv.reader([text.split("\n", 1)[0].rstrip("\r")]))
    if len(header) == 1:
        for sep, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if sep in header[0]:
                message = f"{path.name} is {name}-separated; expected comma-separated values"
                return ParsedFile(None, [Violation("not_csv", message)])
    duplicates = sorted({c for c in header if c.strip() and header.count(c) > 1})
    if duplicates:
        return ParsedFile(None, [Violation("duplicate_column", f"header repeats {', '.join(duplicates)}")])
    violations, names = _unnamed_columns(header)
    warnings = []
    if "\n" not in text.rstrip("\r\n"):  # header only: no data rows (min_rows reports it)
        frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in names})
        return ParsedFile(frame.drop(columns=[n for n in names if n not in header]), violations)
    if not text.endswith("\n"):
        warnings.append("the last line has no line terminator: the file may have been cut off")
    # Fast path: let Arrow convert every declared column. When some cell does not convert,
    # read everything as text instead so that parse_columns can report each bad cell.
    declared = {c: RAW_ARROW_SCHEMA.field(c).type for c in names if c in COLUMNS_BY_NAME}
    typed = True
    try:
        table = _arrow_csv(data, names, {c: declared.get(c, pa.string()) for c in names})
    except pa.ArrowInvalid:
        typed = False
        try:
            table = _arrow_csv(data, names, dict.fromkeys(names, pa.string()))
        except pa.ArrowInvalid as exc:
            violations.append(Violation("malformed_csv", _describe_csv_error(path, text, str(exc))))
            return ParsedFile(None, violations, warnings)
    frame = table.to_pandas(date_as_object=False)
    lines = _record_lines(data)
    if lines is not None and len(lines) != len(frame):
        lines = None
    if not typed:  # a header line repeated among the rows can only be there when the typed read failed
        frame, repeated, kept = _drop_repeated_headers(frame, header, text, lines)
        violations += repeated
        lines = lines[kept] if lines is not None else None
    unnamed = [n for n in names if n not in header]
    return ParsedFile(frame.drop(columns=unnamed), violations, warnings, lines=lines)


def _record_lines(data: bytes) -> np.ndarray | None:
    """The 1-based line on which each data record starts (blank lines skipped, as the CSV reader does).

    Vectorized when no quoted field spans lines (the usual case); else counted by Python's
    csv module. None when the file cannot be split into records here.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(raw == ord("\n"))
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(raw)]])
    quotes_per_line = np.bincount(np.searchsorted(newlines, np.flatnonzero(raw == ord('"'))), minlength=len(starts))
    if (quotes_per_line % 2).any():  # a quoted field holds a line break
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        reader = csv.reader(io.StringIO(text))
        found, end, header = [], 0, True
        for record in reader:
            start, end = end + 1, reader.line_num
            if record and not header:
                found.append(start)
            header = header and not record
        return np.asarray(found, dtype=np.int64)
    length = ends - starts
    length -= (length > 0) & (raw[np.maximum(ends - 1, 0)] == ord("\r"))
    lines = np.flatnonzero(length > 0) + 1
    return lines[1:]  # the header line is not a record


def _unnamed_columns(header: list[str]) -> tuple[list[Violation], list[str]]:
    """Name the header's empty fields ``<unnamed column N>`` and report each.

    A trailing comma on the header line (or an extra separator inside it) adds a column
    without a name. It is reported by its position, and the column is left out of the frame
    so that the rest of the file is still checked.
    """
    violations, names = [], []
    for position, name in enumerate(header, start=1):
        if name.strip():
            names.append(name)
            continue
        placeholder = f"<unnamed column {position}>"
        hint = " (a trailing comma at the end of the header line?)" if position == len(header) else ""
        message = f"the header has no name for column {position} of {len(header)}{hint}"
        violations.append(Violation("unnamed_column", message, placeholder))
        names.append(placeholder)
    return violations, names


def _drop_repeated_headers(
    frame: pd.DataFrame, header: list[str], text: str, lines: np.ndarray | None = None
) -> tuple[pd.DataFrame, list[Violation], np.ndarray]:
    """Take rows that repeat the header out of the frame, and report them as one violation (and the rows kept).

    Files joined with ``cat`` carry each part's header line into the middle of the data;
    reported cell by cell it would be one "not a number" per column.
    """
    named = [c for c in header if c.strip()]
    if not named or len(frame) == 0:
        return frame, [], np.ones(len(frame), dtype=bool)
    repeated = np.ones(len(frame), dtype=bool)
    for name in named:
        repeated &= (frame[name].astype(object) == name).to_numpy()
    if not repeated.any():
        return frame, [], ~repeated
    rows = [int(r) for r in np.flatnonzero(repeated)]
    if lines is not None:
        where = f"line {', '.join(str(int(lines[r])) for r in rows)}"
    else:
        where = f"data row {', '.join(map(str, rows))}"
    message = f"the header line is repeated at {where} (files concatenated with their headers?)"
    violation = Violation("repeated_header", message, None, len(rows))
    return frame.loc[~repeated].reset_index(drop=True), [violation], ~repeated


def _arrow_csv(data: bytes, names: list[str], types: dict[str, pa.DataType]) -> pa.Table:
    read = pa_csv.ReadOptions(column_names=names, skip_rows=1)
    options = pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True)
    return pa_csv.read_csv(pa.BufferReader(data), read_options=read, convert_options=options)


def _describe_csv_error(path: Path, text: str, message: str) -> str:
    """Turn Arrow's parse error into a message with a line number."""
    match = _COLUMN_COUNT.search(message)
    if not match:
        return f"{path.name} is not valid CSV: {message.removeprefix('CSV parse error: ')}"
    expected, got, row_text = match.groups()
    offset = text.find(row_text.removesuffix(" ..."))  # Arrow shortens long rows
    where = f"line {text.count(chr(10), 0, offset) + 1}" if offset >= 0 else "a row"
    cut = " (the file looks truncated)" if offset >= 0 and not text[offset:].rstrip("\r").count("\n") else ""
    return f"{path.name}: {where} has {got} fields, the header has {expected}{cut}"


def parse_columns(frame: pd.DataFrame, max_examples: int = 5) -> ParsedFile:
    """Convert each known column to its declared type; report cells that do not convert.

    Columns not in the schema are left as they are (validation reports them).
    """
    out = frame.copy()
    parsed = ParsedFile(out)
    for name in frame.columns:
        spec = COLUMNS_BY_NAME.get(name)
        if spec is None:
            continue
        values, bad, reason = _parse(frame[name], spec)
        out[name] = values
        if bad.any():
            rows = np.flatnonzero(bad.to_numpy())
            examples = [{"row": int(i), "value": _plain(frame[name].iloc[i])} for i in rows[:max_examples]]
            parsed.violations.append(Violation("dtype", reason, name, int(bad.sum()), examples))
            parsed.unparsed[name] = {int(i) for i in rows}
    return parsed


def _parse(raw: pd.Series, spec: RawColumn) -> tuple[pd.Series, pd.Series, str]:
    present = raw.notna()
    if spec.kind in (Kind.ID, Kind.CATEGORY):
        text = raw.astype(object)
        return text.where(~present, text.astype(str)), pd.Series(False, index=raw.index), ""
    if spec.kind is Kind.DATE:
        if pd.api.types.is_datetime64_any_dtype(raw):
            dates = raw.astype("datetime64[ns]")
        else:
            dates = pd.to_datetime(raw.astype(object), format="%Y-%m-%d", errors="coerce")
        return dates, present & dates.isna(), "not a date in YYYY-MM-DD form"
    numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
    bad = present & (numbers.isna() | np.isinf(numbers))
    if spec.kind is Kind.FLOAT:
        return numbers.where(~bad), bad, "not a finite number"
    bad |= present & ~bad & (numbers % 1 != 0)
    return numbers.where(~bad).astype("Int64"), bad, "not an integer"


def _plain(value: Any) -> Any:
    """A JSON-friendly example value."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return value
