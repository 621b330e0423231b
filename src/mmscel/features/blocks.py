"""Feature blocks: one small class per group of columns, in ``FEATURE_BLOCKS``.

A task's feature config lists its blocks in column order (``blocks``); each
block says whether the config turns it on and computes its columns from a
:class:`BlockContext`. Blocks run by ``stage``, whatever their column position:
first those that read the inputs as they are, then those that change them in
place (the input SVD applies its transforms without a copy, to stay within
memory at full size), then those that read only what earlier blocks handed on.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmscel.features.batches import batch_means, batch_svd, predicted_cell_types
from mmscel.features.compute import (
    STAT_NAMES,
    cell_stats,
    centre_by_group,
    chromosome_ratios,
    female,
    first_rows,
    selected_genes,
    transform,
    truncated_svd,
)
from mmscel.features.impute import imputed_svd
from mmscel.registry import Registry
from mmscel.targets import batch_labels

Columns = tuple[list[str], np.ndarray]

log = logging.getLogger(__name__)


@dataclass
class BlockContext:
    """What blocks read: the stacked inputs (train rows, then test rows) and the split's facts.

    ``arrays`` collects side outputs (SVD components, chosen genes) stored beside the features;
    ``handed_on`` holds what a block leaves for later stages (not stored).
    """

    inputs: sp.csr_matrix
    train: Any  # mmscel.data.load.Split of the training cells (names, targets when loaded, metadata)
    metadata: pd.DataFrame  # train then test cells
    config: Any
    seed: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    handed_on: dict[str, np.ndarray] = field(default_factory=dict)


class FeatureBlock(ABC):
    """A group of feature columns."""

    name: ClassVar[str]
    #: 0: reads the inputs as they are; 1: changes them in place; 2: reads only ``handed_on``
    stage: ClassVar[int] = 0
    #: the config setting that turns the block on (a flag or a count); None: always on
    switch: ClassVar[str | None] = None

    @classmethod
    def enabled(cls, config) -> bool:
        """Whether ``config`` turns the block on.

        Parameters
        ----------
        config
            A task's feature config.

        Returns
        -------
        bool
            True when the block has no ``switch``, or the config's setting of that name is truthy.
        """
        return cls.switch is None or bool(getattr(config, cls.switch, 0))

    @abstractmethod
    def compute(self, ctx: BlockContext) -> Columns:
        """Column names and values (cells x columns) of every train and test cell.

        Parameters
        ----------
        ctx
            The stacked inputs, the training split, the metadata, the config and the seed; a block may
            add side outputs to ``ctx.arrays``.

        Returns
        -------
        tuple of (list of str, numpy.ndarray)
            The column names, and one row per cell of ``ctx.inputs`` (train rows, then test rows).
        """


FEATURE_BLOCKS: Registry[type[FeatureBlock]] = Registry("feature block")


@FEATURE_BLOCKS.register("input_svd")
class InputSVD(FeatureBlock):
    """Randomized TruncatedSVD of the inputs (after the config's transforms), fitted on train and test.

    With ``impute_components`` (CITEseq), the SVD is that of the inputs with their zeros imputed and
    their columns centred (:func:`mmscel.features.impute.imputed_svd`).
    """

    name = "input_svd"
    stage = 1

    def compute(self, ctx: BlockContext) -> Columns:
        """``svd_<i>`` columns, centred per (donor, day) group when ``batch_centering``."""
        config = ctx.config
        inputs = transform(ctx.inputs, getattr(config, "transforms", []), copy=False)
        wanted = svd_size(config, inputs.shape[0])
        if getattr(config, "impute_components", 0):
            scores, components = imputed_svd(
                inputs, wanted, config.impute_components, config.impute_iterations, ctx.seed
            )
        else:
            scores, components = truncated_svd(inputs, wanted, ctx.seed)
        ctx.handed_on["input_svd_scores"] = scores
        if config.batch_centering:
            scores = centre_by_group(scores, ctx.metadata)
        ctx.arrays["input_svd_components"] = components
        return [f"svd_{i}" for i in range(scores.shape[1])], scores


def svd_size(config, cells: int) -> int:
    """The input SVD's components: ``svd_components``, at most one per ``cells_per_component`` cells.

    Many components of a small dataset fit its noise (on a few hundred cells 128 components cost the
    learners several points of CV, BENCHMARKS.md); the competition's 119,651 cells are far from the cap.

    Parameters
    ----------
    config
        The task's feature config.
    cells
        Rows of the SVD's matrix (train and test cells).

    Returns
    -------
    int
        At least 2.
    """
    if not config.cells_per_component:
        return config.svd_components
    capped = min(config.svd_components, max(2, cells // config.cells_per_component))
    if capped < config.svd_components:
        per = config.cells_per_component
        log.info(f"input SVD: {capped} components ({cells:,} cells / {per}), not {config.svd_components}")
    return capped


@FEATURE_BLOCKS.register("binary_svd")
class BinarySVD(FeatureBlock):
    """A second SVD, of the binarised inputs (which peaks are open at all)."""

    name = "binary_svd"
    switch = "binary_svd_components"

    def compute(self, ctx: BlockContext) -> Columns:
        """``binsvd_<i>`` columns."""
        scores, _ = truncated_svd(transform(ctx.inputs, ["binarize"]), ctx.config.binary_svd_components, ctx.seed + 1)
        return [f"binsvd_{i}" for i in range(scores.shape[1])], scores


@FEATURE_BLOCKS.register("selected_genes")
class SelectedGenes(FeatureBlock):
    """Raw input columns: genes named after a target protein, and the top correlated genes per target."""

    name = "selected_genes"

    def compute(self, ctx: BlockContext) -> Columns:
        """``gene:<name>`` columns (none when no gene is chosen)."""
        n_train = ctx.train.n_cells
        genes = selected_genes(first_rows(ctx.inputs, n_train), ctx.train, ctx.config)
        ctx.arrays["selected_genes"] = genes
        names = [f"gene:{ctx.train.input_names[g]}" for g in genes]
        values = ctx.inputs[:, genes].toarray() if len(genes) else np.zeros((ctx.inputs.shape[0], 0), np.float32)
        return names, values


@FEATURE_BLOCKS.register("cell_stats")
class CellStats(FeatureBlock):
    """Per-cell technical statistics: non-zero ratio, mean, std, quantiles of the non-zero values."""

    name = "cell_stats"
    switch = "cell_stats"

    def compute(self, ctx: BlockContext) -> Columns:
        """``stat:<name>`` columns."""
        return STAT_NAMES, cell_stats(ctx.inputs)


@FEATURE_BLOCKS.register("chromosome_ratios")
class ChromosomeRatios(FeatureBlock):
    """Per-cell share of open peaks on each chromosome (ATAC)."""

    name = "chromosome_ratios"
    switch = "chromosome_ratios"

    def compute(self, ctx: BlockContext) -> Columns:
        """``chrom:<name>`` columns."""
        return chromosome_ratios(ctx.inputs, ctx.train.input_names)


@FEATURE_BLOCKS.register("donor_sex")
class DonorSex(FeatureBlock):
    """Donor sex as a 0/1 column."""

    name = "donor_sex"
    switch = "donor_sex"

    def compute(self, ctx: BlockContext) -> Columns:
        """The ``female`` column."""
        return ["female"], female(ctx.metadata)


@FEATURE_BLOCKS.register("day")
class Day(FeatureBlock):
    """The sampling day as a number, so that a model can extrapolate to a later day (the private set's)."""

    name = "day"
    switch = "day"

    def compute(self, ctx: BlockContext) -> Columns:
        """The ``day`` column (the metadata's whole-number day, as float32)."""
        return ["day"], ctx.metadata["day"].to_numpy(np.float32)[:, None]


@FEATURE_BLOCKS.register("batch_svd")
class BatchSVD(FeatureBlock):
    """Batch context: an SVD of each (donor, day) batch's median expression, the same row for all its cells."""

    name = "batch_svd"
    switch = "batch_svd_components"

    def compute(self, ctx: BlockContext) -> Columns:
        """``batch_svd_<i>`` columns (z-scored over batches)."""
        batches = batch_labels(ctx.metadata)
        values = batch_svd(ctx.inputs, batches, ctx.config.batch_svd_components, ctx.seed + 2)
        return [f"batch_svd_{i}" for i in range(values.shape[1])], values


@FEATURE_BLOCKS.register("batch_cell_types")
class BatchCellTypes(FeatureBlock):
    """Batch context: each (donor, day) batch's composition in cell types, predicted from the input SVD.

    Test cells have no cell type in the metadata, so every cell's type
    probabilities come from a classifier fitted on the training cells' known
    types; a batch's composition is its cells' mean probabilities, made the
    same way for training and test batches.
    """

    name = "batch_cell_types"
    switch = "batch_cell_types"
    stage = 2

    def compute(self, ctx: BlockContext) -> Columns:
        """``batch_type:<type>`` columns, one per cell type known in training."""
        meta = ctx.metadata
        cell_types = meta["cell_type"] if "cell_type" in meta else pd.Series("", index=meta.index)
        types, probabilities = predicted_cell_types(
            ctx.handed_on["input_svd_scores"], cell_types, ctx.train.n_cells, ctx.seed
        )
        return [f"batch_type:{t}" for t in types], batch_means(probabilities, batch_labels(ctx.metadata))


def compute_blocks(config, ctx: BlockContext) -> list[Columns]:
    """The enabled blocks of ``config.blocks``, computed stage by stage and returned in column order.

    Parameters
    ----------
    config
        A task's feature config (its ``blocks`` give the column order).
    ctx
        The inputs and facts blocks read.

    Returns
    -------
    list
        (names, values) per enabled block that yields columns, in column order.

    Raises
    ------
    UnknownName
        When ``config.blocks`` names a block that is not registered.
    """
    blocks = [FEATURE_BLOCKS.get(name)() for name in config.blocks]
    blocks = [block for block in blocks if block.enabled(config)]
    results: dict[str, Columns] = {}
    for block in sorted(blocks, key=lambda b: b.stage):  # stable: column order otherwise
        results[block.name] = block.compute(ctx)
    return [results[block.name] for block in blocks if len(results[block.name][0])]
