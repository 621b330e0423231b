"""``mmscel submit``: the Kaggle submission of a blend or of single level-1 runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mmscel.blend.inputs import check_data, load_runs, target_basis
from mmscel.errors import InputError
from mmscel.fsutil import write_json
from mmscel.store import load_array, read_manifest
from mmscel.submission import cell_starts, evaluation_rows, submission_values, write_submission


def latest_blend(oof_root: Path) -> str:
    """Name of the most recently written blend."""
    manifests = sorted(Path(oof_root).glob("blend/*/manifest.json"), key=lambda p: p.stat().st_mtime)
    if not manifests:
        raise InputError(
            Path(oof_root) / "blend", "no blend yet; run mmscel level2 configs/blend.yaml first (or pass --run)"
        )
    return manifests[-1].parent.name


def blend_predictions(oof_root: Path, name: str, data_dir, cache_dir=None) -> tuple[dict, dict]:
    """Per-task (test, components) of a blend made from the data in ``data_dir``, and what produced it."""
    folder = Path(oof_root) / "blend" / name
    manifest = read_manifest(folder / "manifest.json")
    if manifest is None:
        raise InputError(folder, "no such blend (manifest.json missing)")
    predictions = {}
    for task, info in manifest["tasks"].items():
        check_data(task, {run: fp["data_fingerprint"] for run, fp in info["fingerprints"].items()}, data_dir, cache_dir)
        basis = target_basis(info["target_space"], oof_root)
        predictions[task] = (load_array(folder / info["test_file"]), None if basis is None else basis.components)
    source = {
        "blend": name,
        "runs": {task: info["runs"] for task, info in manifest["tasks"].items()},
        "weights": {task: info["weights"] for task, info in manifest["tasks"].items()},
    }
    return predictions, source


def run_predictions(oof_root: Path, specs: list[str], data_dir, cache_dir=None) -> tuple[dict, dict]:
    """Per-task (test, components) of single runs given as ``task/run``, made from the data in ``data_dir``."""
    predictions, source = {}, {"runs": {}}
    for spec in specs:
        task, _, name = spec.partition("/")
        if task not in ("cite", "multi") or not name:
            raise InputError(f"--run {spec}", "expected TASK/RUN, e.g. cite/cite_lgbm")
        if task in predictions:
            raise InputError(f"--run {spec}", f"a second {task} run; blend them with mmscel level2 instead")
        run = load_runs(Path(oof_root), task, [name])[0]
        check_data(task, {name: run.manifest["data_fingerprint"]}, data_dir, cache_dir)
        basis = target_basis(run.manifest["target_space"], oof_root)
        predictions[task] = (run.test, None if basis is None else basis.components)
        source["runs"][task] = [name]
    return predictions, source


def submit(
    data_dir, cache_dir, oof_root, out: Path | None, blend: str | None = None, runs: list[str] | None = None
) -> dict:
    """Validate and write a submission; return a record of what produced it."""
    oof_root = Path(oof_root)
    if runs:
        predictions, source = run_predictions(oof_root, runs, data_dir, cache_dir)
        label = "+".join(r.replace("/", "-") for r in runs)
    else:
        predictions, source = blend_predictions(oof_root, blend or latest_blend(oof_root), data_dir, cache_dir)
        label = source["blend"]
    out = Path(out) if out else oof_root / "submissions" / f"{label}.csv.gz"
    rows = evaluation_rows(data_dir, cache_dir)
    values = submission_values(data_dir, cache_dir, predictions, rows)
    write_submission(out, values, cell_starts(rows), n_rows=rows.n_rows)
    message = f"mmscel {label}"
    record = {
        "file": str(out),
        "rows": int(len(values)),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "filled_with_mean_profile": sorted({"cite", "multi"} - set(predictions)),
        "kaggle": f'kaggle competitions submit -c open-problems-multimodal -f {out} -m "{message}"',
        **source,
    }
    write_json(out.with_name(out.name.removesuffix(".gz").removesuffix(".csv") + ".json"), record)
    return record
