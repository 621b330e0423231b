"""A multi-output MLP (PyTorch, CPU) with a per-cell correlation loss.

The network maps standardised SVD features to the learner's output space
(proteins, or the coefficients of a target SVD). When the runner passes a
:class:`~mmscel.learners.base.TargetBasis` and the full targets, the network's
``k`` outputs are reconstructed inside the training graph as
``z @ components + mean`` (a fixed buffer) and the loss is taken on the scored
targets themselves -- the largest single gain of the 1st-place solution.
``predict`` still returns the ``k`` coefficients; the runner reconstructs.

Fitting is seeded and deterministic on CPU: the global torch RNG is forked and
seeded, shuffling uses its own generator, and deterministic algorithms and the
thread count are set only for the duration of a fit or predict. Training
inputs are standardised once per fit (not per batch), with the same float32
operations the network applies at prediction time.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pydantic
import scipy.sparse as sp
import torch
import torch.nn.functional as F
import torch.utils.deterministic
from torch import nn

from mmscel.learners.base import BaseLearner, FitData, FitFailed, LearnerParams, TargetBasis, as_float32
from mmscel.metrics import pearson_per_row

MODEL_FILE = "mlp.pt"
INFO_FILE = "mlp.json"
PREDICT_BATCH = 4096
ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU}


class MLPParams(LearnerParams):
    """Parameters of :class:`MLPLearner`.

    Parameters
    ----------
    hidden
        Width of each hidden layer, input side first.
    dropout
        Dropout rate after each hidden activation (0: no dropout layers).
    activation
        The hidden layers' activation.
    norm
        Normalisation after each hidden Linear.
    lr
        AdamW learning rate.
    weight_decay
        AdamW (decoupled) weight decay.
    epochs
        Epochs at most.
    batch_size
        Rows per mini-batch.
    loss
        The training loss (see :func:`compute_loss`).
    patience
        Epochs without a better validation score before stopping.
    standardize_inputs
        Standardise the features with the training rows' mean and std (kept in the network).
    reconstruct
        With a basis and ``Y_full``: take the loss on ``z @ components + mean`` against ``Y_full``.
    """

    hidden: list[Annotated[int, pydantic.Field(ge=1, le=65_536)]] = pydantic.Field(
        default_factory=lambda: [256, 256], max_length=32
    )
    dropout: float = pydantic.Field(0.1, ge=0, lt=1)
    activation: Literal["silu", "relu", "gelu"] = "silu"
    norm: Literal["none", "batch", "layer"] = "layer"
    lr: float = pydantic.Field(1e-3, gt=0)
    weight_decay: float = pydantic.Field(1e-5, ge=0)
    epochs: Annotated[int, pydantic.Field(ge=1, le=100_000)] = 60
    batch_size: Annotated[int, pydantic.Field(ge=1, le=10_000_000)] = 256
    loss: Literal["mse", "correlation", "mse+correlation"] = "correlation"
    patience: Annotated[int, pydantic.Field(ge=1, le=100_000)] = 8
    standardize_inputs: bool = True
    reconstruct: bool = True


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


def _rows(Y: np.ndarray | sp.spmatrix, idx: np.ndarray) -> torch.Tensor:
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


class MLPLearner(BaseLearner):
    """Multi-output MLP trained with AdamW on MSE and/or the per-cell correlation loss.

    With ``valid`` given it early-stops on the validation per-cell Pearson
    (on reconstructed targets when a basis is given), restores the best
    epoch's weights and sets ``best_iterations = [best_epoch]`` (1-based).
    Saved as ``mlp.pt`` (a state dict, loaded with ``weights_only=True``,
    including the input scaling buffers) and ``mlp.json`` (architecture).
    """

    name = "mlp"
    library = "torch"
    quick_params = {"hidden": [64], "epochs": 15, "patience": 4, "batch_size": 64}
    Params = MLPParams
    uses_validation = True
    uses_full_targets = True  # the in-network reconstruction and the early-stopping score use all genes

    def fit(self, train: FitData, valid: FitData | None = None, basis: TargetBasis | None = None) -> MLPLearner:
        """Train the network (seeded, deterministic), early-stopping on ``valid``'s per-cell Pearson.

        Raises
        ------
        ValueError
            When ``basis`` does not map ``train.Y``'s columns onto ``train.Y_full``'s.
        FitFailed
            When the training loss stops being finite (``lr`` too high).
        """
        X = torch.from_numpy(as_float32(train.X))
        Y = as_float32(train.Y).reshape(len(X), -1)
        recon = self._reconstruction(train, basis)
        with torch_session(self.seed, self.n_jobs):
            self.model_ = self._build(X, Y)
            Z = self._fit_scaling(X) if self.params.standardize_inputs else X
            self._train(Z, Y, train.Y_full if recon is not None else None, recon, valid, basis)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions of the best epoch's network."""
        X = as_float32(X)
        out = np.empty((len(X), self.arch_["output_dim"]), dtype=np.float32)
        with torch_session(self.seed, self.n_jobs):
            for start in range(0, len(X), PREDICT_BATCH):
                out[start : start + PREDICT_BATCH] = self._forward(torch.from_numpy(X[start : start + PREDICT_BATCH]))
        return out

    def save(self, folder: Path) -> list[Path]:
        """Write the state_dict (``torch.save``) and the architecture as JSON."""
        folder.mkdir(parents=True, exist_ok=True)
        model_path, info_path = folder / MODEL_FILE, folder / INFO_FILE
        torch.save(self.model_.state_dict(), model_path)
        info = {**self.arch_, "best_iterations": self.best_iterations, "params": self.params.model_dump()}
        info_path.write_text(json.dumps(info, indent=1))
        return [model_path, info_path]

    def load(self, folder: Path) -> MLPLearner:
        """Read a network written by :meth:`save` (``weights_only=True``)."""
        info = json.loads((folder / INFO_FILE).read_text())
        self.arch_ = {key: info[key] for key in ("input_dim", "output_dim", "hidden", "activation", "norm", "dropout")}
        self.best_iterations = info.get("best_iterations")
        self.model_ = self._network()
        self.model_.load_state_dict(torch.load(folder / MODEL_FILE, weights_only=True, map_location="cpu"))
        self.model_.eval()
        return self

    def fit_info(self) -> dict[str, Any]:
        """Best epoch and the best validation per-cell Pearson."""
        info = super().fit_info()
        if getattr(self, "valid_scores_", None):
            info["best_valid_pearson"] = float(max(self.valid_scores_))
        return info

    # -- building ---------------------------------------------------------------

    def _reconstruction(self, train: FitData, basis: TargetBasis | None) -> Reconstruction | None:
        """The in-network reconstruction, when asked for and possible."""
        if not (self.params.reconstruct and basis is not None and train.Y_full is not None):
            return None
        if basis.components.shape[0] != train.Y.shape[1] or basis.components.shape[1] != train.Y_full.shape[1]:
            raise ValueError(
                f"basis components {basis.components.shape} do not map Y ({train.Y.shape[1]} columns) "
                f"to Y_full ({train.Y_full.shape[1]} columns)"
            )
        return Reconstruction(basis)

    def _build(self, X: torch.Tensor, Y: np.ndarray) -> MLPNet:
        """A fresh network for ``X`` with the head bias at the mean of ``Y`` (unit input scaling)."""
        p = self.params
        self.arch_ = {
            "input_dim": X.shape[1],
            "output_dim": Y.shape[1],
            "hidden": list(p.hidden),
            "activation": p.activation,
            "norm": p.norm,
            "dropout": p.dropout,
        }
        model = self._network()
        with torch.no_grad():
            model.head.bias.copy_(torch.from_numpy(Y.mean(axis=0)))
        return model

    def _fit_scaling(self, X: torch.Tensor) -> torch.Tensor:
        """Store the mean and (population) std of ``X`` in the network; return ``X`` standardised.

        One centred copy serves both the std and the training inputs; the result
        equals ``model_.standardize(X)`` bit for bit (same subtract, then divide).
        """
        mean = X.mean(dim=0)
        Z = X - mean
        std = Z.square().mean(dim=0).sqrt_()  # two-pass; torch's strided X.std(dim=0) is ~10x slower
        std = torch.where(std > 0, std, torch.ones_like(std))
        self.model_.x_mean.copy_(mean)
        self.model_.x_std.copy_(std)
        return Z.div_(std)

    def _network(self) -> MLPNet:
        a = self.arch_
        return MLPNet(a["input_dim"], a["output_dim"], a["hidden"], a["activation"], a["norm"], a["dropout"])

    # -- training ---------------------------------------------------------------

    def _train(self, Z, Y, Y_full, recon, valid: FitData | None, basis: TargetBasis | None) -> None:
        """Epoch loop on standardised inputs ``Z``, early-stopping on ``valid``; keeps the best weights."""
        p = self.params
        optimizer = torch.optim.AdamW(self.model_.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        generator = torch.Generator().manual_seed(self.seed)
        Y_t = torch.from_numpy(Y)
        self.valid_scores_: list[float] = []
        best_score, best_state, best_epoch = -np.inf, None, p.epochs
        for epoch in range(1, p.epochs + 1):
            self._epoch(Z, Y_t, Y_full, recon, optimizer, generator)
            if valid is None:
                continue
            score = self._valid_score(valid, basis)
            self.valid_scores_.append(score)
            if score > best_score:
                best_score, best_epoch, best_state = score, epoch, copy.deepcopy(self.model_.state_dict())
            elif epoch - best_epoch >= p.patience:
                break
        if best_state is not None:
            self.model_.load_state_dict(best_state)
        self.best_iterations = [best_epoch] if valid is not None else None
        self.model_.eval()

    def _epoch(self, Z, Y_t, Y_full, recon, optimizer, generator) -> None:
        """One pass over shuffled mini-batches of the standardised inputs ``Z``."""
        self.model_.train()
        order = torch.randperm(len(Z), generator=generator)
        for idx in self._batches(order):
            pred = self.model_.core(Z.index_select(0, idx))
            if recon is not None:
                loss = compute_loss(self.params.loss, recon(pred), _rows(Y_full, idx.numpy()))
            else:
                loss = compute_loss(self.params.loss, pred, Y_t.index_select(0, idx))
            value = loss.item()
            if not math.isfinite(value):
                raise FitFailed("lr", f"the MLP's training loss became {value} at lr {self.params.lr}; lower lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def _batches(self, order: torch.Tensor) -> list[torch.Tensor]:
        """Mini-batches of ``order``; a last batch of one row joins the previous one (batch norm)."""
        batches = list(order.split(self.params.batch_size))
        if len(batches) > 1 and len(batches[-1]) < 2:
            batches[-2:] = [torch.cat(batches[-2:])]
        return batches

    def _valid_score(self, valid: FitData, basis: TargetBasis | None) -> float:
        """Mean per-cell Pearson on ``valid`` (on reconstructed targets when a basis is given)."""
        X = as_float32(valid.X)
        total = 0.0
        for start in range(0, len(X), PREDICT_BATCH):
            rows = np.arange(start, min(start + PREDICT_BATCH, len(X)))
            pred = self._forward(torch.from_numpy(X[rows]))
            true = _rows(valid.Y, rows).numpy()
            if basis is not None and self.params.reconstruct:
                pred = basis.reconstruct(pred)
                true = _rows(valid.Y_full, rows).numpy() if valid.Y_full is not None else basis.reconstruct(true)
            total += float(pearson_per_row(true, pred).sum())
        return total / max(1, len(X))

    def _forward(self, X: torch.Tensor) -> np.ndarray:
        """Network outputs in eval mode without gradients, as float32 numpy."""
        self.model_.eval()
        with torch.no_grad():
            return self.model_(X).numpy().astype(np.float32, copy=False)
