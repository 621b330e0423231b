"""The competition's CSV tables as parquet files in the cache, checked on the way."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mmscel.data import layout
from mmscel.data.cache_files import MANIFEST, PrepareReport, source_is_current, source_record
from mmscel.data.error_text import one_line
from mmscel.errors import InputError
from mmscel.fsutil import atomic_path, write_json

Convert = Callable[[Path, Path], None]


def prepare_table(manifest: dict, report: PrepareReport, name: str, source: Path, out: Path, convert: Convert) -> Path:
    """Convert one table unless the manifest shows ``out`` was built from this very ``source``.

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
        ``convert(source, out)`` writes the table.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    InputError
        If the CSV is unreadable or malformed.
    """
    entry = manifest["entries"].get(name)
    if entry and out.exists() and source_is_current(source, entry.get("source")):
        report.reused.append(name)
        return out
    convert(source, out)
    manifest["entries"][name] = {"source": source_record(source), "output": out.name}
    write_json(Path(out).parent / MANIFEST, manifest)
    report.built.append(name)
    return out


def convert_metadata(source: Path, out: Path) -> None:
    """Copy a metadata CSV to parquet, keeping the competition's columns.

    Parameters
    ----------
    source : pathlib.Path
        ``metadata.csv`` or the extra day-2 metadata.
    out : pathlib.Path
        The parquet file.

    Raises
    ------
    InputError
        If the CSV is unreadable, lacks a column or repeats a cell id.
    """
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


def stream_csv(source: Path, out: Path, columns: tuple[str, ...], types: dict[str, pa.DataType]) -> None:
    """Copy a CSV whose first column is ``row_id`` (up to 65 million rows) to parquet in record batches.

    Parameters
    ----------
    source : pathlib.Path
        The CSV file.
    out : pathlib.Path
        The parquet file.
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
    with atomic_path(out) as tmp:
        writer = None
        try:
            expected_row = 0
            for batch in reader:
                expected_row = _check_row_ids(source, batch, expected_row)
                table = pa.Table.from_batches([batch])
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
            if writer is None:
                pq.write_table(pa.table({c: pa.array([], type=types[c]) for c in columns}), tmp)
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
