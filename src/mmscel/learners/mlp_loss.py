"""The MLP's training objective: the main loss, an optional weighted auxiliary loss, and the schedules of both."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mmscel.targets.base import TargetBasis
from mmscel.targets.moments import BasisMoments, GeneMoments, gene_pearson, gene_squared_error

AUX_LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss}


def correlation_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """One minus the mean per-row Pearson correlation: the competition metric as a loss.

    Parameters
    ----------
    pred, target
        Predicted and true rows (rows x columns).
    eps
        Floor of a centred row's norm, so a constant row contributes 0 instead of NaN.

    Returns
    -------
    torch.Tensor
        A scalar in [0, 2].
    """
    p = F.normalize(pred - pred.mean(dim=1, keepdim=True), dim=1, eps=eps)
    t = F.normalize(target - target.mean(dim=1, keepdim=True), dim=1, eps=eps)
    return 1.0 - (p * t).sum(dim=1).mean()


def compute_loss(kind: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Compute the training loss named by ``kind``.

    Parameters
    ----------
    kind
        ``"mse"``, ``"correlation"`` (:func:`correlation_loss`) or ``"mse+correlation"`` (their sum).
    pred, target
        Predicted and true rows.

    Returns
    -------
    torch.Tensor
        The scalar loss.
    """
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "correlation":
        return correlation_loss(pred, target)
    return F.mse_loss(pred, target) + correlation_loss(pred, target)


def fade_weight(epoch: int, epochs: int, fade_after: int | None) -> float:
    """Share of the auxiliary loss's weight in an epoch: full, then fading quadratically to about 0.

    Parameters
    ----------
    epoch
        The epoch, 1-based.
    epochs
        Epochs of the whole fit.
    fade_after
        Epochs at full weight before the fade (None: full weight throughout).

    Returns
    -------
    float
        1 up to epoch ``fade_after``, then ``(1 - t) ** 2`` with ``t`` going from 0 towards 1 by the last epoch.
    """
    if fade_after is None or epoch <= fade_after:
        return 1.0
    return (1.0 - (epoch - 1 - fade_after) / (epochs - fade_after)) ** 2


@dataclass(frozen=True)
class Objective:
    """The loss of one batch: ``loss`` on the scored targets plus ``weight`` x an auxiliary loss.

    Parameters
    ----------
    kind
        The main loss (see :func:`compute_loss`), taken on the reconstructed targets when reconstructing.
    aux
        ``"none"``, ``"mse"`` or ``"mae"``.
    aux_on_targets
        Take the auxiliary loss on the scored (reconstructed) targets rather than on the network's outputs.
    """

    kind: str
    aux: str = "none"
    aux_on_targets: bool = False

    def __call__(
        self,
        outputs: list[torch.Tensor],
        recon,
        y_out: torch.Tensor,
        y_full: torch.Tensor | None,
        weight: float,
    ) -> torch.Tensor:
        """The mean over the heads of each head's loss.

        Parameters
        ----------
        outputs
            Each head's outputs for the batch (rows x outputs).
        recon
            The in-network reconstruction (None: the outputs are the scored targets).
        y_out, y_full
            The batch's targets in the output space, and its scored targets (None without ``recon``).
        weight
            This epoch's weight of the auxiliary loss.

        Returns
        -------
        torch.Tensor
            The scalar loss.
        """
        losses = [self._one(out, recon, y_out, y_full, weight) for out in outputs]
        return losses[0] if len(losses) == 1 else torch.stack(losses).mean()

    def _one(self, out, recon, y_out, y_full, weight: float) -> torch.Tensor:
        loss = recon.loss(self.kind, out, y_full) if recon is not None else compute_loss(self.kind, out, y_out)
        if self.aux == "none" or weight == 0:
            return loss
        if self.aux_on_targets and recon is not None:
            return loss + weight * recon.aux(self.aux, out, y_full)
        return loss + weight * AUX_LOSSES[self.aux](out, y_out)


class GeneMomentLoss:
    """Losses on the genes that coefficients stand for, computed exactly from per-cell moments.

    The correlation and the squared error over all genes of ``z @ V + m`` against the true
    genes, from the basis's and the cells' moments (:mod:`mmscel.targets.moments`) in float64:
    equal to the losses on the reconstructed genes up to rounding, at O(k^2) a cell.

    Parameters
    ----------
    basis
        The basis's moments as torch tensors on the training device.
    """

    def __init__(self, basis: BasisMoments):
        self.basis = basis

    def loss(self, kind: str, out: torch.Tensor, genes: GeneMoments) -> torch.Tensor:
        """The main loss ``kind`` (see :func:`compute_loss`) of a batch, given its cells' moments."""
        z = out.double()
        terms = []
        if kind in ("mse", "mse+correlation"):
            terms.append(gene_squared_error(z, self.basis, genes).mean())
        if kind in ("correlation", "mse+correlation"):
            terms.append(1.0 - gene_pearson(z, self.basis, genes).mean())
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]

    def aux(self, kind: str, out: torch.Tensor, genes: GeneMoments) -> torch.Tensor:
        """The auxiliary loss on the genes: only ``"mse"`` follows from the moments."""
        if kind != "mse":
            raise ValueError(f"the {kind} of the genes does not follow from their moments")
        return gene_squared_error(out.double(), self.basis, genes).mean()


def gene_objective(recon, Y_full, basis: TargetBasis, aux: str, aux_on_targets: bool, device):
    """The loss on the genes and what each batch reads for it: the genes' moments, or the genes.

    Every loss but the MAE on the genes follows exactly from the moments (:class:`GeneMomentLoss`),
    at O(k^2) a cell rather than densifying and reconstructing each batch's genes.

    Parameters
    ----------
    recon
        The network's dense reconstruction (None: the loss is not on the genes).
    Y_full
        The training cells' genes (dense, CSR or a row subset).
    basis
        The map from the outputs to the genes.
    aux, aux_on_targets
        The auxiliary loss and whether it is on the genes.
    device
        Where the fit computes.

    Returns
    -------
    tuple
        (loss on the genes, the per-cell source of a batch): (None, None) without ``recon``.
    """
    if recon is None:
        return None, None
    if aux == "mae" and aux_on_targets:
        return recon.to(device), Y_full
    return GeneMomentLoss(BasisMoments.of(basis).of_torch(device)), GeneMoments.of(Y_full, basis).of_torch(device)


class GenePearson:
    """The early-stopping score on the genes: each cell's Pearson from the moments, computed once a fit.

    Parameters
    ----------
    basis
        The map from the outputs to the genes.
    Y_full
        The early-stopping cells' genes.
    """

    def __init__(self, basis: TargetBasis, Y_full):
        self.basis, self.genes = BasisMoments.of(basis), GeneMoments.of(Y_full, basis)

    def __call__(self, pred: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Per-cell Pearson of the outputs ``pred`` of the cells ``rows``, clipped to [-1, 1]."""
        return gene_pearson(pred.astype(np.float64), self.basis, self.genes.take(rows)).clip(-1, 1)


def batches_per_epoch(n_rows: int, batch_size: int) -> int:
    """Mini-batches of an epoch when a last batch of one row joins the previous one.

    Parameters
    ----------
    n_rows, batch_size
        Training rows and rows per batch.

    Returns
    -------
    int
        The number of optimiser steps an epoch takes.
    """
    n = max(1, math.ceil(n_rows / batch_size))
    return n - 1 if n > 1 and n_rows - (n - 1) * batch_size < 2 else n
