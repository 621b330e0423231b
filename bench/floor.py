"""The raw-read floor of ``prepare``: read a frame's ``block{i}_values`` in row chunks and nothing else.

    python bench/floor.py {tables,h5py} FILE [--chunk-rows N] [--max-dense-gb G]

``tables`` reads with PyTables, the library ``prepare`` reads with; ``h5py`` with h5py and
hdf5plugin (h5py's own HDF5 has no blosc filter; hdf5plugin is not a project dependency).
The chunks are ``mmscel.data.h5io.rows_per_chunk(n_columns)`` rows, prepare's chunking.
``--max-dense-gb G`` reads only the first rows worth G GB of dense data and scales the time by
rows (``measured_s`` is the part measured). Runs alone in its process (the caller measures peak
RSS from outside) and prints one JSON line: shape, dense bytes and the loop's wall and CPU
seconds (``loop_s``, ``loop_cpu_s``; imports and opening the file excluded).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_step_result
from mmscel.data.h5io import rows_per_chunk


def tables_nodes(h5, key: str) -> list:
    """The ``block{i}_values`` arrays of frame ``key`` in an open PyTables file."""
    group = h5.get_node(f"/{key}")
    return [group._f_get_child(f"block{i}_values") for i in range(int(group._v_attrs.nblocks))]


def h5py_nodes(h5, key: str) -> list:
    """The ``block{i}_values`` datasets of frame ``key`` in an open h5py file."""
    group = h5[key]
    return [group[f"block{i}_values"] for i in range(int(group.attrs["nblocks"]))]


def frame_key(path: str) -> str:
    """The one frame group of a pandas fixed-format file."""
    import tables

    with tables.open_file(path, "r") as h5:
        groups = [group._v_name for group in h5.root._f_iter_nodes("Group")]
    if len(groups) != 1:
        raise SystemExit(f"{path}: expected one frame group, found {groups}")
    return groups[0]


def rows_to_read(shape: tuple[int, int], step: int, max_dense_gb: float) -> int:
    """All rows, or the first whole chunks worth ``max_dense_gb`` of dense data."""
    if not max_dense_gb or shape[0] * shape[1] * 4 <= max_dense_gb * 1e9:
        return shape[0]
    wanted = int(max_dense_gb * 1e9 // (4 * max(1, shape[1]))) // step * step
    return min(shape[0], max(step, wanted))


def timed_read(nodes: list, chunk_rows: int | None, max_dense_gb: float) -> dict:
    """Read every node in row chunks; the loop's wall and CPU seconds, scaled to all rows."""
    shape = (int(nodes[0].shape[0]), sum(int(node.shape[1]) for node in nodes))
    step = chunk_rows or rows_per_chunk(shape[1])
    limit = rows_to_read(shape, step, max_dense_gb)
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, limit, step):
        for node in nodes:  # the day-2 extra CITEseq file has two blocks
            node[start : min(limit, start + step)]
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    scale = shape[0] / max(1, limit)
    return {
        "rows": shape[0],
        "columns": shape[1],
        "dense_bytes": shape[0] * shape[1] * 4,
        "chunk_rows": step,
        "read_rows": limit,
        "extrapolated": limit < shape[0],
        "measured_s": wall,
        "loop_s": wall * scale,
        "loop_cpu_s": cpu * scale,
    }


def read_floor(mode: str, path: str, chunk_rows: int | None, max_dense_gb: float) -> dict:
    key = frame_key(path)
    if mode == "h5py":
        import h5py
        import hdf5plugin  # noqa: F401  (registers the blosc filter with h5py's HDF5)

        with h5py.File(path, "r") as h5:
            return timed_read(h5py_nodes(h5, key), chunk_rows, max_dense_gb)
    import tables

    with tables.open_file(path, "r") as h5:
        return timed_read(tables_nodes(h5, key), chunk_rows, max_dense_gb)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["tables", "h5py"])
    parser.add_argument("file")
    parser.add_argument("--chunk-rows", type=int, default=None, help="rows per read (default: prepare's)")
    parser.add_argument("--max-dense-gb", type=float, default=0.0, help="read at most this much dense data (0: all)")
    args = parser.parse_args(argv)
    result = read_floor(args.mode, args.file, args.chunk_rows, args.max_dense_gb)
    print_step_result({"mode": args.mode, "file": args.file, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
