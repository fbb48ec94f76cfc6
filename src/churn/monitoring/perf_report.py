"""The report of a performance run: per daily cohort, realized and estimated performance and their levels.

Drift checks look at the inputs; a performance run looks at the predictions the system made
(the prediction log) and, once they arrive, the customers' real outcomes (the delayed labels).
Per **daily cohort and model version** (the UTC day the customers were scored, and the
version that scored them, as the log records it) it reports **realized**
performance where labels have arrived (:mod:`churn.monitoring.realized`) and **estimated**
performance for every cohort, labelled or not (CBPE, :mod:`churn.monitoring.cbpe`); the
cohorts are judged in :mod:`churn.monitoring.cohorts`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from churn.monitoring.report import LEVELS, Level, worst

#: Checks of a performance run, as named in the report and the metrics.
PERFORMANCE_CHECKS = ("realized", "estimated", "labels")
#: Fewest labelled rows, with both classes, for realized numbers or a calibrator.
MIN_LABELLED_ROWS = 100


@dataclass(frozen=True)
class RealizedPerformance:
    """Performance against the labels that have arrived (``labelled`` rows of the cohort)."""

    labelled: int
    churn_rate: float
    roc_auc: float
    roc_auc_standard_error: float
    pr_auc: float
    precision: float
    recall: float
    lift_top_decile: float
    brier: float
    ece: float
    level: Level = "ok"


@dataclass(frozen=True)
class EstimatedPerformance:
    """CBPE's estimate from calibrated probabilities (no labels needed)."""

    roc_auc: float
    roc_auc_standard_error: float
    precision: float
    recall: float
    churn_rate: float
    level: Level = "ok"


@dataclass(frozen=True)
class CohortPerformance:
    """One day's customers scored by one model version, and what is known about how well they were scored."""

    cohort: dt.date
    scored: int
    labelled: int
    labels_due: dt.date
    labels_overdue: bool
    model_version: str
    estimated: EstimatedPerformance | None
    realized: RealizedPerformance | None

    @property
    def level(self) -> Level:
        levels: list[Level] = ["alert" if self.labels_overdue else "ok"]
        levels += [part.level for part in (self.estimated, self.realized) if part is not None]
        return worst(levels)


@dataclass
class PerformanceReport:
    """A performance run over the prediction log's cohorts."""

    as_of: dt.date
    reference_roc_auc: float | None
    reference_roc_auc_standard_error: float | None
    threshold: float | None
    label_delay_days: int
    calibration: str
    cohorts: list[CohortPerformance] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The registry version of the model monitored (the champion), when known.
    champion_version: str | None = None

    @property
    def levels(self) -> dict[str, Level]:
        """The worst level of each check over every cohort, whichever version scored it."""
        return check_levels(self.cohorts)

    @property
    def levels_by_version(self) -> dict[str, dict[str, Level]]:
        """The worst level of each check over the cohorts each model version scored."""
        versions = sorted({c.model_version for c in self.cohorts})
        return {v: check_levels([c for c in self.cohorts if c.model_version == v]) for v in versions}

    @property
    def verdict(self) -> Level:
        return worst(list(self.levels.values()))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["levels"], out["verdict"], out["lines"] = self.levels, self.verdict, self.lines()
        out["levels_by_version"] = self.levels_by_version
        for cohort, obj in zip(out["cohorts"], self.cohorts, strict=True):
            cohort["level"] = obj.level
        return dict(_jsonable(out))

    def metrics(self) -> dict[str, float]:
        """Key numbers for the KFP Metrics artifact: levels and the newest realized and estimated ROC-AUC."""
        out = {f"{check}_level": float(LEVELS.index(level)) for check, level in self.levels.items()}
        out["cohorts"] = float(len(self.cohorts))
        out["labels_overdue_cohorts"] = float(sum(c.labels_overdue for c in self.cohorts))
        for c in self.cohorts:  # oldest first: the newest wins
            if c.estimated:
                out["latest_estimated_roc_auc"] = c.estimated.roc_auc
            if c.realized:
                out["latest_realized_roc_auc"] = c.realized.roc_auc
        return out

    def lines(self) -> list[str]:
        """One line per cohort: estimated ROC-AUC, and realized where labels have arrived."""
        out = []
        for c in self.cohorts:
            text = f"cohort {c.cohort}  v{c.model_version}  {c.scored:>6} scored  "
            if c.estimated:
                e = c.estimated
                text += f"estimated ROC-AUC {e.roc_auc:.3f} ± {e.roc_auc_standard_error:.3f} ({e.level})  "
            if c.realized:
                r = c.realized
                text += (
                    f"realized {r.roc_auc:.3f} ± {r.roc_auc_standard_error:.3f} ({r.level}; {r.labelled} labels, "
                    f"PR-AUC {r.pr_auc:.3f}, lift@10% {r.lift_top_decile:.2f}, Brier {r.brier:.3f}, ECE {r.ece:.3f})"
                )
            elif c.labels_overdue:
                text += f"labels OVERDUE (due {c.labels_due})"
            else:
                text += f"labels due {c.labels_due}"
            out.append(text.rstrip())
        return out

    def markdown(self) -> str:
        ref = "unknown" if self.reference_roc_auc is None else f"{self.reference_roc_auc:.4f}"
        rows = [
            f"# Performance as of {self.as_of}: {self.verdict}",
            "",
            f"Champion's test ROC-AUC {ref}{self._version()}; labels arrive {self.label_delay_days} days after "
            f"scoring; CBPE calibrated on {self.calibration}.",
            "",
            "| cohort | version | scored | labelled | estimated ROC-AUC | realized ROC-AUC | PR-AUC | precision "
            "| recall | lift@10% | Brier | ECE | level |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in self.cohorts:
            e, r = c.estimated, c.realized
            est = f"{e.roc_auc:.4f} ± {e.roc_auc_standard_error:.4f}" if e else "–"
            if r:
                real = [f"{r.roc_auc:.4f} ± {r.roc_auc_standard_error:.4f}", f"{r.pr_auc:.4f}", f"{r.precision:.3f}"]
                real += [f"{r.recall:.3f}", f"{r.lift_top_decile:.2f}", f"{r.brier:.4f}", f"{r.ece:.4f}"]
            else:
                real = ["overdue" if c.labels_overdue else f"due {c.labels_due}", *["–"] * 6]
            rows.append(
                f"| {c.cohort} | {c.model_version} | {c.scored} | {c.labelled} | {est} | "
                + " | ".join(real)
                + f" | {c.level} |"
            )
        rows += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(rows) + "\n"

    def _version(self) -> str:
        return "" if self.champion_version is None else f" (version {self.champion_version})"


def check_levels(cohorts: list[CohortPerformance]) -> dict[str, Level]:
    """The worst realized and estimated level of ``cohorts``, and "alert" when any one's labels are overdue."""
    return {
        "realized": worst([c.realized.level for c in cohorts if c.realized]),
        "estimated": worst([c.estimated.level for c in cohorts if c.estimated]),
        "labels": "alert" if any(c.labels_overdue for c in cohorts) else "ok",
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
