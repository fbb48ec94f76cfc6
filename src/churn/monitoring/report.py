"""The drift report: every check's numbers and decision, as JSON and as a Markdown summary."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

Level = Literal["ok", "warn", "alert"]
#: Levels in increasing severity; a level's index is its gauge value (0, 1, 2).
LEVELS: tuple[Level, ...] = ("ok", "warn", "alert")
#: The check families a verdict is made of, as named in the report and the metrics.
CHECKS = ("feature_drift", "churn_rate", "prediction_drift", "performance")


def worst(levels: list[Level] | tuple[Level, ...]) -> Level:
    """The most severe of ``levels`` ("ok" for none)."""
    return max(levels, key=LEVELS.index, default="ok")


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature.

    Attributes:
        feature: Column name.
        kind: "numeric" (PSI on reference-quantile bins) or "categorical" (chi-square
            and Cramér's V).
        level: "ok", "warn" or "alert".
        statistic: The size of the change that the thresholds apply to: PSI for a
            numeric feature, Cramér's V for a categorical one.
        p_value: Probability of a change at least this large by sampling alone.
        psi: PSI (numeric features only).
        wasserstein: Wasserstein distance in reference standard deviations (numeric
            features whose profile has a sketch).
        wasserstein_p_value: Probability of a distance at least this large by sampling alone.
        chi2: Chi-square statistic (categorical features only).
        dof: Degrees of freedom of the test.
        missing_reference: Share of missing values in the reference.
        missing_current: Share of missing values now.
        bins: Bin or category names; the last one is ``<missing>``.
        reference: Reference proportion per bin.
        current: Current proportion per bin.

    """

    feature: str
    kind: Literal["numeric", "categorical"]
    level: Level
    statistic: float
    p_value: float
    psi: float | None = None
    wasserstein: float | None = None
    wasserstein_p_value: float | None = None
    chi2: float | None = None
    cramers_v: float | None = None
    dof: int = 0
    missing_reference: float = 0.0
    missing_current: float = 0.0
    bins: tuple[str, ...] = ()
    reference: tuple[float, ...] = ()
    current: tuple[float, ...] = ()


@dataclass(frozen=True)
class ChurnRateCheck:
    """Change of the churn rate: observed where labels exist, else the mean predicted probability."""

    source: Literal["observed", "predicted"]
    reference: float
    current: float
    delta: float
    p_value: float
    level: Level


@dataclass(frozen=True)
class PredictionDrift:
    """Drift of the predicted churn probabilities (PSI on reference-quantile bins)."""

    psi: float
    p_value: float
    level: Level
    reference_mean: float | None
    current_mean: float


@dataclass(frozen=True)
class PerformanceCheck:
    """ROC-AUC on recent labelled rows against the champion's test ROC-AUC."""

    reference_roc_auc: float
    roc_auc: float
    drop: float
    p_value: float
    rows: int
    level: Level


@dataclass
class DriftReport:
    """Outcome of one monitoring run.

    The verdict is the worst level of any check. ``flagged`` lists the features at
    "alert", ``warned`` those at "warn"; ``notes`` says which checks were skipped and why.
    ``source`` names the checked rows as the user gave them (their file or URI, not a
    pipeline task's copy), as the validation report does; empty when they came as a frame.
    """

    reference_rows: int
    current_rows: int
    features: list[FeatureDrift]
    churn_rate: ChurnRateCheck | None = None
    prediction: PredictionDrift | None = None
    performance: PerformanceCheck | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    checked_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    source: str = ""

    @property
    def levels(self) -> dict[str, Level]:
        """Level of each check family (see :data:`CHECKS`); a skipped check is "ok"."""
        return {
            "feature_drift": worst([f.level for f in self.features]),
            "churn_rate": self.churn_rate.level if self.churn_rate else "ok",
            "prediction_drift": self.prediction.level if self.prediction else "ok",
            "performance": self.performance.level if self.performance else "ok",
        }

    @property
    def verdict(self) -> Level:
        return worst(tuple(self.levels.values()))

    @property
    def flagged(self) -> list[str]:
        return [f.feature for f in self.features if f.level == "alert"]

    @property
    def warned(self) -> list[str]:
        return [f.feature for f in self.features if f.level == "warn"]

    def feature(self, name: str) -> FeatureDrift:
        """The result of feature ``name`` (KeyError when it was not checked)."""
        for result in self.features:
            if result.feature == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: verdict and flagged features first, then every number."""
        body = asdict(self)
        result: dict[str, Any] = _finite(
            {
                "source": self.source,
                "verdict": self.verdict,
                "levels": self.levels,
                "flagged": self.flagged,
                "warned": self.warned,
                **body,
            }
        )
        return result

    def markdown(self) -> str:
        """A short human summary (for the KFP UI, a pull request or a chat message)."""
        lines = [
            f"# Drift check: {self.verdict.upper()}",
            "",
            f"{self.current_rows:,} current rows against {self.reference_rows:,} reference rows ({self.checked_at}).",
            "",
            "| check | level | detail |",
            "|---|---|---|",
            f"| feature drift | {self.levels['feature_drift']} | {_feature_detail(self)} |",
        ]
        if self.churn_rate:
            c = self.churn_rate
            lines.append(
                f"| churn rate ({c.source}) | {c.level} | {c.reference:.4f} -> {c.current:.4f} "
                f"(delta {c.delta:+.4f}, p={c.p_value:.2g}) |"
            )
        if self.prediction:
            p = self.prediction
            lines.append(f"| prediction drift | {p.level} | PSI {p.psi:.4f}, mean score {p.current_mean:.4f} |")
        if self.performance:
            a = self.performance
            lines.append(
                f"| performance | {a.level} | ROC-AUC {a.roc_auc:.4f} on {a.rows:,} labelled rows "
                f"vs {a.reference_roc_auc:.4f} at test (drop {a.drop:+.4f}) |"
            )
        lines += [
            "",
            "| feature | kind | level | PSI / Cramér's V | p-value | W (std) | p-value | missing ref -> now |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for f in sorted(self.features, key=lambda f: (-LEVELS.index(f.level), -f.statistic)):
            distance = "-" if f.wasserstein is None else f"{f.wasserstein:.4f}"
            distance_p = "-" if f.wasserstein_p_value is None else f"{f.wasserstein_p_value:.2g}"
            lines.append(
                f"| {f.feature} | {f.kind} | {f.level} | {f.statistic:.4f} | {f.p_value:.2g} | {distance} | "
                f"{distance_p} | {f.missing_reference:.1%} -> {f.missing_current:.1%} |"
            )
        if self.notes:
            lines += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines) + "\n"


class Writable(Protocol):
    """A report :func:`write_report` can write: the drift report, the performance report."""

    def to_dict(self) -> dict[str, Any]: ...

    def markdown(self) -> str: ...


def write_report(
    report: Writable, json_path: str | Path, markdown_path: str | Path | None = None
) -> tuple[Path, Path | None]:
    """Write the JSON report (and the Markdown summary), each atomically.

    Returns:
        The paths written (the second is None when no Markdown path was given).

    """
    from churn.storage import atomic_path, write_json

    written = write_json(report.to_dict(), json_path)
    if markdown_path is None:
        return written, None
    with atomic_path(markdown_path) as tmp:
        tmp.write_text(report.markdown(), encoding="utf-8")
    return written, Path(markdown_path)


def _feature_detail(report: DriftReport) -> str:
    if report.flagged or report.warned:
        parts = []
        if report.flagged:
            parts.append(f"alert: {', '.join(report.flagged)}")
        if report.warned:
            parts.append(f"warn: {', '.join(report.warned)}")
        return "; ".join(parts)
    return f"{len(report.features)} features stable"


def _finite(value: Any) -> Any:
    """Replace NaN and infinities by None, so the JSON is valid for strict parsers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
