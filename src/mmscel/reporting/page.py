"""``mmscel report``: build every section from the store and the data, and write the page atomically."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from mmscel.errors import InputError
from mmscel.fsutil import atomic_path
from mmscel.reporting import html
from mmscel.reporting.sections import BUILDERS, Context
from mmscel.store import RunStore, data_fingerprint

TITLE = "mmscel report"


@dataclass
class ReportResult:
    """A written report: its file, its sections' titles and the notes of what it left out."""

    path: Path
    sections: list[str]
    notes: list[str] = field(default_factory=list)


def report(data_dir="data", cache_dir=None, oof_root: RunStore | str | Path = "oof", out=None) -> ReportResult:
    """Write one self-contained HTML page of a store's runs, blends and latest tuning study.

    The page holds the leaderboard (beside the floor, oracle and reachable
    reference where the data has truth), CV by fold, donor and day for each
    run, the correlation of the runs' out-of-fold predictions, blend weights,
    per-protein and per-gene scores, CV against private, and the history and
    parameter importances of the tuning study changed last. Its figures are
    embedded PNG images: it opens offline. A piece the store or data lacks (no
    blend, no truth, no study) is left out with a one-line note.

    Parameters
    ----------
    data_dir, cache_dir
        The prepared competition folder and its cache.
    oof_root
        The store (or its root folder).
    out
        The HTML file (default: ``report.html`` in the store's folder).

    Returns
    -------
    ReportResult

    Raises
    ------
    InputError
        When a run or blend was made from other data than ``data_dir`` holds, or a manifest is damaged.
    """
    import mmscel
    from mmscel.api import as_store, leaderboard
    from mmscel.scoring import load_truth

    store = as_store(oof_root)
    out = Path(out) if out is not None else store.root / "report.html"
    try:
        truth = load_truth(data_dir)[0]
    except InputError:
        truth = None
    board = leaderboard(data_dir, cache_dir, store)
    tasks = sorted({run.task for run in store.runs()})
    context = Context(store, Path(data_dir), cache_dir, board, truth, _data_notes(tasks, data_dir, cache_dir))
    sections = [build(context) for build in BUILDERS]
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts = [f"data {data_dir}", f"store {store.root}", created, f"mmscel {mmscel.__version__}"]
    with atomic_path(out) as tmp:
        tmp.write_text(html.page(TITLE, facts, sections), encoding="utf-8")
    notes = [block for s in sections for block in s.blocks if block.startswith('<p class="note">')]
    return ReportResult(out, [s.title for s in sections], [_text(n) for n in notes])


def _data_notes(tasks: list[str], data_dir, cache_dir) -> dict[str, str]:
    """Why a task's training truth cannot be read, for each task where it cannot (the data is not prepared)."""
    notes = {}
    for task in tasks:
        try:
            data_fingerprint(task, data_dir, cache_dir)
        except InputError as exc:
            notes[task] = f"the prepared data cannot be read ({exc}); the sections that score cells are left out"
    return notes


def _text(block: str) -> str:
    import html as markup

    return markup.unescape(block.removeprefix('<p class="note">').removesuffix("</p>"))
