"""Score a customer base with the champion: probability, label, risk decile and the top reasons.

The per-partition function :meth:`Scorer.score_frame` takes raw records and returns the
scored rows. It runs the same code as the online service: the model directory's own
fitted feature pipeline (``features.transform``, what the transformer runs), the
estimator's ``predict_matrix`` (what the predictor runs) and the stored threshold
(``ChurnModel.labels``, what the transformer's postprocess runs). A pandas run calls it
per part; an engine with partitions (Dask's ``map_partitions``) can call the same
function per partition.

Risk deciles come from cut points fitted once, on the champion's training split, and
stored in the model directory (:data:`churn.registry.model_dir.RISK_DECILES_FILE`): decile 10 is the riskiest
tenth of the customers the model was trained on, on every day, whatever the day's mix.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from churn.data.schema import ID
from churn.errors import ChurnError
from churn.features.derive import to_columns
from churn.registry.mlflow_registry import connect_registry, download_model, resolve_version
from churn.registry.model_dir import load_model_dir, read_risk_deciles
from churn.scoring.reasons import SHAP, TOP_REASONS, Explainer, TopReasons, format_values
from churn.storage import Location, copy, s3
from churn.training.models import ChurnModel

#: Columns of the scored table, in order (then ``reason_<i>``, ``reason_<i>_value``, ``reason_<i>_contribution``).
BASE_COLUMNS = (
    ID,
    "snapshot_date",
    "churn_probability",
    "churn_label",
    "risk_decile",
    "model_name",
    "model_version",
    "scored_at",
)
REASON_UNIT_COLUMN = "reasons_unit"
#: Rows per part of the scored table.
PART_ROWS = 250_000


def reason_columns(k: int = TOP_REASONS) -> list[str]:
    """``reason_1``, ``reason_1_value``, ``reason_1_contribution``, ... for ``k`` reasons."""
    return [f"reason_{i}{suffix}" for i in range(1, k + 1) for suffix in ("", "_value", "_contribution")]


def fit_risk_deciles(probabilities: np.ndarray) -> list[float]:
    """The nine cut points that split reference probabilities into ten equal-sized risk deciles."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.size == 0:
        raise ChurnError("cannot fit risk deciles on no probabilities")
    return [float(x) for x in np.quantile(p, np.linspace(0.1, 0.9, 9))]


def risk_decile(probabilities: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Decile 1 (lowest risk) .. 10 (highest) of each probability against the stored cut points."""
    return (np.searchsorted(edges, probabilities, side="right") + 1).astype(np.int8)


@dataclass
class Scorer:
    """Everything a partition needs to be scored: the model, its coordinates and its decile cut points."""

    model: ChurnModel
    model_name: str
    model_version: str
    deciles: np.ndarray
    explainer: Explainer | None = None
    scored_at: dt.datetime | None = None

    @classmethod
    def from_model_dir(
        cls, model_dir: Path, *, model_name: str, model_version: str, reasons: bool = True, method: str = SHAP
    ) -> Scorer:
        """A scorer for a downloaded model directory (KServe's layout); ``method`` of the reasons (see Explainer)."""
        model = load_model_dir(model_dir)
        return cls(
            model,
            model_name,
            model_version,
            read_risk_deciles(model_dir),
            Explainer(model, method) if reasons else None,
            dt.datetime.now(dt.UTC).replace(microsecond=0),
        )

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Score raw records (a validated frame): one scored row per record, in the same order."""
        scored: pd.DataFrame = self.score_table(frame).to_pandas(date_as_object=False)
        return scored

    def score_table(self, frame: pd.DataFrame) -> pa.Table:
        """:meth:`score_frame` as an Arrow table (what the writer stores; no pandas round trip)."""
        columns = to_columns(frame)
        matrix = self.model.features.transform(columns)
        # An empty partition (Dask) scores to an empty table of the same schema; LightGBM refuses 0 rows.
        probabilities = self.model.predict_matrix(matrix) if len(matrix) else np.zeros(0)
        n = len(probabilities)
        scored_at = self.scored_at or dt.datetime.now(dt.UTC).replace(microsecond=0)
        arrays: dict[str, pa.Array] = {
            ID: pa.array(frame[ID].astype(str).to_numpy() if ID in frame else np.full(n, ""), pa.string()),
            "snapshot_date": pa.array(columns["snapshot_date"], pa.date32()),
            "churn_probability": pa.array(probabilities, pa.float64()),
            "churn_label": pa.array(self.model.labels(probabilities), pa.int8()),
            "risk_decile": pa.array(risk_decile(probabilities, self.deciles), pa.int8()),
            "model_name": _constant(self.model_name, n),
            "model_version": _constant(self.model_version, n),
            "scored_at": pa.array(np.full(n, np.datetime64(scored_at.replace(tzinfo=None), "s")), pa.timestamp("s")),
        }
        if self.explainer is not None:
            top = self.explainer.top(matrix)
            arrays |= _reason_arrays(top, columns)
            arrays[REASON_UNIT_COLUMN] = _constant(top.unit, n)
        return pa.table(arrays)


def _constant(value: str, n: int) -> pa.Array:
    """A column holding one string: dictionary-encoded, so a million rows cost one string."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value]))


def _reason_arrays(top: TopReasons, columns: dict[str, np.ndarray]) -> dict[str, pa.Array]:
    names = pa.array(list(top.attributes))
    values = value_strings(top, columns)
    arrays: dict[str, pa.Array] = {}
    for i in range(top.attribute.shape[1]):
        arrays[f"reason_{i + 1}"] = pa.DictionaryArray.from_arrays(
            pa.array(top.attribute[:, i].astype(np.int32)), names
        )
        arrays[f"reason_{i + 1}_value"] = pa.array(values[:, i], pa.string())
        arrays[f"reason_{i + 1}_contribution"] = pa.array(top.contribution[:, i], pa.float64())
    return arrays


def value_strings(top: TopReasons, columns: dict[str, np.ndarray]) -> np.ndarray:
    """``(rows, k)`` raw values of each row's reason attributes, as people read them."""
    out = np.empty(top.attribute.shape, dtype=object)
    for position, name in enumerate(top.attributes):
        hit = top.attribute == position
        if hit.any():
            rows = np.nonzero(hit)[0]
            out[hit] = format_values(columns[name][rows])
    return out


# --- reading the base and writing the table ------------------------------------------------


def input_parts(source: str, work_dir: Path) -> list[Path]:
    """The raw files of a base: a file, a folder of parts, or an ``s3://`` object or prefix (downloaded).

    Raises:
        ChurnError: Nothing to score there, or S3 cannot be read.

    """
    where = Location.parse(source)
    if where.is_s3:
        bucket, key = where.bucket, where.key.strip("/")
        client = s3.s3_client()
        try:
            keys = sorted(s3.list_objects(Location.s3(bucket, key), client=client).keys)
        except Exception as exc:
            raise ChurnError(f"cannot list {source}: {exc}") from exc
        keys = [k for k in keys if k == key or (k.startswith(key.rstrip("/") + "/") and _is_part(k))]
        if not keys:
            raise ChurnError(f"no customer file (.csv or .parquet) at {source}")
        work_dir.mkdir(parents=True, exist_ok=True)
        parts = []
        for i, k in enumerate(keys):
            target = work_dir / f"{i:05d}-{Path(k).name}"
            try:
                copy(Location.s3(bucket, k), target, client=client)
            except Exception as exc:
                raise ChurnError(f"cannot read s3://{bucket}/{k}: {exc}") from exc
            parts.append(target)
        return parts
    path = where.path
    if path.is_file():
        return [path]
    if path.is_dir():
        parts = sorted(p for p in path.rglob("*") if p.is_file() and _is_part(p.name))
        if not parts:
            raise ChurnError(f"folder {path} holds no customer file (.csv or .parquet)")
        return parts
    raise ChurnError(f"customer base {source} does not exist")


def _is_part(name: str) -> bool:
    base = Path(name).name
    return not base.startswith((".", "_")) and base.lower().endswith((".csv", ".parquet", ".pq"))


def read_part(path: Path) -> pd.DataFrame:
    """A raw part parsed to its declared types (validation ran before; a file that no longer parses fails)."""
    from churn.validation.reader import read_raw_file

    parsed = read_raw_file(path)
    if parsed.frame is None or parsed.violations:
        reasons = "; ".join(v.message for v in parsed.violations) or "unreadable"
        raise ChurnError(f"{path.name}: {reasons}")
    return parsed.frame


@dataclass(frozen=True)
class ScoreSummary:
    """What a scoring run produced."""

    location: str
    rows: int
    parts: int
    seconds: float
    manifest: dict[str, Any]
    churned: int
    probability_sum: float
    probability_counts: list[int]
    decile_counts: list[int]

    def stats(self) -> dict[str, Any]:
        """The run's numbers as the Pushgateway push takes them (see :func:`churn.scoring.publish.push_scoring`)."""
        return {
            "rows": self.rows,
            "churned": self.churned,
            "probability_sum": self.probability_sum,
            "probability_counts": self.probability_counts,
            "decile_counts": self.decile_counts,
            "seconds": self.seconds,
        }


#: Bucket edges of the probability distribution in the run's metrics (ten equal-width bins).
PROBABILITY_BUCKETS = np.linspace(0.0, 1.0, 11)


def score_base(
    frames: Iterator[pd.DataFrame],
    scorer: Scorer,
    location: str,
    *,
    part_rows: int = PART_ROWS,
    on_part: Callable[[int, int], None] | None = None,
) -> ScoreSummary:
    """Score every frame and commit the scored table at ``location`` (folder or ``s3://``) atomically.

    Args:
        frames: The base's raw records, part by part (validated).
        scorer: The model to score with.
        location: Where the table lives; the previous run's table stays until this one commits.
        part_rows: Largest part of the scored table.
        on_part: Called with (parts written, rows written) after each part.

    Raises:
        ChurnError: Anything failed; the previous table is left in place.

    """
    tables = (
        scorer.score_table(frame.iloc[begin : begin + part_rows])
        for frame in frames
        for begin in range(0, len(frame), part_rows)
    )
    return write_scored(tables, scorer, location, part_rows=part_rows, on_part=on_part)


def write_scored(
    tables: Iterable[pa.Table],
    scorer: Scorer,
    location: str,
    *,
    part_rows: int = PART_ROWS,
    on_part: Callable[[int, int], None] | None = None,
) -> ScoreSummary:
    """Write scored tables (from :meth:`Scorer.score_table`, any engine) as one committed table; count the run.

    A table longer than ``part_rows`` is written as several parts; empty ones are skipped.

    Raises:
        ChurnError: Anything failed (or there were no rows); the previous table is left in place.

    """
    from churn.scoring.table import TableWriter

    start = time.perf_counter()
    churned = 0
    probability_sum = 0.0
    counts = np.zeros(len(PROBABILITY_BUCKETS) - 1, dtype=np.int64)
    deciles = np.zeros(10, dtype=np.int64)
    with TableWriter(location) as writer:
        for whole in tables:
            for begin in range(0, whole.num_rows, part_rows):
                table = whole.slice(begin, part_rows)
                writer.write(table)
                p = table.column("churn_probability").to_numpy()
                churned += int(table.column("churn_label").to_numpy().sum())
                probability_sum += float(p.sum())
                counts += np.histogram(p, PROBABILITY_BUCKETS)[0]
                deciles += np.bincount(table.column("risk_decile").to_numpy() - 1, minlength=10)
                if on_part:
                    on_part(len(writer.parts), writer.rows)
        if writer.rows == 0:
            raise ChurnError("the customer base holds no rows: nothing was scored, the previous table stays")
        manifest = writer.commit(
            {
                "model_name": scorer.model_name,
                "model_version": scorer.model_version,
                "family": scorer.model.family,
                "threshold": scorer.model.threshold,
                "reasons": scorer.explainer is not None,
            }
        )
    return ScoreSummary(
        location,
        writer.rows,
        len(writer.parts),
        time.perf_counter() - start,
        manifest,
        churned,
        probability_sum,
        counts.tolist(),
        deciles.tolist(),
    )


def fetch_model(model_uri: str, tracking_uri: str) -> tuple[Path, str]:
    """The local directory and the registry version of ``model_uri`` (a ``models:/`` URI or a model folder)."""
    if not Path(model_uri).is_dir():
        connect_registry(tracking_uri)
    folder = download_model(model_uri)
    version = resolve_version(model_uri) if model_uri.startswith("models:/") else folder.name
    return folder, version


def highest_risk(table: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` customers with the highest churn probability, riskiest first."""
    return table.nlargest(n, "churn_probability", keep="first")


def reason_texts(row: pd.Series) -> list[str]:
    """The rendered reasons of one scored row (``days_since_last_purchase = 121 → +0.84 log-odds ...``)."""
    from churn.scoring.reasons import render

    texts = []
    for i in range(1, TOP_REASONS + 1):
        name = row.get(f"reason_{i}")
        if name is None or pd.isna(name):
            break
        texts.append(
            render(
                str(name),
                str(row[f"reason_{i}_value"]),
                float(row[f"reason_{i}_contribution"]),
                str(row[REASON_UNIT_COLUMN]),
            )
        )
    return texts


def score_source(
    source: str,
    location: str,
    *,
    model_dir: Path,
    model_name: str,
    model_version: str,
    reasons: bool = True,
    work_dir: Path | None = None,
    validate: bool = True,
    min_rows: int = 1,
    part_rows: int = PART_ROWS,
    method: str = SHAP,
) -> ScoreSummary:
    """Validate and score a base (file, folder or ``s3://``) into the table at ``location``.

    Every part is validated before the first row is scored: a bad part fails the run and
    the previous table stays.
    """
    import tempfile

    temporary = work_dir is None
    folder = Path(tempfile.mkdtemp(prefix="churn-score-")) if work_dir is None else work_dir
    try:
        parts = input_parts(source, folder / "input")
        if validate:
            validate_parts(parts, min_rows=min_rows)
        scorer = Scorer.from_model_dir(
            model_dir, model_name=model_name, model_version=model_version, reasons=reasons, method=method
        )
        return score_base((read_part(p) for p in parts), scorer, location, part_rows=part_rows)
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


def validate_parts(parts: list[Path], *, min_rows: int = 1) -> int:
    """Validate every part against the schema; return the rows. Raises on the first invalid part."""
    from churn.validation import DataValidationError, validate_file

    rows = 0
    for part in parts:
        try:
            frame, _ = validate_file(part, min_rows=min_rows if len(parts) == 1 else 1)
        except DataValidationError as exc:
            raise ChurnError(f"the customer base is invalid: {part.name}: {exc}") from None
        rows += len(frame)
    return rows


def base_parts(folder: str | Path) -> list[Path]:
    """The part files of a customer base folder, in name order.

    Raises:
        ChurnError: The folder holds no part.

    """
    parts = sorted(p for p in Path(folder).iterdir() if p.is_file())
    if not parts:
        raise ChurnError(f"the customer base {folder} holds no part")
    return parts
