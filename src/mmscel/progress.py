"""Progress bars for long steps (chunks, folds, trials)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

T = TypeVar("T")
console = Console(stderr=True)


def track(items: Iterable[T], description: str, total: int | None = None, enabled: bool = True) -> Iterator[T]:
    """Iterate over ``items`` while showing a progress bar on stderr (when it is a terminal).

    Parameters
    ----------
    items
        What to iterate over.
    description
        The bar's label.
    total
        Number of items (None: ``len(items)``).
    enabled
        False iterates without a bar.

    Yields
    ------
    object
        The items, in order.
    """
    if not enabled or not console.is_terminal:
        yield from items
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        size = total if total is not None else len(items)  # type: ignore[arg-type]
        task_id = progress.add_task(description, total=size)
        for item in items:
            yield item
            progress.advance(task_id)
