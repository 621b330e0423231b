"""A multi-output MLP (PyTorch, CPU or a CUDA GPU) with a per-cell correlation loss.

The network maps standardised SVD features to the learner's output space
(proteins, or the coefficients of a target SVD). When the runner passes a
:class:`~mmscel.learners.base.TargetBasis` and the full targets, the network's
``k`` outputs are reconstructed inside the training graph as
``z @ components + mean`` (a fixed buffer) and the loss is taken on the scored
targets themselves -- the largest single gain of the 1st-place solution.
``predict`` still returns the ``k`` coefficients; the runner reconstructs.

Beyond a plain stack of blocks, the network may carry a decoder whose hidden
states each feed an output head (the heads' outputs averaged), an auxiliary
MSE/MAE term whose weight fades out, a OneCycle learning rate, and a fixed
number of epochs instead of early stopping (see :class:`MLPParams`).

Fitting is seeded and deterministic on CPU: the global torch RNG is forked and
seeded, shuffling uses its own generator, and deterministic algorithms and the
thread count are set only for the duration of a fit or predict. With
``device: cuda`` the network, inputs and batches live on the GPU (the batch
order is the CPU's); predictions come back as CPU float32 arrays. Training
inputs are standardised once per fit (not per batch), with the same float32
operations the network applies at prediction time.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.utils.deterministic

from mmscel.learners.base import BaseLearner, FitData, FitFailed, LearnerParams, TargetBasis, as_float32
from mmscel.learners.mlp_loss import GenePearson, Objective, batches_per_epoch, fade_weight, gene_objective
from mmscel.learners.mlp_net import MLPNet, Reconstruction, batch_genes, rows_tensor, torch_session
from mmscel.learners.mlp_params import MLPParams
from mmscel.metrics import pearson_per_row
from mmscel.progress import track

if TYPE_CHECKING:
    from mmscel.fold_probe import FoldProbe

log = logging.getLogger(__name__)

MODEL_FILE = "mlp.pt"
INFO_FILE = "mlp.json"
PREDICT_BATCH = 4096
# architecture keys beyond the encoder, with the values of a network without a decoder
DECODER_DEFAULTS = {"decoder_blocks": 0, "decoder_width": None, "decoder_dropout": None, "heads": 1}


class MLPLearner(BaseLearner):
    """Multi-output MLP trained with AdamW on MSE and/or the per-cell correlation loss.

    With ``valid`` given (and ``early_stopping`` on) it early-stops on the
    validation per-cell Pearson (on reconstructed targets when a basis is
    given), restores the best epoch's weights and sets
    ``best_iterations = [best_epoch]`` (1-based).
    Saved as ``mlp.pt`` (a state dict, loaded with ``weights_only=True``,
    including the input scaling buffers) and ``mlp.json`` (architecture).
    """

    name = "mlp"
    library = "torch"
    quick_params = {"hidden": [64], "epochs": 15, "patience": 4, "batch_size": 64}
    tune_space = {
        "params.lr": {"type": "float", "low": 0.0001, "high": 0.01, "log": True},
        "params.dropout": {"type": "float", "low": 0.0, "high": 0.4},
        "params.weight_decay": {"type": "float", "low": 1e-7, "high": 0.001, "log": True},
        "params.batch_size": {"type": "categorical", "choices": [64, 128, 256, 512]},
        "params.loss": {"type": "categorical", "choices": ["mse", "correlation", "mse+correlation"]},
    }
    Params = MLPParams
    uses_validation = True  # per instance: False when ``early_stopping`` is off
    uses_full_targets = True  # the in-network reconstruction and the early-stopping score use all genes
    rows_per_thread = 1_000

    def __init__(self, params: Mapping[str, Any] | LearnerParams | None = None, seed: int = 0, n_jobs: int = 2):
        super().__init__(params, seed=seed, n_jobs=n_jobs)
        self.uses_validation = self.params.early_stopping

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
        device = torch.device(self.params.device)
        with torch_session(self.seed, self.threads(len(X)), device):
            self.model_ = self._build(X, Y).to(device)
            X = X.to(device)
            Z = self._fit_scaling(X) if self.params.standardize_inputs else X
            p = self.params
            recon, Y_full = gene_objective(recon, train.Y_full, basis, p.aux_loss, p.aux_space == "targets", device)
            self._train(Z, Y, Y_full, recon, valid, basis)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions of the kept network (the mean of its heads)."""
        X = as_float32(X)
        out = np.empty((len(X), self.arch_["output_dim"]), dtype=np.float32)
        with torch_session(self.seed, self.threads(len(X)), self.model_.x_mean.device):
            for start in range(0, len(X), PREDICT_BATCH):
                out[start : start + PREDICT_BATCH] = self._forward(torch.from_numpy(X[start : start + PREDICT_BATCH]))
        return out

    def save(self, folder: Path) -> list[Path]:
        """Write the state_dict (``torch.save``) and the architecture as JSON."""
        folder.mkdir(parents=True, exist_ok=True)
        model_path, info_path = folder / MODEL_FILE, folder / INFO_FILE
        torch.save(self.model_.state_dict(), model_path)
        params = self.params.model_dump(exclude={"device"} if self.params.device == "cpu" else None)
        info = {**self.arch_, "best_iterations": self.best_iterations, "params": params}
        info_path.write_text(json.dumps(info, indent=1))
        return [model_path, info_path]

    def load(self, folder: Path) -> MLPLearner:
        """Read a network written by :meth:`save` (``weights_only=True``) onto the CPU, wherever it was fitted."""
        info = json.loads((folder / INFO_FILE).read_text())
        self.arch_ = {key: info[key] for key in ("input_dim", "output_dim", "hidden", "activation", "norm", "dropout")}
        self.arch_.update({key: info.get(key, default) for key, default in DECODER_DEFAULTS.items()})
        self.best_iterations = info.get("best_iterations")
        self.model_ = self._network()
        self.model_.load_state_dict(torch.load(folder / MODEL_FILE, weights_only=True, map_location="cpu"))
        self.model_.eval()
        return self

    def adapt_to_folds(self, probe: FoldProbe) -> MLPLearner:
        """With ``epochs_from_folds``: this learner passing the rows the folds' mean validation curve chooses.

        Each probed split trains a copy (this seed plus the split's offset) for every epoch
        ``min_rows_seen`` allows on its rows, scoring its validation rows after each; the chosen count
        ``e`` (at least ``epochs``) is the best of the mean curve, over the epochs every split reached.
        The copy returned passes ``e`` times the splits' median training rows (``min_rows_seen``), so a
        refit on more rows runs proportionally fewer epochs.
        """
        p = self.params
        budgets = [self.epochs_for(n) for n in probe.train_rows]
        if not p.epochs_from_folds or not budgets or min(budgets) <= p.epochs:
            return self
        watching = p.model_copy(update={"early_stopping": True, "patience": max(budgets), "epochs_from_folds": False})
        curves = np.array([fit.valid_scores_[: min(budgets)] for fit in probe.fit(self._copy(watching))])
        mean = curves.mean(axis=0)
        chosen = p.epochs + int(np.argmax(mean[p.epochs - 1 :]))
        rows = chosen * int(np.median(probe.train_rows))
        log.info(
            f"epochs chosen on the folds: {chosen} of {p.epochs}-{len(mean)} (mean validation score "
            f"{mean[chosen - 1]:.4f}, {mean[p.epochs - 1]:.4f} at {p.epochs}): min_rows_seen {rows}"
        )
        return self._copy(p.model_copy(update={"min_rows_seen": rows, "epochs_from_folds": False}))

    def _copy(self, params: MLPParams) -> MLPLearner:
        return type(self)(params, seed=self.seed, n_jobs=self.n_jobs)

    def fit_info(self) -> dict[str, Any]:
        """Epochs run, the best epoch and the best validation per-cell Pearson."""
        info = super().fit_info()
        if getattr(self, "epochs_run_", None):
            info["epochs"] = self.epochs_run_
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
            **{key: getattr(p, key) for key in DECODER_DEFAULTS},
        }
        model = self._network()
        with torch.no_grad():
            for head in model.all_heads():
                head.bias.copy_(torch.from_numpy(Y.mean(axis=0)))
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
        decoder = {key: a[key] for key in DECODER_DEFAULTS}
        return MLPNet(a["input_dim"], a["output_dim"], a["hidden"], a["activation"], a["norm"], a["dropout"], **decoder)

    # -- training ---------------------------------------------------------------

    def epochs_for(self, n_rows: int) -> int:
        """Epochs of a fit on ``n_rows`` training rows: ``epochs``, or more to pass ``min_rows_seen`` rows.

        Parameters
        ----------
        n_rows
            Rows the network trains on.

        Returns
        -------
        int
        """
        p = self.params
        return max(p.epochs, math.ceil(p.min_rows_seen / max(1, n_rows)))

    def _train(self, Z, Y, Y_full, recon, valid: FitData | None, basis: TargetBasis | None) -> None:
        """Epoch loop on standardised inputs ``Z``, early-stopping on ``valid``; keeps the best weights."""
        p = self.params
        valid = valid if p.early_stopping else None
        optimizer = torch.optim.AdamW(self.model_.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        step = _Step(
            Z,
            torch.from_numpy(Y).to(Z.device),
            Y_full,
            recon,
            optimizer,
            self._scheduler(optimizer, len(Z)),
            torch.Generator().manual_seed(self.seed),
            Objective(p.loss, p.aux_loss, p.aux_space == "targets"),
        )
        self.valid_scores_: list[float] = []
        on_genes = valid is not None and valid.Y_full is not None and basis is not None and p.reconstruct
        genes_score = GenePearson(basis, valid.Y_full) if on_genes else None
        epochs = self.epochs_for(len(Z))
        best_score, best_state, best_epoch = -np.inf, None, epochs
        for epoch in track(range(1, epochs + 1), "mlp epochs"):
            self._epoch(step, p.aux_weight * fade_weight(epoch, epochs, p.aux_fade_after))
            if valid is None:
                continue
            score = self._valid_score(valid, basis, genes_score)
            self.valid_scores_.append(score)
            if score > best_score:
                best_score, best_epoch, best_state = score, epoch, copy.deepcopy(self.model_.state_dict())
            elif epoch - best_epoch >= p.patience:
                break
        self.epochs_run_ = epoch
        if best_state is not None:
            self.model_.load_state_dict(best_state)
        self.best_iterations = [best_epoch] if valid is not None else None
        self.model_.eval()

    def _scheduler(self, optimizer, n_rows: int) -> torch.optim.lr_scheduler.LRScheduler | None:
        """The learning-rate schedule, stepped once a batch (None: a constant rate)."""
        p = self.params
        if p.schedule == "constant":
            return None
        steps = self.epochs_for(n_rows) * batches_per_epoch(n_rows, p.batch_size)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=p.lr, total_steps=steps, pct_start=p.pct_start)

    def _epoch(self, step: _Step, aux_weight: float) -> None:
        """One pass over shuffled mini-batches of the standardised inputs."""
        self.model_.train()
        order = torch.randperm(len(step.Z), generator=step.generator)
        for idx in self._batches(order):
            rows = idx.to(step.Z.device)
            y_full = batch_genes(step.Y_full, idx, rows)  # None unless the loss is on the genes
            outputs = self.model_.outputs(step.Z.index_select(0, rows))
            loss = step.objective(outputs, step.recon, step.Y.index_select(0, rows), y_full, aux_weight)
            value = loss.item()
            if not math.isfinite(value):
                raise FitFailed("lr", f"the MLP's training loss became {value} at lr {self.params.lr}; lower lr")
            step.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            step.optimizer.step()
            if step.scheduler is not None:
                step.scheduler.step()

    def _batches(self, order: torch.Tensor) -> list[torch.Tensor]:
        """Mini-batches of ``order``; a last batch of one row joins the previous one (batch norm)."""
        batches = list(order.split(self.params.batch_size))
        if len(batches) > 1 and len(batches[-1]) < 2:
            batches[-2:] = [torch.cat(batches[-2:])]
        return batches

    def _valid_score(self, valid: FitData, basis: TargetBasis | None, genes_score: GenePearson | None) -> float:
        """Mean per-cell Pearson on ``valid`` (on the genes when a basis is given: ``genes_score``)."""
        X = as_float32(valid.X)
        total = 0.0
        for start in range(0, len(X), PREDICT_BATCH):
            rows = np.arange(start, min(start + PREDICT_BATCH, len(X)))
            pred = self._forward(torch.from_numpy(X[rows]))
            if genes_score is not None:
                total += float(genes_score(pred, rows).sum())
                continue
            true = rows_tensor(valid.Y, rows).numpy()
            if basis is not None and self.params.reconstruct:
                pred, true = basis.reconstruct(pred), basis.reconstruct(true)
            total += float(pearson_per_row(true, pred).sum())
        return total / max(1, len(X))

    def _forward(self, X: torch.Tensor) -> np.ndarray:
        """Network outputs in eval mode without gradients (inputs moved to the network's device), as float32 numpy."""
        self.model_.eval()
        with torch.no_grad():
            return self.model_(X.to(self.model_.x_mean.device)).cpu().numpy().astype(np.float32, copy=False)


@dataclass
class _Step:
    """What every training step of one fit reads: inputs, targets, optimiser, schedule, objective."""

    Z: torch.Tensor
    Y: torch.Tensor
    Y_full: Any
    recon: Reconstruction | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    generator: torch.Generator
    objective: Objective
