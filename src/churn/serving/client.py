"""Send customer records to the transformer and read back the answers (``churn predict``)."""

from __future__ import annotations

import csv
import itertools
import json
import math
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from churn.data.schema import LABEL
from churn.errors import ChurnError
from churn.serving.contract import RECORDS_INPUT
from churn.serving.local import post_json


def read_records(text: str, *, source: str) -> list[dict[str, Any]]:
    """Records from JSON (a list, ``{"instances": [...]}`` or one object) or JSON lines.

    Raises:
        ChurnError: The text is neither, naming ``source`` and the line that failed.

    """
    stripped = text.strip()
    if not stripped:
        raise ChurnError(f"{source} is empty; expected customer records as JSON")
    try:
        parsed = json.loads(stripped)
    except json.JSONDecodeError:
        parsed = []
        for number, line in enumerate(stripped.splitlines(), start=1):
            if line.strip():
                try:
                    parsed.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ChurnError(f"{source} line {number} is not JSON: {exc.msg}") from None
    if isinstance(parsed, dict):
        parsed = parsed.get("instances", [parsed])
    if not isinstance(parsed, list) or not all(isinstance(r, dict) for r in parsed):
        raise ChurnError(f"{source} must hold JSON objects (customer records)")
    return parsed


def read_records_file(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Records from a raw export (``.csv``/``.parquet``, the label column dropped) or a JSON file.

    With ``limit``, only the first ``limit`` records are read: a CSV up to its ``limit``-th
    row, a parquet file's first batch, JSON lines up to the ``limit``-th line (a JSON array
    must still be parsed whole).
    """
    if not path.is_file():
        raise ChurnError(f"{path} does not exist")
    if path.suffix in (".csv", ".parquet"):
        from churn.validation.reader import read_raw_file

        with tempfile.TemporaryDirectory(prefix="churn-predict-") as tmp:
            source = _head(path, limit, Path(tmp)) if limit else path
            parsed = read_raw_file(source)
        if parsed.frame is None:
            problems = "; ".join(v.message for v in parsed.violations[:3])
            raise ChurnError(f"cannot read {path}: {problems}")
        frame = parsed.frame.drop(columns=[LABEL], errors="ignore")
        rows = json.loads(frame.to_json(orient="records", date_format="iso"))
        return [{k: (v[:10] if k.endswith("_date") and isinstance(v, str) else v) for k, v in r.items()} for r in rows]
    try:
        with path.open(encoding="utf-8") as handle:
            return read_first_records(handle, limit, source=str(path))
    except UnicodeDecodeError as exc:
        raise ChurnError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None


def read_first_records(lines: TextIO, limit: int | None, *, source: str) -> list[dict[str, Any]]:
    """The first ``limit`` records (all without a limit) of JSON or JSON lines read from ``lines``.

    JSON lines are read only up to the ``limit``-th line; one JSON document (an array, or an
    object over several lines) must be read whole, which happens when the first lines alone
    do not parse.
    """
    if not limit:
        return read_records(lines.read(), source=source)
    head = "".join(itertools.islice(lines, limit))
    try:
        return read_records(head, source=source)[:limit]
    except ChurnError:
        return read_records(head + lines.read(), source=source)[:limit]


def _head(path: Path, limit: int, folder: Path) -> Path:
    """The first ``limit`` records of a CSV or parquet export, as a file of the same kind."""
    out = folder / path.name
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=limit)
            first = next(batches, None)
        except (pa.ArrowInvalid, OSError):
            return path  # the reader names what is wrong with it
        if first is not None:
            pq.write_table(pa.Table.from_batches([first]), out)
            return out
        return path
    try:
        with path.open(newline="", encoding="utf-8") as source, out.open("w", newline="") as target:
            writer = csv.writer(target, lineterminator="\n")
            for row in itertools.islice(csv.reader(source), limit + 1):  # the header, then ``limit`` rows
                writer.writerow(row)
    except (UnicodeDecodeError, csv.Error):
        return path  # the reader names what is wrong with it
    return out


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def predict_records(url: str, model_name: str, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Score records through the transformer's V2 REST endpoint (the JSON-records input).

    Returns:
        The V2 response. Raises ChurnError with the server's message on a 4xx/5xx.

    """
    elements = [json.dumps({k: _clean(v) for k, v in record.items()}) for record in records]
    body = {"inputs": [{"name": RECORDS_INPUT, "datatype": "BYTES", "shape": [len(elements)], "data": elements}]}
    try:
        status, answer = post_json(f"{url}/v2/models/{model_name}/infer", body)
    except OSError as exc:
        raise ChurnError(f"cannot reach the churn service at {url}: {exc}") from None
    if status != 200:
        raise ChurnError(f"the service refused the request ({status}): {answer.get('error', answer)}")
    return dict(answer)


def answer_rows(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per customer from a V2 response (probability, label and id when sent)."""
    outputs = {o["name"]: o["data"] for o in answer["outputs"]}
    names = list(outputs)
    return [dict(zip(names, values, strict=True)) for values in zip(*outputs.values(), strict=True)]
