"""Commands that hand results back to other tools: export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmscel.cli.common import DEFAULTS, Where, command, out


@command("export")
def export_command(
    where: Where = DEFAULTS,
    run: Annotated[str | None, typer.Option(help="A level-1 run as TASK/RUN, e.g. cite/cite_lgbm.")] = None,
    blend: Annotated[str | None, typer.Option(help="A blend's name, instead of --run.")] = None,
    task: Annotated[str | None, typer.Option(help="The task of a blend to export (default: each).")] = None,
    split: Annotated[str, typer.Option(help="test, or oof: the training cells' out-of-fold predictions.")] = "test",
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="The .h5ad file (default OOF/exports/<task>/<run>.<split>.h5ad)."),
    ] = None,
):
    """Write predictions as AnnData (.h5ad): cells x targets, the cells' metadata in obs, the targets in var."""
    from mmscel.h5ad_export import export

    for record in export(
        out_path,
        run=run,
        blend=blend,
        task=task,
        split=split,
        data_dir=where.data,
        cache_dir=where.cache,
        oof_root=where.oof,
    ):
        cells, targets = record["shape"]
        what = f"{record['task']} {record['split']} predictions"
        out.print(
            f"wrote {record['file']} ({what}, {cells:,} cells x {targets:,} targets)", highlight=False, soft_wrap=True
        )
