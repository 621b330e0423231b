"""Loading API for later stages: one task's split from the prepared cache."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmscel.data import layout
from mmscel.data.cache_files import (
    MANIFEST,
    default_cache,
    idxcol_path,
    load_idxcol,
    matrix_sources,
    source_is_current,
    values_path,
)
from mmscel.data.sparse_npz import read_stacked
from mmscel.errors import InputError


@dataclass
class Split:
    """The cells of one task and split.

    Attributes
    ----------
    task : str
        'cite' or 'multi'.
    split : str
        'train' or 'test'.
    inputs : scipy.sparse.csr_matrix or None
        Cells x features, float32; None when not asked for.
    targets : numpy.ndarray or scipy.sparse.csr_matrix or None
        Dense float32 for CITEseq, CSR for Multiome (a dense Multiome target
        matrix is ~10 GB at full scale); None for the test split or when not asked for.
    cell_ids : numpy.ndarray
        The cells, in row order.
    input_names : numpy.ndarray
        Input feature names, in column order.
    target_names : numpy.ndarray or None
        Target names, in column order (None for the test split).
    metadata : pandas.DataFrame
        The metadata rows of ``cell_ids``, in the same order.
    """

    task: str
    split: str
    inputs: sp.csr_matrix | None
    targets: np.ndarray | sp.csr_matrix | None
    cell_ids: np.ndarray
    input_names: np.ndarray
    target_names: np.ndarray | None
    metadata: pd.DataFrame

    @property
    def n_cells(self) -> int:
        """Number of cells in the split."""
        return len(self.cell_ids)


def cache_dir_for(data_dir: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The cache folder of ``data_dir``.

    Parameters
    ----------
    data_dir : str or pathlib.Path
        The competition folder.
    cache_dir : str or pathlib.Path, optional
        The ``--cache`` option, which wins when given.

    Returns
    -------
    pathlib.Path
        ``cache_dir``, else ``<data_dir>/.cache``.
    """
    return Path(cache_dir) if cache_dir else default_cache(Path(data_dir))


def check_cache(data_dir: str | Path, cache_dir: str | Path | None = None) -> dict:
    """The cache manifest, once the cache is known to match the files of ``data_dir``.

    Parameters
    ----------
    data_dir : str or pathlib.Path
        The competition folder whose files the cache must match.
    cache_dir : str or pathlib.Path, optional
        Where the cache is, when not in ``<data_dir>/.cache``.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    InputError
        If the cache is missing or corrupt, or was built from other data or
        another version of these files (naming the first file that differs).
    """
    data_dir, cache = Path(data_dir), cache_dir_for(data_dir, cache_dir)
    manifest_path = cache / MANIFEST
    if not manifest_path.exists():
        raise InputError(cache, f"no prepared cache here; run: mmscel prepare --data {data_dir}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError:
        raise InputError(manifest_path, "corrupt manifest; run mmscel prepare again") from None
    entries = manifest.get("entries", {})
    for stem, source in matrix_sources(data_dir).items():
        entry = entries.get(stem)
        if entry is None:
            raise InputError(cache, f"{source.name} is not in the cache; run: mmscel prepare --data {data_dir}")
        if not source_is_current(source, entry.get("source")):
            raise InputError(
                cache, f"built from other data ({source.name} differs); run: mmscel prepare --data {data_dir}"
            )
    metadata = data_dir / layout.METADATA
    if not source_is_current(metadata, entries.get("metadata", {}).get("source")):
        raise InputError(
            cache, f"built from other data ({metadata.name} differs); run: mmscel prepare --data {data_dir}"
        )
    return manifest


def dataset_tasks(data_dir: str | Path, cache_dir: str | Path | None = None) -> list[str]:
    """The tasks whose matrices the prepared cache holds (an import may hold one).

    Parameters
    ----------
    data_dir, cache_dir : str or pathlib.Path
        The competition folder and, when not ``<data_dir>/.cache``, its cache.

    Returns
    -------
    list of str
        Some of 'cite' and 'multi', in that order.

    Raises
    ------
    InputError
        As :func:`check_cache`.
    """
    entries = check_cache(data_dir, cache_dir).get("entries", {})
    return [name for name in ("cite", "multi") if all(stem in entries for stem in layout.task(name).stems())]


def load_matrix(cache: Path, stem: str) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """CSR values, row ids and column names of one cached matrix.

    Parameters
    ----------
    cache : pathlib.Path
        The cache folder.
    stem : str
        File stem of the matrix.

    Returns
    -------
    tuple of (scipy.sparse.csr_matrix, numpy.ndarray, numpy.ndarray)
        Float32 values, row ids and column names (object arrays).

    Raises
    ------
    InputError
        If the matrix is not cached or unreadable.
    """
    matrix = load_stacked(cache, [stem])
    index, columns = load_idxcol(idxcol_path(cache, stem))
    return matrix, index.astype(object), columns.astype(object)


def load_stacked(cache: Path, stems: list[str]) -> sp.csr_matrix:
    """The cached matrices ``stems`` as one CSR matrix, their rows stacked in order.

    Read straight into the stacked arrays: the peak memory is the result's size.

    Parameters
    ----------
    cache : pathlib.Path
        The cache folder.
    stems : list of str
        Matrices with the same columns.

    Returns
    -------
    scipy.sparse.csr_matrix
        Float32 values.

    Raises
    ------
    InputError
        If a matrix is not cached, or a file is unreadable or inconsistent.
    """
    for stem in stems:
        if not values_path(cache, stem).exists():
            raise InputError(values_path(cache, stem), "not in the cache; run mmscel prepare")
    try:
        return read_stacked([values_path(cache, stem) for stem in stems])
    except Exception as exc:
        raise InputError(values_path(cache, stems[0]), f"unreadable cache file: {str(exc)[:120]}") from None


def stacked_inputs(task: str, data_dir: str | Path = "data", cache_dir: str | Path | None = None) -> sp.csr_matrix:
    """The inputs of ``task``, train rows then test rows, as one CSR matrix (what the input SVD is fitted on).

    Parameters
    ----------
    task : {'cite', 'multi'}
        The task.
    data_dir : str or pathlib.Path
        The competition folder (``data`` by default).
    cache_dir : str or pathlib.Path, optional
        Its cache folder, when not ``<data_dir>/.cache``.

    Returns
    -------
    scipy.sparse.csr_matrix
        Float32, train cells then test cells.

    Raises
    ------
    ValueError
        If ``task`` is unknown.
    InputError
        If the inputs are not cached or unreadable.
    """
    spec = layout.task(task)
    return load_stacked(cache_dir_for(data_dir, cache_dir), [spec.train_inputs, spec.test_inputs])


def load(
    task: str,
    split: str,
    data_dir: str | Path = "data",
    cache_dir: str | Path | None = None,
    *,
    check: bool = True,
    inputs: bool = True,
    targets: bool = True,
) -> Split:
    """Load one split of one task from the prepared cache.

    Parameters
    ----------
    task : {'cite', 'multi'}
        The task.
    split : {'train', 'test'}
        The split.
    data_dir : str or pathlib.Path
        The competition folder prepared into the cache.
    cache_dir : str or pathlib.Path, optional
        The cache folder (default ``<data_dir>/.cache``).
    check : bool
        First check that the cache matches the files of ``data_dir``.
    inputs, targets : bool
        Load those matrices; their names are read either way (at full scale the
        Multiome ones are ~5 and ~6 GB each).

    Returns
    -------
    Split
        The cells, their matrices and metadata.

    Raises
    ------
    ValueError
        If ``task`` or ``split`` is unknown.
    InputError
        If the cache is missing, stale or unreadable, or a cell is not in the metadata.
    """
    spec = layout.task(task)
    if split not in layout.SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(layout.SPLITS)}")
    if check:
        check_cache(data_dir, cache_dir)
    cache = cache_dir_for(data_dir, cache_dir)
    input_stem = spec.train_inputs if split == "train" else spec.test_inputs
    cell_ids, input_names = (names.astype(object) for names in load_idxcol(idxcol_path(cache, input_stem)))
    input_matrix = load_stacked(cache, [input_stem]) if inputs else None
    target_matrix = target_names = None
    if split == "train":
        target_names = load_idxcol(idxcol_path(cache, spec.train_targets))[1].astype(object)
        if targets:
            target_matrix = load_stacked(cache, [spec.train_targets])
            if task == "cite":
                target_matrix = target_matrix.toarray()
    metadata = pd.read_parquet(cache / "metadata.parquet").set_index("cell_id")
    missing = ~pd.Index(cell_ids).isin(metadata.index)
    if missing.any():
        raise InputError(cache / "metadata.parquet", f"{missing.sum()} cells of {input_stem} are not in the metadata")
    return Split(
        task=task,
        split=split,
        inputs=input_matrix,
        targets=target_matrix,
        cell_ids=cell_ids,
        input_names=input_names,
        target_names=target_names,
        metadata=metadata.loc[cell_ids].reset_index(),
    )
