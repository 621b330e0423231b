"""Scores of coefficients on the genes from per-cell moments: equal to the reconstructed genes' scores."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmscel.learners.base import RowSubset, TargetBasis
from mmscel.learners.mlp_loss import GeneMomentLoss, GenePearson, compute_loss, gene_objective
from mmscel.metrics import pearson_per_row
from mmscel.targets.moments import BasisMoments, GeneMoments, ShiftedRows, gene_pearson, gene_squared_error


def problem(cells=40, genes=300, k=6, seed=0):
    """Sparse non-negative genes, a basis whose rows are not orthonormal, and coefficients."""
    rng = np.random.default_rng(seed)
    Y = rng.poisson(0.4, (cells, genes)).astype(np.float64) * rng.uniform(0.5, 2.0, genes)
    V = rng.normal(size=(k, genes)) / np.sqrt(genes)
    basis = TargetBasis(components=V.astype(np.float32), mean=rng.uniform(0, 1, genes).astype(np.float32))
    z = rng.normal(size=(cells, k))
    return Y, basis, z


def reconstructed(z, basis):
    return z @ basis.components.astype(np.float64) + basis.mean.astype(np.float64)


def shifted_problem():
    """Genes moved by a low-rank shift per cell: the view, and the same rows dense."""
    Y, basis, z = problem()
    rng = np.random.default_rng(5)
    C, shift = rng.normal(size=(4, Y.shape[1])), rng.normal(size=(len(Y), 4))
    view = ShiftedRows(RowSubset(sp.csr_matrix(Y), np.arange(len(Y))), shift.astype(np.float32), C.astype(np.float32))
    dense = Y - shift.astype(np.float32).astype(np.float64) @ C.astype(np.float32).astype(np.float64)
    return view, dense, basis, z


@pytest.mark.parametrize("kind", ["dense", "csr", "row_subset", "shifted"])
def test_pearson_and_squared_error_equal_those_of_the_reconstructed_genes(kind):
    Y, basis, z = problem()
    rows = np.arange(len(Y))[::-1].copy()
    source = {"dense": Y, "csr": sp.csr_matrix(Y), "row_subset": RowSubset(sp.csr_matrix(Y[rows]), np.argsort(rows))}
    if kind == "shifted":
        source[kind], Y, basis, z = shifted_problem()
    genes = GeneMoments.of(source[kind], basis, chunk=7)  # several chunks
    moments = BasisMoments.of(basis)
    dense = reconstructed(z, basis)
    np.testing.assert_allclose(gene_pearson(z, moments, genes), pearson_per_row(Y, dense), atol=1e-12)
    np.testing.assert_allclose(gene_squared_error(z, moments, genes), ((dense - Y) ** 2).mean(axis=1), rtol=1e-12)


def test_a_constant_cell_scores_zero_like_the_dense_loss():
    Y, basis, z = problem(cells=3)
    Y[1] = 2.0
    score = gene_pearson(z, BasisMoments.of(basis), GeneMoments.of(Y, basis))
    assert abs(score[1]) < 1e-6 and np.isfinite(score).all()


def test_the_torch_loss_and_its_gradient_equal_the_dense_ones():
    Y, basis, z = problem()
    loss = GeneMomentLoss(BasisMoments.of(basis).of_torch())
    genes = GeneMoments.of(Y, basis).of_torch()
    V, m = torch.as_tensor(basis.components, dtype=torch.float64), torch.as_tensor(basis.mean, dtype=torch.float64)
    for kind in ("correlation", "mse", "mse+correlation"):
        exact, dense = (torch.tensor(z, requires_grad=True) for _ in range(2))
        by_moments = loss.loss(kind, exact, genes)
        on_genes = compute_loss(kind, dense @ V + m, torch.as_tensor(Y))
        by_moments.backward()
        on_genes.backward()
        assert by_moments.item() == pytest.approx(on_genes.item(), abs=1e-12)
        torch.testing.assert_close(exact.grad, dense.grad, rtol=1e-9, atol=1e-12)
    aux = loss.aux("mse", torch.tensor(z), genes).item()
    assert aux == pytest.approx(((reconstructed(z, basis) - Y) ** 2).mean(), rel=1e-12)
    with pytest.raises(ValueError, match="mae"):
        loss.aux("mae", torch.tensor(z), genes)


def test_the_batch_moments_are_those_of_the_batch_cells():
    Y, basis, z = problem()
    genes = GeneMoments.of(Y, basis)
    rows = np.array([5, 0, 17])
    batch = genes.take(rows)
    alone = GeneMoments.of(Y[rows], basis)
    for name in ("mean", "sq", "proj", "dot_m"):  # BLAS may sum a product of other shape in another order
        np.testing.assert_allclose(getattr(batch, name), getattr(alone, name), rtol=1e-13, atol=1e-16)
    torch_batch = genes.of_torch().take(torch.as_tensor(rows))
    np.testing.assert_array_equal(torch_batch.proj.numpy(), batch.proj)


def test_only_the_mae_on_the_genes_keeps_the_dense_reconstruction():
    Y, basis, _ = problem()
    assert gene_objective(None, Y, basis, "none", False, "cpu") == (None, None)
    exact, source = gene_objective(object(), Y, basis, "mse", True, "cpu")
    assert isinstance(exact, GeneMomentLoss) and isinstance(source, GeneMoments)

    class Dense:
        def to(self, device):
            return self

    dense, genes = gene_objective(Dense(), Y, basis, "mae", True, "cpu")
    assert isinstance(dense, Dense) and genes is Y


def test_the_early_stopping_score_equals_the_metric_on_the_genes():
    Y, basis, z = problem()
    score = GenePearson(basis, sp.csr_matrix(Y))
    rows = np.arange(10, 30)
    pred = z[rows].astype(np.float32)
    expected = pearson_per_row(Y[rows], reconstructed(pred.astype(np.float64), basis))
    np.testing.assert_allclose(score(pred, rows), expected, atol=1e-12)


def test_shifted_rows_read_as_the_shifted_genes():
    view, dense, _, _ = shifted_problem()
    assert view.shape == dense.shape and len(view) == len(dense)
    np.testing.assert_allclose(view[3:9], dense[3:9], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(view[np.array([7, 2])], dense[[7, 2]], rtol=1e-5, atol=1e-5)
