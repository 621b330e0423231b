"""The torch pieces of the MLP learner: the network, the in-network gene reconstruction, the losses, the session."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
import torch.utils.deterministic
from torch import nn

from mmscel.learners.base import TargetBasis, as_float32

ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU}


class MLPNet(nn.Module):
    """Input standardisation (buffers) followed by ``Linear -> norm -> act -> dropout`` blocks and a Linear head.

    Parameters
    ----------
    n_in, n_out
        Input features and outputs.
    hidden
        Width of each hidden block.
    activation
        A key of ``ACTIVATIONS``.
    norm
        ``"batch"``, ``"layer"`` or ``"none"``.
    dropout
        Dropout rate of each block (0: no dropout layer).
    """

    def __init__(self, n_in: int, n_out: int, hidden: list[int], activation: str, norm: str, dropout: float):
        super().__init__()
        self.register_buffer("x_mean", torch.zeros(n_in))
        self.register_buffer("x_std", torch.ones(n_in))
        layers: list[nn.Module] = []
        width = n_in
        for size in hidden:
            layers += [nn.Linear(width, size), *_norm_layer(norm, size), ACTIVATIONS[activation]()]
            layers += [nn.Dropout(dropout)] if dropout > 0 else []
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map raw features to outputs.

        Parameters
        ----------
        x
            Features (rows x n_in), not standardised.

        Returns
        -------
        torch.Tensor
            Outputs (rows x n_out) in the learner's output space.
        """
        return self.core(self.standardize(x))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """Scale features by the stored mean and std.

        Parameters
        ----------
        x
            Raw features, one row per cell.

        Returns
        -------
        torch.Tensor
            ``(x - x_mean) / x_std``, what :meth:`core` takes.
        """
        return (x - self.x_mean) / self.x_std

    def core(self, z: torch.Tensor) -> torch.Tensor:
        """Map already standardised features to outputs (the hidden blocks, then the head).

        Parameters
        ----------
        z
            Standardised features (rows x n_in).

        Returns
        -------
        torch.Tensor
            Outputs (rows x n_out).
        """
        return self.head(self.body(z))


class Reconstruction(nn.Module):
    """Fixed linear map ``z @ components + mean`` (non-trainable, not saved).

    Parameters
    ----------
    basis
        The map from the network's outputs to the scored targets.
    """

    def __init__(self, basis: TargetBasis):
        super().__init__()
        self.register_buffer("components", torch.as_tensor(as_float32(basis.components)), persistent=False)
        self.register_buffer("mean", torch.as_tensor(as_float32(basis.mean).ravel()), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruct the scored targets.

        Parameters
        ----------
        z
            The network's outputs for a batch of cells.

        Returns
        -------
        torch.Tensor
            ``z @ components + mean``: the batch's scored targets.
        """
        return z @ self.components + self.mean


def _norm_layer(norm: str, size: int) -> list[nn.Module]:
    if norm == "batch":
        return [nn.BatchNorm1d(size)]
    return [nn.LayerNorm(size)] if norm == "layer" else []


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


def rows_tensor(Y: np.ndarray | sp.spmatrix, idx: np.ndarray) -> torch.Tensor:
    """Rows ``idx`` of a dense or sparse matrix as a dense float32 tensor (sparse densified per batch)."""
    block = Y[idx]
    block = block.toarray() if sp.issparse(block) else block
    return torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))


@contextlib.contextmanager
def torch_session(seed: int, n_jobs: int) -> Iterator[None]:
    """Run a block with torch seeded, deterministic and on ``n_jobs`` threads; restore all on exit.

    Parameters
    ----------
    seed
        Seed of the forked global RNG.
    n_jobs
        Threads torch may use (at least one).

    Yields
    ------
    None
        Once, while the settings hold.
    """
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(max(1, n_jobs))
        try:
            torch.use_deterministic_algorithms(True)
        except RuntimeError:  # pragma: no cover - a torch build without deterministic mode
            pass
        # NaN-filling every new tensor only catches reads of uninitialised memory, which
        # this code never does; torch documents turning it off as safe (~5% of a fit).
        torch.utils.deterministic.fill_uninitialized_memory = False
        try:
            yield
        finally:
            torch.utils.deterministic.fill_uninitialized_memory = fill
            torch.use_deterministic_algorithms(deterministic)
            torch.set_num_threads(threads)
