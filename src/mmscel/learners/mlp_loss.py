"""The MLP's training objective: the main loss, an optional weighted auxiliary loss, and the schedules of both."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

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
        pred, true = (recon(out), y_full) if recon is not None else (out, y_out)
        loss = compute_loss(self.kind, pred, true)
        if self.aux == "none" or weight == 0:
            return loss
        aux_pred, aux_true = (pred, true) if self.aux_on_targets else (out, y_out)
        return loss + weight * AUX_LOSSES[self.aux](aux_pred, aux_true)


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
