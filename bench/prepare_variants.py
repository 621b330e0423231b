"""Candidate fixes for ``prepare``'s throughput, measured outside src/ (a diagnostic).

    python bench/prepare_variants.py VARIANT FILE OUT_NPZ [--max-rows N]

Re-implements the loop of ``mmscel.data.cache._convert_h5`` (FrameReader row
chunks -> ``SparseNpzWriter``) with one change at a time, and writes the same
``.npz`` (the output is checked against the current ``write_dense`` scan on
the first chunk):

``current``        the loop with src's ``SparseNpzWriter.write_dense`` as it is when
                   this runs (src/ changes: during the issue-2 run it became the mask scan).
``mask``           the non-zero scan by a boolean mask (``floor.dense_to_csr_parts``)
                   instead of ``np.nonzero`` + the 2-D fancy index.
``prefetch``       src's ``write_dense``, with the next chunk read by a background
                   thread while the current one is converted (PyTables releases the
                   GIL in ``H5Dread``, so the read and the scan overlap on 2 cores;
                   one more chunk in memory, still flat in the number of rows).
``mask+prefetch``  both.

ID checks, idxcol and the SHA-256 are left out (they are < 3% of prepare's
time, see the breakdown in BENCHMARKS.md). Prints one JSON line.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from floor import dense_to_csr_parts
from mmscel.data.h5io import FrameReader, rows_per_chunk
from mmscel.data.sparse_npz import SparseNpzWriter

VARIANTS = ("current", "mask", "prefetch", "mask+prefetch")


def chunks_of(reader: FrameReader, step: int, limit: int):
    """``reader.iter_chunks(step)`` over the first ``limit`` rows."""
    for start in range(0, limit, step):
        yield start, reader.read_rows(start, min(limit, start + step))


def prefetched(reader: FrameReader, step: int, limit: int):
    """``chunks_of(reader, step, limit)`` with the next chunk read in a background thread."""
    slots: queue.Queue = queue.Queue(maxsize=1)
    done = object()

    def work():
        try:
            for item in chunks_of(reader, step, limit):
                slots.put(item)
        except BaseException as exc:  # noqa: BLE001 (handed to the consumer, which re-raises it)
            slots.put(exc)
        slots.put(done)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    while (item := slots.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
    thread.join()


def main(argv: list[str]) -> int:
    variant, source, out = argv[0], Path(argv[1]), Path(argv[2])
    max_rows = int(argv[4]) if len(argv) > 4 and argv[3] == "--max-rows" else None
    if variant not in VARIANTS:
        raise SystemExit(f"variant must be one of {VARIANTS}")
    started, cpu_started = time.perf_counter(), time.process_time()
    with FrameReader(source) as reader:
        step = rows_per_chunk(reader.shape[1])
        limit = min(reader.shape[0], max_rows or reader.shape[0])
        writer = SparseNpzWriter(out, reader.shape[1])
        chunks = prefetched(reader, step, limit) if "prefetch" in variant else chunks_of(reader, step, limit)
        checked = False
        for _, block in chunks:
            if "mask" in variant:
                values, cols, counts = dense_to_csr_parts(block)
                if not checked:
                    rows, ref_cols = np.nonzero(block)
                    assert np.array_equal(values, block[rows, ref_cols]) and np.array_equal(cols, ref_cols)
                    checked = True
                writer._append(values, cols, counts)
            else:
                writer.write_dense(block)
        writer.close()
        shape = (limit, reader.shape[1])
    loop, loop_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(
        json.dumps(
            {
                "variant": variant,
                "file": str(source),
                "rows": shape[0],
                "columns": shape[1],
                "dense_bytes": shape[0] * shape[1] * 4,
                "nnz": writer.nnz,
                "npz_bytes": out.stat().st_size,
                "loop_s": loop,
                "loop_cpu_s": loop_cpu,
            }
        )
    )
    out.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
