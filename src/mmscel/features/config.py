"""Feature settings per task (validated by pydantic; unknown keys are refused by name).

``blocks`` lists the feature blocks of a task in column order; a block whose
setting turns it off is skipped.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import pydantic


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class CiteFeatures(_Strict):
    """Features of the CITEseq inputs."""

    blocks: ClassVar[tuple[str, ...]] = ("input_svd", "selected_genes", "cell_stats", "donor_sex")

    svd_components: int = pydantic.Field(128, ge=2, le=4096)
    protein_genes: bool = True  # raw columns of genes named after a target protein
    top_correlated_genes: int = pydantic.Field(0, ge=0, le=1000)  # per target, on train
    batch_centering: bool = False  # subtract each (donor, day) group's median
    cell_stats: bool = True
    donor_sex: bool = True


class MultiFeatures(_Strict):
    """Features of the Multiome inputs, and the size of the target SVD."""

    blocks: ClassVar[tuple[str, ...]] = (
        "input_svd",
        "binary_svd",
        "cell_stats",
        "chromosome_ratios",
        "donor_sex",
    )

    svd_components: int = pydantic.Field(128, ge=2, le=4096)
    transforms: list[Literal["binarize", "log1p", "l2"]] = []
    binary_svd_components: int = pydantic.Field(0, ge=0, le=4096)  # a second SVD on the binarised matrix
    target_svd_components: int = pydantic.Field(128, ge=2, le=4096)
    cell_stats: bool = True
    chromosome_ratios: bool = True
    donor_sex: bool = True
    batch_centering: bool = False


FEATURE_CONFIGS: dict[str, type[CiteFeatures] | type[MultiFeatures]] = {"cite": CiteFeatures, "multi": MultiFeatures}
