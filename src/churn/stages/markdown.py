"""Markdown shown in the KFP UI (and logged to MLflow): the comparison table, the gate's decision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from churn.storage import atomic_path

# Each task is a fresh interpreter that runs one step: heavy libraries (scikit-learn,
# pandera, MLflow) are imported by the functions that use them, not by every task.


def write_text(path: str | Path, text: str) -> None:
    """Write a text artifact (Markdown for the KFP UI), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def comparison_markdown(selection: dict[str, Any]) -> str:
    """The comparison table shown in the KFP UI and logged to MLflow."""
    lines = [
        f"# Model comparison — winner: **{selection['winner']}** (by validation ROC-AUC)",
        "",
        "| family | val ROC-AUC | test ROC-AUC | test PR-AUC | test F1 | precision | recall | Brier | log loss "
        "| threshold | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(selection["candidates"], key=lambda r: -r["val_roc_auc"]):
        t = row["test"]
        mark = " ✅" if row["family"] == selection["winner"] else ""
        lines.append(
            f"| {row['family']}{mark} | {row['val_roc_auc']:.4f} | {t['roc_auc']:.4f} | {t['pr_auc']:.4f} | "
            f"{t['f1']:.4f} | {t['precision']:.4f} | {t['recall']:.4f} | {t['brier']:.4f} | {t['log_loss']:.4f} | "
            f"{row['threshold']:.3f} | {row['fit_seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def gate_markdown(decision: dict[str, Any]) -> str:
    """The promotion decision as shown in the KFP UI."""
    verdict = "promoted to @champion" if decision["promoted"] else "not promoted"
    champion = decision["champion_roc_auc"]
    return (
        f"# Promotion gate: v{decision['challenger_version']} {verdict}\n\n"
        f"| model | version | test ROC-AUC |\n|---|---|---|\n"
        f"| challenger | {decision['challenger_version']} | {decision['challenger_roc_auc']:.4f} |\n"
        f"| champion | {decision['champion_version'] or '-'} | {'-' if champion is None else f'{champion:.4f}'} |\n\n"
        f"Margin: {decision['margin']}. {decision['reason']}.\n"
    )
