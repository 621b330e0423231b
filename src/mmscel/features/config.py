"""Feature settings per task (validated by pydantic; unknown keys are refused by name).

``blocks`` lists the feature blocks of a task in column order; a block whose
setting turns it off is skipped. Options listed in ``quiet`` are left out of a
config's dump while at their default, so that the fingerprint of a config that
does not use them (and so its cached features) stays what it was before they
existed.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import pydantic


def drop_quiet_defaults(model: pydantic.BaseModel, data: dict) -> dict:
    """Remove from a model's dump the ``quiet`` fields that hold their default.

    Parameters
    ----------
    model
        A model with a ``quiet`` tuple of field names.
    data
        Its dump (changed in place).

    Returns
    -------
    dict
        ``data``.
    """
    for name in model.quiet:
        if getattr(model, name) == type(model).model_fields[name].default:
            data.pop(name, None)
    return data


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    quiet: ClassVar[tuple[str, ...]] = ()

    @pydantic.model_serializer(mode="wrap")
    def _dump(self, handler):
        return drop_quiet_defaults(self, handler(self))


_BATCH_OPTIONS = ("batch_svd_components", "batch_cell_types")
#: at most one input SVD component per this many cells (train + test); 0: ``svd_components`` as it is
CellsPerComponent = Annotated[int, pydantic.Field(ge=0, le=100_000)]


class CiteFeatures(_Strict):
    """Features of the CITEseq inputs."""

    blocks: ClassVar[tuple[str, ...]] = (
        "input_svd",
        "selected_genes",
        "cell_stats",
        "donor_sex",
        "day",
        "batch_svd",
        "batch_cell_types",
    )
    quiet: ClassVar[tuple[str, ...]] = (
        *_BATCH_OPTIONS,
        "day",
        "impute_components",
        "impute_iterations",
        "cells_per_component",
    )

    svd_components: int = pydantic.Field(128, ge=2, le=4096)
    cells_per_component: CellsPerComponent = 0
    protein_genes: bool = True  # raw columns of genes named after a target protein
    top_correlated_genes: int = pydantic.Field(0, ge=0, le=1000)  # per target, on train
    batch_centering: bool = False  # subtract each (donor, day) group's median
    cell_stats: bool = True
    donor_sex: bool = True
    day: bool = False  # the sampling day as a column (the private set is a later day than any training day)
    batch_svd_components: int = pydantic.Field(0, ge=0, le=64)  # SVD of each batch's median expression; 0: off
    batch_cell_types: bool = False  # each batch's composition in predicted cell types
    impute_components: int = pydantic.Field(0, ge=0, le=1024)  # rank of the SVD that fills the zeros; 0: off
    impute_iterations: int = pydantic.Field(1, ge=1, le=5)  # rounds of that imputation


class MultiFeatures(_Strict):
    """Features of the Multiome inputs, and the size of the target SVD."""

    blocks: ClassVar[tuple[str, ...]] = (
        "input_svd",
        "binary_svd",
        "cell_stats",
        "chromosome_ratios",
        "donor_sex",
        "day",
        "batch_svd",
        "batch_cell_types",
    )
    quiet: ClassVar[tuple[str, ...]] = (
        *_BATCH_OPTIONS,
        "day",
        "target_clip_quantile",
        "target_median_normalize",
        "target_impute_components",
        "cells_per_component",
    )

    svd_components: int = pydantic.Field(128, ge=2, le=4096)
    cells_per_component: CellsPerComponent = 0
    transforms: list[Literal["binarize", "log1p", "l2", "row_median"]] = []
    binary_svd_components: int = pydantic.Field(0, ge=0, le=4096)  # a second SVD on the binarised matrix
    target_svd_components: int = pydantic.Field(128, ge=2, le=4096)
    cell_stats: bool = True
    chromosome_ratios: bool = True
    donor_sex: bool = True
    day: bool = False  # the sampling day as a column (the private set is a later day than any training day)
    batch_centering: bool = False
    batch_svd_components: int = pydantic.Field(0, ge=0, le=64)
    batch_cell_types: bool = False
    # the gene targets' rows before the target SVD: clipped to their [q, 1 - q] quantiles (0: off), and
    # their counts divided by the median of their non-zero counts
    target_clip_quantile: float = pydantic.Field(0.0, ge=0.0, lt=0.5)
    target_median_normalize: bool = False
    # the rank of the SVD whose reconstruction fills the gene targets' zeros before the target SVD; 0: off
    target_impute_components: int = pydantic.Field(0, ge=0, le=1024)


FEATURE_CONFIGS: dict[str, type[CiteFeatures] | type[MultiFeatures]] = {"cite": CiteFeatures, "multi": MultiFeatures}
