"""Raw-data validation: a declared pandera schema and a report that lists every violation.

``validate_file``/``validate_frame`` (and pandera with them) load on first use, so code
that only reads files (``churn.validation.reader``) does not pay for pandera.
"""

from typing import TYPE_CHECKING, Any

from churn.validation.report import DataValidationError, ValidationReport, Violation

if TYPE_CHECKING:
    from churn.validation.validate import validate_and_report, validate_file, validate_frame

__all__ = [
    "DataValidationError",
    "ValidationReport",
    "Violation",
    "validate_and_report",
    "validate_file",
    "validate_frame",
]


def __getattr__(name: str) -> Any:
    if name in ("validate_and_report", "validate_file", "validate_frame"):
        from churn.validation import validate

        return getattr(validate, name)
    raise AttributeError(f"module 'churn.validation' has no attribute {name!r}")
