"""The competition's CSV tables as parquet files in the cache, checked on the way.

A converter writes the file it is given; :func:`staged_tables` gives it a
temporary file and moves every table into the cache only once all of them, and
the checks across them, have passed, so a bad table leaves the cache as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mmscel.data import layout
from mmscel.data.cache_files import MANIFEST, PrepareReport
from mmscel.data.cache_integrity import FULL_TABLE_BYTES, entry_problem, outputs_record, source_record
from mmscel.data.error_text import one_line, shown
from mmscel.data.table_checks import check_metadata
from mmscel.errors import InputError
from mmscel.fsutil import atomic_path, write_json

Convert = Callable[[Path, Path], None]


@dataclass
class StagedTables:
    """The tables of one ``prepare``, each to be read from ``paths`` until the staging ends.

    Attributes
    ----------
    paths : dict of str to pathlib.Path
        Table name -> the parquet file holding it now: the cache's own when
        up to date, else a temporary file that becomes the cache's on success.
    sources : dict of str to pathlib.Path
        Table name -> its CSV file.
    built : list of str
        The tables converted, in the order of ``TABLES``.
    problems : dict of str to tuple of (str, str)
        Why each built table was built (see :func:`~mmscel.data.cache_integrity.entry_problem`).
    """

    paths: dict[str, Path] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)
    built: list[str] = field(default_factory=list)
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)


@contextlib.contextmanager
def staged_tables(manifest: dict, data_dir: Path, cache: Path) -> Iterator[StagedTables]:
    """Convert the tables whose cache entry is stale, missing or damaged into temporary files.

    When the ``with`` block ends without an error, every temporary file is
    renamed onto its table in the cache; on an error all are removed and the
    cache is left as it was. The manifest is not touched: see :func:`record_tables`.

    Parameters
    ----------
    manifest : dict
        The cache manifest, which says which tables are up to date.
    data_dir : pathlib.Path
        The competition folder holding the CSV files.
    cache : pathlib.Path
        The cache folder.

    Yields
    ------
    StagedTables
        Where each present table can be read while the block runs.

    Raises
    ------
    InputError
        If a CSV is unreadable or malformed.
    """
    with contextlib.ExitStack() as stack:
        staged = StagedTables()
        for name, csv_name, convert in TABLES:
            source, out = data_dir / csv_name, cache / f"{name}.parquet"
            if not source.exists():
                continue
            staged.sources[name] = source
            problem = entry_problem(manifest["entries"].get(name), source, cache, [out])
            if problem is None:
                staged.paths[name] = out
                continue
            tmp = stack.enter_context(atomic_path(out))
            convert(source, tmp)
            staged.paths[name] = tmp
            staged.built.append(name)
            staged.problems[name] = problem
        yield staged


def record_tables(manifest: dict, report: PrepareReport, staged: StagedTables, cache: Path) -> None:
    """Record the staged tables in the manifest (saved when one was built) and the report.

    Parameters
    ----------
    manifest : dict
        The cache manifest; each built table's entry is replaced, with the size and checksum of its file.
    report : PrepareReport
        Receives each table as built or reused.
    staged : StagedTables
        What :func:`staged_tables` yielded, after its block ended.
    cache : pathlib.Path
        The cache folder holding the manifest.
    """
    for name, source in staged.sources.items():
        if name in staged.built:
            manifest["entries"][name] = table_entry(source, cache / f"{name}.parquet")
            report.built.append(name)
            report.note_rebuild(name, staged.problems.get(name))
        else:
            report.reused.append(name)
    if staged.built:
        write_json(cache / MANIFEST, manifest)


def table_entry(source: Path, out: Path) -> dict:
    """The manifest entry of a table just written to ``out`` from ``source``.

    Parameters
    ----------
    source : pathlib.Path
        The CSV file (hashed whole at every check up to ``FULL_TABLE_BYTES``, sampled above).
    out : pathlib.Path
        The parquet file in the cache.

    Returns
    -------
    dict
        ``source`` (its record), ``output`` (the file name) and ``outputs`` (its size and checksum).
    """
    return {"source": source_record(source, FULL_TABLE_BYTES), "output": out.name, "outputs": outputs_record([out])}


def prepare_table(manifest: dict, report: PrepareReport, name: str, source: Path, out: Path, convert: Convert) -> Path:
    """Convert one table unless the manifest shows ``out`` was built from this very ``source`` and verifies.

    Parameters
    ----------
    manifest : dict
        The cache manifest; the entry ``name`` is updated and the manifest saved beside ``out``.
    report : PrepareReport
        Receives ``name`` as built or reused.
    name : str
        The manifest entry.
    source : pathlib.Path
        The CSV file.
    out : pathlib.Path
        The parquet file.
    convert : callable
        ``convert(source, path)`` writes the table to ``path``.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    InputError
        If the CSV is unreadable or malformed.
    """
    out = Path(out)
    problem = entry_problem(manifest["entries"].get(name), source, out.parent, [out])
    if problem is None:
        report.reused.append(name)
        return out
    with atomic_path(out) as tmp:
        convert(source, tmp)
    manifest["entries"][name] = table_entry(source, out)
    write_json(out.parent / MANIFEST, manifest)
    report.built.append(name)
    report.note_rebuild(name, problem)
    return out


def convert_metadata(source: Path, out: Path) -> None:
    """Copy a metadata CSV to parquet, keeping the competition's columns.

    Parameters
    ----------
    source : pathlib.Path
        ``metadata.csv`` or the extra day-2 metadata.
    out : pathlib.Path
        The parquet file, written only when the table passes its checks.

    Raises
    ------
    InputError
        If the CSV is unreadable or lacks a column, or a cell lacks an id, a
        whole-number day or a donor, or an id repeats.
    """
    try:
        frame = pd.read_csv(source, dtype={"cell_id": str, "cell_type": str, "technology": str})
    except Exception as exc:
        raise InputError(source, f"unreadable CSV: {one_line(exc)}") from None
    missing = [c for c in layout.METADATA_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(source, f"missing columns {shown(missing)} (expected {', '.join(layout.METADATA_COLUMNS)})")
    check_metadata(source, frame)
    frame.loc[:, list(layout.METADATA_COLUMNS)].to_parquet(out, index=False)


def stream_csv(source: Path, out: Path, columns: tuple[str, ...], types: dict[str, pa.DataType]) -> None:
    """Copy a CSV whose first column is ``row_id`` (up to 65 million rows) to parquet in record batches.

    Parameters
    ----------
    source : pathlib.Path
        The CSV file.
    out : pathlib.Path
        The parquet file (left half-written on an error: give a temporary file).
    columns : tuple of str
        The columns to keep, in order.
    types : dict of str to pyarrow.DataType
        The type of each column.

    Raises
    ------
    InputError
        If the CSV is unreadable, lacks a column, is malformed, or its row ids do not count up from 0.
    """
    try:
        reader = pacsv.open_csv(
            source, convert_options=pacsv.ConvertOptions(column_types=types, include_columns=list(columns))
        )
    except Exception as exc:
        raise InputError(
            source, f"unreadable CSV or missing columns {list(columns)}: {one_line(exc, mark_cut=False)}"
        ) from None
    writer = None
    try:
        expected_row = 0
        for batch in reader:
            expected_row = _check_row_ids(source, batch, expected_row)
            table = pa.Table.from_batches([batch])
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
        if writer is None:
            pq.write_table(pa.table({c: pa.array([], type=types[c]) for c in columns}), out)
    except pa.ArrowInvalid as exc:
        raise InputError(source, f"malformed CSV: {one_line(exc, mark_cut=False)}") from None
    finally:
        if writer is not None:
            writer.close()


EVALUATION_TYPES = {"row_id": pa.int64(), "cell_id": pa.string(), "gene_id": pa.string()}
SUBMISSION_TYPES = {"row_id": pa.int64(), "target": pa.float32()}
# (manifest entry and parquet stem, CSV name, converter), in the order they are prepared
TABLES: tuple[tuple[str, str, Convert], ...] = (
    ("metadata", layout.METADATA, convert_metadata),
    ("metadata_cite_day_2_donor_27678", layout.CITE_DAY2_EXTRA_METADATA, convert_metadata),
    (
        "evaluation",
        layout.EVALUATION_IDS,
        partial(stream_csv, columns=layout.EVALUATION_COLUMNS, types=EVALUATION_TYPES),
    ),
    (
        "sample_submission",
        layout.SAMPLE_SUBMISSION,
        partial(stream_csv, columns=layout.SUBMISSION_COLUMNS, types=SUBMISSION_TYPES),
    ),
)


def _check_row_ids(source: Path, batch: pa.RecordBatch, expected_row: int) -> int:
    """Check that the batch's row ids continue 0, 1, 2, ...; return the next expected id."""
    row_ids = batch.column(0).to_numpy()
    if len(row_ids) and not np.array_equal(row_ids, np.arange(expected_row, expected_row + len(row_ids))):
        raise InputError(source, f"row_id is not 0, 1, 2, ... from row {expected_row}")
    return expected_row + len(row_ids)
