"""The names of the raw exports: ``customers_YYYYMMDD.<format>``, the name every stage expects of a day."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # churn.io imports pandas and pyarrow; a name needs neither
    from churn.io import FileFormat


def raw_file_name(date: dt.date, fmt: FileFormat) -> str:
    """``customers_YYYYMMDD.<fmt>``: the name every stage expects of a day's export."""
    return f"customers_{date:%Y%m%d}.{fmt}"
