"""Raw counts in imported AnnData: detect them and apply the competition's processing.

The competition ships processed values, never counts: CITEseq RNA and
Multiome RNA library-size normalised to 10,000 per cell and log1p
transformed, ATAC peaks as TF-IDF (``log1p(count / cell total * idf *
10,000)``, the inverse document frequency over all cells), proteins dsb
normalised. Proteins get CLR per cell (``clr``, the default) or dsb without
empty droplets (``dsb``, :mod:`mmscel.data.dsb`: an AnnData holds no empty
droplets); ATAC peaks TF-IDF (``tfidf``, the default) or 0/1 (``binary``, as
the 2021 NeurIPS benchmark ships them).

A matrix *looks like counts* when every value is a whole non-negative number
and some value exceeds 1 (a 0/1 matrix is taken as binarised, not counts).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import numpy as np
from scipy import sparse

from mmscel.data.anndata_read import Block, Cells
from mmscel.data.dsb import dsb
from mmscel.data.error_text import shown
from mmscel.data.h5_format import rows_per_chunk
from mmscel.errors import InputError

log = logging.getLogger(__name__)

COUNTS_MODES = ("auto", "normalise", "keep")
PROTEIN_METHODS = ("clr", "dsb")
ATAC_METHODS = ("tfidf", "binary")
SCALE = 1e4  # the competition's library size: counts per 10,000


@dataclasses.dataclass(frozen=True)
class Processing:
    """How one modality's counts become the competition's values.

    Attributes
    ----------
    name : str
        What the user is told was done.
    make : callable or None
        Column sums of the counts over all cells and the number of cells -> the row
        transform (dense float32 rows in, out), applied in row chunks.
    whole : callable or None
        Instead of ``make``: all cells' counts (cells x features, dense) -> their values at once.
    """

    name: str
    make: Callable[[np.ndarray, int], Callable[[np.ndarray], np.ndarray]] | None = None
    whole: Callable[[np.ndarray], np.ndarray] | None = None


def log1p_cp10k(rows: np.ndarray) -> np.ndarray:
    """``log1p(count / cell total * 10,000)``, the competition's RNA values.

    Parameters
    ----------
    rows : numpy.ndarray
        Cells x features counts (all of a cell's features).

    Returns
    -------
    numpy.ndarray
        float32; a cell without counts stays zero.
    """
    totals = rows.sum(axis=1, keepdims=True, dtype=np.float64)
    return np.log1p(rows * (SCALE / np.maximum(totals, 1.0))).astype(np.float32)


def clr(rows: np.ndarray) -> np.ndarray:
    """Centred log-ratio per cell, ``log1p(count / exp(mean log1p(counts of the cell)))`` (Seurat, muon).

    Parameters
    ----------
    rows : numpy.ndarray
        Cells x proteins counts.

    Returns
    -------
    numpy.ndarray
        float32.
    """
    centre = np.exp(np.log1p(rows.astype(np.float64)).mean(axis=1, keepdims=True))
    return np.log1p(rows / centre).astype(np.float32)


def binarise(rows: np.ndarray) -> np.ndarray:
    """Peaks with a count become 1, the others stay 0 (the 2021 NeurIPS benchmark's ATAC values).

    Parameters
    ----------
    rows : numpy.ndarray
        Cells x peaks counts.

    Returns
    -------
    numpy.ndarray
        float32 zeros and ones, non-zero exactly where the counts are.
    """
    return (rows > 0).astype(np.float32)


def tf_idf(idf: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The TF-IDF ``log1p(count / cell total * idf * 10,000)`` of the competition's ATAC inputs.

    Parameters
    ----------
    idf : numpy.ndarray
        Inverse document frequency per peak: cells / the peak's total count.

    Returns
    -------
    callable
        Dense count rows -> float32 TF-IDF rows.
    """

    def transform(rows: np.ndarray) -> np.ndarray:
        totals = rows.sum(axis=1, keepdims=True, dtype=np.float64)
        return np.log1p(rows * (idf * SCALE / np.maximum(totals, 1.0))).astype(np.float32)

    return transform


def _idf(column_sums: np.ndarray, n_cells: int) -> Callable[[np.ndarray], np.ndarray]:
    return tf_idf(n_cells / np.where(column_sums > 0, column_sums, 1.0))


RNA = {
    "cite": Processing("log1p CP10k (the competition's CITEseq RNA)", make=lambda s, n: log1p_cp10k),
    "multi": Processing("log1p CP10k (the competition's Multiome RNA)", make=lambda s, n: log1p_cp10k),
}
PROTEINS = {
    "clr": Processing("CLR per cell (--proteins clr)", make=lambda s, n: clr),
    "dsb": Processing("dsb without empty droplets, as dsb's ModelNegativeADTnorm (--proteins dsb)", whole=dsb),
}
ATAC = {
    "tfidf": Processing("TF-IDF (the competition's ATAC; --atac tfidf)", make=_idf),
    "binary": Processing(
        "binarised, peaks > 0 -> 1 (the 2021 benchmark's ATAC; --atac binary)", make=lambda s, n: binarise
    ),
}


def processing_for(task: str, role: str, proteins: str = "clr", atac: str = "tfidf") -> Processing:
    """The processing of one modality's raw counts.

    Parameters
    ----------
    task : {'cite', 'multi'}
        The task.
    role : {'inputs', 'targets'}
        The modality's role: CITEseq RNA -> proteins, Multiome ATAC -> RNA.
    proteins : {'clr', 'dsb'}
        The processing of CITEseq protein counts.
    atac : {'tfidf', 'binary'}
        The processing of Multiome ATAC counts.

    Returns
    -------
    Processing
    """
    if (task, role) == ("cite", "targets"):
        return PROTEINS[proteins]
    if (task, role) == ("multi", "inputs"):
        return ATAC[atac]
    return RNA[task]


@dataclasses.dataclass
class _Scan:
    """What one pass over a block's rows found."""

    counts: bool = True
    largest: float = 0.0
    column_sums: np.ndarray | None = None
    offender: str = ""


def process_counts(
    task: str, train: Cells, test: Cells, mode: str = "auto", *, proteins: str = "clr", atac: str = "tfidf"
) -> tuple[Cells, Cells, str]:
    """Apply the competition's processing to the modalities that hold raw counts.

    Parameters
    ----------
    task : {'cite', 'multi'}
        The task, which decides each modality's processing.
    train, test : Cells
        The imported cells.
    mode : {'auto', 'normalise', 'keep'}
        ``auto`` processes the modalities that look like counts; ``normalise``
        processes both and refuses values that are not counts; ``keep`` imports
        the values as they are (and warns when they are counts).
    proteins : {'clr', 'dsb'}
        CITEseq protein counts: CLR per cell, or dsb without empty droplets (fitted on all cells at once).
    atac : {'tfidf', 'binary'}
        Multiome ATAC counts: TF-IDF, or peaks > 0 -> 1.

    Returns
    -------
    tuple of (Cells, Cells, str)
        The cells (their blocks transform rows on reading), and one line that says what was done.

    Raises
    ------
    InputError
        For an unknown mode or method; with ``normalise``, values that are not counts; train and
        test values of which only one side holds counts.
    """
    mode = counts_mode(mode)
    proteins, atac = methods(proteins, atac)
    done, found = [], []
    for role in ("inputs", "targets"):
        blocks = _blocks(train, test, role)
        scans = [_scan(block, rows) for block, rows in blocks]
        counts = [s.counts for s in scans]
        if any(counts):
            found.append(role)
        if mode == "keep" or not any(counts):
            if mode == "normalise":
                raise _not_counts(blocks, scans)
            continue
        if not all(counts):
            raise _not_counts(blocks, scans, mixed=True)
        processing = processing_for(task, role, proteins, atac)
        if processing.whole is not None:
            train, test = _with_values(train, test, role, processing.whole)
        else:
            sums = np.sum([s.column_sums for s in scans], axis=0)
            transform = processing.make(sums, len(train.ids) + len(test.ids))
            train, test = _with_transform(train, test, role, transform)
        done.append(f"{role}: raw counts -> {processing.name}")
    if found and not done:
        held = " and ".join(found)
        log.warning(f"the {held} hold raw counts, imported unprocessed (--counts keep); {_NORMALISE}")
    return train, test, _summary(done, found)


def counts_mode(mode: str, normalize: bool = False) -> str:
    """``mode`` checked (``normalize`` is taken for ``normalise``).

    Parameters
    ----------
    mode : str
        One of ``COUNTS_MODES``.
    normalize : bool
        The ``--normalize`` flag: ``normalise`` whatever ``mode`` says, unless it says ``keep``.

    Returns
    -------
    str

    Raises
    ------
    InputError
        For any other value, or ``normalize`` with ``keep``.
    """
    mode = "normalise" if mode == "normalize" else mode
    if mode not in COUNTS_MODES:
        raise InputError("counts", f"{shown(mode)} is not one of {', '.join(COUNTS_MODES)}")
    if normalize and mode == "keep":
        raise InputError("--normalize", "contradicts --counts keep: give one of the two")
    return "normalise" if normalize else mode


def methods(proteins: str, atac: str) -> tuple[str, str]:
    """The protein and ATAC processing methods, checked.

    Parameters
    ----------
    proteins : str
        One of ``PROTEIN_METHODS``.
    atac : str
        One of ``ATAC_METHODS``.

    Returns
    -------
    tuple of (str, str)

    Raises
    ------
    InputError
        For any other value.
    """
    for key, value, allowed in (("proteins", proteins, PROTEIN_METHODS), ("atac", atac, ATAC_METHODS)):
        if value not in allowed:
            raise InputError(key, f"{shown(value)} is not one of {', '.join(allowed)}")
    return proteins, atac


_NORMALISE = "--normalize or --counts normalise processes them"


def _summary(done: list[str], found: list[str]) -> str:
    if done:
        return "values: " + "; ".join(done) + "; --counts keep imports them as they are"
    if found:
        held = " and ".join(found)
        return f"values: kept as they are; the {held} hold raw counts ({_NORMALISE})"
    return "values: imported as they are (no raw counts found)"


def _blocks(train: Cells, test: Cells, role: str) -> list[tuple[Block, np.ndarray]]:
    """The distinct blocks of ``role`` and the rows the import reads from each."""
    first, second = getattr(train, role), getattr(test, role)
    if first is second:
        return [(first, np.concatenate([train.rows_of(role), test.rows_of(role)]))]
    return [(first, train.rows_of(role)), (second, test.rows_of(role))]


def _scan(block: Block, rows: np.ndarray) -> _Scan:
    """One pass in row chunks: are the values counts, and the column sums (in output order) when they are."""
    found = _Scan(column_sums=np.zeros(len(block.names)))
    step = rows_per_chunk(len(block.names))
    for start in range(0, len(rows), step):
        chunk = block.matrix[rows[start : start + step]]
        values = chunk.data if sparse.issparse(chunk) else np.asarray(chunk)
        whole = (values >= 0) & (values == np.floor(values))
        if not whole.all():
            found.counts = False
            found.offender = _offender(block, chunk, values, whole)
            break
        found.largest = max(found.largest, float(values.max(initial=0.0)))
        sums = np.asarray(chunk.sum(axis=0, dtype=np.float64)).ravel()
        found.column_sums += sums if block.columns is None else sums[block.columns]
    found.counts = found.counts and found.largest > 1
    if not found.offender and not found.counts:
        found.offender = f"no value above 1 (largest {found.largest:g})"
    return found


def _offender(block: Block, chunk, values: np.ndarray, whole: np.ndarray) -> str:
    position = int(np.argmax(~whole))
    if sparse.issparse(chunk):
        column = int(chunk.indices[position])
    else:
        column = position % values.shape[-1]
    name = block.names[column] if block.columns is None else block.names[np.argmax(block.columns == column)]
    return f"{float(values.ravel()[position]):g} in column {shown(name)}"


def _not_counts(blocks, scans: list[_Scan], mixed: bool = False) -> InputError:
    index = next(i for i, s in enumerate(scans) if not s.counts)
    where = blocks[index][0].where
    if mixed:
        other = blocks[1 - index][0].where
        return InputError(where, f"holds no raw counts ({scans[index].offender}) but {other} does; import both alike")
    fix = "read the counts with --layer counts, or pass --counts auto or keep"
    return InputError(where, f"--counts normalise needs raw counts, found {scans[index].offender}; {fix}")


def _with_values(train: Cells, test: Cells, role: str, method) -> tuple[Cells, Cells]:
    """Blocks of ``role`` whose values are ``method`` of all the cells' counts, fitted at once.

    Each new matrix keeps the source's rows and columns (so that ``columns`` and
    ``counts`` still apply); rows the import does not read stay zero.
    """
    blocks = _blocks(train, test, role)
    parts = [block.rows(rows) for block, rows in blocks]
    values = method(np.concatenate(parts))
    replaced, start = [], 0
    for (block, rows), part in zip(blocks, parts, strict=True):
        matrix = np.zeros((block.matrix.shape[0], len(block.names)), dtype=np.float32)
        source_order = slice(None) if block.columns is None else np.argsort(block.columns)
        matrix[rows] = values[start : start + len(part)][:, source_order]
        replaced.append(dataclasses.replace(block, matrix=matrix))
        start += len(part)
    return dataclasses.replace(train, **{role: replaced[0]}), dataclasses.replace(test, **{role: replaced[-1]})


def _with_transform(train: Cells, test: Cells, role: str, transform) -> tuple[Cells, Cells]:
    first, second = getattr(train, role), getattr(test, role)
    new_first = dataclasses.replace(first, transform=transform)
    new_second = new_first if second is first else dataclasses.replace(second, transform=transform)
    return dataclasses.replace(train, **{role: new_first}), dataclasses.replace(test, **{role: new_second})
