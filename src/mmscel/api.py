"""The Python API: the pipeline's stages as functions of folders, stores and arrays.

Everything the command line does is here for a notebook or a script; the
command line is a thin layer over these functions. Results come back as
records, arrays and DataFrames; files are written only where a stage keeps
its results in the store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmscel.data.load import load
from mmscel.errors import InputError
from mmscel.store import RunStore, load_array
from mmscel.targets import space_from_manifest

LEADERBOARD_COLUMNS = ["task", "name", "kind", "cv", "last_day", "public", "private"]


def as_store(store: RunStore | str | Path) -> RunStore:
    """The store an API function works on.

    Parameters
    ----------
    store
        A :class:`RunStore`, returned as it is, or the root folder of one.

    Returns
    -------
    RunStore
    """
    return store if isinstance(store, RunStore) else RunStore(store)


def leaderboard(data_dir="data", cache_dir=None, oof_root: RunStore | str | Path = "oof") -> pd.DataFrame:
    """Every run and blend of the store: CV, last day, and public and private scores where the data has truth.

    Parameters
    ----------
    data_dir, cache_dir
        The prepared competition folder and its cache. Synthetic and imported
        datasets carry ``truth/``; the real Kaggle files do not, and then only
        the validation scores are listed.
    oof_root
        The store (or its root folder).

    Returns
    -------
    pandas.DataFrame
        One row per (task, run or blend): ``task``, ``name``, ``kind``, ``cv``
        (nested for blends), ``last_day``, ``public``, ``private``; best private
        (or CV) first within each task.

    Raises
    ------
    InputError
        When a run or blend comes from other data than ``data_dir`` holds.
    """
    from mmscel.scoring import board, load_truth

    store = as_store(oof_root)
    try:
        load_truth(data_dir)
    except InputError:
        rows = _validation_rows(store)
    else:
        rows, _ = board(data_dir, cache_dir, store)
    frame = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)
    order = "private" if frame["private"].notna().any() else "cv"
    return frame.sort_values(["task", order], ascending=[True, False], na_position="last").reset_index(drop=True)


def _validation_rows(store: RunStore) -> list[dict]:
    rows = [
        {"task": r.task, "name": r.name, "kind": r.learner, "cv": r.cv, "last_day": r.last_day} for r in store.runs()
    ]
    for blend in store.blends():
        for task, info in blend.tasks.items():
            kind = f"blend ({info.method})"
            rows.append({"task": task, "name": blend.name, "kind": kind, "cv": info.nested, "last_day": info.last_day})
    return rows


def load_oof(
    task: str,
    run: str,
    oof_root: RunStore | str | Path = "oof",
    data_dir="data",
    cache_dir=None,
    *,
    split: str = "train",
    cells=None,
    as_anndata: bool = False,
):
    """A run's predictions, indexed by cell id, in target space (Multiome genes reconstructed).

    Parameters
    ----------
    task, run
        Which run (``"cite"``, ``"cite_lgbm"``).
    oof_root
        The store (or its root folder).
    data_dir, cache_dir
        The prepared competition folder (target names and cell metadata).
    split
        ``"train"``: out-of-fold predictions (NaN for cells no fold validated);
        ``"test"``: test predictions.
    cells
        Cell ids to keep (default: all; the full Multiome gene matrix is ~10 GB dense).
    as_anndata
        Return an :class:`anndata.AnnData` (cells x targets, the cells' metadata in ``obs``).

    Returns
    -------
    pandas.DataFrame or anndata.AnnData
        Cells x targets (proteins or genes), float32.

    Raises
    ------
    InputError
        When the run is not finished, ``split`` is unknown, or a cell id is not in the split.
    """
    if split not in ("train", "test"):
        raise InputError("split", f"{split!r} is not train or test")
    store = as_store(oof_root)
    record = store.run(task, run)
    features = store.features_dir(task, record.feature_fingerprint)
    cell_ids = load_array(features / f"{split}_ids.npy").astype(str)
    values = record.oof() if split == "train" else record.test()
    rows = np.arange(len(cell_ids))
    if cells is not None:
        position = pd.Index(cell_ids).get_indexer(pd.Index(np.asarray(cells, dtype=str)))
        if (position < 0).any():
            missing = str(np.asarray(cells)[position < 0][0])
            raise InputError("cells", f"{missing!r} is not a {split} cell of {task}")
        rows = position
    values = space_from_manifest(record.target_space, store.resolve).reconstruct(values[rows])
    names = load(task, "train", data_dir, cache_dir, inputs=False, targets=False).target_names.astype(str)
    frame = pd.DataFrame(values, index=pd.Index(cell_ids[rows], name="cell_id"), columns=names)
    if not as_anndata:
        return frame
    import anndata

    metadata = load(task, split, data_dir, cache_dir, check=False, inputs=False, targets=False).metadata
    obs = metadata.set_index("cell_id").loc[frame.index].astype(str)
    return anndata.AnnData(X=frame.to_numpy(), obs=obs, var=pd.DataFrame(index=names))


def cell_scores(task: str, runs=None, oof_root: RunStore | str | Path = "oof", data_dir="data", cache_dir=None):
    """Per-cell Pearson of runs' out-of-fold predictions, with each cell's donor, day, type and fold.

    Parameters
    ----------
    task
        ``"cite"`` or ``"multi"``.
    runs
        Run names (default: every finished run of the task).
    oof_root
        The store (or its root folder).
    data_dir, cache_dir
        The prepared competition folder (the truth of the training cells) and its cache.

    Returns
    -------
    pandas.DataFrame
        One row per run and validated cell: ``run``, ``cell_id``, ``donor``, ``day``, ``cell_type``,
        ``fold``, ``score``; e.g. ``frame.groupby(["run", "day"]).score.mean()``.

    Raises
    ------
    InputError
        When a run is not finished or was made from other data, or the data is not prepared.
    """
    from mmscel.reporting.scores import cell_scores as scores

    return scores(as_store(oof_root), task, runs, data_dir, cache_dir)


def target_scores(task: str, runs=None, oof_root: RunStore | str | Path = "oof", data_dir="data", cache_dir=None):
    """Pearson across the validated cells of each target (protein or gene) for each run's OOF predictions.

    Multiome genes are rebuilt from a run's SVD coefficients in row chunks (bounded memory at full size).

    Parameters
    ----------
    task, runs, oof_root, data_dir, cache_dir
        As in :func:`cell_scores`.

    Returns
    -------
    pandas.DataFrame
        Targets x runs; NaN for a target constant over the validated cells.

    Raises
    ------
    InputError
        As :func:`cell_scores`.
    """
    from mmscel.reporting.scores import target_scores as scores

    return scores(as_store(oof_root), task, runs, data_dir, cache_dir)


def oof_correlation(task: str, runs=None, oof_root: RunStore | str | Path = "oof", data_dir="data", cache_dir=None):
    """Mean per-cell Pearson between runs' OOF predictions, as level-2 sees them: what a blend can gain.

    Parameters
    ----------
    task, runs, oof_root, data_dir, cache_dir
        As in :func:`cell_scores`; by default the runs that predict the best run's target space
        (the others are listed in ``frame.attrs["skipped"]``).

    Returns
    -------
    pandas.DataFrame
        Runs x runs.

    Raises
    ------
    InputError
        As :func:`cell_scores`, or when named runs predict different target spaces.
    """
    from mmscel.reporting.scores import oof_correlation as correlation

    return correlation(as_store(oof_root), task, runs, data_dir, cache_dir)


def blend_weights(oof_root: RunStore | str | Path = "oof") -> pd.DataFrame:
    """The weight of every run in every blend of the store.

    Parameters
    ----------
    oof_root
        The store (or its root folder).

    Returns
    -------
    pandas.DataFrame
        ``blend``, ``task``, ``method``, ``run``, ``weight`` (empty without a blend).
    """
    from mmscel.reporting.scores import blend_weights as weights

    return weights(as_store(oof_root))


def tuning_study(name: str | None = None, oof_root: RunStore | str | Path = "oof"):
    """A tuning study kept in the store's journal files (``tune/<study>/``), read without writing to it.

    Parameters
    ----------
    name
        The study (default: the one changed last).
    oof_root
        The store (or its root folder).

    Returns
    -------
    optuna.Study

    Raises
    ------
    InputError
        When the store holds no such study, or its journal is damaged.
    """
    from mmscel.reporting.scores import load_study

    return load_study(as_store(oof_root), name)


def import_anndata(data, out_dir: str | Path, task: str, *, test=None, **options) -> dict:
    """Import AnnData or MuData, objects in memory or files, as a competition-layout folder.

    Parameters
    ----------
    data
        A :class:`mudata.MuData` (or ``.h5mu`` path) holding both modalities, or a pair
        ``(inputs, targets)`` of :class:`anndata.AnnData` objects (or ``.h5ad`` paths) of the same cells;
        with ``targets_obsm=KEY`` the inputs alone, their ``obsm[KEY]`` holding the targets.
        Objects are read as they are and never modified.
    out_dir
        The folder to write (then ``mmscel.api`` functions and the command line take it as ``data_dir``).
    task
        ``"cite"`` or ``"multi"``.
    test
        A pair ``(inputs, targets)`` of separate test cells, or their inputs alone with ``targets_obsm``
        (default: split ``data``, see ``options``).
    **options
        The keywords of :func:`mmscel.data.anndata_import.import_anndata`: ``split_by``, ``test_values``,
        ``test_fraction``, ``seed``, ``layer``, ``counts``, ``normalize``, ``proteins`` ('clr' or 'dsb'),
        ``atac`` ('tfidf' or 'binary'), ``input_mod``, ``target_mod``, ``targets_obsm``, ``overwrite``, ...

    Returns
    -------
    dict
        The import's summary (output folder, shapes, split, what was done to raw counts).

    Raises
    ------
    InputError
        One line naming the argument or file at fault; ``out_dir`` is then left as it was.
    """
    from mmscel.data.anndata_import import import_anndata as importer

    if options.get("targets_obsm") is not None:  # the targets come with the inputs (and the test inputs)
        return importer(out_dir, task, inputs=data, test_inputs=test, **options)
    if isinstance(data, tuple | list):
        sources = dict(zip(("inputs", "targets"), _pair(data, "data")))
    else:
        sources = {"mudata": data}
    if test is not None:
        sources.update(zip(("test_inputs", "test_targets"), _pair(test, "test")))
    return importer(out_dir, task, **sources, **options)


def _pair(value, name: str) -> tuple:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise InputError(name, "expected a pair (inputs, targets) of AnnData objects or .h5ad paths")
    return tuple(value)


def predictions(
    *,
    run: str | None = None,
    blend: str | None = None,
    task: str | None = None,
    split: str = "test",
    data_dir="data",
    cache_dir=None,
    oof_root: RunStore | str | Path = "oof",
):
    """A run's or a blend's predictions as an AnnData in memory (what ``mmscel export`` writes to a file).

    Parameters
    ----------
    run
        A level-1 run as ``TASK/RUN`` (``"cite/cite_lgbm"``).
    blend
        A blend's name, instead of ``run``; its values are the blend as submitted.
    task
        The task of a blend (needed when it blends both).
    split
        ``"test"``, or ``"oof"``: the out-of-fold predictions of the training cells (NaN where never validated).
    data_dir, cache_dir
        The prepared competition folder the predictions were made from.
    oof_root
        The store (or its root folder).

    Returns
    -------
    anndata.AnnData
        Cells x targets (Multiome: every gene, dense), the cells' metadata in ``obs``, what made the
        predictions in ``uns['mmscel']``.

    Raises
    ------
    InputError
        An unknown run or blend, a bad split, or predictions made from other data.
    """
    from mmscel.h5ad_export import to_anndata

    store = as_store(oof_root)
    return to_anndata(
        run=run, blend=blend, task=task, split=split, data_dir=data_dir, cache_dir=cache_dir, oof_root=store
    )
