"""Why a customer got its score: exact additive contributions, rolled up to raw attributes.

For every model family the contributions of a row plus a bias add up exactly to the
model's own output for that row:

* XGBoost: ``Booster.predict(pred_contribs=True)`` (TreeSHAP), in log-odds (the margin).
* LightGBM: ``Booster.predict(pred_contrib=True)`` (TreeSHAP), in log-odds (the raw score).
* Logistic Regression: coefficient x (standardized value - its training mean), in
  log-odds; the bias is the margin of the average training row.
* Random Forest: path attribution (Saabas; the method of ``treeinterpreter``), in
  probability: every split on a row's path moves the tree's class-1 share by
  (child - parent), credited to the split's feature; averaged over the trees these add up
  exactly to ``predict_proba``. SHAP's ``TreeExplainer`` gives Shapley values for a forest
  too, but on the default forest (150 trees of depth 12) it scored 76 rows/s on 2 cores:
  too slow to explain a customer base every day, or a request online.

Model features are then rolled up to the raw attributes the feature pipeline declares as
their sources (:meth:`FeaturePipeline.feature_sources`): RFM scores, one-hot columns,
missing flags and risk flags count towards what the customer did, not towards encoder
columns. A feature derived from several attributes shares its contribution equally among
them, so the roll-up keeps the sum. The top reasons are the attributes with the largest
absolute contributions, with their sign.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from churn.errors import ChurnError
from churn.features.derive import FEATURE_INPUTS, MISSING, Columns
from churn.training.models import ChurnModel

#: Exact Shapley values (TreeSHAP) for the boosters; path attribution for the forest.
SHAP = "shap"
#: Path attribution (Saabas) for every tree model: also exactly additive, several times faster.
PATH = "path"
METHODS = (SHAP, PATH)
LOG_ODDS = "log-odds"
PROBABILITY = "probability"
#: How many reasons each score carries.
TOP_REASONS = 3
#: Rows per LightGBM leaf lookup of the path method (bounds its memory).
LEAF_CHUNK_ROWS = 32_768


@dataclass(frozen=True)
class Contributions:
    """Per-attribute contributions of a batch of rows.

    Attributes:
        values: ``(rows, attributes)``; row ``i`` adds up to ``output[i] - bias``.
        bias: The model's output for the average row (a scalar, the same for every row).
        unit: :data:`LOG_ODDS` (boosters, logistic regression) or :data:`PROBABILITY` (forest).
        attributes: Names of the columns of ``values`` (raw attributes).

    """

    values: np.ndarray
    bias: float
    unit: str
    attributes: tuple[str, ...]


@dataclass(frozen=True)
class TopReasons:
    """The strongest reasons of each row: attribute positions and contributions, strongest first."""

    attribute: np.ndarray  # (rows, k) int: position in ``Explainer.attributes``
    contribution: np.ndarray  # (rows, k) float64, signed
    unit: str
    attributes: tuple[str, ...]

    def names(self) -> np.ndarray:
        """``(rows, k)`` attribute names."""
        names: np.ndarray = np.asarray(self.attributes, dtype=object)[self.attribute]
        return names


class Explainer:
    """Exact additive reasons for one churn model; build once per model, then call per batch.

    Args:
        model: The model to explain (its feature pipeline declares the raw sources).
        method: :data:`SHAP` (TreeSHAP for the boosters) or :data:`PATH` (path attribution for
            the boosters too: XGBoost's ``approx_contribs``, LightGBM from its dumped trees).
            The forest always uses path attribution and the logistic regression is linear.

    Raises:
        ChurnError: The model's family has no explainer, or the method is unknown.

    """

    def __init__(self, model: ChurnModel, method: str = SHAP) -> None:
        if method not in METHODS:
            raise ChurnError(f"unknown reasons method {method!r}; known: {', '.join(METHODS)}")
        self.model = model
        self.method = method
        sources = model.features.feature_sources()
        # Raw attributes in the export's order, only those some feature comes from.
        used = {name for group in sources for name in group}
        self.attributes: tuple[str, ...] = tuple(name for name in FEATURE_INPUTS if name in used)
        position = {name: i for i, name in enumerate(self.attributes)}
        rollup = np.zeros((len(sources), len(self.attributes)))
        for j, group in enumerate(sources):
            for name in group:
                rollup[j, position[name]] += 1.0 / len(group)
        self.rollup = rollup
        self.unit = PROBABILITY if model.family == "random_forest" else LOG_ODDS
        if model.family == "logistic_regression":
            coef = np.asarray(model.estimator.coef_, dtype=np.float64).reshape(-1)
            means = getattr(model.features, "matrix_means_", None)
            self._means = np.zeros_like(coef) if means is None else np.asarray(means, dtype=np.float64)
            self._linear = coef[:, None] * rollup
            self._bias = float(model.estimator.intercept_[0] + coef @ self._means)
        elif model.family == "random_forest":
            self._tables, self._bias = _forest_tables(model.estimator, rollup)
        elif model.family == "lightgbm" and method == PATH:
            self._leaf_table, self._offsets, self._bias = _lightgbm_tables(model.estimator, rollup)
        elif model.family not in ("xgboost", "lightgbm"):
            raise ChurnError(f"no explainer for model family {model.family!r}")

    def feature_contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, float]:
        """``(rows, features + 1)`` contributions per model feature, the bias last (boosters only)."""
        family, estimator = self.model.family, self.model.estimator
        if family == "xgboost":
            import xgboost

            best = getattr(estimator, "best_iteration", None)
            limit = (0, best + 1) if best is not None else (0, 0)
            booster = estimator.get_booster()
            threads = int(estimator.get_params().get("n_jobs") or 0)
            data = xgboost.DMatrix(matrix, nthread=threads)
            approx = self.method == PATH
            values = booster.predict(data, pred_contribs=True, approx_contribs=approx, iteration_range=limit)
        elif family == "lightgbm":
            threads = int(estimator.get_params().get("n_jobs") or 0)
            values = estimator.booster_.predict(
                matrix, pred_contrib=True, num_iteration=estimator.best_iteration_ or None, num_threads=threads
            )
        else:
            raise ChurnError(f"{family} has no per-feature booster contributions")
        values = np.asarray(values, dtype=np.float64)
        return values, float(values[0, -1]) if len(values) else 0.0

    def contributions(self, matrix: np.ndarray) -> Contributions:
        """Per-attribute contributions of each row of a model matrix (from ``features.transform``)."""
        matrix = np.asarray(matrix, dtype=np.float64)
        family = self.model.family
        if len(matrix) == 0:  # no rows, no library call (LightGBM refuses 0 rows)
            return Contributions(np.zeros((0, len(self.attributes))), 0.0, self.unit, self.attributes)
        if family == "lightgbm" and self.method == PATH:
            rolled = _lightgbm_contributions(self.model.estimator, self._leaf_table, self._offsets, matrix)
            bias = self._bias
        elif family in ("xgboost", "lightgbm"):
            values, bias = self.feature_contributions(matrix)
            rolled = values[:, :-1] @ self.rollup
        elif family == "logistic_regression":
            rolled = matrix @ self._linear - self._means @ self._linear  # no n x features temporary
            bias = self._bias
        else:
            rolled = _forest_contributions(self.model.estimator, self._tables, matrix)
            bias = self._bias
        return Contributions(rolled, bias, self.unit, self.attributes)

    def output(self, matrix: np.ndarray) -> np.ndarray:
        """The model's own output that the contributions add up to: log-odds margin, or probability."""
        family, estimator = self.model.family, self.model.estimator
        if family == "xgboost":
            best = getattr(estimator, "best_iteration", None)
            limit = (0, best + 1) if best is not None else (0, 0)
            margin = estimator.get_booster().inplace_predict(matrix, iteration_range=limit, predict_type="margin")
            return np.asarray(margin, dtype=np.float64)
        if family == "lightgbm":
            raw = estimator.booster_.predict(matrix, raw_score=True, num_iteration=estimator.best_iteration_ or None)
            return np.asarray(raw, dtype=np.float64)
        if family == "logistic_regression":
            return np.asarray(estimator.decision_function(matrix), dtype=np.float64)
        return np.asarray(estimator.predict_proba(matrix)[:, 1], dtype=np.float64)

    def top(self, matrix: np.ndarray, k: int = TOP_REASONS) -> TopReasons:
        """The ``k`` attributes with the largest absolute contribution of each row, strongest first."""
        return top_reasons(self.contributions(matrix), k)


def top_reasons(contributions: Contributions, k: int = TOP_REASONS) -> TopReasons:
    """The ``k`` largest absolute contributions of each row, strongest first (ties: export order)."""
    values = contributions.values
    k = min(k, values.shape[1])
    strength = np.abs(values)
    if k < values.shape[1]:
        picked = np.argpartition(-strength, k - 1, axis=1)[:, :k]
    else:
        picked = np.broadcast_to(np.arange(k), (len(values), k))
    order = np.argsort(-np.take_along_axis(strength, picked, axis=1), axis=1, kind="stable")
    attribute = np.take_along_axis(picked, order, axis=1)
    contribution = np.take_along_axis(values, attribute, axis=1)
    return TopReasons(attribute, contribution, contributions.unit, contributions.attributes)


def agreement(reference: TopReasons, other: TopReasons) -> dict[str, float]:
    """How often two methods give a row the same reasons (share of rows, 0..1).

    ``top1``: the same strongest attribute; ``top_set``: the same attributes in the top k, in any
    order; ``ordered``: the same attributes in the same order with the same signs; ``overlap``:
    the mean share of the reference's top k that the other also names. What a user gives up by
    picking :data:`PATH` for speed, measured against TreeSHAP (``make bench-scoring``).

    Raises:
        ChurnError: The two are not of the same rows, or not over the same attributes.

    """
    if reference.attribute.shape != other.attribute.shape or reference.attributes != other.attributes:
        raise ChurnError("reasons compared must cover the same rows, k and attributes")
    rows = len(reference.attribute)
    if rows == 0:
        raise ChurnError("no rows to compare reasons on")
    a, b = reference.attribute, other.attribute
    same_order = (a == b) & (np.sign(reference.contribution) == np.sign(other.contribution))
    shared = (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1)
    k = a.shape[1]
    return {
        "top1": float(np.mean(a[:, 0] == b[:, 0])),
        "top_set": float(np.mean(shared == k)),
        "ordered": float(np.mean(same_order.all(axis=1))),
        "overlap": float(np.mean(shared / k)),
    }


def _forest_tables(forest: Any, rollup: np.ndarray) -> tuple[list[np.ndarray], float]:
    """Per tree, per node: the path contributions (rolled up to attributes) of reaching that node.

    sklearn numbers a tree's nodes depth-first, every child after its parent, so one pass
    in node order sees each parent's row complete before its children's.
    """
    tables = []
    roots = []
    for tree in (estimator.tree_ for estimator in forest.estimators_):
        counts = tree.value[:, 0, :]
        share = counts[:, 1] / counts.sum(axis=1)  # class-1 share of each node (fractions or counts)
        table = np.zeros((tree.node_count, rollup.shape[1]))
        parent = np.full(tree.node_count, -1)
        internal = np.flatnonzero(tree.children_left >= 0)
        parent[tree.children_left[internal]] = internal
        parent[tree.children_right[internal]] = internal
        for node in range(1, tree.node_count):
            up = parent[node]
            table[node] = table[up] + (share[node] - share[up]) * rollup[tree.feature[up]]
        tables.append(table)
        roots.append(share[0])
    return tables, float(np.mean(roots))


def _forest_contributions(forest: Any, tables: list[np.ndarray], matrix: np.ndarray) -> np.ndarray:
    rows = np.ascontiguousarray(matrix, dtype=np.float32)
    if len(rows) <= 64:  # a request's few rows: the trees one by one, without joblib's per-call threads
        leaves = np.column_stack([estimator.tree_.apply(rows) for estimator in forest.estimators_])
    else:
        leaves = forest.apply(rows)
    total = np.zeros((len(matrix), tables[0].shape[1]))
    for t, table in enumerate(tables):
        total += table[leaves[:, t]]
    total /= len(tables)
    return total


def _lightgbm_tables(estimator: Any, rollup: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Path contributions of every leaf of every tree (rolled up), stacked; each tree's first row; the bias."""
    dumped = estimator.booster_.dump_model(num_iteration=estimator.best_iteration_ or None)["tree_info"]
    tables, bias = [], 0.0
    for tree in dumped:
        table = np.zeros((tree["num_leaves"], rollup.shape[1]))
        root = tree["tree_structure"]
        value = root.get("internal_value", root.get("leaf_value", 0.0))
        bias += value
        stack = [(root, np.zeros(rollup.shape[1]), value)]
        while stack:
            node, path, parent_value = stack.pop()
            if "leaf_index" in node or "split_feature" not in node:
                table[node.get("leaf_index", 0)] = path
                continue
            for child in (node["left_child"], node["right_child"]):
                child_value = child["leaf_value"] if "leaf_index" in child else child["internal_value"]
                moved = path + (child_value - parent_value) * rollup[node["split_feature"]]
                stack.append((child, moved, child_value))
        tables.append(table)
    offsets = np.cumsum([0] + [len(t) for t in tables[:-1]])
    return np.vstack(tables), offsets, float(bias)


def _lightgbm_contributions(estimator: Any, table: np.ndarray, offsets: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Sum each row's leaves' path contributions: a sparse one-hot of the leaves times the stacked table."""
    from scipy.sparse import csr_matrix

    threads = int(estimator.get_params().get("n_jobs") or 0)
    out = np.empty((len(matrix), table.shape[1]))
    # In chunks: a 250K-row part's leaf indices and one-hot took 1.7 GB at once.
    for begin in range(0, len(matrix), LEAF_CHUNK_ROWS):
        rows = matrix[begin : begin + LEAF_CHUNK_ROWS]
        leaves = estimator.booster_.predict(
            rows, pred_leaf=True, num_iteration=estimator.best_iteration_ or None, num_threads=threads
        )
        leaves = np.asarray(leaves, dtype=np.int32).reshape(len(rows), -1) + offsets.astype(np.int32)
        n, trees = leaves.shape
        if n <= 64:  # a request's few rows: gathering is cheaper than building a sparse matrix
            out[begin : begin + n] = table[leaves].sum(axis=1)
            continue
        pointers = np.arange(0, n * trees + 1, trees, dtype=np.int32)
        hits = csr_matrix((np.ones(n * trees), leaves.ravel(), pointers), shape=(n, len(table)))
        out[begin : begin + n] = hits @ table
    return out


# --- rendering ---------------------------------------------------------------------------


def format_values(values: np.ndarray) -> np.ndarray:
    """Raw values as people read them: ``121``, ``0.35`` (numbers to 4 decimals), ``2024-03-01``, ``missing``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if values.dtype.kind == "f":
        text = pc.cast(pa.array(np.round(values, 4), from_pandas=True), pa.string())
        return np.asarray(pc.fill_null(text, MISSING).to_numpy(zero_copy_only=False), dtype=object)
    if values.dtype.kind == "M":
        days = values.astype("datetime64[D]")
        return np.where(np.isnat(days), MISSING, days.astype(str)).astype(object)
    return values.astype(str).astype(object)


def format_value(value: Any) -> str:
    """One raw value exactly as :func:`format_values` writes it, without Arrow's per-call cost (online)."""
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return MISSING
        if abs(number) >= 1e9:  # Arrow may switch to exponents earlier than Python: let it write these
            return str(format_values(np.asarray([number]))[0])
        text = repr(float(np.round(number, 4)))  # Arrow writes the same shortest digits, without ".0"
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, np.datetime64):
        return MISSING if np.isnat(value) else str(value.astype("datetime64[D]"))
    return str(value)


def render(attribute: str, value: Any, contribution: float, unit: str) -> str:
    """``days_since_last_purchase = 121 → +0.84 log-odds (raises risk)``."""
    effect = "raises risk" if contribution > 0 else "lowers risk" if contribution < 0 else "no effect"
    digits = 3 if unit == PROBABILITY else 2
    return f"{attribute} = {format_value(value)} → {contribution:+.{digits}f} {unit} ({effect})"


def reason_records(top: TopReasons, columns: Columns, rows: range | None = None) -> list[list[dict[str, Any]]]:
    """Each row's reasons as JSON-ready dicts: attribute, value, contribution, unit and the sentence."""
    names = top.attributes
    result = []
    for i in rows if rows is not None else range(len(top.attribute)):
        reasons = []
        for position, contribution in zip(top.attribute[i], top.contribution[i], strict=True):
            name = names[position]
            value = columns[name][i]
            reasons.append(
                {
                    "attribute": name,
                    "value": format_value(value),
                    "contribution": round(float(contribution), 6),
                    "unit": top.unit,
                    "text": render(name, value, float(contribution), top.unit),
                }
            )
        result.append(reasons)
    return result


def reasons_json(top: TopReasons, columns: Columns) -> list[bytes]:
    """Each row's reasons as one JSON document (the ``churn_reasons`` output's elements)."""
    return [json.dumps(row, ensure_ascii=False).encode() for row in reason_records(top, columns)]
