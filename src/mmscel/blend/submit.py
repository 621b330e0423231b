"""``mmscel submit``: the Kaggle submission of a blend or of single level-1 runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from mmscel.blend.inputs import check_data, target_space
from mmscel.errors import InputError
from mmscel.fsutil import write_json
from mmscel.store import RunStore
from mmscel.submission import cell_starts, evaluation_rows, submission_values, write_submission

Predictions = dict[str, tuple]  # task -> (test predictions, components or None, AppliedCis or None)


def blend_predictions(store: RunStore, name: str, data_dir, cache_dir=None) -> tuple[Predictions, dict]:
    """Per-task (test, components) of blend ``name`` made from the data in ``data_dir``, and what produced it.

    Parameters
    ----------
    store
        The run store.
    name
        The blend.
    data_dir, cache_dir
        The prepared competition folder the blend's runs must come from, and its cache.

    Returns
    -------
    tuple
        Task -> (test predictions, components or None, its cis correction or None); and the blend's name,
        runs and weights per task.

    Raises
    ------
    InputError
        When there is no such blend or its runs were made from other data.
    """
    blend = store.blend(name)
    predictions = {}
    for task, info in blend.tasks.items():
        check_data(task, {run: fp["data_fingerprint"] for run, fp in info.fingerprints.items()}, data_dir, cache_dir)
        test = blend.test(task)
        correction = bound_cis(store, blend, task, test, "test", data_dir, cache_dir)
        predictions[task] = (test, _components(store, info.target_space), correction)
    source = {
        "blend": name,
        "runs": {task: info.runs for task, info in blend.tasks.items()},
        "weights": {task: info.weights for task, info in blend.tasks.items()},
    }
    return predictions, source


def run_predictions(store: RunStore, specs: list[str], data_dir, cache_dir=None) -> tuple[Predictions, dict]:
    """Per-task (test, components) of single runs given as ``task/run``, made from the data in ``data_dir``.

    Parameters
    ----------
    store
        The run store.
    specs
        ``task/run`` strings, at most one per task.
    data_dir, cache_dir
        The prepared competition folder the runs must come from, and its cache.

    Returns
    -------
    tuple
        Task -> (test predictions, components or None, None); and ``{"runs": {task: [run]}}``.

    Raises
    ------
    InputError
        For a malformed spec, two runs of one task, an unfinished run or one made from other data.
    """
    predictions, source = {}, {"runs": {}}
    for spec in specs:
        task, _, name = spec.partition("/")
        if task not in ("cite", "multi") or not name:
            raise InputError(f"--run {spec}", "expected TASK/RUN, e.g. cite/cite_lgbm")
        if task in predictions:
            raise InputError(f"--run {spec}", f"a second {task} run; blend them with mmscel level2 instead")
        record = store.run(task, name)
        check_data(task, {name: record.data_fingerprint}, data_dir, cache_dir)
        predictions[task] = (record.test(), _components(store, record.target_space), None)
        source["runs"][task] = [name]
    return predictions, source


def bound_cis(store: RunStore, blend, task: str, values, split: str, data_dir, cache_dir=None, fold_file=None):
    """A blend's cis correction bound to the cells of ``values``, or None when the blend has none for ``task``.

    Test cells take the map fitted on every training cell; out-of-fold cells (``split="train"``) the
    map fitted without their fold, as the correction was validated, never one fitted on themselves.

    Parameters
    ----------
    store, blend
        The store and the blend's record.
    task
        The task.
    values
        The blend's predictions of those cells (coefficients or genes).
    split
        ``"test"`` or ``"train"``.
    data_dir, cache_dir
        The prepared data (the cells' peaks).
    fold_file
        The fold file of the blend's runs (``train`` only).

    Returns
    -------
    AppliedCis or None
    """
    found = blend.cis_maps(task)
    if found is None:
        return None
    from mmscel.blend.cis import apply_cis, opened_peaks
    from mmscel.data.load import load
    from mmscel.folds import read_fold_labels

    maps, folds = found
    which = np.zeros(len(values), dtype=np.int64)
    if split == "train":
        labels = read_fold_labels(store, fold_file)
        which[:] = -1
        for index, fold in enumerate(folds, start=1):
            which[labels == fold] = index
    inputs = opened_peaks(load(task, split, data_dir, cache_dir, check=False, targets=False).inputs)
    basis = target_space(store, blend.tasks[task].target_space).basis
    return apply_cis(maps, which, inputs, values, basis)


def _components(store: RunStore, space: dict):
    basis = target_space(store, space).basis
    return None if basis is None else basis.components


def submit(
    data_dir,
    cache_dir=None,
    oof_root: RunStore | str | Path = "oof",
    out: Path | None = None,
    blend: str | None = None,
    runs: list[str] | None = None,
) -> dict:
    """Validate and write a submission; return a record of what produced it.

    Parameters
    ----------
    data_dir, cache_dir
        The prepared competition folder (its evaluation rows) and its cache.
    oof_root
        The store (or its root folder).
    out
        Submission file (default: the store's ``submissions/<name>.csv.gz``).
    blend
        The blend to submit (default: the latest), unless ``runs`` is given.
    runs
        Single runs as ``task/run``; a task without one is filled with the mean profile.

    Returns
    -------
    dict
        The file, its row count, what produced it and the ``kaggle competitions submit`` line.

    Raises
    ------
    InputError
        When what to submit is missing, stale or fails validation.
    """
    store = oof_root if isinstance(oof_root, RunStore) else RunStore(oof_root)
    if runs:
        predictions, source = run_predictions(store, runs, data_dir, cache_dir)
        label = "+".join(r.replace("/", "-") for r in runs)
    else:
        predictions, source = blend_predictions(store, blend or store.latest_blend(), data_dir, cache_dir)
        label = source["blend"]
    out = Path(out) if out else store.submission_path(label)
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
