"""The Multiome blend's cis correction: exact moments and residuals, planted links found, honest gain."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import Ridge

from mmscel.blend.cis import CisMap, apply_cis, corrected_scores, opened_peaks, prediction_moments
from mmscel.blend.cis_fit import cross_fit_cis, fit_blend_cis, fit_cis_map, fit_cis_maps, projected_residuals
from mmscel.metrics import pearson_per_row
from mmscel.targets import TargetBasis


def _basis(rng, k=5, genes=40, mean=True):
    components = rng.normal(size=(k, genes)).astype(np.float32)
    offset = rng.normal(size=genes).astype(np.float32) if mean else np.zeros(genes, np.float32)
    return TargetBasis(components, offset)


@pytest.mark.parametrize("with_basis", [True, False])
def test_moments_and_residuals_equal_the_reconstructed_genes(with_basis):
    rng = np.random.default_rng(0)
    basis = _basis(rng) if with_basis else None
    predictions = rng.normal(size=(30, 5 if with_basis else 40))
    genes = basis.reconstruct(predictions).astype(np.float64) if with_basis else predictions
    mean, sd = prediction_moments(predictions, basis)
    np.testing.assert_allclose(mean, genes.mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(sd, genes.std(axis=1), atol=1e-5)

    truth = sp.random(30, 40, density=0.4, random_state=1, format="csr") * 5
    residual, cell_slopes = projected_residuals(predictions, basis, truth)
    y = truth.toarray()
    y_centred = y - y.mean(axis=1, keepdims=True)
    shape = (genes - genes.mean(axis=1, keepdims=True)) / genes.std(axis=1, keepdims=True)
    slopes = (y_centred * shape).mean(axis=1)
    some = np.array([3, 0, 17, 39])
    np.testing.assert_allclose(residual(some), (y_centred - slopes[:, None] * shape)[:, some], atol=1e-5)
    np.testing.assert_allclose(cell_slopes, slopes, atol=1e-6)


def _planted(n=1500, peaks=300, genes=30, seed=0):
    """Genes that each follow one peak (genes 0-9, peaks 0-9), plus a shared program; predictions know the program."""
    rng = np.random.default_rng(seed)
    inputs = sp.csr_matrix(rng.random((n, peaks)) < 0.2, dtype=np.float32)
    program = rng.normal(size=(n, 1))
    loading = rng.normal(size=(1, genes))
    truth = 2 + program @ loading + 0.3 * rng.normal(size=(n, genes))
    truth[:, :10] += 1.5 * inputs[:, :10].toarray()
    return inputs, sp.csr_matrix(truth), program @ loading + 2


def test_peaks_and_weights_are_the_plain_ridge_on_the_most_correlated_peaks():
    rng = np.random.default_rng(5)
    n, peaks, genes, m = 400, 60, 12, 3
    inputs = sp.csr_matrix(rng.random((n, peaks)) < rng.uniform(0.05, 0.9, peaks), dtype=np.float32)
    error = rng.normal(size=(n, genes)) + rng.normal(scale=5, size=genes)  # far from centred
    error += inputs[:, :genes].toarray() * rng.uniform(0.2, 1.0, genes)
    cis = fit_cis_map(inputs, lambda g: error[:, g], genes, peaks_per_gene=m, alpha=7.0, selection_cells=n)
    x = inputs.toarray().astype(np.float64)
    frequency = x.mean(axis=0)
    score = np.abs(x.T @ (error - error.mean(axis=0))) / np.sqrt(frequency * (1 - frequency))[:, None]
    for gene in range(genes):
        expected = np.sort(np.argsort(-score[:, gene])[:m])
        order = np.argsort(cis.peaks[gene])
        np.testing.assert_array_equal(cis.peaks[gene][order], expected)
        fitted = Ridge(alpha=7.0).fit(x[:, expected], error[:, gene])
        np.testing.assert_allclose(cis.weights[gene][order], fitted.coef_, atol=1e-9)
        assert cis.offset[gene] == pytest.approx(fitted.intercept_ - error[:, gene].mean(), abs=1e-9)


def test_planted_links_are_found_and_lift_held_out_cells():
    inputs, truth, predictions = _planted()
    fit_rows, held = np.arange(1000), np.arange(1000, 1500)
    residual, slopes = projected_residuals(predictions[fit_rows], None, truth[fit_rows])
    slope = slopes.mean()
    options = {"peaks_per_gene": 2, "alpha": 10.0, "selection_cells": 600}
    cis = fit_cis_map(inputs[fit_rows], residual, 30, **options).scaled(1 / slope)
    assert all(g in cis.peaks[g] for g in range(10))  # each linked gene's own peak is among its two
    base = corrected_scores(None, inputs[held], predictions[held], None, truth[held])
    corrected = corrected_scores(cis, inputs[held], predictions[held], None, truth[held])
    assert corrected.mean() > base.mean() + 0.01
    again = fit_cis_map(inputs[fit_rows], residual, 30, **options)
    np.testing.assert_array_equal(again.peaks, cis.peaks)  # deterministic
    np.testing.assert_allclose(again.weights / slope, cis.weights)


def test_cross_fitting_scores_each_fold_with_the_map_fitted_without_it():
    inputs, truth, predictions = _planted(n=900)
    folds = np.repeat([0, 1, 2], 300)
    options = {"peaks_per_gene": 2, "alpha": 10.0, "selection_cells": 500}
    fitted = cross_fit_cis(inputs, predictions, None, truth, folds, **options)
    assert sorted(fitted.by_fold) == [0, 1, 2] and fitted.gain > 0.01
    held = folds == 1
    expected = corrected_scores(fitted.by_fold[1], inputs[held], predictions[held], None, truth[held])
    base = corrected_scores(None, inputs, predictions, None, truth)
    assert fitted.base == pytest.approx(base.mean())
    assert np.isclose(expected.mean(), fitted.corrected, atol=0.05)  # one fold of three, near the mean
    assert cross_fit_cis(inputs, predictions, None, truth, np.zeros(900, int), **options) is None


@pytest.mark.parametrize("selection_cells", [1000, 400])
def test_cross_fitting_ranks_once_and_equals_separate_fits(selection_cells):
    inputs, truth, predictions = _planted(n=900)
    folds = np.repeat([-1, 0, 1, 2], [90, 270, 270, 270])  # cells in no fold are in every fit
    options = {"peaks_per_gene": 2, "alpha": 10.0, "selection_cells": selection_cells}
    fitted = cross_fit_cis(inputs, predictions, None, truth, folds, **options)
    alone = fit_blend_cis(inputs, predictions, None, truth, **options)
    _assert_same_map(fitted.full, alone)
    if selection_cells < len(folds):
        return  # the folds' fits rank on their cells among the one draw, not on a draw of their own
    for fold in (0, 2):
        rest = folds != fold
        _assert_same_map(
            fitted.by_fold[fold], fit_blend_cis(inputs[rest], predictions[rest], None, truth[rest], **options)
        )


def test_a_draw_of_fit_cells_bounds_the_fit_and_every_cell_is_scored():
    inputs, truth, predictions = _planted(n=900)
    folds = np.repeat([0, 1, 2], 300)
    options = {"peaks_per_gene": 2, "alpha": 10.0, "selection_cells": 500}
    everyone = cross_fit_cis(inputs, predictions, None, truth, folds, **options)
    all_cells = cross_fit_cis(inputs, predictions, None, truth, folds, **options, fit_cells=900)
    _assert_same_map(all_cells.full, everyone.full)
    drawn = cross_fit_cis(inputs, predictions, None, truth, folds, **options, fit_cells=450)
    again = cross_fit_cis(inputs, predictions, None, truth, folds, **options, fit_cells=450)
    _assert_same_map(drawn.full, again.full)  # deterministic
    assert drawn.base == pytest.approx(everyone.base)  # scored on every cell of the folds
    assert all(g in drawn.full.peaks[g] for g in range(10)) and drawn.gain > 0.01
    assert not np.allclose(drawn.full.weights, everyone.full.weights)  # fitted on fewer cells
    alone = fit_blend_cis(inputs, predictions, None, truth, **options, fit_cells=450)
    _assert_same_map(alone, drawn.full)  # the same draw


def test_rows_of_the_whole_set_and_its_open_peaks_fit_what_their_copies_fit():
    """Level-2 passes the whole training set, its peaks as a bool pattern, with the rows of the blended cells."""
    whole, whole_truth, whole_predictions = _planted(n=1200)
    counts = whole.copy()
    counts.data *= np.random.default_rng(1).integers(1, 5, counts.nnz).astype(np.float32)
    counts.data[::7] = 0  # stored zeros: not open
    rows = np.random.default_rng(2).permutation(1200)[:900]
    predictions, folds = whole_predictions[rows], np.repeat([0, 1, 2], 300)
    options = {"peaks_per_gene": 2, "alpha": 10.0, "selection_cells": 500, "fit_cells": 450, "seed": 3}
    opened = opened_peaks(counts)
    assert opened.dtype == bool and opened.nnz == counts.nnz and np.shares_memory(opened.indices, counts.indices)

    copied = cross_fit_cis(counts[rows], predictions, None, whole_truth[rows], folds, **options)
    by_rows = cross_fit_cis(opened, predictions, None, whole_truth, folds, rows=rows, **options)
    for one, other in [(copied.full, by_rows.full)] + [(copied.by_fold[f], by_rows.by_fold[f]) for f in (0, 1, 2)]:
        np.testing.assert_array_equal(one.peaks, other.peaks)
        np.testing.assert_array_equal(one.weights, other.weights)
        np.testing.assert_array_equal(one.offset, other.offset)
    assert (by_rows.base, by_rows.corrected) == (copied.base, copied.corrected) and by_rows.gain > 0.01

    alone = fit_blend_cis(counts[rows], predictions, None, whole_truth[rows], **options)
    np.testing.assert_array_equal(
        fit_blend_cis(opened, predictions, None, whole_truth, rows=rows, **options).weights, alone.weights
    )
    sliced = corrected_scores(alone, counts[rows], predictions, None, whole_truth[rows])
    np.testing.assert_array_equal(corrected_scores(alone, opened, predictions, None, whole_truth, rows), sliced)


def test_the_maps_do_not_depend_on_the_threads():
    inputs, truth, predictions = _planted(n=900)
    residual, _ = projected_residuals(predictions, None, truth)
    folds = np.repeat([0, 1, 2], 300)
    fits = {0: [1, 2], 1: [0, 2], "full": [0, 1, 2]}
    options = {"peaks_per_gene": 2, "alpha": 10.0, "selection_cells": 700}
    one, two = (fit_cis_maps(inputs, residual, folds, fits, 30, **options, threads=t) for t in (1, 2))
    for key in fits:
        np.testing.assert_array_equal(one[key].peaks, two[key].peaks)
        np.testing.assert_array_equal(one[key].weights, two[key].weights)


def _assert_same_map(one: CisMap, other: CisMap):
    """The same peaks and weights per gene, in any order of a gene's peaks."""
    order, other_order = np.argsort(one.peaks, axis=1), np.argsort(other.peaks, axis=1)
    np.testing.assert_array_equal(
        np.take_along_axis(one.peaks, order, 1), np.take_along_axis(other.peaks, other_order, 1)
    )
    weights = np.take_along_axis(one.weights, order, 1)
    np.testing.assert_allclose(weights, np.take_along_axis(other.weights, other_order, 1), atol=1e-12)
    np.testing.assert_allclose(one.offset, other.offset, atol=1e-12)


def test_pairs_rows_and_packing_agree():
    rng = np.random.default_rng(3)
    inputs, truth, predictions = _planted(n=200)
    cis = CisMap(rng.integers(0, 300, (30, 3)), rng.normal(size=(30, 3)), rng.normal(size=30))
    again = CisMap.from_array(cis.to_array())
    np.testing.assert_array_equal(again.peaks, cis.peaks)
    np.testing.assert_array_equal(again.weights, cis.weights)
    dense = cis.dense(inputs)
    cells, genes = rng.integers(0, 200, 500), rng.integers(0, 30, 500)
    np.testing.assert_allclose(cis.at(inputs, cells, genes), dense[cells, genes])

    which = np.where(np.arange(200) < 50, -1, np.arange(200) % 2)
    predictions[7] = np.nan
    applied = apply_cis([cis, cis.scaled(2.0)], which, inputs, predictions, None)
    rows = applied.rows(0, 200)
    assert np.all(rows[:50] == 0) and np.all(rows[7] == 0)
    np.testing.assert_allclose(applied.at(cells, genes), rows[cells, genes])
    sd = predictions[60].std()
    np.testing.assert_allclose(rows[60], sd * cis.dense(inputs[60]).ravel())  # even cells: the first map
    np.testing.assert_allclose(rows[61], 2 * predictions[61].std() * cis.dense(inputs[61]).ravel())


def test_the_correction_keeps_the_per_cell_pearson_of_z_plus_correction():
    inputs, truth, predictions = _planted(n=100)
    cis = CisMap(np.tile([[0, 1]], (30, 1)), np.full((30, 2), 0.3), np.zeros(30))
    applied = apply_cis([cis], np.zeros(100, int), inputs, predictions * 3 + 1, None)
    corrected = predictions * 3 + 1 + applied.rows(0, 100)
    z = (predictions - predictions.mean(1, keepdims=True)) / predictions.std(1, keepdims=True)
    np.testing.assert_allclose(
        pearson_per_row(truth.toarray(), corrected), pearson_per_row(truth.toarray(), z + cis.dense(inputs)), atol=1e-9
    )
