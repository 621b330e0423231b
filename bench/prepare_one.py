"""``prepare`` of one matrix, alone in its process.

    python bench/prepare_one.py DATA_DIR STEM CACHE_DIR [--source FILE] [--chunk-bytes N]

Does what ``mmscel prepare`` does for one matrix: reads the known cell ids
from ``metadata.csv`` (and the day-2 extra metadata when present), then calls
``mmscel.data.cache._prepare_matrix`` on a fresh manifest: the chunked
HDF5 -> CSR ``.npz`` conversion (``_convert_h5``), the idxcol file and the
source's SHA-256 fingerprint. Column alignment to the training file is off
(``reference=None``): for the synthetic data the columns already match, so
``prepare`` would not reorder them either.

``--source`` converts another file under the name STEM (the row-subset
files of the RSS-vs-rows benchmark). Prints one JSON line with the timed
part (``loop_s``: ``_prepare_matrix`` only; imports and metadata excluded),
the shape, the non-zeros and a breakdown of the timed part by step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _instrument(cache_mod) -> dict[str, float]:
    """Wrap the steps of ``_prepare_matrix`` with accumulating wall-clock timers (no change to src/).

    read_rows: FrameReader.read_rows (HDF5 read + blosc decompression), in the reader threads;
    convert: the dense -> CSR scan and row digests (``_chunk_to_csr``), in the reader threads;
    write: SparseNpzWriter.write_parts (scratch-file writes), in the main thread;
    read_rows and convert of different chunks overlap, so the parts may sum to more than the wall time;
    close: SparseNpzWriter.close (assembling the .npz from the scratch files);
    checksum: the SHA-256 of the source for the manifest.
    """
    from mmscel.data import h5io, sparse_npz

    timers = {"read_rows": 0.0, "convert": 0.0, "write": 0.0, "close": 0.0, "checksum": 0.0}

    def timed(name, func):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                timers[name] += time.perf_counter() - started

        return wrapper

    h5io.FrameReader.read_rows = timed("read_rows", h5io.FrameReader.read_rows)
    sparse_npz.SparseNpzWriter.write_parts = timed("write", sparse_npz.SparseNpzWriter.write_parts)
    cache_mod._chunk_to_csr = timed("convert", cache_mod._chunk_to_csr)
    sparse_npz.SparseNpzWriter.close = timed("close", sparse_npz.SparseNpzWriter.close)
    cache_mod.file_checksum = timed("checksum", cache_mod.file_checksum)
    return timers


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("stem")
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument("--chunk-bytes", type=int, default=None)
    args = parser.parse_args(argv)

    import pandas as pd

    from mmscel.data import cache as cache_mod
    from mmscel.data import layout

    known: set[str] = set()
    for name in (layout.METADATA, layout.CITE_DAY2_EXTRA_METADATA):
        if (args.data_dir / name).exists():
            known |= set(pd.read_csv(args.data_dir / name, usecols=["cell_id"], dtype=str)["cell_id"])
    source = args.source or layout.h5_path(args.data_dir, args.stem)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    timers = _instrument(cache_mod)
    manifest = {"entries": {}}
    report = cache_mod.PrepareReport(cache=args.cache_dir)
    started, cpu_started = time.perf_counter(), time.process_time()
    cache_mod._prepare_matrix(
        manifest,
        report,
        args.stem,
        source,
        args.cache_dir,
        known,
        None,
        False,
        args.chunk_bytes,
    )
    loop = time.perf_counter() - started
    loop_cpu = time.process_time() - cpu_started
    rows, cols = report.shapes[args.stem]
    out = cache_mod.values_path(args.cache_dir, args.stem)
    print(
        json.dumps(
            {
                "stem": args.stem,
                "source": str(source),
                "rows": int(rows),
                "columns": int(cols),
                "dense_bytes": int(rows) * int(cols) * 4,
                "nnz": int(report.nnz[args.stem]),
                "loop_s": loop,
                "loop_cpu_s": loop_cpu,
                "npz_bytes": out.stat().st_size,
                "breakdown_s": {k: round(v, 3) for k, v in timers.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
