"""Tables the main job and the CLI print: scored records, the riskiest customers with their reasons."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_answers(out: Console, answers: list[dict[str, Any]]) -> None:
    """One row per answer of the service: customer, churn probability and label, model version."""
    table = Table("customer_id", "churn_probability", "churn_label", "model_version")
    for answer in answers:
        table.add_row(
            str(answer.get("customer_id", "-")),
            f"{answer['churn_probability']:.4f}",
            str(answer["churn_label"]),
            str(answer.get("model_version", "-")),
        )
    out.print(table)


def print_highest_risk(out: Console, location: str, n: int) -> None:
    """The ``n`` riskiest customers of the committed table, each with its reasons on lines of their own."""
    # The scoring stack imports scikit-learn, XGBoost and LightGBM: only when printing scores.
    from churn.scoring.batch import highest_risk, reason_texts
    from churn.scoring.table import read_table

    out.print(f"[bold]{n} highest-risk customers[/bold] ({location})")
    for _, row in highest_risk(read_table(location), n).iterrows():
        out.print(
            f"  {row['customer_id']}  churn probability {row['churn_probability']:.4f}  "
            f"risk decile {row['risk_decile']}",
            highlight=False,
        )
        for text in reason_texts(row):
            out.print(f"      {text}", highlight=False)
