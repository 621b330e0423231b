"""One competition matrix into the cache: HDF5 streamed in row chunks, or a sparse ``.npz`` adopted.

Rows are checked against the metadata, columns aligned to the training
matrix's order, values checked (:mod:`mmscel.data.value_checks`) chunk by chunk
in the reader's threads, and the CITEseq inputs digested row by row for the
duplicate report.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mmscel.data import layout
from mmscel.data.cache_duplicates import (
    HASHED_STEMS,
    csr_row_digests,
    digests_path,
    no_digests,
    row_digests,
    save_digests,
)
from mmscel.data.cache_files import (
    MANIFEST,
    PrepareReport,
    idxcol_path,
    load_idxcol,
    read_idxcol,
    values_path,
    write_idxcol,
)
from mmscel.data.cache_integrity import entry_problem, outputs_record, source_record
from mmscel.data.error_text import one_line, shown
from mmscel.data.h5_format import DEFAULT_CHUNK_BYTES, rows_per_chunk
from mmscel.data.h5_reader import FrameReader
from mmscel.data.sparse_npz import CsrParts, SparseNpzWriter, dense_to_csr_parts
from mmscel.data.value_checks import BadValue, counts_expected, describe, first_bad_value
from mmscel.errors import InputError
from mmscel.fsutil import write_json
from mmscel.progress import track

Shape = tuple[int, int]


def prepare_matrix(
    manifest: dict,
    report: PrepareReport,
    stem: str,
    source: Path,
    cache: Path,
    known: set[str],
    reference: np.ndarray | None,
    compress: bool,
    chunk_bytes: int | None,
) -> None:
    """Convert one matrix unless the manifest shows its cache files were built from this very ``source``.

    The entry is reused when its source and every one of its files verify
    (:func:`~mmscel.data.cache_integrity.entry_problem`); a missing or damaged
    file is rebuilt and said so. The source's checksum is computed in a thread
    while the matrix converts (hashlib releases the GIL); the files' checksums
    once they are written.

    Parameters
    ----------
    manifest : dict
        The cache manifest; the entry ``stem`` is updated and the manifest saved.
    report : PrepareReport
        Receives ``stem`` as built or reused, with its shape and non-zero count.
    stem : str
        The matrix's file stem.
    source : pathlib.Path
        The ``.h5`` file, or a ``_values.sparse.npz`` with its ``_idxcol.npz`` beside it.
    cache : pathlib.Path
        The cache folder.
    known : set of str
        Cell ids of the metadata; every row must be one of them.
    reference : numpy.ndarray or None
        Column names of the training matrix whose order this matrix takes.
    compress : bool
        Deflate the ``.npz`` values.
    chunk_bytes : int or None
        Memory budget of one dense row chunk (default ``DEFAULT_CHUNK_BYTES``).

    Raises
    ------
    InputError
        If the source is unreadable, repeats or adds cell ids, lacks training
        columns, or holds a non-finite value (or a negative one where counts
        are expected); the cache's files of ``stem`` are then left as they were.
    """
    entry, outputs = manifest["entries"].get(stem), matrix_outputs(cache, stem)
    problem = entry_problem(entry, source, cache, outputs)
    if problem is None and not _shape_recorded(entry):
        problem = ("damaged", f"{cache / MANIFEST} lacks the shape of {stem}")
    if problem is None:
        report.reused.append(stem)
        report.shapes[stem], report.nnz[stem] = tuple(entry["shape"]), entry["nnz"]
        return
    report.note_rebuild(stem, problem)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmscel-sha256") as hasher:
        record = hasher.submit(source_record, source)
        if source.suffix == ".npz":
            shape, nnz = _adopt_sparse(source, stem, cache, known, reference)
        else:
            shape, nnz = _convert_h5(source, stem, cache, known, reference, compress, chunk_bytes)
        manifest["entries"][stem] = {
            "source": record.result(),
            "shape": list(shape),
            "nnz": nnz,
            "outputs": outputs_record(outputs),
        }
    write_json(cache / MANIFEST, manifest)
    report.built.append(stem)
    report.shapes[stem], report.nnz[stem] = shape, nnz


def check_rows_match(cache: Path, stem: str, sources: dict[str, Path]) -> None:
    """Check that train targets list the same cells in the same order as the train inputs.

    Parameters
    ----------
    cache : pathlib.Path
        The cache folder.
    stem : str
        The matrix just prepared; only train targets are checked.
    sources : dict of str to pathlib.Path
        All matrices being prepared, by stem.

    Raises
    ------
    InputError
        If the cell ids differ.
    """
    for task in (layout.CITE, layout.MULTI):
        if stem == task.train_targets and task.train_inputs in sources:
            inputs, targets = read_idxcol(cache, task.train_inputs)[0], read_idxcol(cache, stem)[0]
            if not np.array_equal(inputs, targets):
                raise InputError(
                    sources[stem], f"cell ids differ from {task.train_inputs}.h5 (rows must match one to one)"
                )


def chunk_to_csr(block: np.ndarray, take: np.ndarray | None, hashed: bool) -> tuple[CsrParts, np.ndarray]:
    """One chunk of a dense matrix as CSR parts and row digests; runs in a reader thread.

    Parameters
    ----------
    block : numpy.ndarray
        Dense rows; the reader reuses its buffer afterwards.
    take : numpy.ndarray or None
        Columns to keep, in output order.
    hashed : bool
        Digest the rows (else no digests are returned).

    Returns
    -------
    tuple of (CsrParts, numpy.ndarray)
        The rows and their ``rows x 16`` digests.
    """
    parts = dense_to_csr_parts(block if take is None else block[:, take])
    return parts, row_digests(parts) if hashed else no_digests()


def matrix_outputs(cache: Path, stem: str) -> list[Path]:
    """The cache files of one matrix.

    Parameters
    ----------
    cache : pathlib.Path
        The cache folder.
    stem : str
        The matrix's file stem.

    Returns
    -------
    list of pathlib.Path
        Its values and names, and its row digests when it is one of ``HASHED_STEMS``.
    """
    outputs = [values_path(cache, stem), idxcol_path(cache, stem)]
    if stem in HASHED_STEMS:
        outputs.append(digests_path(cache, stem))
    return outputs


def _shape_recorded(entry: dict) -> bool:
    shape, nnz = entry.get("shape"), entry.get("nnz")
    return isinstance(shape, list) and len(shape) == 2 and all(isinstance(n, int) for n in (*shape, nnz))


def _convert_h5(source, stem, cache, known, reference, compress, chunk_bytes) -> tuple[Shape, int]:
    with FrameReader(source) as reader:
        _check_ids(source, reader.index, known)
        columns, take = _align_columns(source, reader.columns, reference)
        writer = SparseNpzWriter(values_path(cache, stem), len(columns), compress=compress)
        try:
            digests = _stream_to_npz(reader, writer, stem, take, columns, chunk_bytes)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        write_idxcol(cache, stem, reader.index, columns)
        if stem in HASHED_STEMS:
            save_digests(cache, stem, np.concatenate(digests) if digests else no_digests())
        return (reader.shape[0], len(columns)), writer.nnz


def _stream_to_npz(reader: FrameReader, writer: SparseNpzWriter, stem: str, take, columns, chunk_bytes) -> list:
    """Convert and check the reader's row chunks in its threads, append them to ``writer``; return the digests."""
    step = rows_per_chunk(reader.shape[1], chunk_bytes or DEFAULT_CHUNK_BYTES)
    n_chunks = -(-reader.shape[0] // step)
    convert = partial(_checked_chunk, take=take, hashed=stem in HASHED_STEMS, counts=counts_expected(stem))
    digests = []
    chunks = reader.map_chunks(convert, step)
    try:
        for start, (parts, chunk_digests, bad) in track(chunks, f"prepare {stem}", total=n_chunks):
            if bad is not None:
                raise InputError(reader.path, describe(bad, reader.index[start + bad.row], columns[bad.column], start))
            writer.write_parts(parts)
            digests.append(chunk_digests)
    finally:
        chunks.close()  # waits for the reading threads before the caller closes the file
    return digests


def _checked_chunk(block: np.ndarray, take, hashed: bool, counts: bool) -> tuple[CsrParts, np.ndarray, BadValue | None]:
    """:func:`chunk_to_csr` and the chunk's first bad value, in a reader thread."""
    parts, digests = chunk_to_csr(block, take, hashed)
    return parts, digests, first_bad_value(parts, counts)


def _adopt_sparse(source: Path, stem: str, cache: Path, known, reference) -> tuple[Shape, int]:
    """Take a matrix that is already in the cache's sparse format."""
    index, columns, matrix = _read_sparse_source(source, stem)
    _check_ids(source, index, known)
    aligned, take = _align_columns(source, columns, reference)
    if take is not None:
        matrix = matrix[:, take]
    bad = first_bad_value(CsrParts(matrix.data, matrix.indices, np.diff(matrix.indptr)), counts_expected(stem))
    if bad is not None:
        raise InputError(source, describe(bad, index[bad.row], aligned[bad.column]))
    writer = SparseNpzWriter(values_path(cache, stem), len(aligned))
    writer.write_csr(matrix)
    writer.close()
    write_idxcol(cache, stem, index, aligned)
    if stem in HASHED_STEMS:
        save_digests(cache, stem, csr_row_digests(matrix))
    return matrix.shape, int(matrix.nnz)


def _read_sparse_source(source: Path, stem: str) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """Row names, column names and float32 CSR values of a sparse source, checked to agree."""
    idxcol = idxcol_path(source.parent, stem)
    if not idxcol.exists():
        raise InputError(idxcol, "file not found (needed beside " + source.name + ")")
    index, columns = load_idxcol(idxcol)
    try:
        matrix = sp.load_npz(source).tocsr().astype(np.float32)
    except Exception as exc:
        raise InputError(source, f"not a scipy sparse .npz: {one_line(exc, mark_cut=False)}") from None
    if matrix.shape != (len(index), len(columns)):
        raise InputError(source, f"shape {matrix.shape} does not match {idxcol.name} ({len(index)} x {len(columns)})")
    return index, columns, matrix


def _check_ids(source: Path, index: np.ndarray, known: set[str]) -> None:
    if len(set(index)) != len(index):
        raise InputError(source, "duplicate cell ids in the row index")
    unknown = [cell for cell in index[:100_000] if cell not in known] or [c for c in index if c not in known]
    if unknown:
        raise InputError(source, f"{len(unknown)}+ cell ids are not in metadata.csv (first: {shown(unknown[0])})")


def _align_columns(source: Path, columns: np.ndarray, reference: np.ndarray | None):
    """Column names and, when they differ from the training file's, the positions to take."""
    if reference is None or np.array_equal(columns, reference):
        return columns, None
    position = {name: i for i, name in enumerate(columns)}
    missing = [name for name in reference if name not in position]
    if missing:
        raise InputError(source, f"{len(missing)} training columns are missing (first: {shown(missing[0])})")
    return reference, np.fromiter((position[n] for n in reference), dtype=np.int64, count=len(reference))
