"""``mmscel export``: a run's or a blend's predictions as AnnData (``.h5ad``).

The file holds cells x targets (proteins, or Multiome genes reconstructed
from the stored SVD coefficients), ``obs`` the cells' metadata (and, for
out-of-fold predictions, each cell's fold), ``var`` the target names, and
``uns['mmscel']`` what produced the predictions. ``X`` is written in row
chunks straight into an HDF5 dataset, so a full-size Multiome export never
holds the dense gene matrix; the file appears under its name only once complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import mmscel
from mmscel.blend import objective
from mmscel.blend.inputs import check_data, target_space
from mmscel.blend.submit import bound_cis
from mmscel.data.h5_format import rows_per_chunk
from mmscel.data.load import load
from mmscel.errors import InputError
from mmscel.fsutil import atomic_path
from mmscel.store import RunRecord, RunStore
from mmscel.targets import TargetSpace

SPLITS = {"test": "test", "oof": "train"}  # export split -> the data's split


@dataclass
class Predictions:
    """One task's predictions of one split, in their prediction space, and what made them."""

    task: str
    split: str
    values: np.ndarray
    space: TargetSpace
    about: dict = field(default_factory=dict)
    fold_file: str | None = None  # out-of-fold predictions: the fold file of their runs
    correction: object | None = None  # a blend's cis correction of these cells (an AppliedCis)

    def targets(self, start: int, stop: int) -> np.ndarray:
        """The predicted targets of rows ``start:stop`` (float32): reconstructed, and corrected when the blend is."""
        values = self.space.reconstruct(self.values[start:stop])
        if self.correction is not None:
            values = values + self.correction.rows(start, min(stop, len(self.values)))
        return np.asarray(values, dtype=np.float32)


def export(
    out: str | Path | None = None,
    *,
    run: str | None = None,
    blend: str | None = None,
    task: str | None = None,
    split: str = "test",
    data_dir: str | Path = "data",
    cache_dir: str | Path | None = None,
    oof_root: RunStore | str | Path = "oof",
) -> list[dict]:
    """Write a run's or a blend's predictions as AnnData.

    Parameters
    ----------
    out : str or pathlib.Path, optional
        The ``.h5ad`` file (default: ``<store>/exports/<task>/<run>.<split>.h5ad`` for a run,
        ``<store>/exports/blend/<name>.<task>.<split>.h5ad`` for each task of a blend).
    run : str, optional
        A level-1 run as ``TASK/RUN`` (``cite/cite_lgbm``).
    blend : str, optional
        A blend's name, instead of ``run``; its values are the blend as ``mmscel submit`` uses it
        (a weighted sum of the runs' per-cell standardised predictions).
    task : {'cite', 'multi'}, optional
        The task of a blend to export (default: each of its tasks; needed with ``out`` when it has two).
    split : {'test', 'oof'}
        Test predictions, or the out-of-fold predictions of the training cells (NaN where never validated).
    data_dir, cache_dir
        The prepared competition folder the predictions were made from (cells, metadata, target names).
    oof_root
        The store (or its root folder).

    Returns
    -------
    list of dict
        Per file written: ``file``, ``task``, ``split``, ``shape`` (cells, targets), and ``run`` or ``blend``.

    Raises
    ------
    InputError
        A malformed or unknown run or blend, a bad split or output path, or predictions made from other data.
    """
    out = None if out is None else _check_out(Path(out))
    store = oof_root if isinstance(oof_root, RunStore) else RunStore(oof_root)
    found = _predictions(store, run, blend, task, split, out, data_dir, cache_dir)
    written = []
    for predictions in found:
        path = out or _default_path(store, predictions, blend)
        shape = write_h5ad(path, predictions, data_dir, cache_dir, store)
        source = {"blend" if blend else "run": predictions.about["name"]}
        written.append({"file": str(path), "task": predictions.task, "split": split, "shape": shape, **source})
    return written


def to_anndata(
    *,
    run: str | None = None,
    blend: str | None = None,
    task: str | None = None,
    split: str = "test",
    data_dir: str | Path = "data",
    cache_dir: str | Path | None = None,
    oof_root: RunStore | str | Path = "oof",
):
    """A run's or a blend's predictions as an AnnData in memory, as :func:`export` writes them.

    ``X`` is dense float32 cells x targets: for Multiome, every gene of every cell
    (about 10 GB for the full test set); :func:`export` writes it in row chunks instead.

    Parameters
    ----------
    run, blend, split, data_dir, cache_dir, oof_root
        As in :func:`export`.
    task : {'cite', 'multi'}, optional
        The task of a blend (needed when it blends both).

    Returns
    -------
    anndata.AnnData
        ``obs`` the cells' metadata (and ``fold``, ``predicted`` for ``oof``), ``var`` the target
        names, ``uns['mmscel']`` what made the predictions.

    Raises
    ------
    InputError
        As :func:`export`.
    """
    import anndata

    store = oof_root if isinstance(oof_root, RunStore) else RunStore(oof_root)
    if blend is not None and task is None and len(store.blend(blend).tasks) > 1:
        raise InputError(f"blend {blend}", f"blends {' and '.join(store.blend(blend).tasks)}; pass task=")
    [predictions] = _predictions(store, run, blend, task, split, None, data_dir, cache_dir)
    obs, var = _obs(predictions, data_dir, cache_dir, store), _var(predictions.task, data_dir, cache_dir)
    _check_rows(predictions, obs, data_dir)
    X = predictions.targets(0, len(predictions.values))
    return anndata.AnnData(X=X, obs=obs, var=var, uns={"mmscel": _uns(predictions)})


def _predictions(store: RunStore, run, blend, task, split: str, out, data_dir, cache_dir) -> list[Predictions]:
    if split not in SPLITS:
        raise InputError("split", f"{split!r} is not one of {', '.join(SPLITS)}")
    if (run is None) == (blend is None):
        raise InputError("export", "give either a run (TASK/RUN) or a blend, not both or neither")
    if run is not None:
        return [run_predictions(store, run, split, data_dir, cache_dir)]
    return _blend_predictions(store, blend, task, split, out, data_dir, cache_dir)


def _check_rows(predictions: Predictions, obs: pd.DataFrame, data_dir) -> None:
    if len(predictions.values) != len(obs):
        what = f"{predictions.about['kind']} {predictions.about['name']}"
        raise InputError(
            what, f"holds {len(predictions.values)} {predictions.split} rows for {len(obs)} cells of {data_dir}"
        )


def _check_out(path: Path) -> Path:
    if path.suffix != ".h5ad":
        raise InputError(path, "the output must be an .h5ad file")
    if path.is_dir():
        raise InputError(path, "is a folder; give the .h5ad file to write")
    return path


def _default_path(store: RunStore, predictions: Predictions, blend: str | None) -> Path:
    name, task, split = predictions.about["name"], predictions.task, predictions.split
    if blend:
        return store.root / "exports" / "blend" / f"{name}.{task}.{split}.h5ad"
    return store.root / "exports" / task / f"{name}.{split}.h5ad"


def run_predictions(store: RunStore, spec: str, split: str, data_dir, cache_dir=None) -> Predictions:
    """The predictions of the run ``spec`` (``TASK/RUN``) of one split, checked against the data.

    Parameters
    ----------
    store : RunStore
        The store holding the run.
    spec : str
        ``TASK/RUN``.
    split : {'test', 'oof'}
        Which predictions.
    data_dir, cache_dir
        The prepared data the run must come from.

    Returns
    -------
    Predictions

    Raises
    ------
    InputError
        A malformed spec, an unfinished run, or a run of other data.
    """
    task, _, name = spec.partition("/")
    if task not in ("cite", "multi") or not name:
        raise InputError(f"--run {spec}", "expected TASK/RUN, e.g. cite/cite_lgbm")
    record = store.run(task, name)
    check_data(task, {name: record.data_fingerprint}, data_dir, cache_dir)
    values = record.test() if split == "test" else record.oof()
    about = {"kind": "run", "name": name, "learner": record.learner, "cv": record.cv, "runs": [name]}
    about["data_fingerprint"] = record.data_fingerprint
    space = target_space(store, record.target_space)
    return Predictions(task, split, values, space, about, record.manifest["fold_file"])


def _blend_predictions(store: RunStore, name: str, task, split: str, out, data_dir, cache_dir) -> list[Predictions]:
    record = store.blend(name)
    tasks = list(record.tasks)
    if task is not None and task not in tasks:
        raise InputError(f"blend {name}", f"has no {task} task (it blends {', '.join(tasks)})")
    if task is None and out is not None and len(tasks) > 1:
        raise InputError(f"blend {name}", f"blends {' and '.join(tasks)}; pass --task to choose what goes to {out}")
    found = []
    for each in [task] if task else tasks:
        info = record.tasks[each]
        check_data(each, {run: fp["data_fingerprint"] for run, fp in info.fingerprints.items()}, data_dir, cache_dir)
        space = target_space(store, info.target_space)
        about = {"kind": "blend", "name": name, "method": info.method, "cv": info.nested, "runs": info.runs}
        about.update(weights=info.weights, data_fingerprint=info.fingerprints[info.runs[0]]["data_fingerprint"])
        if split == "test":
            values = record.test(each)
            correction = bound_cis(store, record, each, values, "test", data_dir, cache_dir)
            found.append(Predictions(each, split, values, space, about, correction=correction))
            continue
        runs = [_blended_run(store, name, each, run, info.fingerprints[run]) for run in info.runs]
        values = _blend(runs, space, np.asarray(info.weights))
        fold_file = runs[0].manifest["fold_file"]
        correction = bound_cis(store, record, each, values, "train", data_dir, cache_dir, fold_file)
        found.append(Predictions(each, split, values, space, about, fold_file, correction))
    return found


def _blended_run(store: RunStore, blend: str, task: str, name: str, fingerprints: dict) -> RunRecord:
    record = store.run(task, name)
    if record.fingerprints != fingerprints:
        raise InputError(f"run {task}/{name}", f"changed since blend {blend} was made; run mmscel level2 again")
    return record


def _blend(runs: list[RunRecord], space: TargetSpace, weights: np.ndarray) -> np.ndarray:
    """The blend of the runs' out-of-fold predictions, as level-2 blends their test predictions."""
    oof = [record.oof() for record in runs]
    if space.basis is None:
        return objective.blend_dense(oof, weights)
    return objective.blend_components(oof, space.basis, weights)


def write_h5ad(
    path: Path, predictions: Predictions, data_dir, cache_dir, store: RunStore, chunk_rows: int | None = None
) -> list[int]:
    """Write ``predictions`` as an ``.h5ad`` file, ``X`` in row chunks; the file appears complete or not at all.

    Parameters
    ----------
    path : pathlib.Path
        The file to write.
    predictions : Predictions
        One task's predictions of one split.
    data_dir, cache_dir
        The prepared data (cells, metadata, target names).
    store : RunStore
        The store the predictions come from (their fold file).
    chunk_rows : int, optional
        Rows reconstructed and written at a time (default: 128 MB of float32 targets).

    Returns
    -------
    list of int
        The shape of ``X``: cells x targets.
    """
    import h5py
    from anndata.io import write_elem

    obs, var = _obs(predictions, data_dir, cache_dir, store), _var(predictions.task, data_dir, cache_dir)
    _check_rows(predictions, obs, data_dir)
    with atomic_path(path, durable=True) as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.attrs["encoding-type"], handle.attrs["encoding-version"] = "anndata", "0.1.0"
            write_elem(handle, "obs", obs)
            write_elem(handle, "var", var)
            write_elem(handle, "uns", {"mmscel": _uns(predictions)})
            for empty in ("obsm", "varm", "obsp", "varp", "layers"):
                write_elem(handle, empty, {})
            X = handle.create_dataset("X", shape=(len(obs), len(var)), dtype=np.float32)
            X.attrs["encoding-type"], X.attrs["encoding-version"] = "array", "0.2.0"
            step = chunk_rows or rows_per_chunk(len(var))
            for start in range(0, len(obs), step):
                X[start : start + step] = predictions.targets(start, start + step)
    return [len(obs), len(var)]


def _obs(predictions: Predictions, data_dir, cache_dir, store: RunStore) -> pd.DataFrame:
    """The cells' metadata in prediction order (strings as categories), with the fold of out-of-fold cells.

    Predictions are in the data's cell order: features, folds and runs are all built from it.
    """
    split = SPLITS[predictions.split]
    metadata = load(predictions.task, split, data_dir, cache_dir, check=False, inputs=False, targets=False).metadata
    obs = metadata.set_index("cell_id")
    if predictions.split == "oof":
        from mmscel.folds import read_fold_labels

        obs["fold"] = read_fold_labels(store, predictions.fold_file).astype(np.int64)
        obs["predicted"] = np.isfinite(predictions.values).all(axis=1)
    for column in obs.columns:
        if obs[column].dtype == object:
            obs[column] = pd.Categorical(obs[column].astype(str))
    obs.index = obs.index.astype(str)
    return obs


def _var(task: str, data_dir, cache_dir) -> pd.DataFrame:
    names = load(task, "train", data_dir, cache_dir, check=False, inputs=False, targets=False).target_names
    return pd.DataFrame(index=pd.Index(np.asarray(names, dtype=str), name="target"))


def _uns(predictions: Predictions) -> dict:
    """What produced the predictions; only strings, numbers and their arrays (no pickles in the file)."""
    about = dict(predictions.about)
    about.update(task=predictions.task, split=predictions.split, version=mmscel.__version__)
    about["runs"] = np.asarray(about["runs"], dtype=str)
    if "weights" in about:
        about["weights"] = np.asarray(about["weights"], dtype=np.float64)
        about["values"] = "weighted sum of the runs' per-cell standardised predictions (as submitted)"
    return {key: (np.nan if value is None else value) for key, value in about.items()}
