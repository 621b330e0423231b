"""The torch pieces of the MLP learner: the network, the in-network gene reconstruction, the session."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch
import torch.utils.deterministic
from torch import nn

from mmscel.learners.base import TargetBasis, as_float32
from mmscel.learners.mlp_loss import AUX_LOSSES, compute_loss
from mmscel.targets.moments import GeneMoments

ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU}


class MLPNet(nn.Module):
    """Input standardisation (buffers), an encoder and a decoder of blocks, and one or more Linear heads.

    Every block is ``Linear -> norm -> act -> dropout``. The encoder's blocks
    have the widths ``hidden``; the decoder adds ``decoder_blocks`` blocks of
    one width. The heads read the last ``heads`` hidden states (the encoder's
    output, then each decoder block's), deepest last; the network's output is
    their mean.

    Parameters
    ----------
    n_in, n_out
        Input features and outputs.
    hidden
        Width of each encoder block.
    activation
        A key of ``ACTIVATIONS``.
    norm
        ``"batch"``, ``"layer"`` or ``"none"``.
    dropout
        Dropout rate of each encoder block (0: no dropout layer).
    decoder_blocks
        Blocks after the encoder.
    decoder_width
        Their width (None: the encoder's last width).
    decoder_dropout
        Their dropout rate (None: ``dropout``).
    heads
        Output heads, at most ``decoder_blocks + 1``.

    Raises
    ------
    ValueError
        When ``heads`` is not between 1 and ``decoder_blocks + 1``.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        hidden: list[int],
        activation: str,
        norm: str,
        dropout: float,
        decoder_blocks: int = 0,
        decoder_width: int | None = None,
        decoder_dropout: float | None = None,
        heads: int = 1,
    ):
        super().__init__()
        if not 1 <= heads <= decoder_blocks + 1:
            raise ValueError(f"heads must be between 1 and decoder_blocks + 1 = {decoder_blocks + 1}, got {heads}")
        self.register_buffer("x_mean", torch.zeros(n_in))
        self.register_buffer("x_std", torch.ones(n_in))
        self.body = nn.Sequential(*_blocks(n_in, hidden, activation, norm, dropout))
        states = [hidden[-1] if hidden else n_in] + [decoder_width or (hidden[-1] if hidden else n_in)] * decoder_blocks
        rate = dropout if decoder_dropout is None else decoder_dropout
        self.decoder = nn.ModuleList(
            nn.Sequential(*_blocks(states[i], [states[i + 1]], activation, norm, rate)) for i in range(decoder_blocks)
        )
        self.head = nn.Linear(states[-1], n_out)
        self.extra_heads = nn.ModuleList(nn.Linear(width, n_out) for width in states[-heads:-1])

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
        """Map already standardised features to outputs: the mean of the heads' outputs.

        Parameters
        ----------
        z
            Standardised features (rows x n_in).

        Returns
        -------
        torch.Tensor
            Outputs (rows x n_out).
        """
        outputs = self.outputs(z)
        return outputs[0] if len(outputs) == 1 else torch.stack(outputs).mean(dim=0)

    def outputs(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Every head's outputs for standardised features, deepest head last.

        Parameters
        ----------
        z
            Standardised features (rows x n_in).

        Returns
        -------
        list of torch.Tensor
            One (rows x n_out) tensor per head.
        """
        h = self.body(z)
        states = [h]
        for block in self.decoder:
            h = block(h)
            states.append(h)
        shallow = states[len(states) - 1 - len(self.extra_heads) : -1]
        return [head(state) for head, state in zip(self.extra_heads, shallow, strict=True)] + [self.head(h)]

    def all_heads(self) -> list[nn.Linear]:
        """The output layers, deepest last.

        Returns
        -------
        list of torch.nn.Linear
            The extra heads, then ``head``.
        """
        return [*self.extra_heads, self.head]


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

    def loss(self, kind: str, out: torch.Tensor, y_full: torch.Tensor) -> torch.Tensor:
        """The main loss ``kind`` on the reconstructed targets of the outputs ``out``."""
        return compute_loss(kind, self(out), y_full)

    def aux(self, kind: str, out: torch.Tensor, y_full: torch.Tensor) -> torch.Tensor:
        """The auxiliary loss (``"mse"`` or ``"mae"``) on the reconstructed targets."""
        return AUX_LOSSES[kind](self(out), y_full)


def _blocks(width: int, sizes: list[int], activation: str, norm: str, dropout: float) -> list[nn.Module]:
    """The layers of ``Linear -> norm -> act -> dropout`` blocks from ``width`` inputs through ``sizes``."""
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [nn.Linear(width, size), *_norm_layer(norm, size), ACTIVATIONS[activation]()]
        layers += [nn.Dropout(dropout)] if dropout > 0 else []
        width = size
    return layers


def _norm_layer(norm: str, size: int) -> list[nn.Module]:
    if norm == "batch":
        return [nn.BatchNorm1d(size)]
    return [nn.LayerNorm(size)] if norm == "layer" else []


def rows_tensor(Y: np.ndarray | sp.spmatrix, idx: np.ndarray) -> torch.Tensor:
    """Rows ``idx`` of a dense or sparse matrix as a dense float32 tensor (sparse densified per batch)."""
    block = Y[idx]
    block = block.toarray() if sp.issparse(block) else block
    return torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))


def batch_genes(source, idx: torch.Tensor, rows: torch.Tensor):
    """What the loss on the genes reads of a batch: its cells' moments, or their genes densified.

    Parameters
    ----------
    source
        :class:`~mmscel.targets.moments.GeneMoments` of the training cells, their genes, or None.
    idx, rows
        The batch's cells, on the CPU and on the training device.

    Returns
    -------
    GeneMoments or torch.Tensor or None
    """
    if source is None:
        return None
    if isinstance(source, GeneMoments):
        return source.take(rows)
    return rows_tensor(source, idx.numpy()).to(rows.device)


@contextlib.contextmanager
def torch_session(seed: int, n_jobs: int, device: torch.device | None = None) -> Iterator[None]:
    """Run a block with torch seeded, deterministic and on ``n_jobs`` threads; restore all on exit.

    Parameters
    ----------
    seed
        Seed of the forked global RNG (and of the GPU's, on ``cuda``).
    n_jobs
        Threads torch may use (at least one).
    device
        Where the block computes (None: the CPU). On a CUDA device, ops without a deterministic
        CUDA kernel warn instead of failing, and cuBLAS gets the workspace its deterministic mode
        needs (when nothing set ``CUBLAS_WORKSPACE_CONFIG`` before).

    Yields
    ------
    None
        Once, while the settings hold.
    """
    cuda = device is not None and device.type == "cuda"
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    if cuda:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.manual_seed(seed)
        torch.set_num_threads(max(1, n_jobs))
        try:
            torch.use_deterministic_algorithms(True, warn_only=cuda)
        except RuntimeError:  # pragma: no cover - a torch build without deterministic mode
            pass
        # NaN-filling every new tensor only catches reads of uninitialised memory, which
        # this code never does; torch documents turning it off as safe (~5% of a fit).
        torch.utils.deterministic.fill_uninitialized_memory = False
        try:
            yield
        finally:
            torch.utils.deterministic.fill_uninitialized_memory = fill
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            torch.set_num_threads(threads)
