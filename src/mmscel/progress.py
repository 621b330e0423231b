"""Progress of long steps (chunks, SVDs, folds, epochs, boosting rounds, trials, rows) and the log files of runs.

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
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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
    with steps(description, size) as advance:
        for item in items:
            yield item
            advance()


@contextlib.contextmanager
def steps(description: str, total: int, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Show how far a step is whose loop is not ours: a library's training rounds, told by its callback.

    A step inside another (epochs inside a fold) is one more line of the same
    terminal display, one more bar in Jupyter, and its own plain lines when piped.

    Parameters
    ----------
    description
        The step's label.
    total
        Number of steps.
    enabled
        False shows nothing.

    Yields
    ------
    callable
        ``advance(n=1)``: ``n`` more steps done.
    """
    if not enabled:
        yield lambda n=1: None
    elif console.is_jupyter:
        with _notebook_bar(description, total) as advance:
            yield advance
    elif console.is_terminal:
        with _terminal_bar(description, total) as advance:
            yield advance
    else:
        yield _PlainLines(description, total).advance


_live: list[Progress] = []  # the terminal's display while a step shows; the steps inside it add lines to it


@contextlib.contextmanager
def _terminal_bar(description: str, size: int):
    if _live:  # rich shows one live display at a time
        progress = _live[-1]
        task_id = progress.add_task(description, total=size)
        try:
            yield lambda n=1: progress.advance(task_id, n)
        finally:
            progress.remove_task(task_id)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        _live.append(progress)
        try:
            task_id = progress.add_task(description, total=size)
            yield lambda n=1: progress.advance(task_id, n)
        finally:
            _live.pop()


@contextlib.contextmanager
def _notebook_bar(description: str, size: int):
    from tqdm.auto import tqdm

    with tqdm(desc=description, total=size, leave=False) as bar:
        yield bar.update


class _PlainLines:
    """Plain progress lines, at most one every ``PLAIN_EVERY`` seconds and one at the end of a step that spoke."""

    def __init__(self, description: str, size: int):
        self.description, self.size = description, size
        self.started = self.last = time.monotonic()
        self.done, self.said = 0, False

    def advance(self, n: int = 1) -> None:
        """``n`` more steps done."""
        self.done += n
        now = time.monotonic()
        if now - self.last >= PLAIN_EVERY or (self.said and self.done == self.size):  # short steps stay silent
            log.info(progress_line(self.description, self.done, self.size, now - self.started))
            self.last, self.said = now, True


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
def log_file(path: str | Path, this_thread: bool = False):
    """Append everything the ``mmscel`` logger says (DEBUG and up) to ``path`` while the block runs.

    The logger is lowered to DEBUG for the file only: its other handlers keep the level they
    had, and the records it passes on to the root logger's handlers (in a notebook or a script
    that configured logging) are the ones it passed on before.

    Parameters
    ----------
    path
        The log file (its folder is created).
    this_thread
        Only what this thread says (a Dask worker fits several runs' folds in threads at once).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("mmscel")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.DEBUG)
    if this_thread:
        ident = threading.get_ident()
        handler.addFilter(lambda record: record.thread == ident)
    with _lowered(logger):
        logger.addHandler(handler)
        try:
            yield path
        finally:
            logger.removeHandler(handler)
            handler.close()


@contextlib.contextmanager
def _lowered(logger: logging.Logger):
    """``logger`` at DEBUG, its handlers and its propagation held at the level it had."""
    before = logger.getEffectiveLevel()
    if before <= logging.DEBUG:
        yield
        return
    level, propagate = logger.level, logger.propagate
    unset = [other for other in logger.handlers if other.level == logging.NOTSET]
    for other in unset:
        other.setLevel(before)
    forward = _Propagate(logger, before) if propagate else None
    logger.setLevel(logging.DEBUG)
    if forward is not None:
        logger.propagate = False
        logger.addHandler(forward)
    try:
        yield
    finally:
        if forward is not None:
            logger.removeHandler(forward)
        logger.setLevel(level)
        logger.propagate = propagate
        for other in unset:
            other.setLevel(logging.NOTSET)


class _Propagate(logging.Handler):
    """Pass records on to the parent's handlers as propagation did at the logger's former level.

    A record of a child logger that has a level of its own was made whatever the
    ``mmscel`` logger's level, so it is passed on at any level, as before.
    """

    def __init__(self, logger: logging.Logger, level: int):
        super().__init__()
        self.logger, self.former = logger, level

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= self.former or self._own_level(record.name):
            self.logger.parent.handle(record)

    def _own_level(self, name: str) -> bool:
        while name != self.logger.name and "." in name:
            if logging.getLogger(name).level != logging.NOTSET:
                return True
            name = name.rpartition(".")[0]
        return False
