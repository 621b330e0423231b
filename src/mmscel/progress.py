"""Progress of long steps (chunks, SVDs, folds, epochs, trials, rows) and the log files of runs.

Progress shows where the user looks: a bar on a terminal (rich), a bar in
Jupyter (tqdm's notebook bar when ipywidgets is there, its text bar otherwise),
and plain log lines when the output is piped to a file or another program,
at most one every ``PLAIN_EVERY`` seconds (and one at the end of a step that
said something), so a log of a 29-minute step still says how far it is while
short steps stay silent. Everything goes through the
``mmscel`` logger: the command line's ``-v``/``-q`` set its level, and
:func:`log_file` copies it into a run's, blend's or study's folder.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

T = TypeVar("T")
console = Console(stderr=True)
log = logging.getLogger("mmscel.progress")
PLAIN_EVERY = 30.0  # seconds between two plain progress lines of one step
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def track(items: Iterable[T], description: str, total: int | None = None, enabled: bool = True) -> Iterator[T]:
    """Iterate over ``items`` while showing how far the step is (see the module's docstring).

    Parameters
    ----------
    items
        What to iterate over.
    description
        The step's label.
    total
        Number of items (None: ``len(items)``).
    enabled
        False iterates silently.

    Yields
    ------
    object
        The items, in order.
    """
    if not enabled:
        yield from items
        return
    size = total if total is not None else len(items)  # type: ignore[arg-type]
    if console.is_jupyter:
        yield from _notebook_bar(items, description, size)
    elif console.is_terminal:
        yield from _terminal_bar(items, description, size)
    else:
        yield from _plain_lines(items, description, size)


def _terminal_bar(items, description: str, size: int):
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task_id = progress.add_task(description, total=size)
        for item in items:
            yield item
            progress.advance(task_id)


def _notebook_bar(items, description: str, size: int):
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=description, total=size, leave=False)


def _plain_lines(items, description: str, size: int):
    started = last = time.monotonic()
    done, said = 0, False
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= PLAIN_EVERY or (said and done == size):  # a step shorter than PLAIN_EVERY stays silent
            log.info(progress_line(description, done, size, now - started))
            last, said = now, True


def progress_line(description: str, done: int, size: int, elapsed: float) -> str:
    """One plain line of progress: ``<step>: 3/10 (30%), 12 s, ~28 s left``.

    Parameters
    ----------
    description
        The step's label.
    done, size
        Items done and in all.
    elapsed
        Seconds since the step started.

    Returns
    -------
    str
    """
    line = f"{description}: {done}/{size}"
    if size:
        line += f" ({100 * done / size:.0f}%)"
    line += f", {elapsed:.0f} s"
    if 0 < done < size:
        line += f", ~{elapsed * (size - done) / done:.0f} s left"
    return line


@contextlib.contextmanager
def timed(what: str, level: int = logging.INFO):
    """Log ``what`` when it starts and, with its duration, when it ends (one-shot steps such as an SVD).

    Parameters
    ----------
    what
        The step.
    level
        The logging level of both lines.
    """
    logger = logging.getLogger("mmscel")
    logger.log(level, f"{what} ...")
    started = time.monotonic()
    yield
    logger.log(level, f"{what}: done in {time.monotonic() - started:.1f} s")


def configure_logging(verbosity: int = 0) -> None:
    """Send the ``mmscel`` logger to stderr: INFO by default, DEBUG with ``-v``, WARNING with ``-q``.

    Parameters
    ----------
    verbosity
        +1 per ``-v``, -1 per ``-q``.
    """
    level = logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    logger = logging.getLogger("mmscel")
    logger.setLevel(level)
    logger.propagate = False
    for handler in [h for h in logger.handlers if getattr(h, "_mmscel_console", False)]:
        logger.removeHandler(handler)
    if console.is_terminal:
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False, show_time=False, markup=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT, "%H:%M:%S"))
    handler._mmscel_console = True
    logger.addHandler(handler)


@contextlib.contextmanager
def log_file(path: str | Path):
    """Append everything the ``mmscel`` logger says (DEBUG and up) to ``path`` while the block runs.

    Parameters
    ----------
    path
        The log file (its folder is created).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("mmscel")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.DEBUG)
    previous = logger.level
    if logger.getEffectiveLevel() > logging.DEBUG:
        for other in logger.handlers:  # the console keeps its level; the file gets every detail
            if other.level == logging.NOTSET:
                other.setLevel(logger.getEffectiveLevel())
        logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(previous)
