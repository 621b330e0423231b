"""CITEseq test rows identical to a train row (the competition's known leak), found by row digests.

Each CITEseq input row gets a 16-byte digest while it is converted, so the
duplicate report needs ~16 bytes a row, not the matrices.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmscel.data import layout
from mmscel.data.cache_files import PrepareReport, read_idxcol
from mmscel.data.cache_integrity import output_problem, outputs_record
from mmscel.data.sparse_npz import CsrParts
from mmscel.fsutil import atomic_path

HASHED_STEMS = (layout.CITE.train_inputs, layout.CITE.test_inputs)
LEAK_REPORT = "cite_test_duplicates.parquet"
DIGEST_BYTES = 16
_MANIFEST_KEY = "cite_test_duplicates"


def row_digests(parts: CsrParts) -> np.ndarray:
    """A 16-byte digest of each row from its canonical CSR form (sorted columns, no stored zeros).

    Equal dense rows have equal digests (0.0 and -0.0 alike, as neither is
    stored); hashing the non-zeros only reads a fraction of the dense bytes.

    Parameters
    ----------
    parts : CsrParts
        Rows in canonical CSR form.

    Returns
    -------
    numpy.ndarray
        ``rows x 16`` uint8.
    """
    ends = np.cumsum(parts.counts)
    data = np.ascontiguousarray(parts.data, dtype="<f4")
    indices = np.ascontiguousarray(parts.indices, dtype="<i4")
    out = bytearray()
    for start, stop in zip((ends - parts.counts).tolist(), ends.tolist()):
        digest = hashlib.blake2b(data[start:stop].tobytes(), digest_size=DIGEST_BYTES)
        digest.update(indices[start:stop].tobytes())
        out += digest.digest()
    return np.frombuffer(bytes(out), dtype=np.uint8).reshape(-1, DIGEST_BYTES)


def csr_row_digests(matrix: sp.csr_matrix) -> np.ndarray:
    """:func:`row_digests` of a CSR matrix in any form (unsorted columns, stored zeros).

    Parameters
    ----------
    matrix : scipy.sparse.csr_matrix
        The rows; left unchanged.

    Returns
    -------
    numpy.ndarray
        ``rows x 16`` uint8.
    """
    canonical = matrix.copy()
    canonical.eliminate_zeros()
    canonical.sort_indices()
    return row_digests(CsrParts(canonical.data, canonical.indices.astype(np.int32), np.diff(canonical.indptr)))


def no_digests() -> np.ndarray:
    """The digests of no rows.

    Returns
    -------
    numpy.ndarray
        ``0 x 16`` uint8.
    """
    return np.zeros((0, DIGEST_BYTES), np.uint8)


def digests_path(cache: Path, stem: str) -> Path:
    """Where the row digests of ``stem`` are kept.

    Parameters
    ----------
    cache : pathlib.Path
        The cache folder.
    stem : str
        One of ``HASHED_STEMS``.

    Returns
    -------
    pathlib.Path
        ``<cache>/<stem>_rowdigest.npy``.
    """
    return Path(cache) / f"{stem}_rowdigest.npy"


def save_digests(cache: Path, stem: str, digests: np.ndarray) -> None:
    """Store row digests atomically (``.npy``, no pickle).

    Parameters
    ----------
    cache : pathlib.Path
        Folder of the ``_rowdigest.npy`` file.
    stem : str
        The matrix whose rows were digested.
    digests : numpy.ndarray
        One 16-byte row per matrix row (uint8).
    """
    with atomic_path(digests_path(cache, stem)) as tmp:
        with tmp.open("wb") as handle:
            np.save(handle, digests, allow_pickle=False)


def report_duplicates(cache: Path, manifest: dict, report: PrepareReport | None = None) -> int:
    """Write the CITEseq test rows identical to a train row to ``LEAK_REPORT`` and count them.

    The report is reused while the manifest shows the same two sources and the
    file verifies against the size and checksum recorded when it was written.

    Parameters
    ----------
    cache : pathlib.Path
        The cache folder, holding both CITEseq input matrices and their digests.
    manifest : dict
        The cache manifest; the report's record is added to it.
    report : PrepareReport, optional
        Told (and stderr too) when a missing or damaged report file is rebuilt.

    Returns
    -------
    int
        Number of test rows that duplicate a train row.
    """
    fingerprint = [manifest["entries"][s]["source"]["sha256"] for s in HASHED_STEMS]
    saved = manifest.get(_MANIFEST_KEY)
    if isinstance(saved, dict) and saved.get("sources") == fingerprint and isinstance(saved.get("count"), int):
        problem = output_problem(cache / LEAK_REPORT, saved.get("outputs", {}).get(LEAK_REPORT))
        if problem is None:
            return saved["count"]
        if report is not None:
            report.note_rebuild(_MANIFEST_KEY, (problem[0], f"{cache / LEAK_REPORT}: {problem[1]}"))
    train, test = (_load_digests(cache, stem) for stem in HASHED_STEMS)
    first_train = {digest.tobytes(): i for i, digest in reversed(list(enumerate(train)))}
    train_ids, test_ids = (read_idxcol(cache, stem)[0] for stem in HASHED_STEMS)
    pairs = [
        (test_ids[i], train_ids[first_train[d.tobytes()]]) for i, d in enumerate(test) if d.tobytes() in first_train
    ]
    with atomic_path(cache / LEAK_REPORT) as tmp:
        pd.DataFrame(pairs, columns=["test_cell_id", "train_cell_id"]).to_parquet(tmp, index=False)
    manifest[_MANIFEST_KEY] = {
        "sources": fingerprint,
        "count": len(pairs),
        "file": LEAK_REPORT,
        "outputs": outputs_record([cache / LEAK_REPORT]),
    }
    return len(pairs)


def _load_digests(cache: Path, stem: str) -> np.ndarray:
    """One 16-byte void scalar per row, hashable through ``tobytes``."""
    return np.load(digests_path(cache, stem), allow_pickle=False).view(f"V{DIGEST_BYTES}").ravel()
