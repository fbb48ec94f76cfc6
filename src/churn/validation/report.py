"""The validation report: every violation of a file, machine-readable and printable."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from churn.errors import ChurnError


@dataclass(frozen=True)
class Violation:
    """One broken rule.

    Attributes:
        rule: Short rule id, e.g. ``in_range(0, 1)``, ``missing_column``, ``not_utf8``.
        message: What is wrong, in words.
        column: The column concerned; ``None`` for file- or table-level rules.
        failed_rows: How many rows break the rule (0 for file-level rules).
        examples: A few offending rows: ``{"row": <0-based data row>, "value": ...}``, plus
            ``"line"`` (the file's own 1-based line) when read from a text file.

    """

    rule: str
    message: str
    column: str | None = None
    failed_rows: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def describe(self, *, rule: bool = False, examples: bool = True) -> str:
        """One line: where, (the rule,) what, how many rows (and a few examples)."""
        where = "file" if self.column is None else f"column {self.column!r}"
        text = f"{where} [{self.rule}]: {self.message}" if rule else f"{where}: {self.message}"
        if self.failed_rows:
            text += f" ({self.failed_rows} row{'s' if self.failed_rows != 1 else ''})"
        if examples and self.examples:
            shown = ", ".join(
                f"line {e['line']}: {e['value']!r}"
                if "line" in e
                else f"row {e['row']}: {e['value']!r}"
                if "row" in e
                else repr(e["value"])
                for e in self.examples
            )
            text += f"; e.g. {shown}"
        return text


@dataclass
class ValidationReport:
    """Outcome of validating one file or frame."""

    source: str
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    null_rates: dict[str, float] = field(default_factory=dict)
    checked_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    @property
    def valid(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``valid`` first, then counts, then the violations."""
        body = asdict(self)
        return {"valid": self.valid, **body}

    def summary(self) -> str:
        if self.valid:
            return f"{self.source}: valid ({self.rows} rows, {len(self.columns)} columns)"
        lines = [f"{self.source}: {len(self.violations)} violation(s) in {self.rows} rows"]
        lines += [f"  - {v.describe()}" for v in self.violations]
        return "\n".join(lines)


class DataValidationError(ChurnError):
    """A file or frame broke one or more rules; ``report`` lists all of them."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report
