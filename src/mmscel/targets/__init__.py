"""Target spaces: what level-1 learners fit, and how their outputs map back onto the scored targets.

A run stores its predictions in its space's *prediction space*: the proteins
(CITEseq), or the coefficients of the Multiome gene SVD (genes are
``coefficients @ components``). Learners fit the *learner space*:

==============  ==========================================  ======================================
space           learner space                               prediction space
==============  ==========================================  ======================================
native          the proteins (optionally per-cell z-scored)  the same
protein_svd     centred SVD coefficients, fitted per fold   proteins (optionally z-scored)
components      leading coefficients of the gene SVD        all coefficients (unfitted ones 0)
==============  ==========================================  ======================================

Each space may also centre learner targets per batch (donor x day), fitted on
each training fold (:mod:`mmscel.targets.batches`), and the protein spaces may
clip and median-normalise cells first (:mod:`mmscel.targets.rows`).

The metric, the per-cell Pearson, is invariant to a per-cell affine map, so a
space may z-score cells freely. Every space scores predictions against the
scored targets in row chunks, so a full-size Multiome matrix is never dense.
"""

from __future__ import annotations

from mmscel.targets.base import (
    ROW_CHUNK,
    RowSubset,
    TargetBasis,
    TargetSpace,
    matrix_signature,
    mean_profile_score,
    row_chunks,
)
from mmscel.targets.batches import BatchCentredGenes, BatchOffsets, batch_labels
from mmscel.targets.genes import GeneSVD
from mmscel.targets.proteins import NativeTargets, ProteinSVD


def space_from_manifest(space: dict, resolve) -> TargetSpace:
    """The space a run's manifest describes; ``resolve`` maps a stored file name to a path.

    Parameters
    ----------
    space
        The manifest's ``target_space`` entry.
    resolve
        ``RunStore.resolve``: where the Multiome components file lives.

    Returns
    -------
    TargetSpace
        A space that reconstructs, scores and compares predictions (fold-fitted state not included).
    """
    from mmscel.store.io import load_array

    if space["kind"] == GeneSVD.kind:
        components = load_array(resolve(space["components_file"]))
        out = GeneSVD.from_fitted(components, fitted_components=space.get("fitted_components"))
        out.source = {key: space[key] for key in ("features", "components_file") if key in space}
        return out
    standardize = bool(space.get("standardize_cells", False))
    rows = {"clip_quantile": space.get("clip_quantile", 0.0), "median_normalize": space.get("median_normalize", False)}
    if space["kind"] == ProteinSVD.kind:
        return ProteinSVD(space.get("fit_components", 32), standardize, space.get("n_targets"), **rows)
    return NativeTargets(standardize, space.get("n_targets"), **rows)


def blend_key(space: dict) -> tuple:
    """What two runs' manifest ``target_space`` entries must share for their predictions to be blended.

    Parameters
    ----------
    space
        A run manifest's ``target_space`` entry.

    Returns
    -------
    tuple
        Gene-SVD coefficients: the feature set the SVD belongs to and its size; proteins (native or
        through a protein SVD, both predicted as proteins): their number.
    """
    if space["kind"] == GeneSVD.kind:
        return (GeneSVD.kind, space["features"], space["n_components"])
    return (NativeTargets.kind, space.get("n_targets"))


__all__ = [
    "ROW_CHUNK",
    "BatchCentredGenes",
    "BatchOffsets",
    "GeneSVD",
    "NativeTargets",
    "ProteinSVD",
    "RowSubset",
    "TargetBasis",
    "TargetSpace",
    "batch_labels",
    "blend_key",
    "matrix_signature",
    "mean_profile_score",
    "row_chunks",
    "space_from_manifest",
]
