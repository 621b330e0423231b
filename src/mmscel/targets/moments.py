"""Per-cell moments that score target-SVD coefficients on the genes they stand for, without the genes.

A basis ``V`` (k x G) with mean ``m`` maps a cell's coefficients ``z`` to its genes
``yhat = z V + m``. Averaged over the G genes,

    mean(yhat)    = z . vbar + mbar                      (vbar: the row means of V)
    mean(yhat^2)  = z (V V' / G) z' + 2 z . (V m / G) + m . m / G
    mean(yhat y)  = z . (y V' / G) + y . m / G

so with each cell's ``mean(y)``, ``mean(y^2)``, ``y V' / G`` and ``y . m / G`` computed once (one pass
over the gene matrix in row chunks), the per-cell Pearson correlation and squared error of any ``z``
cost O(k^2) a cell instead of O(G): no gene matrix is densified or reconstructed. The formulas hold for
any ``V`` (its Gram matrix is used, orthonormal rows are not assumed). The functions take numpy arrays
or torch tensors alike (``of_torch``), so that the MLP's loss and the blend's objective share them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from mmscel.targets.base import TargetBasis


@dataclass(frozen=True)
class BasisMoments:
    """What a basis contributes to the moments of its reconstructions (float64).

    Attributes
    ----------
    vvt
        ``V V' / G`` (k x k).
    v_mean
        The row means of ``V`` (k).
    vm
        ``V m / G`` (k).
    m_mean, m_sq
        ``mean(m)`` and ``m . m / G``.
    n_genes
        ``G``.
    """

    vvt: Any
    v_mean: Any
    vm: Any
    m_mean: float
    m_sq: float
    n_genes: int

    @classmethod
    def of(cls, basis: TargetBasis) -> BasisMoments:
        """The moments of ``basis``, in float64."""
        V = np.asarray(basis.components, dtype=np.float64)
        m = np.asarray(basis.mean, dtype=np.float64).ravel()
        n = V.shape[1]
        return cls(V @ V.T / n, V.mean(axis=1), V @ m / n, float(m.mean()), float(m @ m / n), n)

    def of_torch(self, device=None) -> BasisMoments:
        """The same moments as float64 torch tensors on ``device``."""
        import torch

        arrays = {name: torch.as_tensor(getattr(self, name), device=device) for name in ("vvt", "v_mean", "vm")}
        return replace(self, **arrays)


@dataclass(frozen=True)
class GeneMoments:
    """Per-cell moments of the scored genes (float64, means over the genes).

    Attributes
    ----------
    mean, sq
        ``mean(y)`` and ``mean(y^2)`` of each cell.
    proj
        ``y V' / G`` (cells x k).
    dot_m
        ``y . m / G`` of each cell.
    """

    mean: Any
    sq: Any
    proj: Any
    dot_m: Any

    @classmethod
    def of(cls, Y, basis: TargetBasis, chunk: int = 8192) -> GeneMoments:
        """The moments of every row of ``Y`` (dense, CSR, or anything sliced by rows), in row chunks.

        Parameters
        ----------
        Y
            Cells x genes; read ``chunk`` rows at a time, never whole.
        basis
            The basis whose ``V`` and ``m`` the projections use.
        chunk
            Rows per chunk.

        Returns
        -------
        GeneMoments
        """
        if isinstance(Y, ShiftedRows):
            return Y.moments(basis, chunk)
        V = np.asarray(basis.components, dtype=np.float64)
        m = np.asarray(basis.mean, dtype=np.float64).ravel()
        n_cells, n_genes = Y.shape
        mean, sq, dot_m = np.empty(n_cells), np.empty(n_cells), np.empty(n_cells)
        proj = np.empty((n_cells, V.shape[0]))
        for start in range(0, n_cells, chunk):
            part = Y[start : start + chunk]
            part = part.astype(np.float64) if sp.issparse(part) else np.asarray(part, dtype=np.float64)
            rows = slice(start, start + part.shape[0])
            squared = part.multiply(part) if sp.issparse(part) else part**2
            mean[rows] = np.asarray(part.sum(axis=1)).ravel() / n_genes
            sq[rows] = np.asarray(squared.sum(axis=1)).ravel() / n_genes
            proj[rows] = np.asarray(part @ V.T) / n_genes
            dot_m[rows] = np.asarray(part @ m).ravel() / n_genes
        return cls(mean, sq, proj, dot_m)

    def take(self, rows) -> GeneMoments:
        """The moments of some cells (``rows``: an index array, a slice or an index tensor)."""
        return GeneMoments(*(getattr(self, f.name)[rows] for f in fields(self)))

    def of_torch(self, device=None) -> GeneMoments:
        """The same moments as float64 torch tensors on ``device``."""
        import torch

        return GeneMoments(*(torch.as_tensor(getattr(self, f.name), device=device) for f in fields(self)))


@dataclass(frozen=True)
class ShiftedRows:
    """Rows of a gene matrix, each moved by a low-rank shift: ``view[idx]`` is ``genes[idx] - shift[idx] @ components``.

    Genes centred per batch in the span of a gene SVD have this form. The view is
    never densified whole: a batch of rows is densified when read, and the rows'
    moments follow exactly from the unshifted genes' (with ``s = d C``, ``y . s =
    (y C') . d`` and ``s . s = d (C C') d``).

    Parameters
    ----------
    genes
        Cells x genes (dense, CSR or a row subset).
    shift
        Cells x K coefficients of each cell's shift.
    components
        K x genes.
    """

    genes: Any
    shift: np.ndarray
    components: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.genes.shape

    def __len__(self) -> int:
        return self.genes.shape[0]

    def __getitem__(self, idx) -> np.ndarray:
        part = self.genes[idx]
        part = part.toarray() if sp.issparse(part) else np.asarray(part)
        return (part - self.shift[idx] @ self.components).astype(np.float32)

    def moments(self, basis: TargetBasis, chunk: int = 8192) -> GeneMoments:
        """The moments of the shifted rows, from one pass over the unshifted genes (see the class docs)."""
        V = np.asarray(basis.components, dtype=np.float64)
        m = np.asarray(basis.mean, dtype=np.float64).ravel()
        C = np.asarray(self.components, dtype=np.float64)
        d = np.asarray(self.shift, dtype=np.float64)
        n_genes, k = C.shape[1], V.shape[0]
        joint = GeneMoments.of(self.genes, TargetBasis(np.vstack([V, C]), m), chunk)
        own, through_c = joint.proj[:, :k], joint.proj[:, k:]
        sq = joint.sq - 2 * (through_c * d).sum(axis=1) + ((d @ (C @ C.T)) * d).sum(axis=1) / n_genes
        return GeneMoments(
            joint.mean - d @ C.mean(axis=1),
            sq,
            own - d @ (C @ V.T) / n_genes,
            joint.dot_m - d @ (C @ m) / n_genes,
        )


def reconstruction_moments(z, basis: BasisMoments, genes: GeneMoments) -> tuple[Any, Any, Any]:
    """Per cell ``mean(yhat)``, ``mean(yhat^2)`` and ``mean(yhat y)`` of the genes ``z`` stands for.

    Parameters
    ----------
    z
        Coefficients (cells x k), float64; numpy, or torch with torch moments.
    basis, genes
        The basis's moments and those of the same cells' true genes.

    Returns
    -------
    tuple
        Three per-cell vectors.
    """
    mean = z @ basis.v_mean + basis.m_mean
    second = ((z @ basis.vvt) * z).sum(axis=1) + 2 * (z @ basis.vm) + basis.m_sq
    cross = (z * genes.proj).sum(axis=1) + genes.dot_m
    return mean, second, cross


def gene_pearson(z, basis: BasisMoments, genes: GeneMoments, eps: float = 1e-8):
    """Per-cell Pearson correlation over the genes between ``z``'s reconstruction and the truth.

    Parameters
    ----------
    z, basis, genes
        As :func:`reconstruction_moments`.
    eps
        Floor of a centred row's norm (as ``torch.nn.functional.normalize``): a constant row scores 0.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        One correlation per cell.
    """
    mean, second, cross = reconstruction_moments(z, basis, genes)
    n = basis.n_genes
    pred_norm = (n * (second - mean**2).clip(min=0)) ** 0.5
    true_norm = (n * (genes.sq - genes.mean**2).clip(min=0)) ** 0.5
    return n * (cross - mean * genes.mean) / pred_norm.clip(min=eps) / true_norm.clip(min=eps)


def gene_squared_error(z, basis: BasisMoments, genes: GeneMoments):
    """Per-cell mean squared error over the genes of ``z``'s reconstruction (same arguments)."""
    _, second, cross = reconstruction_moments(z, basis, genes)
    return second - 2 * cross + genes.sq


__all__ = ["BasisMoments", "GeneMoments", "ShiftedRows", "gene_pearson", "gene_squared_error", "reconstruction_moments"]
