"""What every command shares: the two consoles, the progress bar, the ``--engine`` and date options."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from churn.config import Settings
from churn.engine import Engine, engine_for

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@contextmanager
def progress_bar() -> Iterator[Progress]:
    """A progress bar on stderr, one line a stage, kept when done."""
    bar = Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
    with bar:
        yield bar


def stage_progress(bar: Progress) -> Callable[[str, int, int], None]:
    """``report(stage, done, total)``: a line of ``bar`` for each stage, added when it first reports."""
    tasks: dict[str, TaskID] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return report


def resolve_engine(given: str | None, settings: Settings) -> Engine:
    """The ``--engine`` given, else the configured one (see :func:`churn.engine.engine_for`, which refuses others)."""
    return engine_for(given or settings.engine, option="--engine")


def day_option(text: str | None, name: str) -> dt.date | None:
    """The date of option ``name`` (YYYY-MM-DD), None when not given.

    Raises:
        typer.BadParameter: Not a date.

    """
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date YYYY-MM-DD", param_hint=name) from None
