"""Boosters on Dask: XGBoost and LightGBM trained on every row across the workers, kept as plain models.

``xgboost.dask`` and ``lightgbm.dask`` train one booster over all partitions (each worker
feeds its own) with early stopping on the validation split; the result is turned into the
same single-node estimator the pandas path logs, so registry, gate, serving and monitoring
do not change. The threshold is tuned on validation probabilities computed per partition.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churn.data.schema import LABEL
from churn.engine.dask.features import transform
from churn.engine.dask.frames import compute
from churn.errors import ChurnError
from churn.features.pipeline import FeaturePipeline
from churn.training.evaluate import best_f1_threshold, classification_metrics
from churn.training.models import ChurnModel, build_estimator, predict_matrix

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

DASK_FAMILIES = ("xgboost", "lightgbm")


def _labels(part: pd.DataFrame) -> pd.Series:
    return pd.Series(part[LABEL].to_numpy(dtype=np.int64), index=part.index, name=LABEL)


def _probabilities(part: pd.DataFrame, family: str, estimator: Any) -> pd.Series:
    return pd.Series(predict_matrix(family, estimator, part.to_numpy()), index=part.index)


def _load_booster(trained: Any, estimator: Any) -> Any:
    """``estimator`` (a fresh single-node ``XGBClassifier``) holding the Dask-trained booster."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.json"
        trained.save_model(path)
        estimator.load_model(path)
    return estimator


def _leaf_values(booster: Any) -> np.ndarray:
    """Each tree's leaf outputs, ``values[tree, leaf]`` (trees with fewer leaves padded with 0)."""
    # Every round, even when the booster already has a best iteration (which both calls would stop at).
    trees = booster.dump_model(num_iteration=booster.current_iteration())["tree_info"]
    values = np.zeros((len(trees), max(t["num_leaves"] for t in trees)), dtype=np.float64)
    for i, tree in enumerate(trees):
        for leaf in range(tree["num_leaves"]):
            values[i, leaf] = booster.get_leaf_output(i, leaf)
    return values


#: Margin bins of the per-round ROC-AUC: 2,048 bins over [-12, 12] log-odds are 0.012 wide, so the
#: AUC's tie error (pairs in one bin counted as half) stays near 1e-4, far below what moves the round kept.
MARGIN_BINS, MARGIN_RANGE = 2_048, 12.0


def _class_histograms_by_round(
    x: pd.DataFrame, y: pd.Series, before: pd.Series | None, booster: Any, values: np.ndarray, chunk: int
) -> np.ndarray:
    """Per round of ``booster``, the rows of each class per margin bin: ``counts[class, round, bin]``.

    Additive over partitions. Margins are ``before`` (the raw score of the rounds before this
    booster's first, 0 if none) plus running sums of the booster's leaf outputs, ``chunk`` rows at a time.
    """
    labels = y.to_numpy(dtype=np.int64)
    rounds = values.shape[0]
    leaves = booster.predict(x.to_numpy(), pred_leaf=True).reshape(len(labels), rounds).astype(np.int64, copy=False)
    start = np.zeros(len(labels)) if before is None else before.to_numpy(dtype=np.float64)
    trees = np.arange(rounds)
    offsets = trees * MARGIN_BINS
    width = 2 * MARGIN_RANGE / MARGIN_BINS
    counts = np.zeros((2, rounds * MARGIN_BINS), dtype=np.int64)
    for first in range(0, len(labels), chunk):
        rows = slice(first, first + chunk)
        margins = start[rows, None] + np.cumsum(values[trees, leaves[rows]], axis=1)
        bins = np.clip(((margins + MARGIN_RANGE) / width).astype(np.int64), 0, MARGIN_BINS - 1) + offsets
        mine = labels[rows]
        for c in (0, 1):
            counts[c] += np.bincount(bins[mine == c].ravel(), minlength=rounds * MARGIN_BINS)
    return counts.reshape(2, rounds, MARGIN_BINS)


def _auc_from_histograms(counts: np.ndarray) -> np.ndarray:
    """ROC-AUC per round from class counts per ordered bin (pairs within one bin count one half)."""
    negatives, positives = counts[0].astype(np.float64), counts[1].astype(np.float64)
    below = np.cumsum(negatives, axis=1) - negatives  # negatives in lower bins
    pairs = negatives.sum(axis=1) * positives.sum(axis=1)
    wins = (positives * (below + 0.5 * negatives)).sum(axis=1)
    return np.asarray(wins / np.maximum(pairs, 1.0), dtype=np.float64)


def validation_auc_by_round(
    booster: Any, x_val: dd.DataFrame, y_val: dd.Series, *, margin: dd.Series | None = None, chunk: int = 4_096
) -> np.ndarray:
    """Validation ROC-AUC after each boosting round of a LightGBM ``Booster``.

    Each partition returns class counts per round and margin bin; the driver adds them up and
    reads the AUC of every round off the sums. ``margin`` is the raw score the model's rounds
    start from (the earlier blocks' rounds when training in blocks; partitions aligned with
    ``x_val``), so each round's curve is paid for once.
    """
    from dask import delayed

    values = _leaf_values(booster)
    befores = [None] * x_val.npartitions if margin is None else margin.to_delayed()
    tasks = [
        delayed(_class_histograms_by_round)(x, y, before, booster, values, chunk)
        for x, y, before in zip(x_val.to_delayed(), y_val.to_delayed(), befores, strict=True)
    ]
    return _auc_from_histograms(np.sum(compute(*tasks, what="LightGBM early stopping"), axis=0))


def _raw_score(x: pd.DataFrame, before: pd.Series | None, booster: Any) -> pd.Series:
    score = booster.predict(x.to_numpy(), raw_score=True)
    return pd.Series(score if before is None else before.to_numpy() + score, index=x.index)


def add_raw_score(x: dd.DataFrame, margin: dd.Series | None, booster: Any) -> dd.Series:
    """``margin`` (None = 0) plus ``booster``'s raw score of each row of ``x``, partition for partition."""
    meta = pd.Series(dtype=np.float64)
    if margin is None:
        return x.map_partitions(_raw_score, None, booster, meta=meta)
    return x.map_partitions(_raw_score, margin, booster, meta=meta, align_dataframes=False)


def merge_lightgbm_models(texts: list[str]) -> str:
    """One LightGBM model (text format) with the trees of ``texts`` in order: its raw score is their sum.

    LightGBM merges boosters itself only when continuing from an ``init_model``; these come from
    blocks trained on an ``init_score`` instead. Header (feature bins, objective) from the first,
    parameters from the last; ``tree_sizes`` is dropped, so LightGBM reads the trees one by one.
    """
    head = re.sub(r"^tree_sizes=.*\n", "", texts[0].partition("\nTree=0\n")[0], flags=re.MULTILINE)
    trees: list[str] = []
    for text in texts:
        body = text.partition("\nTree=0\n")[2].partition("\nend of trees")[0]
        trees += [tree.strip() for tree in ("Tree=0\n" + body).strip().split("\n\n\n")]
    numbered = [re.sub(r"^Tree=\d+", f"Tree={i}", tree) for i, tree in enumerate(trees)]
    tail = texts[-1].partition("\nend of trees")[2]
    return head + "\n" + "\n\n\n".join(numbered) + "\n\n\nend of trees" + tail


def early_stopping_round(curve: np.ndarray, patience: int) -> int:
    """The round (1-based) early stopping keeps: the best (highest) so far once ``patience`` rounds bring no gain."""
    best, best_score = 0, -float("inf")
    for i, score in enumerate(curve):
        if score > best_score:
            best, best_score = i, float(score)
        elif i - best >= patience:
            break
    return best + 1


#: Rounds LightGBM trains on Dask between two looks at the validation curve. Each block rebuilds
#: the workers' Dataset (about a second per million rows), so blocks are long enough for that to
#: stay small beside the rounds, and short enough that training stops near where early stopping would.
LIGHTGBM_BLOCK_ROUNDS = 100


def _train_lightgbm_in_blocks(
    client: Client,
    estimator: Any,
    x_train: dd.DataFrame,
    y_train: dd.Series,
    x_val: dd.DataFrame,
    y_val: dd.Series,
    stopping: int | None,
) -> tuple[Any, int | None]:
    """A LightGBM model trained on Dask with the pandas path's early stopping, and its best round.

    LightGBM's own early stopping cannot run here: each worker scores its own validation rows,
    so workers stop at different rounds and the socket network fails ("Connection reset by
    peer", measured). The same rule is applied from outside instead: training goes on in blocks
    of :data:`LIGHTGBM_BLOCK_ROUNDS` rounds; after each block the validation ROC-AUC (the pandas
    path's metric) of its rounds is counted over the partitions, and training ends once
    ``stopping`` rounds bring no gain (or at ``n_estimators``). The model keeps every round
    trained; ``best_iteration`` marks the round early stopping keeps, as after the pandas path's
    early stopping.

    Each block boosts from the raw score of the blocks before (``init_score``, kept on the
    workers beside the partitions and advanced by each block's own trees), and the blocks' trees
    are merged into one model: in one process, exactly the model continuing from an ``init_model``
    gives (tested; on Dask, LightGBM's trees vary a little from run to run either way, with the
    workers' share of the rows). An ``init_model`` made every block re-predict all earlier rounds
    on every training row: at 7M rows, about 30 s more per block per 100 rounds trained (measured).
    """
    import lightgbm

    params = estimator.get_params()
    total = int(params["n_estimators"])
    block = total if not stopping else max(LIGHTGBM_BLOCK_ROUNDS, 2 * int(stopping))
    seed = params.get("random_state")
    texts: list[str] = []
    margin_train: dd.Series | None = None
    margin_val: dd.Series | None = None
    curve = np.zeros(0)
    best: int | None = None
    trained = 0
    while True:
        rounds = min(block, total - trained)
        # A seed per block, so bagging and feature sampling do not repeat the first block's draws.
        block_seed = None if seed is None else int(seed) + trained
        dask_model = lightgbm.DaskLGBMClassifier(
            client=client, **{**params, "n_estimators": rounds, "random_state": block_seed}
        )
        started = time.perf_counter()
        dask_model.fit(x_train, y_train, init_score=margin_train)
        model = dask_model.to_local()
        texts.append(model.booster_.model_to_string(num_iteration=-1))
        trained += model.booster_.current_iteration()
        if not stopping:
            break
        curve = np.concatenate([curve, validation_auc_by_round(model.booster_, x_val, y_val, margin=margin_val)])
        best = early_stopping_round(curve, int(stopping))
        # One line per block on the task's log: a long run shows how far it got, even if it is stopped.
        print(
            f"LightGBM on Dask: {trained} rounds, best {best} (validation ROC-AUC {curve[best - 1]:.4f}),"
            f" block of {rounds} in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        if trained - best >= int(stopping) or trained >= total:
            break
        margin_train, margin_val = client.persist(
            [add_raw_score(x_train, margin_train, model.booster_), add_raw_score(x_val, margin_val, model.booster_)]
        )
    model.set_params(n_estimators=trained, random_state=seed)
    model._Booster = lightgbm.Booster(model_str=merge_lightgbm_models(texts))
    if best is not None:
        model.booster_.best_iteration = best  # predict and save_model use it, as after early stopping
        model._best_iteration = best
    return model, best


def train_dask(
    family: str,
    client: Client,
    features: FeaturePipeline,
    train: dd.DataFrame,
    validation: dd.DataFrame,
    params: dict[str, Any],
    *,
    n_jobs: int = 1,
    seed: int = 42,
) -> ChurnModel:
    """Train ``family`` on typed raw Dask frames with a fitted feature pipeline.

    Raises:
        ChurnError: ``family`` has no Dask trainer here (see :data:`DASK_FAMILIES`).

    """
    if family not in DASK_FAMILIES:
        raise ChurnError(f"no Dask trainer for {family!r}; the Dask engine trains {', '.join(DASK_FAMILIES)}")
    x_train, x_val = transform(features, train), transform(features, validation)
    y_train = train.map_partitions(_labels, meta=pd.Series(dtype=np.int64, name=LABEL))
    y_val = validation.map_partitions(_labels, meta=pd.Series(dtype=np.int64, name=LABEL))
    positives, rows = compute(y_train.sum(), y_train.shape[0], what="training")
    pos_weight = float((rows - positives) / max(positives, 1))
    params = dict(params)
    stopping = params.pop("early_stopping_rounds", None)
    # The pandas path's estimator, hyperparameters and all, trained the distributed way.
    estimator = build_estimator(family, params, n_jobs=n_jobs, seed=seed, pos_weight=pos_weight)
    start = time.perf_counter()
    # Materialized on the workers here, in a synchronous context: the estimators run their own
    # graph building asynchronously, where parts read from S3 through arrow's filesystem fail
    # ("Attempting to use an asynchronous Client in a synchronous context", measured). They
    # persist the same collections themselves, so this costs no extra memory.
    x_train, y_train, x_val, y_val = client.persist([x_train, y_train, x_val, y_val])
    if family == "xgboost":
        from xgboost.dask import DaskXGBClassifier

        model = DaskXGBClassifier(**estimator.get_params())
        # Each worker uses its own threads: the pandas path's n_jobs would override them on every
        # worker (xgboost.dask's get_n_threads), two threads per worker on a core each here.
        model.set_params(early_stopping_rounds=stopping, n_jobs=None)
        model.client = client
        model.fit(x_train, y_train, eval_set=[(x_val, y_val)], verbose=False)
        estimator = _load_booster(model, estimator)
        best = estimator.best_iteration if stopping else None
    else:
        estimator, best = _train_lightgbm_in_blocks(client, estimator, x_train, y_train, x_val, y_val, stopping)
    fit_seconds = time.perf_counter() - start
    p_val, labels = compute(
        x_val.map_partitions(_probabilities, family, estimator, meta=pd.Series(dtype=np.float64)),
        y_val,
        what="training",
    )
    y, p = labels.to_numpy(), p_val.to_numpy()
    threshold = best_f1_threshold(y, p)
    info = {
        "validation": classification_metrics(y, p, threshold),
        "fit_seconds": fit_seconds,
        "best_iteration": None if best is None else int(best),
        "train_rows": int(rows),
        "pos_weight": pos_weight,
        "engine": "dask",
    }
    if family == "lightgbm":
        info["trained_rounds"] = int(estimator.booster_.current_iteration())
    return ChurnModel(family, features, estimator, threshold, {**params, "early_stopping_rounds": stopping}, info)
