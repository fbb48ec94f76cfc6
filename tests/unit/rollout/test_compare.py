"""``churn rollout compare``: the shadow's answers paired with the champion's, and the figures on the pairs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import generate_latest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from churn.cli import app
from churn.data.labels import labels_file_name
from churn.errors import ChurnError
from churn.predictions.log import read_prediction_log, write_prediction_log
from churn.predictions.logger import PredictionLogger
from churn.rollout.compare import compare_shadow, comparison_registry, pair_answers

DAY = dt.date(2026, 3, 2)
NOON = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
N = 600


def _scores(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcomes, the champion's scores (informative) and the shadow's (less informative, other noise)."""
    rng = np.random.default_rng(seed)
    risk = rng.random(N)
    churned = (rng.random(N) < risk).astype(np.int8)
    logit = np.log(risk / (1 - risk))
    # Continuous scores: no ties, so the top decile is one set whatever the row order.
    champion = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.5, N))))
    shadow = 1 / (1 + np.exp(-(1.3 * logit - 0.4 + rng.normal(0, 1.5, N))))
    return churned, champion, shadow


def _write_log(root: Path, champion: np.ndarray, shadow: np.ndarray, *, requests: int = 6) -> list[str]:
    """The answers as the transformer logs them: per request, the champion's and the shadow's rows."""
    customers = [f"c{i:04d}" for i in range(N)]
    for request, rows in enumerate(np.array_split(np.arange(N), requests)):
        for variant, scores, version, threshold in (("champion", champion, "4", 0.5), ("shadow", shadow, "5", 0.4)):
            frame = pd.DataFrame(
                {
                    "customer_id": [customers[i] for i in rows],
                    "churn_probability": scores[rows],
                    "churn_label": (scores[rows] >= threshold).astype(int),
                }
            )
            write_prediction_log(
                frame,
                root,
                run_id=f"req-{request}",
                model_name="churn-model",
                model_version=version,
                scored_at=NOON,
                source="online",
                variant=variant,
            )
    return customers


def _write_labels(folder: Path, customers: list[str], churned: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrived = DAY + dt.timedelta(days=30)
    frame = pd.DataFrame({"customer_id": customers, "scored_date": DAY, "label_date": arrived, "churned": churned})
    frame.to_csv(folder / labels_file_name(arrived), index=False)


def test_the_figures_are_those_of_the_paired_answers(tmp_path: Path) -> None:
    churned, champion, shadow = _scores()
    customers = _write_log(tmp_path / "log", champion, shadow)
    _write_labels(tmp_path / "labels", customers, churned)
    result = compare_shadow(tmp_path / "log", tmp_path / "labels", start=DAY, end=DAY)
    assert result.pairs == N
    assert result.champion_versions == ["4"] and result.shadow_version == "5"
    assert result.label_agreement == pytest.approx(np.mean((champion >= 0.5) == (shadow >= 0.4)))
    assert result.rank_correlation == pytest.approx(spearmanr(champion, shadow).statistic)
    top = N // 10
    overlap = len(set(np.argsort(-champion)[:top]) & set(np.argsort(-shadow)[:top])) / top
    assert result.top_decile_overlap == pytest.approx(overlap)
    assert result.labelled_pairs == N
    assert result.champion_roc_auc == pytest.approx(roc_auc_score(churned, champion))
    assert result.shadow_roc_auc == pytest.approx(roc_auc_score(churned, shadow))
    assert result.champion_roc_auc > result.shadow_roc_auc  # the noisier shadow ranks worse
    # CBPE calibrated on these labels estimates close to what was realized.
    assert abs(result.champion_estimated_roc_auc - result.champion_roc_auc) < 0.05
    assert abs(result.shadow_estimated_roc_auc - result.shadow_roc_auc) < 0.05
    assert result.score_psi > 0.05  # the shadow's scores are distributed otherwise


def test_a_shadow_identical_to_the_champion_agrees_everywhere_and_without_labels_nothing_is_realized(
    tmp_path: Path,
) -> None:
    _, champion, _ = _scores(1)
    _write_log(tmp_path / "log", champion, champion.copy())
    result = compare_shadow(tmp_path / "log", tmp_path / "no-labels", start=DAY, end=DAY)
    assert result.rank_correlation == pytest.approx(1.0)
    assert result.score_psi == pytest.approx(0.0)
    assert result.top_decile_overlap == 1.0
    assert result.champion_estimated_roc_auc == pytest.approx(result.shadow_estimated_roc_auc)
    assert result.labelled_pairs == 0
    assert result.champion_roc_auc is None and result.shadow_roc_auc is None
    assert "n/a (too few labels yet)" in "\n".join(result.lines())


def test_pairs_are_by_request_and_position_only_the_newest_shadow_counts_and_a_customer_mismatch_is_dropped(
    tmp_path: Path,
) -> None:
    logger = PredictionLogger(tmp_path, model_name="m", model_version="1", flush_seconds=60)
    two = np.array([0.2, 0.7])
    logger.record("a", None, two, np.array([0, 1]))  # no customer ids: paired by position
    logger.record("a", None, two + 0.1, np.array([0, 1]), variant="shadow", model_version="2")
    logger.record("b", ["x", "y"], two, np.array([0, 1]))
    logger.record("b", ["x", "z"], two, np.array([0, 1]), variant="shadow", model_version="2")  # y != z: dropped
    logger.record("c", ["q"], two[:1], np.array([0]), variant="shadow", model_version="2")  # no champion answer
    logger.flush()
    # An older shadow version's answer to the same request is not mixed in.
    old = PredictionLogger(tmp_path, model_name="m", model_version="1", flush_seconds=60)
    old.record("b", ["x", "y"], two, np.array([0, 1]), variant="shadow", model_version="0")
    assert old.flush() == 2
    log = read_prediction_log(tmp_path)
    log.loc[log["model_version"] == "0", "scored_at"] -= pd.Timedelta(hours=1)
    pairs = pair_answers(log)
    assert sorted(zip(pairs["request_id"], pairs["customer_id"].fillna("-"), strict=True)) == [
        ("a", "-"),
        ("a", "-"),
        ("b", "x"),
    ]
    assert set(pairs["shadow_version"]) == {"2"}
    a = pairs[pairs["request_id"] == "a"].sort_values("champion_probability")
    np.testing.assert_allclose(a["shadow_probability"] - a["champion_probability"], [0.1, 0.1])


def test_too_few_pairs_is_an_error_that_says_why(tmp_path: Path) -> None:
    with pytest.raises(ChurnError, match="is a shadow running"):
        compare_shadow(tmp_path, tmp_path, start=DAY, end=DAY)


def test_the_metrics_and_the_command(tmp_path: Path) -> None:
    churned, champion, shadow = _scores(2)
    customers = _write_log(tmp_path / "log", champion, shadow)
    _write_labels(tmp_path / "labels", customers, churned)
    result = compare_shadow(tmp_path / "log", tmp_path / "labels", start=DAY, end=DAY)
    text = generate_latest(comparison_registry(result)).decode()
    assert f'churn_shadow_pairs{{shadow_version="5"}} {float(N)}' in text
    assert 'churn_shadow_realized_roc_auc{model_version="5",variant="shadow"}' in text
    assert 'churn_shadow_estimated_roc_auc{model_version="4",variant="champion"}' in text
    args = ["rollout", "compare", "--log", str(tmp_path / "log"), "--labels", str(tmp_path / "labels")]
    shown = CliRunner().invoke(app, [*args, "--end", str(DAY), "--days", "1", "--json"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == json.loads(json.dumps(result.to_dict()))
