"""Feature blocks: one small class per group of columns, in ``FEATURE_BLOCKS``.

A task's feature config lists its blocks in column order (``blocks``); each
block says whether the config turns it on and computes its columns from a
:class:`BlockContext`. Blocks that change the inputs in place (the input SVD
applies its transforms without a copy, to stay within memory at full size) run
after all the others, whatever their column position.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

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
from mmscel.registry import Registry

Columns = tuple[list[str], np.ndarray]


@dataclass
class BlockContext:
    """What blocks read: the stacked inputs (train rows, then test rows) and the split's facts.

    ``arrays`` collects side outputs (SVD components, chosen genes) stored beside the features.
    """

    inputs: sp.csr_matrix
    train: Any  # mmscel.data.load.Split of the training cells (names, targets when loaded, metadata)
    metadata: pd.DataFrame  # train then test cells
    config: Any
    seed: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class FeatureBlock(ABC):
    """A group of feature columns."""

    name: ClassVar[str]
    mutates_inputs: ClassVar[bool] = False
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
    """Randomized TruncatedSVD of the inputs (after the config's transforms), fitted on train and test."""

    name = "input_svd"
    mutates_inputs = True

    def compute(self, ctx: BlockContext) -> Columns:
        """``svd_<i>`` columns, centred per (donor, day) group when ``batch_centering``."""
        steps = getattr(ctx.config, "transforms", [])
        scores, components = truncated_svd(
            transform(ctx.inputs, steps, copy=False), ctx.config.svd_components, ctx.seed
        )
        if ctx.config.batch_centering:
            scores = centre_by_group(scores, ctx.metadata)
        ctx.arrays["input_svd_components"] = components
        return [f"svd_{i}" for i in range(scores.shape[1])], scores


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


def compute_blocks(config, ctx: BlockContext) -> list[Columns]:
    """The enabled blocks of ``config.blocks``, computed (in-place blocks last) and returned in column order.

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
    for block in sorted(blocks, key=lambda b: b.mutates_inputs):  # stable: column order otherwise
        results[block.name] = block.compute(ctx)
    return [results[block.name] for block in blocks if len(results[block.name][0])]
