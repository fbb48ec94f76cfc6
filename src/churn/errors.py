"""Exceptions that carry a message meant for the person who caused them.

Every error a user can trigger with bad input derives from :class:`ChurnError`; the CLI
prints its message and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class ChurnError(Exception):
    """Base class for errors caused by input, configuration or environment."""


class InputFileError(ChurnError):
    """A file could not be read at all (missing, empty, wrong format, wrong encoding)."""
