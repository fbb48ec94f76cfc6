"""The task log of a local run: output redirected to it, finished tasks read from it, colour codes removed."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

from churn.storage import atomic_path

TASK_DONE = re.compile(r"Task \S*'([\w-]+)'\S* finished with status \S*?(SUCCESS|FAILURE)")
#: The colour codes KFP's local runner writes into its messages and logs, whatever the output is.
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextmanager
def output_to(log: Path) -> Iterator[None]:
    """Send task output to ``log``: the runner's prints and logs, and its subprocesses' output.

    Both the file descriptors (inherited by subprocesses) and ``sys.stdout``/``sys.stderr``
    (which pytest or Jupyter may have replaced) point at the log while the pipeline runs.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("a", encoding="utf-8", buffering=1) as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            with redirect_stdout(handle), redirect_stderr(handle):
                yield
        finally:
            handle.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def follow(log: Path, on_task: Callable[[str, str], None], stop: threading.Event) -> None:
    """Report each task that finishes, by reading the runner's log as it grows."""
    with log.open("r", encoding="utf-8", errors="replace") as handle:
        while True:
            line = handle.readline()
            if line:
                if match := TASK_DONE.search(line):
                    on_task(match.group(1), match.group(2))
            elif stop.is_set():
                return
            else:
                time.sleep(0.2)


def plain(text: str) -> str:
    """``text`` without terminal colour codes."""
    return ANSI.sub("", text)


def strip_colours(log: Path) -> None:
    """Rewrite a finished run's log without colour codes (it is a file, not a terminal)."""
    text = log.read_text(encoding="utf-8", errors="replace")
    if ANSI.search(text):
        with atomic_path(log) as tmp:
            tmp.write_text(plain(text), encoding="utf-8")
