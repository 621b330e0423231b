"""HDF5 steps of the data benchmarks: row-subset copies and the synth write floor.

    python bench/h5tools.py subset SOURCE DEST ROWS
    python bench/h5tools.py write-floor SOURCE SCRATCH [--sample-rows 512] [--max-dense-gb G]

``subset`` copies the first ROWS rows of a competition frame to DEST with the ``FrameWriter``
``mmscel synth`` uses (same key, blocks, compression and HDF5 chunk shape): the input of the
prepare benchmark's peak RSS against rows.

``write-floor`` is the baseline of the synth benchmark: the cost of compressing and writing the
bytes synth produces, with no simulation. It reads the first ``--sample-rows`` rows of SOURCE
(real content: the same sparsity and blosc compression ratio), then times writing a frame of
SOURCE's shape (same row and column names, same blocks) in synth's 256-row chunks by cycling
those rows through ``FrameWriter`` into SCRATCH, deleted afterwards. With ``--max-dense-gb``
only the first rows worth G GB of dense data are written and the time is scaled by rows (every
row is a cycled sample row, so each costs the same). Prints one JSON line (``loop_s`` and
``loop_cpu_s`` exclude reading the sample).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_step_result
from mmscel.data.h5io import FrameReader, FrameWriter, rows_per_chunk

SYNTH_CHUNK_ROWS = 256  # synth writes 256-cell chunks


def subset(source: Path, dest: Path, rows: int) -> dict:
    """Copy the first ``rows`` rows of ``source`` to ``dest``."""
    started = time.perf_counter()
    with FrameReader(source) as reader:
        rows = min(rows, reader.shape[0])
        blocks = [positions for positions, _ in reader.blocks]
        dest.parent.mkdir(parents=True, exist_ok=True)
        with FrameWriter(dest, reader.key, reader.index[:rows], reader.columns, blocks=blocks) as writer:
            step = rows_per_chunk(reader.shape[1])
            for start in range(0, rows, step):
                writer.write(reader.read_rows(start, min(rows, start + step)))
    return {"source": str(source), "dest": str(dest), "rows": rows, "seconds": time.perf_counter() - started}


def rows_to_write(n_rows: int, n_columns: int, max_dense_gb: float) -> int:
    """All rows, or the first whole synth chunks worth ``max_dense_gb`` of dense data."""
    if not max_dense_gb or n_rows * n_columns * 4 <= max_dense_gb * 1e9:
        return n_rows
    wanted = int(max_dense_gb * 1e9 // (4 * max(1, n_columns))) // SYNTH_CHUNK_ROWS * SYNTH_CHUNK_ROWS
    return min(n_rows, max(SYNTH_CHUNK_ROWS, wanted))


def cycled_rows(sample: np.ndarray, start: int, n: int) -> np.ndarray:
    """``n`` rows of ``sample``, cycled from row ``start``."""
    if not len(sample):
        return np.zeros((n, sample.shape[1]), dtype=np.float32)
    return sample[np.arange(start, start + n) % len(sample)]


def write_floor(source: Path, scratch: Path, sample_rows: int, max_dense_gb: float) -> dict:
    """Time writing a frame of ``source``'s shape from cycled sample rows."""
    with FrameReader(source) as reader:
        sample = reader.read_rows(0, min(sample_rows, reader.shape[0]))
        index, columns, key = reader.index, reader.columns, reader.key
        blocks = [positions for positions, _ in reader.blocks]
    limit = rows_to_write(len(index), len(columns), max_dense_gb)
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        with FrameWriter(scratch, key, index[:limit], columns, blocks=blocks) as writer:
            for start in range(0, limit, SYNTH_CHUNK_ROWS):
                writer.write(cycled_rows(sample, start, min(SYNTH_CHUNK_ROWS, limit - start)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        written = scratch.stat().st_size
    finally:
        scratch.unlink(missing_ok=True)
    scale = len(index) / max(1, limit)
    return {
        "source": str(source),
        "rows": len(index),
        "columns": len(columns),
        "dense_bytes": len(index) * len(columns) * 4,
        "written_rows": limit,
        "extrapolated": limit < len(index),
        "measured_s": wall,
        "loop_s": wall * scale,
        "loop_cpu_s": cpu * scale,
        "written_bytes_scaled": written * scale,
        "source_bytes": source.stat().st_size,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    copy = commands.add_parser("subset")
    copy.add_argument("source", type=Path)
    copy.add_argument("dest", type=Path)
    copy.add_argument("rows", type=int)
    floor = commands.add_parser("write-floor")
    floor.add_argument("source", type=Path)
    floor.add_argument("scratch", type=Path)
    floor.add_argument("--sample-rows", type=int, default=512)
    floor.add_argument("--max-dense-gb", type=float, default=0.0, help="write at most this much dense data (0: all)")
    args = parser.parse_args(argv)
    if args.command == "subset":
        result = subset(args.source, args.dest, args.rows)
    else:
        result = write_floor(args.source, args.scratch, args.sample_rows, args.max_dense_gb)
    print_step_result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
