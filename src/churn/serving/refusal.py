"""A caller's mistake, as every part of the serving path raises it: a reason and a message naming the field."""

from __future__ import annotations

#: Reasons a request is refused; the label values of ``churn_input_validation_failures_total``.
REASONS = (
    "malformed_request",
    "empty_batch",
    "batch_too_large",
    "missing_field",
    "unknown_field",
    "wrong_type",
    "wrong_shape",
    "not_finite",
    "null_not_allowed",
    "out_of_range",
    "not_whole_number",
    "bad_date",
    "bad_text",
    "unknown_category",
    "inconsistent_record",
    "unknown_output",
    "too_deeply_nested",
)


class RequestError(ValueError):
    """A caller's mistake: the message names the field and the problem; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.message
