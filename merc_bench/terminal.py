"""What merc-bench prints for a person: consoles sized by the terminal, progress bars on a terminal,
plain lines everywhere else.

On a terminal rich measures the width itself, so a table fits a 120-column window by folding its
cells, and training shows progress bars with an ETA. A pipe or a file has no width and cannot
redraw a bar: there a console gets :data:`PIPE_WIDTH` columns (``COLUMNS`` still wins), so tables
and log lines stay whole, and training prints one plain line per epoch instead of a bar
(:class:`~merc_bench.subscribers.ConsoleSubscriber`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["PIPE_WIDTH", "make_console", "interactive", "progress_bars", "duration"]

#: Columns of a console writing to a pipe or a file (rich would assume 80 and wrap every table).
PIPE_WIDTH = 200


def make_console(*, stderr: bool = False) -> Any:
    """A rich console on stdout (or stderr): the terminal's width, or :data:`PIPE_WIDTH` when redirected."""
    from rich.console import Console

    console = Console(stderr=stderr)
    if not interactive(console) and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, width=PIPE_WIDTH)
    return console


def interactive(console: Any) -> bool:
    """Whether ``console`` can redraw a progress bar in place: a terminal (not a dumb one) or Jupyter."""
    return bool(getattr(console, "is_interactive", False) or getattr(console, "is_jupyter", False))


@contextlib.contextmanager
def progress_bars(console: Any) -> Iterator[Any]:
    """Rich progress bars (label, bar, k/N, elapsed, ETA) on an interactive ``console``; None otherwise,
    and then the console subscriber prints one plain line per epoch."""
    if console is None or getattr(console, "quiet", False) or not interactive(console):
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("ETA"), TimeRemainingColumn(), console=console) as progress:
        yield progress


def duration(seconds: float) -> str:
    """``4.2 s``, ``3:07`` (minutes:seconds) or ``1:02:03`` (hours), for progress lines."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
