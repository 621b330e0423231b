"""What every command shares: the app, the consoles, the common options, error handling and tables."""

from __future__ import annotations

import errno
import functools
import inspect
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mmscel.errors import InputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="mmscel: a competition stack for multimodal single-cell prediction (Kaggle open-problems-multimodal).",
)
out = Console()
err = Console(stderr=True)


def _print_version(asked: bool) -> None:
    if asked:
        from mmscel import __version__

        out.print(f"mmscel {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _verbosity(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail on stderr (-v: debug).")] = 0,
    quiet: Annotated[int, typer.Option("--quiet", "-q", count=True, help="Warnings and errors only.")] = 0,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit.")
    ] = False,
):
    """mmscel: a competition stack for multimodal single-cell prediction (Kaggle open-problems-multimodal).

    Progress and log lines go to stderr (plain lines when it is not a terminal), results to stdout;
    each run, blend and tuning study also keeps a log file in its folder.
    """
    from mmscel.progress import configure_logging

    configure_logging(verbose - quiet)


SHARED_OPTIONS = {  # name -> (type with its option, default)
    "data": (Annotated[Path, typer.Option("--data", help="Competition folder.")], Path("data")),
    "cache": (
        Annotated[Path | None, typer.Option("--cache", help="Prepared cache folder (default DATA/.cache).")],
        None,
    ),
    "oof": (Annotated[Path, typer.Option("--oof", help="Root of everything runs produce.")], Path("oof")),
}

#: ``--set KEY=VALUE`` of the commands that read a config (see :func:`mmscel.config.apply_overrides`)
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a config key, e.g. --set params.alpha=10 --set folds.scheme=random (dotted key, YAML "
        "value; repeatable). The result is another config: give its run another name with --set name=...",
    ),
]


#: ``--mlflow`` and ``--mlflow-uri`` of the commands that log to MLflow (see :mod:`mmscel.tracking`)
MlflowOption = Annotated[
    bool,
    typer.Option(
        "--mlflow",
        help="Log to MLflow's tracking store OOF/mlflow/mlflow.db (default: on when $MMSCEL_MLFLOW is 1 or a URI).",
    ),
]
MlflowUriOption = Annotated[
    str | None,
    typer.Option("--mlflow-uri", metavar="URI", help="Log to this MLflow tracking URI instead (implies --mlflow)."),
]


@dataclass(frozen=True)
class Where:
    """The folders a command works on: the competition data, its prepared cache, the store."""

    data: Path = Path("data")
    cache: Path | None = None
    oof: Path = Path("oof")


DEFAULTS = Where()  # the default of a command's ``where`` (the command line always passes one)


def command(name: str | None = None, uses: tuple[str, ...] = ("data", "cache", "oof")):
    """Register a command with one-line errors and the shared folder options it ``uses``.

    The decorated function takes ``where`` (a :class:`Where`) instead of the
    ``--data``, ``--cache`` and ``--oof`` options, which are added to its
    signature here so that every command spells them alike.
    """

    def decorate(function):
        signature = inspect.signature(function, eval_str=True)  # typer reads the Annotated options from it
        own = [parameter for parameter in signature.parameters.values() if parameter.name != "where"]
        shared = [
            inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for key, (annotation, default) in SHARED_OPTIONS.items()
            if key in uses
        ]

        takes_where = "where" in signature.parameters

        @functools.wraps(function)
        def with_where(*args, **kwargs):
            where = Where(**{key: kwargs.pop(key) for key in uses})
            return function(*args, **kwargs, **({"where": where} if takes_where else {}))

        with_where.__signature__ = signature.replace(parameters=[*own, *shared])
        with_where.__annotations__ = {p.name: p.annotation for p in with_where.__signature__.parameters.values()}
        app.command(name)(cli_errors(with_where))
        return function

    return decorate


def cli_errors(command):
    """Report bad input as one line with exit code 2, anything else as an internal error (1)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            problem = input_problem(exc)
            if problem is not None:
                err.print(f"[bold red]error:[/] {escape(problem)}", markup=True, highlight=False, soft_wrap=True)
                raise typer.Exit(2) from None
            if os.environ.get("MMSCEL_DEBUG"):
                traceback.print_exc()
            problem = escape(f"{type(exc).__name__}: {exc}")
            err.print(f"[bold red]internal error:[/] {problem}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def input_problem(exc: Exception) -> str | None:
    """The one-line message of an error the user can fix, or None for an internal error.

    Bad input raises :class:`InputError`; an operating-system error on a path
    (a read-only folder, a missing file, a folder where a file belongs, a full
    disk) names that path.
    """
    if isinstance(exc, InputError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        unwritable = exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
        hint = " (write elsewhere: --cache, --oof or --out name a writable folder)" if unwritable else ""
        return f"{exc.filename}: {exc.strerror or type(exc).__name__}{hint}"
    return None


def new_table(title: str, columns: tuple[str, ...], left: tuple[str, ...]) -> Table:
    """A rich table with the ``left`` columns left-aligned and the others (numbers) right-aligned."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column in left else "right")
    return table


def fmt(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.4f}"
