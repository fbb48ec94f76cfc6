"""Raw-data validation: a declared pandera schema and a report that lists every violation."""

from churn.validation.report import DataValidationError, ValidationReport, Violation
from churn.validation.validate import validate_file, validate_frame

__all__ = ["DataValidationError", "ValidationReport", "Violation", "validate_file", "validate_frame"]
