"""The competition metric: mean over cells of the per-cell Pearson correlation.

For each cell, the Pearson correlation between its predicted and its true
vector (140 proteins for CITEseq, the scored genes for Multiome) is taken; the
score of a task is the mean over its cells, and the leaderboard pools both
tasks by cell count (a plain mean over all scored cells).

Constant rows: when a cell's predicted or true vector has zero variance its
Pearson correlation is undefined (``numpy.corrcoef`` returns NaN). We score
such a cell 0 -- no linear association can be measured -- so one degenerate row
can never turn the whole score into NaN. ``mmscel submit`` refuses predictions
with a constant cell, so this only matters for hand-made inputs.
"""

from __future__ import annotations

import numpy as np

CHUNK_ELEMENTS = 2**23


def standardize_rows(values: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Per-cell z-score across targets, in float64; constant rows become zeros.

    The metric is invariant to per-cell affine transforms, so level-1 may fit
    standardised targets and level-2 blends standardised predictions.

    Parameters
    ----------
    values
        Cells x targets.
    eps
        A row whose standard deviation is at most ``eps`` is only centred, not scaled.

    Returns
    -------
    numpy.ndarray
        Each row minus its mean, divided by its (population) standard deviation.
    """
    values = np.asarray(values, dtype=np.float64)
    centred = values - values.mean(axis=1, keepdims=True)
    scale = np.sqrt((centred**2).mean(axis=1, keepdims=True))
    return centred / np.where(scale > eps, scale, 1.0)


def pearson_per_row(y_true, y_pred, chunk_rows: int | None = None) -> np.ndarray:
    """Pearson correlation of each row of ``y_true`` with the same row of ``y_pred``.

    Works in row chunks with float64 accumulation, so float32 inputs of any
    size are handled in bounded memory. Rows with zero variance score 0.

    Parameters
    ----------
    y_true, y_pred
        Matrices of the same shape (cells x targets).
    chunk_rows
        Rows per chunk (None: about ``CHUNK_ELEMENTS`` values a chunk).

    Returns
    -------
    numpy.ndarray
        One correlation per row, float64, clipped to [-1, 1].

    Raises
    ------
    ValueError
        When the shapes differ or are not 2-D.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ValueError(f"shapes differ or are not 2-D: {y_true.shape} vs {y_pred.shape}")
    n_rows, n_cols = y_true.shape
    step = chunk_rows or max(1, CHUNK_ELEMENTS // max(1, n_cols))
    out = np.empty(n_rows, dtype=np.float64)
    for start in range(0, n_rows, step):
        t = np.asarray(y_true[start : start + step], dtype=np.float64)
        p = np.asarray(y_pred[start : start + step], dtype=np.float64)
        out[start : start + len(t)] = _centred_correlation(t, p)
    return out


def _centred_correlation(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    t = t - t.mean(axis=1, keepdims=True)
    p = p - p.mean(axis=1, keepdims=True)
    return _safe_ratio(np.einsum("ij,ij->i", t, p), np.einsum("ij,ij->i", t, t), np.einsum("ij,ij->i", p, p))


def _safe_ratio(cross: np.ndarray, ss_true: np.ndarray, ss_pred: np.ndarray) -> np.ndarray:
    denominator = np.sqrt(ss_true * ss_pred)
    # Relative tolerance: a row of float32 noise around a constant is still constant.
    degenerate = denominator <= 1e-12 * np.maximum(1.0, np.abs(cross))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(degenerate, 0.0, cross / np.where(degenerate, 1.0, denominator))
    return np.clip(r, -1.0, 1.0)


def mean_pearson(y_true, y_pred) -> float:
    """The competition score of one task: mean of :func:`pearson_per_row`.

    Parameters
    ----------
    y_true, y_pred
        True and predicted values (cells x targets).

    Returns
    -------
    float
        The mean per-cell Pearson.

    Raises
    ------
    ValueError
        When the shapes differ or are not 2-D.
    """
    return float(pearson_per_row(y_true, y_pred).mean())


def pearson_per_segment(y_true, y_pred, starts) -> np.ndarray:
    """Pearson correlation within contiguous segments of two 1-D vectors.

    ``starts`` holds the first position of each segment (sorted, starting at
    0); a segment runs to the next start. This scores a long-format submission
    (one row per cell and target) without a Python loop over cells.

    Parameters
    ----------
    y_true, y_pred
        Vectors of the same length.
    starts
        First position of each segment.

    Returns
    -------
    numpy.ndarray
        One correlation per segment (0 for a constant segment).

    Raises
    ------
    ValueError
        When the vectors are not 1-D of one length, or ``starts`` does not begin at 0 and increase strictly.
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    starts = np.asarray(starts, dtype=np.int64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError("y_true and y_pred must be 1-D vectors of the same length")
    if len(starts) == 0:
        return np.zeros(0)
    lengths = np.diff(np.append(starts, len(t)))
    if starts[0] != 0 or np.any(lengths <= 0):
        raise ValueError("segment starts must begin at 0 and increase strictly")
    t_mean = np.add.reduceat(t, starts) / lengths
    p_mean = np.add.reduceat(p, starts) / lengths
    t_c = t - np.repeat(t_mean, lengths)
    p_c = p - np.repeat(p_mean, lengths)
    return _safe_ratio(
        np.add.reduceat(t_c * p_c, starts), np.add.reduceat(t_c * t_c, starts), np.add.reduceat(p_c * p_c, starts)
    )


def pooled_score(*per_cell_scores: np.ndarray) -> float:
    """Pool per-cell scores of several tasks by cell count (the leaderboard score).

    Parameters
    ----------
    *per_cell_scores
        Each task's per-cell scores.

    Returns
    -------
    float
        The mean over all cells (NaN when there are none).
    """
    scores = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in per_cell_scores])
    return float(scores.mean()) if scores.size else float("nan")


def headroom_share(score: float, floor: float, oracle: float) -> float:
    """Share of the gap between the mean-profile floor and the oracle that ``score`` closes.

    Parameters
    ----------
    score
        The score to place.
    floor
        The mean-profile score (share 0).
    oracle
        The reference score (share 1).

    Returns
    -------
    float
        ``(score - floor) / (oracle - floor)``; NaN when the oracle does not beat the floor.
    """
    gap = oracle - floor
    return float("nan") if gap <= 0 else (score - floor) / gap
