import numpy as np
import pytest
import scipy.sparse as sp

from mmscel.data.cache import row_digests
from mmscel.data.sparse_npz import CsrParts, SparseNpzWriter, dense_to_csr_parts, read_stacked


def _dense(rows, cols, density, seed=0):
    rng = np.random.default_rng(seed)
    return ((rng.random((rows, cols)) < density) * rng.normal(size=(rows, cols))).astype(np.float32)


@pytest.mark.parametrize(
    "rows,cols,density", [(0, 5, 0.5), (1, 1, 1.0), (130, 17, 0.3), (70, 3000, 0.02), (65, 40, 0.0)]
)
def test_dense_to_csr_parts_matches_scipy(rows, cols, density):
    block = _dense(rows, cols, density)
    parts = dense_to_csr_parts(block)
    expected = sp.csr_matrix(block)
    np.testing.assert_array_equal(parts.data, expected.data)
    np.testing.assert_array_equal(parts.indices, expected.indices)
    np.testing.assert_array_equal(np.cumsum(parts.counts), expected.indptr[1:])
    assert parts.indices.dtype == np.int32 and parts.data.dtype == np.float32


def test_negative_zero_is_dropped_and_hashes_like_zero():
    block = _dense(4, 9, 0.5)
    block[1] = block[0]
    block[1][block[0] == 0] = -0.0
    parts = dense_to_csr_parts(block)
    assert np.all(parts.data != 0)
    digests = row_digests(parts)
    assert digests.shape == (4, 16)
    assert bytes(digests[0]) == bytes(digests[1]) and bytes(digests[0]) != bytes(digests[2])


def test_writer_round_trip_through_scipy(tmp_path):
    block = _dense(300, 50, 0.2)
    writer = SparseNpzWriter(tmp_path / "m.npz", 50)
    writer.write_dense(block[:100])
    writer.write_parts(dense_to_csr_parts(block[100:250]))
    writer.write_csr(sp.csr_matrix(block[250:]))
    writer.close()
    np.testing.assert_array_equal(sp.load_npz(tmp_path / "m.npz").toarray(), block)


def test_digests_from_dense_and_from_a_sparse_matrix_agree():
    block = _dense(50, 30, 0.3)
    matrix = sp.csr_matrix(block)
    from_sparse = row_digests(CsrParts(matrix.data, matrix.indices.astype(np.int32), np.diff(matrix.indptr)))
    np.testing.assert_array_equal(row_digests(dense_to_csr_parts(block)), from_sparse)


def _random_csr(rows, cols, density, seed):
    return sp.random(rows, cols, density=density, format="csr", dtype=np.float32, random_state=seed)


def test_read_stacked_equals_vstack_of_load_npz(tmp_path):
    parts = [_random_csr(40, 30, 0.2, 1), _random_csr(0, 30, 0.2, 2), _random_csr(25, 30, 0.05, 3)]
    paths = []
    for i, part in enumerate(parts):
        writer = SparseNpzWriter(tmp_path / f"m{i}.npz", 30)
        writer.write_csr(part)
        paths.append(writer.close())
    stacked = read_stacked(paths)
    expected = sp.vstack([sp.load_npz(p) for p in paths]).tocsr()
    assert stacked.shape == expected.shape and stacked.dtype == np.float32 and stacked.indices.dtype == np.int32
    assert (stacked != expected).nnz == 0
    np.testing.assert_array_equal(stacked.indptr, expected.indptr)


def test_read_stacked_converts_wide_indices(tmp_path):
    matrix = _random_csr(20, 15, 0.3, 4)
    wide = sp.csr_matrix(
        (matrix.data, matrix.indices.astype(np.int64), matrix.indptr.astype(np.int64)), shape=matrix.shape
    )
    sp.save_npz(tmp_path / "wide.npz", wide, compressed=True)
    stacked = read_stacked([tmp_path / "wide.npz"])
    assert stacked.indices.dtype == np.int32 and (stacked != matrix).nnz == 0


def test_read_stacked_refuses_mismatched_widths_and_truncated_files(tmp_path):
    for name, cols in (("a.npz", 10), ("b.npz", 11)):
        writer = SparseNpzWriter(tmp_path / name, cols)
        writer.write_csr(_random_csr(5, cols, 0.5, cols))
        writer.close()
    with pytest.raises(ValueError, match="columns"):
        read_stacked([tmp_path / "a.npz", tmp_path / "b.npz"])
    sp.save_npz(tmp_path / "csc.npz", _random_csr(5, 5, 0.5, 0).tocsc())
    with pytest.raises(ValueError, match="not a CSR"):
        read_stacked([tmp_path / "csc.npz"])


def test_read_stacked_refuses_a_broken_row_pointer(tmp_path):
    matrix = _random_csr(6, 5, 0.5, 7)
    indptr = matrix.indptr.copy()
    indptr[2], indptr[3] = indptr[3], indptr[2] - 1  # decreasing in the middle, totals intact
    np.savez(
        tmp_path / "bad.npz",
        indices=matrix.indices,
        indptr=indptr,
        format=np.array(b"csr"),
        shape=np.array(matrix.shape),
        data=matrix.data,
    )
    with pytest.raises(ValueError, match="row pointer"):
        read_stacked([tmp_path / "bad.npz"])
