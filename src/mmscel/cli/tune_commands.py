"""The tuning command: ``mmscel tune``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmscel.cli.common import DEFAULTS, MlflowOption, MlflowUriOption, SetOption, Where, command, out


@command()
def tune(
    config: Annotated[Path, typer.Argument(help="The run config to tune (its 'tune:' block is the search space).")],
    where: Where = DEFAULTS,
    trials: Annotated[int, typer.Option(help="Trials to add to the study.")] = 20,
    timeout: Annotated[float | None, typer.Option(help="Seconds after which no new trial starts.")] = None,
    study: Annotated[str | None, typer.Option(help="Study name (default: task, learner, data and folds).")] = None,
    objective: Annotated[
        str, typer.Option(help="cv, last_day, or blend (nested blend score with the task's finished runs).")
    ] = "cv",
    keep: Annotated[int, typer.Option(help="The K best distinct trials become K configs.")] = 1,
    pruner: Annotated[str, typer.Option(help="wilcoxon, median or none.")] = "wilcoxon",
    out_config: Annotated[Path | None, typer.Option(help="Where the tuned config goes.")] = None,
    report: Annotated[bool, typer.Option("--report", help="Only report the study (no new trials).")] = False,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Database URL shared by many workers (postgresql://user:pass@host:port/db).",
            envvar="MMSCEL_TUNE_STORAGE",
        ),
    ] = None,
    heartbeat: Annotated[int, typer.Option(help="Seconds between a database worker's heartbeats.")] = 60,
    overrides: SetOption = None,
    mlflow: MlflowOption = False,
    mlflow_uri: MlflowUriOption = None,
):
    """Tune a run config with Optuna on the shared folds; write <learner>.tuned.yaml beside it.

    With --set, the tuned configs (the file's keys, the overrides and the trial's values) go to the
    study's folder unless --out-config says where.
    """
    from mmscel import tracking
    from mmscel.tune.report import best_lines, trials_table
    from mmscel.tune.session import tune as run_session
    from mmscel.tune.storage import redacted

    options = {"study": study, "objective": objective, "keep": keep, "pruner": pruner, "out_config": out_config}
    options.update(storage=storage, heartbeat=heartbeat)
    if overrides:
        from mmscel.config import load_run_config

        config = load_run_config(config, overrides)
    with tracking.enabled(mlflow, mlflow_uri):
        result = run_session(
            config, where.data, where.cache, where.oof, trials=0 if report else trials, timeout=timeout, **options
        )
    out.print(trials_table(result.study))
    for line in best_lines(result.study):
        out.print(line, highlight=False)
    for path in result.configs:
        out.print(f"wrote {path}")
    kept = f"in {redacted(storage)}, plots" if storage else "journal and plots"
    out.print(f"study {result.name}: {kept} in {result.folder}")
