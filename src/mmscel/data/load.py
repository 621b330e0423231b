"""Loading API for later stages: one task's split from the prepared cache."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmscel.data import layout
from mmscel.data.cache_check import cache_dir_for, check_cache
from mmscel.data.cache_files import (
    idxcol_path,
    load_idxcol,
    values_path,
)
from mmscel.data.error_text import one_line, shown
from mmscel.data.sparse_npz import StackedReadError, read_stacked
from mmscel.errors import InputError
from mmscel.fsutil import read_parquet_frame

T = TypeVar("T")


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
    index, columns = cached_idxcol(cache, stem)
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
    except StackedReadError as exc:
        raise InputError(exc.path, damaged_cache_file(exc)) from None
    except Exception as exc:
        raise InputError(values_path(cache, stems[0]), damaged_cache_file(exc)) from None


def cached_idxcol(cache: Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """Row and column names of a cached matrix, a damaged file refused with how to rebuild it.

    Parameters
    ----------
    cache : pathlib.Path
        The cache folder.
    stem : str
        The matrix.

    Returns
    -------
    tuple of numpy.ndarray
        Row names (cell ids) and column names.

    Raises
    ------
    InputError
        If ``<stem>_idxcol.npz`` is missing or unreadable (a zip member failing its CRC-32, say).
    """
    path = idxcol_path(cache, stem)
    try:
        return load_idxcol(path)
    except InputError as exc:
        raise InputError(path, f"{exc.problem}; delete it and run mmscel prepare to rebuild it") from None


def damaged_cache_file(exc: BaseException) -> str:
    """The message for a cache file that fails to read: what failed, and how to rebuild it.

    Parameters
    ----------
    exc : BaseException
        The reader's error (a failed CRC-32, a cut archive, a bad parquet page).

    Returns
    -------
    str
        One line for an :class:`~mmscel.errors.InputError` naming the file.
    """
    return f"damaged or unreadable cache file ({one_line(exc)}); delete it and run mmscel prepare to rebuild it"


def read_cached_table(path: Path, read: Callable[[Path], T]) -> T:
    """``read(path)`` for a table of the cache, a failed read reported as one line naming the file.

    Parameters
    ----------
    path : pathlib.Path
        The parquet file.
    read : callable
        Reads it (:func:`mmscel.fsutil.read_parquet_frame`, ``pyarrow.parquet.read_table``, ...).

    Returns
    -------
    object
        What ``read`` returned.

    Raises
    ------
    InputError
        If the file is missing or cannot be read.
    """
    if not path.is_file():
        raise InputError(path, "not in the cache; run mmscel prepare")
    try:
        return read(path)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, damaged_cache_file(exc)) from None


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
        raise ValueError(f"unknown split {shown(split)}; expected one of {', '.join(layout.SPLITS)}")
    if check:
        check_cache(data_dir, cache_dir)
    cache = cache_dir_for(data_dir, cache_dir)
    input_stem = spec.train_inputs if split == "train" else spec.test_inputs
    cell_ids, input_names = (names.astype(object) for names in cached_idxcol(cache, input_stem))
    input_matrix = load_stacked(cache, [input_stem]) if inputs else None
    target_matrix = target_names = None
    if split == "train":
        target_names = cached_idxcol(cache, spec.train_targets)[1].astype(object)
        if targets:
            target_matrix = load_stacked(cache, [spec.train_targets])
            if task == "cite":
                target_matrix = target_matrix.toarray()
    metadata = read_cached_table(cache / "metadata.parquet", read_parquet_frame).set_index("cell_id")
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
