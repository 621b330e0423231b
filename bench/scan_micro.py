"""Micro-benchmark of the non-zero scan of ``SparseNpzWriter.write_dense`` on real chunks (a diagnostic).

    python bench/scan_micro.py FILE [--chunks N] [--repeat R]

Reads N prepare-sized row chunks of FILE once, then times, per chunk and
best of R (robust to other work on the machine), the in-memory part of
``write_dense`` as in src/ (``np.nonzero`` + 2-D fancy gather + bincount)
against ``floor.dense_to_csr_parts`` (one boolean mask), and the PyTables read
of the same chunk into a new array and into a reused buffer (``out=``).
Prints one JSON line of best seconds per chunk.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import tables

sys.path.insert(0, str(Path(__file__).resolve().parent))

from floor import _key, dense_to_csr_parts
from mmscel.data.h5io import rows_per_chunk


def current(block):
    rows, cols = np.nonzero(block)
    counts = np.bincount(rows, minlength=block.shape[0])
    return (
        block[rows, cols].astype(np.float32, copy=False),
        cols.astype(np.int32),
        counts,
    )


def best(func, repeat):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with tables.open_file(args.file) as h5:
        node = h5.get_node(f"/{_key(args.file)}/block0_values")
        step = int(rows_per_chunk(int(node.shape[1])))
        step = min(step, int(node.shape[0]))
        starts = [i * step for i in range(args.chunks) if (i + 1) * step <= node.shape[0]]  # whole chunks only
        blocks = [node[s : s + step] for s in starts]
        buffer = np.empty((step, node.shape[1]), dtype=np.float32)
        read_new = sum(best(lambda s=s: node[s : s + step], args.repeat) for s in starts) / len(starts)
        read_out = sum(best(lambda s=s: node.read(s, s + step, out=buffer), args.repeat) for s in starts) / len(starts)
    for block in blocks:
        a, b = current(block), dense_to_csr_parts(block)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    scan_current = sum(best(lambda b=b: current(b), args.repeat) for b in blocks) / len(blocks)
    scan_mask = sum(best(lambda b=b: dense_to_csr_parts(b), args.repeat) for b in blocks) / len(blocks)
    density = float(np.mean([np.count_nonzero(b) / b.size for b in blocks]))
    print(
        json.dumps(
            {
                "file": args.file,
                "chunk_rows": step,
                "chunks": len(blocks),
                "density": density,
                "read_new_array_s": read_new,
                "read_into_buffer_s": read_out,
                "scan_current_s": scan_current,
                "scan_mask_s": scan_mask,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
