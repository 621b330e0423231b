"""The report command: ``mmscel report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmscel.cli.common import DEFAULTS, Where, command, out


@command()
def report(
    where: Where = DEFAULTS,
    out_path: Annotated[Path | None, typer.Option("--out", help="HTML file (default OOF/report.html).")] = None,
):
    """Write one self-contained HTML page: leaderboard, CV by fold, donor and day, OOF correlation,
    blend weights, per-target scores, CV against private and the latest tuning study.

    A piece the store or data lacks (no blend, no truth, no study) is left out with a one-line note.
    """
    from mmscel.reporting.page import report as write_report

    result = write_report(where.data, where.cache, where.oof, out_path)
    for line in result.notes:
        out.print(f"note: {line}", highlight=False, soft_wrap=True)
    out.print(f"wrote {result.path} ({len(result.sections)} sections)", highlight=False, soft_wrap=True)
