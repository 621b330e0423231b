"""``mmscel prepare``: the competition files as a sparse cache.

The cache uses the format the community already shares for this competition
(the "multimodal-single-cell-as-sparse-matrix" dataset): for each matrix
``<stem>_values.sparse.npz`` (scipy CSR, float32) and ``<stem>_idxcol.npz``
(arrays ``index`` and ``columns``), plus ``metadata.parquet``,
``evaluation.parquet`` and ``sample_submission.parquet``. A ``manifest.json``
records each source's size and checksum: an up-to-date entry is reused, a
stale one rebuilt, and entries are recorded as they finish, so an
interrupted ``prepare`` resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

import mmscel
from mmscel.data import layout
from mmscel.data.h5io import DEFAULT_CHUNK_BYTES, FrameReader, rows_per_chunk
from mmscel.data.sparse_npz import CsrParts, SparseNpzWriter, dense_to_csr_parts
from mmscel.errors import InputError
from mmscel.fsutil import atomic_path, file_checksum, write_json
from mmscel.progress import track

MANIFEST = "manifest.json"
CACHE_FORMAT = 2  # 2: row digests taken on the CSR form
LEAK_REPORT = "cite_test_duplicates.parquet"


def values_path(cache: Path, stem: str) -> Path:
    """Path of the CSR values of ``stem`` in the cache."""
    return Path(cache) / f"{stem}_values.sparse.npz"


def idxcol_path(cache: Path, stem: str) -> Path:
    """Path of the row and column names of ``stem`` in the cache."""
    return Path(cache) / f"{stem}_idxcol.npz"


def default_cache(data_dir: Path) -> Path:
    """The cache folder used when ``--cache`` is not given."""
    return Path(data_dir) / ".cache"


@dataclass
class PrepareReport:
    """What ``prepare`` did, for the CLI to print."""

    cache: Path
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)
    nnz: dict[str, int] = field(default_factory=dict)
    cite_duplicates: int | None = None
    seconds: float = 0.0


def _source_record(path: Path) -> dict:
    stat = path.stat()
    return {"file": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": file_checksum(path)}


def source_is_current(path: Path, record: dict | None) -> bool:
    """Whether ``path`` is the file ``record`` describes (size and mtime, else checksum)."""
    if record is None or not path.exists():
        return False
    stat = path.stat()
    if stat.st_size != record.get("size"):
        return False
    return stat.st_mtime_ns == record.get("mtime_ns") or file_checksum(path) == record.get("sha256")


def matrix_sources(data_dir: Path) -> dict[str, Path]:
    """The matrices present in ``data_dir``: stem -> source (``.h5`` or sparse ``.npz``).

    Checks that each task present is complete (all three of its files).
    """
    found: dict[str, Path] = {}
    stems = list(layout.H5_STEMS) + [layout.CITE_DAY2_EXTRA]
    stems += [s + layout.RAW_SUFFIX for s in layout.H5_STEMS]
    for stem in stems:
        h5 = layout.h5_path(data_dir, stem)
        if h5.exists():
            found[stem] = h5
        elif values_path(data_dir, stem).exists():
            found[stem] = values_path(data_dir, stem)
    for task in (layout.CITE, layout.MULTI):
        present = [s for s in task.stems() if s in found]
        if present and len(present) < 3:
            missing = next(s for s in task.stems() if s not in found)
            raise InputError(
                data_dir / f"{missing}.h5",
                f"file not found (the {task.name} task needs all of {', '.join(task.stems())})",
            )
    if not any(s in found for s in layout.H5_STEMS):
        raise InputError(
            data_dir, "no competition files found (expected train_cite_inputs.h5, train_multi_inputs.h5, ...)"
        )
    return found


def prepare(
    data_dir: str | Path, cache_dir: str | Path | None = None, *, compress: bool = False, chunk_bytes: int | None = None
) -> PrepareReport:
    """Convert the competition folder ``data_dir`` into the sparse cache.

    Streams each HDF5 matrix in row chunks, so peak memory is bounded by the
    chunk size (``chunk_bytes``) and the sparse output, never the dense matrix.
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
    manifest = _read_manifest(cache)
    manifest["format"] = CACHE_FORMAT
    manifest["mmscel_version"] = mmscel.__version__
    report = PrepareReport(cache=cache)
    metadata = _prepare_table(
        manifest, report, "metadata", metadata_source, cache / "metadata.parquet", _convert_metadata
    )
    known = _known_cells(metadata)
    for name, csv_name, out_name, convert in (
        (
            "metadata_cite_day_2_donor_27678",
            layout.CITE_DAY2_EXTRA_METADATA,
            "metadata_cite_day_2_donor_27678.parquet",
            _convert_metadata,
        ),
        ("evaluation", layout.EVALUATION_IDS, "evaluation.parquet", _convert_evaluation),
        ("sample_submission", layout.SAMPLE_SUBMISSION, "sample_submission.parquet", _convert_submission),
    ):
        if (data_dir / csv_name).exists():
            _prepare_table(manifest, report, name, data_dir / csv_name, cache / out_name, convert)
            if name.startswith("metadata_"):
                known |= _known_cells(pd.read_parquet(cache / out_name))
    train_columns: dict[str, np.ndarray] = {}
    for stem, source in sources.items():
        reference = train_columns.get(_column_reference(stem))
        _prepare_matrix(manifest, report, stem, source, cache, known, reference, compress, chunk_bytes)
        if stem in (
            layout.CITE.train_inputs,
            layout.MULTI.train_inputs,
            layout.CITE.train_targets,
            layout.MULTI.train_targets,
        ):
            train_columns[stem] = _read_idxcol(cache, stem)[1]
        _check_rows_match(cache, stem, sources)
    if layout.CITE.test_inputs in sources:
        report.cite_duplicates = _report_duplicates(cache, manifest)
    write_json(cache / MANIFEST, manifest)
    report.seconds = time.perf_counter() - started
    return report


def _read_manifest(cache: Path) -> dict:
    path = cache / MANIFEST
    if not path.exists():
        return {"entries": {}}
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {"entries": {}}  # an unreadable manifest only means everything is rebuilt
    if manifest.get("format") != CACHE_FORMAT:
        return {"entries": {}}
    manifest.setdefault("entries", {})
    return manifest


def _column_reference(stem: str) -> str | None:
    """Which training matrix fixes the column order of ``stem`` (test and extra inputs)."""
    if stem in (layout.CITE.test_inputs, layout.CITE_DAY2_EXTRA):
        return layout.CITE.train_inputs
    if stem == layout.MULTI.test_inputs:
        return layout.MULTI.train_inputs
    if stem.endswith(layout.RAW_SUFFIX):
        return stem[: -len(layout.RAW_SUFFIX)]
    return None


def _prepare_table(manifest, report, name, source: Path, out: Path, convert) -> pd.DataFrame | None:
    entry = manifest["entries"].get(name)
    if entry and out.exists() and source_is_current(source, entry.get("source")):
        report.reused.append(name)
    else:
        convert(source, out)
        manifest["entries"][name] = {"source": _source_record(source), "output": out.name}
        write_json(Path(out).parent / MANIFEST, manifest)
        report.built.append(name)
    return pd.read_parquet(out) if name == "metadata" else None


def _convert_metadata(source: Path, out: Path) -> None:
    try:
        frame = pd.read_csv(source, dtype={"cell_id": str, "cell_type": str, "technology": str})
    except Exception as exc:
        raise InputError(source, f"unreadable CSV: {exc}") from None
    missing = [c for c in layout.METADATA_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(source, f"missing columns {missing} (expected {', '.join(layout.METADATA_COLUMNS)})")
    duplicated = frame["cell_id"].duplicated()
    if duplicated.any():
        raise InputError(source, f"cell_id {frame.loc[duplicated, 'cell_id'].iloc[0]!r} appears more than once")
    with atomic_path(out) as tmp:
        frame.loc[:, list(layout.METADATA_COLUMNS)].to_parquet(tmp, index=False)


def _stream_csv(source: Path, out: Path, columns: tuple[str, ...], types: dict) -> None:
    """Copy a (possibly 65-million-row) CSV to parquet in record batches."""
    try:
        reader = pacsv.open_csv(
            source, convert_options=pacsv.ConvertOptions(column_types=types, include_columns=list(columns))
        )
    except Exception as exc:
        raise InputError(source, f"unreadable CSV or missing columns {list(columns)}: {_first_line(exc)}") from None
    expected_row = 0
    with atomic_path(out) as tmp:
        writer = None
        try:
            for batch in reader:
                row_ids = batch.column(0).to_numpy()
                if len(row_ids) and not np.array_equal(row_ids, np.arange(expected_row, expected_row + len(row_ids))):
                    raise InputError(source, f"row_id is not 0, 1, 2, ... from row {expected_row}")
                expected_row += len(row_ids)
                table = pa.Table.from_batches([batch])
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
            if writer is None:
                pq.write_table(pa.table({c: pa.array([], type=types[c]) for c in columns}), tmp)
        except pa.ArrowInvalid as exc:
            raise InputError(source, f"malformed CSV: {_first_line(exc)}") from None
        finally:
            if writer is not None:
                writer.close()


def _convert_evaluation(source: Path, out: Path) -> None:
    _stream_csv(
        source, out, layout.EVALUATION_COLUMNS, {"row_id": pa.int64(), "cell_id": pa.string(), "gene_id": pa.string()}
    )


def _convert_submission(source: Path, out: Path) -> None:
    _stream_csv(source, out, layout.SUBMISSION_COLUMNS, {"row_id": pa.int64(), "target": pa.float32()})


def _known_cells(metadata: pd.DataFrame | None) -> set[str]:
    return set() if metadata is None else set(metadata["cell_id"].astype(str))


def _prepare_matrix(manifest, report, stem, source: Path, cache: Path, known, reference, compress, chunk_bytes) -> None:
    entry = manifest["entries"].get(stem)
    outputs_exist = values_path(cache, stem).exists() and idxcol_path(cache, stem).exists()
    if stem in HASHED_STEMS:
        outputs_exist = outputs_exist and digests_path(cache, stem).exists()
    if entry and outputs_exist and source_is_current(source, entry.get("source")):
        report.reused.append(stem)
        report.shapes[stem], report.nnz[stem] = tuple(entry["shape"]), entry["nnz"]
        return
    # The source's checksum is hashed in a thread while the matrix converts (hashlib releases the GIL).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmscel-sha256") as hasher:
        record = hasher.submit(_source_record, source)
        if source.suffix == ".npz":
            shape, nnz = _adopt_sparse(source, stem, cache, known, reference)
        else:
            shape, nnz = _convert_h5(source, stem, cache, known, reference, compress, chunk_bytes)
        manifest["entries"][stem] = {"source": record.result(), "shape": list(shape), "nnz": nnz}
    write_json(cache / MANIFEST, manifest)
    report.built.append(stem)
    report.shapes[stem], report.nnz[stem] = shape, nnz


def _convert_h5(source, stem, cache, known, reference, compress, chunk_bytes) -> tuple[tuple[int, int], int]:
    with FrameReader(source) as reader:
        _check_ids(source, reader.index, known)
        columns, take = _align_columns(source, reader.columns, reference)
        writer = SparseNpzWriter(values_path(cache, stem), len(columns), compress=compress)
        hashed = stem in HASHED_STEMS
        digests = []
        try:
            step = rows_per_chunk(reader.shape[1], chunk_bytes or DEFAULT_CHUNK_BYTES)
            n_chunks = -(-reader.shape[0] // step)
            convert = partial(_chunk_to_csr, take=take, hashed=hashed)
            for _, (parts, chunk_digests) in track(reader.map_chunks(convert, step), f"prepare {stem}", total=n_chunks):
                writer.write_parts(parts)
                digests.append(chunk_digests)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        _write_idxcol(cache, stem, reader.index, columns)
        if hashed:
            save_digests(cache, stem, np.concatenate(digests) if digests else np.zeros((0, 16), np.uint8))
        return (reader.shape[0], len(columns)), writer.nnz


def _adopt_sparse(source: Path, stem: str, cache: Path, known, reference) -> tuple[tuple[int, int], int]:
    """Take a matrix that is already in the community's sparse format."""
    import scipy.sparse as sp

    idxcol = idxcol_path(source.parent, stem)
    if not idxcol.exists():
        raise InputError(idxcol, "file not found (needed beside " + source.name + ")")
    index, columns = load_idxcol(idxcol)
    try:
        matrix = sp.load_npz(source).tocsr().astype(np.float32)
    except Exception as exc:
        raise InputError(source, f"not a scipy sparse .npz: {_first_line(exc)}") from None
    if matrix.shape != (len(index), len(columns)):
        raise InputError(source, f"shape {matrix.shape} does not match {idxcol.name} ({len(index)} x {len(columns)})")
    _check_ids(source, index, known)
    aligned, take = _align_columns(source, columns, reference)
    if take is not None:
        matrix = matrix[:, take]
    writer = SparseNpzWriter(values_path(cache, stem), len(aligned))
    writer.write_csr(matrix)
    writer.close()
    _write_idxcol(cache, stem, index, aligned)
    if stem in HASHED_STEMS:
        canonical = matrix.copy()
        canonical.eliminate_zeros()
        canonical.sort_indices()
        save_digests(
            cache,
            stem,
            row_digests(CsrParts(canonical.data, canonical.indices.astype(np.int32), np.diff(canonical.indptr))),
        )
    return matrix.shape, int(matrix.nnz)


def _check_ids(source: Path, index: np.ndarray, known: set[str]) -> None:
    if len(set(index)) != len(index):
        raise InputError(source, "duplicate cell ids in the row index")
    unknown = [cell for cell in index[:100_000] if cell not in known] or [c for c in index if c not in known]
    if unknown:
        raise InputError(source, f"{len(unknown)}+ cell ids are not in metadata.csv (first: {unknown[0]!r})")


def _align_columns(source: Path, columns: np.ndarray, reference: np.ndarray | None):
    """Column names and, when they differ from the training file's, the positions to take."""
    if reference is None or np.array_equal(columns, reference):
        return columns, None
    position = {name: i for i, name in enumerate(columns)}
    missing = [name for name in reference if name not in position]
    if missing:
        raise InputError(source, f"{len(missing)} training columns are missing (first: {missing[0]!r})")
    return reference, np.fromiter((position[n] for n in reference), dtype=np.int64, count=len(reference))


def _write_idxcol(cache: Path, stem: str, index: np.ndarray, columns: np.ndarray) -> None:
    with atomic_path(idxcol_path(cache, stem)) as tmp:
        with tmp.open("wb") as handle:
            np.savez(handle, index=np.asarray(index, dtype=str), columns=np.asarray(columns, dtype=str))


def load_idxcol(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Row and column names of a cached matrix."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive["index"], archive["columns"]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise InputError(
                path,
                "stores Python objects (pickle), which mmscel never loads; save index and columns as string arrays",
            ) from None
        raise InputError(path, f"unreadable: {_first_line(exc)}") from None
    except Exception as exc:
        raise InputError(path, f"unreadable or missing 'index'/'columns': {_first_line(exc)}") from None


def _read_idxcol(cache: Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    return load_idxcol(idxcol_path(cache, stem))


def _check_rows_match(cache: Path, stem: str, sources: dict) -> None:
    """Train inputs and targets must list the same cells in the same order."""
    for task in (layout.CITE, layout.MULTI):
        if stem == task.train_targets and task.train_inputs in sources:
            inputs, targets = _read_idxcol(cache, task.train_inputs)[0], _read_idxcol(cache, stem)[0]
            if not np.array_equal(inputs, targets):
                raise InputError(
                    sources[stem], f"cell ids differ from {task.train_inputs}.h5 (rows must match one to one)"
                )


HASHED_STEMS = (layout.CITE.train_inputs, layout.CITE.test_inputs)


def _chunk_to_csr(block: np.ndarray, take: np.ndarray | None, hashed: bool) -> tuple[CsrParts, np.ndarray]:
    """One chunk of a dense matrix as CSR parts (+ row digests); runs in a reader thread."""
    parts = dense_to_csr_parts(block if take is None else block[:, take])
    return parts, row_digests(parts) if hashed else np.zeros((0, 16), np.uint8)


def row_digests(parts: CsrParts) -> np.ndarray:
    """A 16-byte digest of each row from its canonical CSR form (sorted columns, no stored zeros).

    Equal dense rows have equal digests (0.0 and -0.0 alike, as neither is
    stored); hashing the non-zeros only reads a fraction of the dense bytes.
    """
    ends = np.cumsum(parts.counts)
    data = np.ascontiguousarray(parts.data, dtype="<f4")
    indices = np.ascontiguousarray(parts.indices, dtype="<i4")
    out = bytearray()
    for start, stop in zip((ends - parts.counts).tolist(), ends.tolist()):
        digest = hashlib.blake2b(data[start:stop].tobytes(), digest_size=16)
        digest.update(indices[start:stop].tobytes())
        out += digest.digest()
    return np.frombuffer(bytes(out), dtype=np.uint8).reshape(-1, 16)


def digests_path(cache: Path, stem: str) -> Path:
    """Where the row digests of ``stem`` are kept (for the duplicate report)."""
    return Path(cache) / f"{stem}_rowdigest.npy"


def save_digests(cache: Path, stem: str, digests: np.ndarray) -> None:
    """Store row digests atomically (``.npy``, no pickle)."""
    with atomic_path(digests_path(cache, stem)) as tmp:
        with tmp.open("wb") as handle:
            np.save(handle, digests, allow_pickle=False)


def _report_duplicates(cache: Path, manifest: dict) -> int:
    """Find CITEseq test rows identical to a train row (the competition's known leak).

    Uses the row digests written during conversion, so memory is ~16 bytes a
    row, not the matrices.
    """
    key = "cite_test_duplicates"
    fingerprint = [
        manifest["entries"][s]["source"]["sha256"] for s in (layout.CITE.train_inputs, layout.CITE.test_inputs)
    ]
    if manifest.get(key, {}).get("sources") == fingerprint and (cache / LEAK_REPORT).exists():
        return manifest[key]["count"]
    train = np.load(digests_path(cache, layout.CITE.train_inputs), allow_pickle=False).view("V16").ravel()
    test = np.load(digests_path(cache, layout.CITE.test_inputs), allow_pickle=False).view("V16").ravel()
    first_train = {digest.tobytes(): i for i, digest in reversed(list(enumerate(train)))}
    train_ids = _read_idxcol(cache, layout.CITE.train_inputs)[0]
    test_ids = _read_idxcol(cache, layout.CITE.test_inputs)[0]
    pairs = [
        (test_ids[i], train_ids[first_train[d.tobytes()]]) for i, d in enumerate(test) if d.tobytes() in first_train
    ]
    with atomic_path(cache / LEAK_REPORT) as tmp:
        pd.DataFrame(pairs, columns=["test_cell_id", "train_cell_id"]).to_parquet(tmp, index=False)
    manifest[key] = {"sources": fingerprint, "count": len(pairs), "file": LEAK_REPORT}
    return len(pairs)


def _first_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:160]
