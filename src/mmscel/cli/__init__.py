"""The ``mmscel`` command line: thin typer commands over the package's stages.

Conventions: every command that reads a competition folder takes ``--data``
(default ``data/``); the prepared cache lives in ``DATA/.cache`` unless
``--cache`` says otherwise; run outputs go under ``--oof`` (default ``oof/``).
Exit codes: 0 success, 2 bad input or usage (one line, no traceback),
1 internal error.
"""

from __future__ import annotations

import os

from mmscel.cli import (  # noqa: F401 - the commands register on import
    data_commands,
    export_commands,
    pipeline_commands,
    report_commands,
    tune_commands,
)
from mmscel.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point that keeps exit codes: 0 ok, 1 internal error, 2 bad input or usage.

    The process-wide settings live here, at the edge, never in the library:
    OpenMP threads wait passively (spinning threads steal the core another
    thread needs on a busy 2-core machine: a LightGBM fold went from 39 s to
    several minutes; passive waiting costs nothing measurable when idle), and
    Optuna reports warnings only (one line per trial would bury the tables).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before any OpenMP library loads
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    app(prog_name="mmscel")
