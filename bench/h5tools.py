"""HDF5 helpers for the benchmarks: row-subset copies and the FrameWriter write floor.

    python bench/h5tools.py subset SOURCE DEST ROWS
    python bench/h5tools.py write-floor SOURCE DEST [--sample-rows N] [--max-dense-gb G]

``subset`` copies the first ROWS rows of a competition frame into DEST with
the same ``FrameWriter`` (same key, compression and HDF5 chunk shape) that
``mmscel synth`` uses: the input of the "peak RSS vs rows" benchmark.

``write-floor`` is the baseline of the synth benchmark: it reads the first
``--sample-rows`` rows of SOURCE (real synthetic content, so the same
sparsity and the same blosc compression ratio), then times writing a frame
of SOURCE's full shape (same row and column names, same blocks) by cycling
those rows through ``FrameWriter``, i.e. the cost of merely compressing and
writing the bytes synth produces, with no simulation. DEST is deleted
afterwards. With ``--max-dense-gb`` only the first rows worth G GB of dense
data are written and the time is scaled by rows (``loop_s``; the measured
part is ``measured_s``): every row is a cycled sample row, so each costs the
same. Prints one JSON line (``loop_s`` excludes the sample read).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mmscel.data.h5io import FrameReader, FrameWriter, rows_per_chunk

SYNTH_CHUNK_ROWS = 256  # synth writes 256-cell chunks (cite.CHUNK_CELLS, multi.CHUNK_CELLS)


def subset(source: Path, dest: Path, rows: int) -> dict:
    started = time.perf_counter()
    with FrameReader(source) as reader:
        rows = min(rows, reader.shape[0])
        blocks = [positions for positions, _ in reader.blocks]
        dest.parent.mkdir(parents=True, exist_ok=True)
        with FrameWriter(dest, reader.key, reader.index[:rows], reader.columns, blocks=blocks) as writer:
            step = rows_per_chunk(reader.shape[1])
            for start in range(0, rows, step):
                writer.write(reader.read_rows(start, min(rows, start + step)))
    return {
        "source": str(source),
        "dest": str(dest),
        "rows": rows,
        "bytes": dest.stat().st_size,
        "seconds": time.perf_counter() - started,
    }


def write_floor(source: Path, dest: Path, sample_rows: int, max_dense_gb: float = 0.0) -> dict:
    with FrameReader(source) as reader:
        sample = reader.read_rows(0, sample_rows)
        index, columns = reader.index, reader.columns
        blocks = [positions for positions, _ in reader.blocks]
        key = reader.key
    n_rows = len(index)
    step = SYNTH_CHUNK_ROWS
    # With max_dense_gb, write only the first rows worth that much dense data and scale the time by
    # rows: the rows are cycled from one sample, so every row costs the same to compress and write.
    limit = n_rows
    if max_dense_gb and n_rows * len(columns) * 4 > max_dense_gb * 1e9:
        limit = max(step, int(max_dense_gb * 1e9 // (4 * max(1, len(columns)))) // step * step)
        limit = min(limit, n_rows)
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        with FrameWriter(dest, key, index[:limit], columns, blocks=blocks) as writer:
            for start in range(0, limit, step):
                n = min(step, limit - start)
                offset = start % max(1, len(sample))
                take = (np.arange(offset, offset + n) % len(sample)) if len(sample) else np.zeros(0, dtype=int)
                writer.write(sample[take] if len(sample) else np.zeros((n, len(columns)), dtype=np.float32))
        loop, loop_cpu = (
            time.perf_counter() - started,
            time.process_time() - cpu_started,
        )
        size = dest.stat().st_size
    finally:
        dest.unlink(missing_ok=True)
        dest.with_name(dest.name + ".tmp").unlink(missing_ok=True)
    return {
        "source": str(source),
        "rows": n_rows,
        "columns": len(columns),
        "dense_bytes": n_rows * len(columns) * 4,
        "sample_rows": len(sample),
        "written_rows": limit,
        "extrapolated": limit < n_rows,
        "measured_s": loop,
        "loop_s": loop * n_rows / max(1, limit),
        "loop_cpu_s": loop_cpu * n_rows / max(1, limit),
        "written_bytes": size,
        "written_bytes_scaled": size * n_rows / max(1, limit),
        "source_bytes": source.stat().st_size,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("subset")
    p.add_argument("source", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("rows", type=int)
    p = sub.add_parser("write-floor")
    p.add_argument("source", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("--sample-rows", type=int, default=512)
    p.add_argument(
        "--max-dense-gb",
        type=float,
        default=0.0,
        help="write at most this much dense data and scale the time by rows (0: all)",
    )
    args = parser.parse_args(argv)
    if args.command == "subset":
        result = subset(args.source, args.dest, args.rows)
    else:
        result = write_floor(args.source, args.dest, args.sample_rows, args.max_dense_gb)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
