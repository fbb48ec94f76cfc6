"""``churn rollout compare``: the shadow's answers against the champion's, for the same requests.

Over a window of the prediction log, each shadow answer is paired with the champion's answer
to the same record of the same request (the transformer logs both with the caller's request
id, in the request's row order; where both carry a customer id it must match). On the pairs:

- **label agreement**: the share of records both label alike (each at its own threshold);
- **rank correlation**: Spearman's rho of the two scores (do they order customers alike?);
- **PSI** between the two score distributions (bins at the champion's deciles,
  :mod:`churn.monitoring.stats`);
- **top-decile overlap**: the share of the champion's top 10% that is in the shadow's top 10%
  (the customers a retention campaign would call);
- **estimated ROC-AUC** of each (CBPE, :mod:`churn.monitoring.cbpe`, each calibrated on its own
  labelled pairs when enough labels have arrived, else taking its probabilities as calibrated);
- **realized ROC-AUC** of each once labels have arrived (:mod:`churn.monitoring.realized`,
  labels joined by customer and scoring day as the monitoring does).

The figures can go to the Pushgateway as ``churn_shadow_*`` (job ``churn-shadow``).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn.data.labels import read_labels
from churn.errors import ChurnError
from churn.monitoring.cbpe import cbpe, fit_calibrator
from churn.monitoring.perf_report import MIN_LABELLED_ROWS
from churn.monitoring.publish import push_registry
from churn.monitoring.realized import realized_metrics
from churn.monitoring.stats import bin_counts, psi, quantile_edges
from churn.predictions.log import read_prediction_log

#: Pushgateway job of the comparison's metrics.
PUSH_JOB = "churn-shadow"
PSI_BINS = 10
TOP_SHARE = 0.1
#: Fewer pairs than this say nothing: the comparison refuses rather than report noise.
MIN_PAIRS = 20
_SIDES = ("champion", "shadow")


@dataclass
class ShadowComparison:
    """What the shadow did differently from the champion over a window."""

    start: str
    end: str
    champion_versions: list[str]
    shadow_version: str
    pairs: int
    label_agreement: float
    rank_correlation: float
    score_psi: float
    top_decile_overlap: float
    champion_estimated_roc_auc: float
    shadow_estimated_roc_auc: float
    labelled_pairs: int
    champion_roc_auc: float | None
    shadow_roc_auc: float | None

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON-ready values."""
        return asdict(self)

    def markdown(self) -> str:
        """The comparison as a Markdown summary (the monitoring pipeline's artifact)."""
        body = "\n".join(self.lines())
        return f"# Shadow vs champion, {self.start}..{self.end}\n\n```\n{body}\n```\n"

    def lines(self) -> list[str]:
        """The comparison as text lines (the CLI's output)."""

        def auc(value: float | None) -> str:
            return "n/a (too few labels yet)" if value is None else f"{value:.4f}"

        champions = ", ".join(self.champion_versions)
        return [
            f"window {self.start}..{self.end}: {self.pairs} paired answers "
            f"(champion version {champions}, shadow version {self.shadow_version})",
            f"  label agreement        {self.label_agreement:.4f}",
            f"  rank correlation       {self.rank_correlation:.4f} (Spearman)",
            f"  score PSI              {self.score_psi:.4f} (shadow vs champion, champion's deciles)",
            f"  top-decile overlap     {self.top_decile_overlap:.4f}",
            f"  estimated ROC-AUC      champion {self.champion_estimated_roc_auc:.4f}  "
            f"shadow {self.shadow_estimated_roc_auc:.4f} (CBPE)",
            f"  realized ROC-AUC       champion {auc(self.champion_roc_auc)}  shadow {auc(self.shadow_roc_auc)} "
            f"({self.labelled_pairs} labelled pairs)",
        ]


def pair_answers(log: pd.DataFrame) -> pd.DataFrame:
    """One row per record answered by both the champion and the newest shadow version in ``log``.

    Columns: ``request_id``, ``customer_id``, ``date``, ``champion_version``, and for each side
    ``<side>_probability`` and ``<side>_label``.
    """
    shadow = log[log["variant"] == "shadow"]
    if shadow.empty:
        return _no_pairs()
    newest = shadow.sort_values("scored_at", kind="stable")["model_version"].iloc[-1]
    sides = {"champion": log[log["variant"] == "champion"], "shadow": shadow[shadow["model_version"] == newest]}
    keyed = {}
    for side, frame in sides.items():
        frame = frame.assign(position=frame.groupby("request_id", sort=False).cumcount())
        keyed[side] = frame.rename(
            columns={
                "churn_probability": f"{side}_probability",
                "churn_label": f"{side}_label",
                "customer_id": f"{side}_customer",
                "model_version": f"{side}_version",
                "date": f"{side}_date",
            }
        )
    champion_columns = ["champion_probability", "champion_label", "champion_customer", "champion_version"]
    shadow_columns = ["shadow_probability", "shadow_label", "shadow_customer", "shadow_version", "shadow_date"]
    pairs = keyed["champion"][["request_id", "position", *champion_columns]].merge(
        keyed["shadow"][["request_id", "position", *shadow_columns]], on=["request_id", "position"]
    )
    a, b = pairs["champion_customer"], pairs["shadow_customer"]
    pairs = pairs[a.isna() | b.isna() | (a == b)]  # the same record, when both say who it was
    return pd.DataFrame(
        {
            "request_id": pairs["request_id"],
            "customer_id": pairs["champion_customer"].fillna(pairs["shadow_customer"]),
            "date": pairs["shadow_date"],
            "champion_version": pairs["champion_version"],
            "shadow_version": pairs["shadow_version"],
            **{f"{s}_probability": pairs[f"{s}_probability"].astype(np.float64) for s in _SIDES},
            **{f"{s}_label": pairs[f"{s}_label"].astype(np.int8) for s in _SIDES},
        }
    ).reset_index(drop=True)


def _no_pairs() -> pd.DataFrame:
    columns = ["request_id", "customer_id", "date", "champion_version", "shadow_version"]
    numbers = [f"{s}_{kind}" for s in _SIDES for kind in ("probability", "label")]
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns} | {c: pd.Series(dtype=float) for c in numbers})


def compare_pairs(pairs: pd.DataFrame, labels: pd.DataFrame, *, start: str, end: str) -> ShadowComparison:
    """The comparison's figures on paired answers (:func:`pair_answers`) and the labels that have arrived.

    Raises:
        ChurnError: Fewer than :data:`MIN_PAIRS` pairs.

    """
    from scipy.stats import spearmanr  # scipy is heavy; only the comparison needs it

    if len(pairs) < MIN_PAIRS:
        raise ChurnError(
            f"only {len(pairs)} answers of the shadow pair with the champion's in {start}..{end} "
            f"(at least {MIN_PAIRS} needed): is a shadow running, and is the prediction log on?"
        )
    champion = pairs["champion_probability"].to_numpy()
    shadow = pairs["shadow_probability"].to_numpy()
    edges = quantile_edges(champion, PSI_BINS)
    reference, current = bin_counts(champion, edges), bin_counts(shadow, edges)
    top = max(1, int(np.ceil(TOP_SHARE * len(pairs))))
    top_champion = set(np.argsort(-champion, kind="stable")[:top])
    top_shadow = set(np.argsort(-shadow, kind="stable")[:top])
    labelled = _with_labels(pairs, labels)
    estimated, realized = {}, {}
    for side in _SIDES:
        frame = labelled.rename(columns={f"{side}_probability": "churn_probability"})
        calibrator, _ = fit_calibrator(frame)
        estimated[side] = cbpe(pairs[f"{side}_probability"].to_numpy(), 0.5, calibrator)["roc_auc"]
        realized[side] = _realized_roc_auc(labelled, side)
    return ShadowComparison(
        start=start,
        end=end,
        champion_versions=sorted(set(pairs["champion_version"].astype(str))),
        shadow_version=str(pairs["shadow_version"].iloc[0]),
        pairs=len(pairs),
        label_agreement=float((pairs["champion_label"] == pairs["shadow_label"]).mean()),
        rank_correlation=float(spearmanr(champion, shadow).statistic),
        score_psi=psi(reference / reference.sum(), current / current.sum()),
        top_decile_overlap=len(top_champion & top_shadow) / top,
        champion_estimated_roc_auc=estimated["champion"],
        shadow_estimated_roc_auc=estimated["shadow"],
        labelled_pairs=int(labelled["churned"].notna().sum()),
        champion_roc_auc=realized["champion"],
        shadow_roc_auc=realized["shadow"],
    )


def _with_labels(pairs: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` with a ``churned`` column (NaN until the label arrives): by customer and the day it was scored."""
    known = labels[["customer_id", "scored_date", "churned"]].rename(columns={"scored_date": "date"})
    joined = pairs.merge(known.astype({"customer_id": object}), on=["customer_id", "date"], how="left")
    return joined.reset_index(drop=True)


def _realized_roc_auc(labelled: pd.DataFrame, side: str) -> float | None:
    rows = labelled[labelled["churned"].notna()]
    y = rows["churned"].to_numpy(dtype=np.int64)
    if len(rows) < MIN_LABELLED_ROWS or not 0 < y.sum() < y.size:
        return None
    return realized_metrics(y, rows[f"{side}_probability"].to_numpy(), rows[f"{side}_label"].to_numpy())["roc_auc"]


def compare_shadow(
    prediction_log_uri: str | Path,
    labels_uri: str | Path,
    *,
    start: dt.date,
    end: dt.date,
    pushgateway_url: str | None = None,
    push_timeout: float = 10.0,
) -> ShadowComparison:
    """Read the window ``start..end`` of the prediction log and the labels; compare; push when a gateway is given.

    Raises:
        ChurnError: The log or the labels cannot be read, too few pairs, or the push failed.

    """
    log = read_prediction_log(prediction_log_uri, start=start, end=end)
    labels = read_labels(labels_uri)
    comparison = compare_pairs(pair_answers(log), labels, start=str(start), end=str(end))
    if pushgateway_url:
        push_registry(pushgateway_url, comparison_registry(comparison), job=PUSH_JOB, timeout=push_timeout)
    return comparison


def comparison_registry(comparison: ShadowComparison, *, timestamp: float | None = None) -> Any:
    """The comparison as ``churn_shadow_*`` gauges (a registry to push)."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    shadow = {"shadow_version": comparison.shadow_version}
    figures = {
        "pairs": ("Answers of the shadow paired with the champion's in the window.", comparison.pairs),
        "label_agreement": ("Share of paired records both label alike.", comparison.label_agreement),
        "rank_correlation": (
            "Spearman correlation of the shadow's and the champion's scores.",
            comparison.rank_correlation,
        ),
        "score_psi": ("PSI of the shadow's scores against the champion's (champion's deciles).", comparison.score_psi),
        "top_decile_overlap": (
            "Share of the champion's top decile in the shadow's top decile.",
            comparison.top_decile_overlap,
        ),
        "labelled_pairs": ("Paired records whose label has arrived.", comparison.labelled_pairs),
    }
    for name, (help_text, value) in figures.items():
        Gauge(f"churn_shadow_{name}", help_text, ["shadow_version"], registry=registry).labels(**shadow).set(value)
    versions = {"champion": ",".join(comparison.champion_versions), "shadow": comparison.shadow_version}
    estimated = Gauge(
        "churn_shadow_estimated_roc_auc",
        "CBPE-estimated ROC-AUC on the paired records.",
        ["variant", "model_version"],
        registry=registry,
    )
    realized = Gauge(
        "churn_shadow_realized_roc_auc",
        "Realized ROC-AUC on the labelled paired records.",
        ["variant", "model_version"],
        registry=registry,
    )
    for side in _SIDES:
        estimated.labels(variant=side, model_version=versions[side]).set(
            getattr(comparison, f"{side}_estimated_roc_auc")
        )
        value = getattr(comparison, f"{side}_roc_auc")
        if value is not None:
            realized.labels(variant=side, model_version=versions[side]).set(value)
    Gauge("churn_shadow_last_run_timestamp_seconds", "Unix time of the last shadow comparison.", registry=registry).set(
        time.time() if timestamp is None else timestamp
    )
    return registry
