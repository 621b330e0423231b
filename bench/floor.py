"""Raw-read floors for ``prepare``: read ``block0_values`` in row chunks and nothing else.

Run as a script, one reader per process (``bench/run.py`` measures the
process's peak RSS from outside)::

    python bench/floor.py MODE FILE [--chunk-rows N]

MODE is one of

``tables``    PyTables alone: ``node[start:stop]`` on ``/<key>/block0_values``
              (and on ``block1_values`` etc. when the frame has more blocks).
``h5py``      h5py with ``hdf5plugin`` (h5py's own HDF5 has no blosc filter).
``nonzero``   PyTables read plus ``np.nonzero`` and the gather of the non-zero
              values: the in-memory part of ``SparseNpzWriter.write_dense``,
              without writing anything (a diagnostic, not a floor).
``nonzero_mask`` PyTables read plus ``dense_to_csr_parts`` below: the same output as
              ``write_dense``'s scan computed with a boolean mask (the suggested fix;
              a diagnostic, not a floor).
``sha256``    ``mmscel.fsutil.file_checksum`` of the file: the source
              fingerprint ``prepare`` records in its manifest.

The chunk rows default to ``mmscel.data.h5io.rows_per_chunk(n_columns)``,
the chunking ``prepare`` uses. Prints one JSON line: rows, columns, dense
bytes, the loop's seconds (``loop_s``, imports and file opening excluded)
and the non-zeros seen. ``--max-dense-gb G`` reads only the first rows worth
G GB of dense data and scales the times by rows (``measured_s`` is the
measured part); used for the full-scale synth read floor.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def dense_to_csr_parts(block):
    """A faster equivalent of what ``SparseNpzWriter.write_dense`` computes (values, int32 columns,
    non-zeros per row): one boolean mask, values gathered by the mask (C order = CSR order) instead
    of the 2-D fancy index ``block[rows, cols]``, and no int64 row array."""
    import numpy as np

    mask = block != 0
    values = block[mask]
    cols = (np.flatnonzero(mask) % block.shape[1]).astype(np.int32)
    return values, cols, np.count_nonzero(mask, axis=1)


def _tables_blocks(h5, key: str):
    """The ``block{i}_values`` nodes of frame ``key`` in an open PyTables file, and the frame's shape."""
    group = h5.get_node(f"/{key}")
    nodes = [group._f_get_child(f"block{i}_values") for i in range(int(group._v_attrs.nblocks))]
    return nodes, (int(nodes[0].shape[0]), int(sum(n.shape[1] for n in nodes)))


def _limit(shape, step: int, max_dense_gb: float) -> int:
    """Rows to read: all, or the first rows worth ``max_dense_gb`` of dense data (whole chunks)."""
    if not max_dense_gb or shape[0] * shape[1] * 4 <= max_dense_gb * 1e9:
        return int(shape[0])
    return int(
        min(
            shape[0],
            max(step, int(max_dense_gb * 1e9 // (4 * max(1, shape[1]))) // step * step),
        )
    )


def _key(path: str) -> str:
    import tables

    with tables.open_file(path, "r") as h5:
        groups = [g._v_name for g in h5.root._f_iter_nodes("Group")]
    if len(groups) != 1:
        raise SystemExit(f"{path}: expected one frame group, found {groups}")
    return groups[0]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["tables", "h5py", "nonzero", "nonzero_mask", "sha256"])
    parser.add_argument("file")
    parser.add_argument("--chunk-rows", type=int, default=None)
    parser.add_argument(
        "--max-dense-gb",
        type=float,
        default=0.0,
        help="read only the first rows worth this much dense data; scale the time by rows (0: all)",
    )
    args = parser.parse_args(argv)

    import numpy as np

    from mmscel.data.h5io import rows_per_chunk

    key = _key(args.file)
    nnz = 0
    if args.mode == "sha256":
        import tables

        from mmscel.fsutil import file_checksum

        with tables.open_file(args.file, "r") as h5:
            nodes, shape = _tables_blocks(h5, key)
        started, cpu_started = time.perf_counter(), time.process_time()
        file_checksum(args.file)
        loop = time.perf_counter() - started
        loop_cpu = time.process_time() - cpu_started
        step, limit = None, shape[0]
    elif args.mode == "h5py":
        import h5py
        import hdf5plugin  # noqa: F401  (registers the blosc filter with h5py's HDF5)

        with h5py.File(args.file, "r") as h5:
            group = h5[key]
            nodes = [group[f"block{i}_values"] for i in range(int(group.attrs["nblocks"]))]
            shape = (int(nodes[0].shape[0]), int(sum(n.shape[1] for n in nodes)))
            step = args.chunk_rows or rows_per_chunk(shape[1])
            limit = _limit(shape, step, args.max_dense_gb)
            started, cpu_started = time.perf_counter(), time.process_time()
            for start in range(0, limit, step):
                for node in nodes:
                    block = node[start : min(limit, start + step)]
                    nnz += int(np.count_nonzero(block[:1]))  # touch the result; a full count is not the floor's job
            loop = time.perf_counter() - started
            loop_cpu = time.process_time() - cpu_started
    else:
        import tables

        with tables.open_file(args.file, "r") as h5:
            nodes, shape = _tables_blocks(h5, key)
            step = args.chunk_rows or rows_per_chunk(shape[1])
            limit = _limit(shape, step, args.max_dense_gb)
            started, cpu_started = time.perf_counter(), time.process_time()
            for start in range(0, limit, step):
                for node in nodes:  # the day-2 extra CITE file has two blocks
                    block = node[start : min(limit, start + step)]
                    if args.mode == "nonzero":
                        rows, cols = np.nonzero(block)
                        values = block[rows, cols]
                        nnz += len(values)
                    elif args.mode == "nonzero_mask":
                        values, _cols, _counts = dense_to_csr_parts(block)
                        nnz += len(values)
                    else:
                        nnz += int(np.count_nonzero(block[:1]))
            loop = time.perf_counter() - started
            loop_cpu = time.process_time() - cpu_started
    print(
        json.dumps(
            {
                "mode": args.mode,
                "file": args.file,
                "rows": int(shape[0]),
                "columns": int(shape[1]),
                "dense_bytes": int(shape[0]) * int(shape[1]) * 4,
                "chunk_rows": step,
                "read_rows": limit,
                "extrapolated": limit < shape[0],
                "measured_s": loop,
                "loop_s": loop * shape[0] / max(1, limit),
                "loop_cpu_s": loop_cpu * shape[0] / max(1, limit),
                "nnz": nnz if args.mode in ("nonzero", "nonzero_mask") else None,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
