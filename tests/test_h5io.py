import numpy as np
import pandas as pd
import pytest
import tables

from mmscel.data.h5io import FrameReader, FrameWriter, write_frame
from mmscel.errors import InputError


def _frame(rows=37, cols=11, seed=0):
    rng = np.random.default_rng(seed)
    values = (rng.random((rows, cols)) < 0.3) * rng.random((rows, cols))
    return values.astype(np.float32), [f"c{i:03d}" for i in range(rows)], [f"g{j}" for j in range(cols)]


def test_one_block_round_trip_readable_by_pandas(tmp_path):
    values, index, columns = _frame()
    path = write_frame(tmp_path / "x.h5", "train_cite_inputs", index, columns, values)
    frame = pd.read_hdf(path)
    assert list(frame.index) == index and list(frame.columns) == columns
    assert frame.index.name == "cell_id" and frame.columns.name == "gene_id"
    np.testing.assert_array_equal(frame.to_numpy(), values)
    with tables.open_file(path) as h5:
        node = h5.root.train_cite_inputs.block0_values
        assert node.filters.complib == "blosc" and node.atom.dtype == np.float32
        assert node.shape == values.shape


def test_two_blocks_interleaved_round_trip(tmp_path):
    values, index, columns = _frame(cols=9)
    blocks = [np.array([0, 2, 3, 5, 8]), np.array([1, 4, 6, 7])]
    path = write_frame(tmp_path / "x.h5", "k", index, columns, values, blocks=blocks)
    frame = pd.read_hdf(path)
    np.testing.assert_array_equal(frame[columns].to_numpy(), values)
    with FrameReader(path) as reader:
        assert len(reader.blocks) == 2
        chunks = [block for _, block in reader.iter_chunks(chunk_rows=5)]
    np.testing.assert_array_equal(np.vstack(chunks), values)


def test_pandas_written_file_is_read_in_chunks(tmp_path):
    values, index, columns = _frame(rows=50)
    pd.DataFrame(values, index=index, columns=columns).to_hdf(
        tmp_path / "p.h5", key="frame", format="fixed", complib="blosc", complevel=5
    )
    with FrameReader(tmp_path / "p.h5") as reader:
        assert reader.shape == values.shape
        np.testing.assert_array_equal(np.vstack([b for _, b in reader.iter_chunks(chunk_rows=8)]), values)


def test_interrupted_write_leaves_no_file(tmp_path):
    values, index, columns = _frame()
    target = tmp_path / "x.h5"
    with pytest.raises(RuntimeError):
        with FrameWriter(target, "k", index, columns) as writer:
            writer.write(values[:10])
            raise RuntimeError("killed")
    assert not target.exists() and not list(tmp_path.iterdir())


def test_reader_rejects_garbage_and_truncation(tmp_path):
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file at all" * 100)
    with pytest.raises(InputError, match="garbage.h5"):
        FrameReader(garbage)
    values, index, columns = _frame(rows=2000, cols=50)
    path = write_frame(tmp_path / "full.h5", "k", index, columns, values, complevel=0)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated.h5"):
        with FrameReader(truncated) as reader:
            for _ in reader.iter_chunks():
                pass


def test_prefetching_reader_gives_the_same_chunks_and_stops_cleanly(tmp_path):
    values, index, columns = _frame(rows=103, cols=7)
    path = write_frame(tmp_path / "x.h5", "k", index, columns, values)
    with FrameReader(path) as reader:
        plain = [(start, block) for start, block in reader.iter_chunks(chunk_rows=10)]
        ahead = [(start, block) for start, block in reader.iter_chunks(chunk_rows=10, prefetch=True)]
        assert [s for s, _ in plain] == [s for s, _ in ahead]
        for (_, a), (_, b) in zip(plain, ahead):
            np.testing.assert_array_equal(a, b)
        for start, _ in reader.iter_chunks(chunk_rows=10, prefetch=True):
            if start >= 20:
                break  # leaving early must not hang the reading thread


def test_map_chunks_runs_func_on_every_chunk_in_order_and_reuses_buffers(tmp_path):
    values, index, columns = _frame(rows=257, cols=13)
    path = write_frame(tmp_path / "x.h5", "k", index, columns, values)
    seen_buffers = set()

    def row_sums(chunk):
        seen_buffers.add(chunk.__array_interface__["data"][0])
        return chunk.sum(axis=1)

    with FrameReader(path) as reader:
        results = list(reader.map_chunks(row_sums, chunk_rows=20, workers=2))
    assert [start for start, _ in results] == list(range(0, 257, 20))
    np.testing.assert_allclose(np.concatenate([r for _, r in results]), values.sum(axis=1), rtol=1e-6)
    assert len(seen_buffers) <= 3  # a small pool, not one fresh array per chunk


def test_map_chunks_hands_a_worker_error_to_the_caller(tmp_path):
    values, index, columns = _frame(rows=100, cols=5)
    path = write_frame(tmp_path / "x.h5", "k", index, columns, values)

    def fail_on_third(chunk):
        if chunk[0, 0] == values[30, 0] and np.array_equal(chunk[0], values[30]):
            raise RuntimeError("boom")
        return len(chunk)

    with FrameReader(path) as reader:
        with pytest.raises(RuntimeError, match="boom"):
            list(reader.map_chunks(fail_on_third, chunk_rows=10))


class _Payload:
    """Unpickling this would be code execution; the tests only check it never happens."""

    def __reduce__(self):
        return (_explode, ())


def _explode():
    raise AssertionError("a pickle in an HDF5 file was loaded")


def test_pickled_attributes_are_refused_before_pytables_reads_them(tmp_path):
    path = tmp_path / "frame.h5"
    write_frame(path, "frame", ["c1", "c2"], ["g1", "g2"], np.ones((2, 2), np.float32))
    with tables.open_file(str(path), mode="a") as handle:
        handle.root.frame.axis0._v_attrs.kind = _Payload()  # PyTables stores it as a pickle
    with pytest.raises(InputError, match="pickled Python object"):
        FrameReader(path)


def test_object_atom_arrays_are_refused(tmp_path):
    path = tmp_path / "frame.h5"
    write_frame(path, "frame", ["c1", "c2"], ["g1", "g2"], np.ones((2, 2), np.float32))
    with tables.open_file(str(path), mode="a") as handle:
        handle.remove_node("/frame", "axis1")
        objects = handle.create_vlarray("/frame", "axis1", tables.ObjectAtom())
        objects.append(_Payload())
    with pytest.raises(InputError, match="ObjectAtom"):
        FrameReader(path)
