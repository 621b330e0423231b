"""``mmscel prepare``: the competition files as a sparse cache.

The cache uses the format the community already shares for this competition
(the "multimodal-single-cell-as-sparse-matrix" dataset): for each matrix
``<stem>_values.sparse.npz`` (scipy CSR, float32) and ``<stem>_idxcol.npz``
(arrays ``index`` and ``columns``), plus ``metadata.parquet``,
``evaluation.parquet`` and ``sample_submission.parquet``. A ``manifest.json``
records each source's size, time and checksums and each output's size and
checksum: an entry whose source and outputs verify is reused, a stale one
rebuilt, a missing or damaged one rebuilt and said so on stderr (what is
checked, and what a check of a few MiB cannot see, is in
:mod:`mmscel.data.cache_integrity`); entries are recorded as they finish, so
an interrupted ``prepare`` resumes where it stopped.

Bad data never enters the cache: the tables are converted into temporary
files and checked, alone and against each other and the test inputs
(:mod:`mmscel.data.table_checks`), before any replaces its cached copy, and
each matrix's values are checked chunk by chunk as it streams
(:mod:`mmscel.data.value_checks`), its output dropped on the first bad one.

The cache's files are named in :mod:`mmscel.data.cache_files`, tables are
converted by :mod:`mmscel.data.cache_tables`, matrices by
:mod:`mmscel.data.cache_matrices`, and the CITEseq duplicate report comes from
:mod:`mmscel.data.cache_duplicates`; their public names are importable from here too.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import mmscel
from mmscel.data import layout
from mmscel.data.cache_duplicates import (
    HASHED_STEMS,
    LEAK_REPORT,
    digests_path,
    report_duplicates,
    row_digests,
    save_digests,
)
from mmscel.data.cache_files import (
    CACHE_FORMAT,
    MANIFEST,
    PrepareReport,
    default_cache,
    idxcol_path,
    load_idxcol,
    matrix_sources,
    read_idxcol,
    read_manifest,
    source_is_current,
    values_path,
)
from mmscel.data.cache_matrices import check_rows_match, chunk_to_csr, prepare_matrix
from mmscel.data.cache_tables import prepare_table, record_tables, staged_tables
from mmscel.data.h5_reader import FrameReader
from mmscel.data.table_checks import check_scoring_tables, is_full_competition
from mmscel.errors import InputError
from mmscel.fsutil import file_checksum as file_checksum
from mmscel.fsutil import read_parquet_frame, write_json

__all__ = [
    "CACHE_FORMAT",
    "HASHED_STEMS",
    "LEAK_REPORT",
    "MANIFEST",
    "PrepareReport",
    "default_cache",
    "digests_path",
    "idxcol_path",
    "load_idxcol",
    "matrix_sources",
    "prepare",
    "row_digests",
    "save_digests",
    "source_is_current",
    "values_path",
]

_TRAIN_STEMS = (
    layout.CITE.train_inputs,
    layout.MULTI.train_inputs,
    layout.CITE.train_targets,
    layout.MULTI.train_targets,
)

# bench/prepare_one.py and bench/prepare_stages.py reach the stages (and file_checksum) by these names.
_prepare_table = prepare_table
_prepare_matrix = prepare_matrix
_report_duplicates = report_duplicates
_chunk_to_csr = chunk_to_csr


def prepare(
    data_dir: str | Path, cache_dir: str | Path | None = None, *, compress: bool = False, chunk_bytes: int | None = None
) -> PrepareReport:
    """Convert the competition folder ``data_dir`` into the sparse cache.

    Streams each HDF5 matrix in row chunks, so peak memory is bounded by the
    chunk size and the sparse output, never the dense matrix.

    Parameters
    ----------
    data_dir : str or pathlib.Path
        The competition folder to convert.
    cache_dir : str or pathlib.Path, optional
        Where to write the cache (default ``<data_dir>/.cache``).
    compress : bool
        Deflate the ``.npz`` values (smaller, slower).
    chunk_bytes : int, optional
        Memory budget of one dense row chunk.

    Returns
    -------
    PrepareReport
        What was built and what reused, with the matrices' shapes.

    Raises
    ------
    InputError
        If the folder, ``metadata.csv`` or a task's matrix is missing, or a file is unreadable, inconsistent
        with another or holds a bad value; what the cache held stays as it was.
    """
    started = time.perf_counter()
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(data_dir, "data folder not found")
    cache = Path(cache_dir) if cache_dir else default_cache(data_dir)
    cache.mkdir(parents=True, exist_ok=True)
    metadata_source = data_dir / layout.METADATA
    if not metadata_source.exists():
        raise InputError(metadata_source, "file not found")
    sources = matrix_sources(data_dir)
    manifest = read_manifest(cache)
    manifest["format"] = CACHE_FORMAT
    manifest["mmscel_version"] = mmscel.__version__
    report = PrepareReport(cache=cache)
    known = _prepare_tables(manifest, report, data_dir, cache, sources)
    _prepare_matrices(manifest, report, sources, cache, known, compress, chunk_bytes)
    if layout.CITE.test_inputs in sources:
        report.cite_duplicates = report_duplicates(cache, manifest, report)
    write_json(cache / MANIFEST, manifest)
    report.seconds = time.perf_counter() - started
    return report


def _prepare_tables(
    manifest: dict, report: PrepareReport, data_dir: Path, cache: Path, sources: dict[str, Path]
) -> set[str]:
    """Convert the tables present, checked against each other first; return the cell ids their metadata lists."""
    with staged_tables(manifest, data_dir, cache) as staged:
        if "evaluation" in staged.paths:
            _check_scoring(staged.paths, staged.sources, sources)
        known: set[str] = set()
        for name, path in staged.paths.items():
            if name.startswith("metadata"):
                known |= set(read_parquet_frame(path, columns=["cell_id"])["cell_id"].astype(str))
    record_tables(manifest, report, staged, cache)
    return known


def _check_scoring(tables: dict[str, Path], csv_files: dict[str, Path], sources: dict[str, Path]) -> None:
    """The evaluation rows against the sample submission and the test inputs' cells, read from their sources."""
    test_cells, test_shapes = {}, {}
    for task in (layout.CITE, layout.MULTI):
        source = sources.get(task.test_inputs)
        if source is None:
            continue
        if source.suffix == ".npz":
            index, columns = load_idxcol(idxcol_path(source.parent, task.test_inputs))
            test_cells[task.test_inputs], test_shapes[task.test_inputs] = index, (len(index), len(columns))
        else:
            with FrameReader(source) as reader:
                test_cells[task.test_inputs], test_shapes[task.test_inputs] = reader.index, reader.shape
    check_scoring_tables(
        tables["evaluation"], tables.get("sample_submission"), csv_files, test_cells, is_full_competition(test_shapes)
    )


def _prepare_matrices(manifest, report, sources: dict[str, Path], cache: Path, known, compress, chunk_bytes) -> None:
    """Convert every matrix, test and extra inputs in the column order of their training matrix."""
    train_columns: dict[str, np.ndarray] = {}
    for stem, source in sources.items():
        reference = train_columns.get(_column_reference(stem))
        prepare_matrix(manifest, report, stem, source, cache, known, reference, compress, chunk_bytes)
        if stem in _TRAIN_STEMS:
            train_columns[stem] = read_idxcol(cache, stem)[1]
        check_rows_match(cache, stem, sources)


def _column_reference(stem: str) -> str | None:
    """Which training matrix fixes the column order of ``stem`` (test and extra inputs)."""
    if stem in (layout.CITE.test_inputs, layout.CITE_DAY2_EXTRA):
        return layout.CITE.train_inputs
    if stem == layout.MULTI.test_inputs:
        return layout.MULTI.train_inputs
    if stem.endswith(layout.RAW_SUFFIX):
        return stem[: -len(layout.RAW_SUFFIX)]
    return None
