"""The parameters of :class:`~mmscel.learners.mlp.MLPLearner`, validated by pydantic."""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic

from mmscel.learners.base import LearnerParams
from mmscel.learners.device import Device, torch_cuda_problem


class MLPParams(LearnerParams):
    """Parameters of :class:`~mmscel.learners.mlp.MLPLearner`.

    Parameters
    ----------
    hidden
        Width of each encoder layer, input side first.
    dropout
        Dropout rate after each encoder activation (0: no dropout layers).
    activation
        The hidden layers' activation.
    norm
        Normalisation after each hidden Linear.
    lr
        AdamW learning rate.
    weight_decay
        AdamW (decoupled) weight decay.
    epochs
        Epochs at most (more on few rows under ``min_rows_seen``).
    min_rows_seen
        Training rows the fit passes at least (epochs x rows): on few rows it runs more than ``epochs``
        epochs, as many as reach this count (0: exactly ``epochs``). Early stopping still applies.
    batch_size
        Rows per mini-batch.
    loss
        The training loss (see :func:`~mmscel.learners.mlp_loss.compute_loss`).
    patience
        Epochs without a better validation score before stopping.
    standardize_inputs
        Standardise the features by the training rows' mean and std (kept); off: raw, the SVD's spectrum kept.
    reconstruct
        With a basis and ``Y_full``: take the loss on ``z @ components + mean`` against ``Y_full``.
    decoder_blocks
        Blocks after the encoder, each ``Linear -> norm -> act -> dropout`` (0: none). With one head,
        blocks of the last encoder width and dropout are the same network as that many more ``hidden`` layers.
    decoder_width
        Width of the decoder blocks (None: the last encoder width).
    decoder_dropout
        Dropout rate of the decoder blocks (None: ``dropout``).
    heads
        Output heads, on the last ``heads`` hidden states (the encoder's output, then each decoder
        block's); at most ``decoder_blocks + 1``. The loss is the mean of the heads' losses, the
        prediction the mean of their outputs.
    aux_loss
        ``"mse"`` or ``"mae"``: an auxiliary term added to ``loss``, weighted by ``aux_weight`` (``"none"``: no term).
    aux_weight
        Weight of the auxiliary term.
    aux_space
        Where the auxiliary term is taken: ``"outputs"`` (the learner's targets: the proteins, or the
        target-SVD coefficients) or ``"targets"`` (the scored targets, reconstructed when ``reconstruct`` applies).
    aux_fade_after
        Epochs at full ``aux_weight``; after them the weight fades as ``(1 - t)^2`` to about 0 by the
        last epoch (None: constant weight).
    schedule
        Learning rate over the fit: ``"constant"``, or ``"onecycle"`` (torch's ``OneCycleLR`` peaking at ``lr``,
        planned over the fit's epochs; AdamW's first beta cycles too).
    pct_start
        Share of the one cycle spent raising the rate.
    early_stopping
        False: train every epoch of the fit (``epochs``, or more under ``min_rows_seen``) on every training row
        and keep the last weights (no rows are cut for validation; ``patience`` is unused).
    epochs_from_folds
        Choose the epochs on the cross-validation folds: probe fits of each fold (one seed), watching the
        fold's validation rows for as many epochs as ``min_rows_seen`` allows, give a mean validation curve,
        and every fit then passes as many rows as a fold did at the curve's best count of at least ``epochs``.
        Where ``min_rows_seen`` adds no epoch (many rows) nothing is probed and ``epochs`` is kept. Needs
        ``min_rows_seen``, no early stopping, a constant rate and no aux fade (the curve's count ``e`` is then
        exactly an ``e``-epoch fit).
    device
        ``cpu``, or ``cuda``: fit on a CUDA GPU. Part of the run's hash, as GPU fits differ from CPU fits.
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
    min_rows_seen: Annotated[int, pydantic.Field(ge=0, le=10**12)] = 0
    batch_size: Annotated[int, pydantic.Field(ge=1, le=10_000_000)] = 256
    loss: Literal["mse", "correlation", "mse+correlation"] = "correlation"
    patience: Annotated[int, pydantic.Field(ge=1, le=100_000)] = 8
    standardize_inputs: bool = True
    reconstruct: bool = True
    decoder_blocks: Annotated[int, pydantic.Field(ge=0, le=64)] = 0
    decoder_width: Annotated[int, pydantic.Field(ge=1, le=65_536)] | None = None
    decoder_dropout: float | None = pydantic.Field(None, ge=0, lt=1)
    heads: Annotated[int, pydantic.Field(ge=1, le=65)] = 1
    aux_loss: Literal["none", "mse", "mae"] = "none"
    aux_weight: float = pydantic.Field(1.0, ge=0)
    aux_space: Literal["outputs", "targets"] = "outputs"
    aux_fade_after: Annotated[int, pydantic.Field(ge=0, le=100_000)] | None = None
    schedule: Literal["constant", "onecycle"] = "constant"
    pct_start: float = pydantic.Field(0.3, gt=0, lt=1)
    early_stopping: bool = True
    epochs_from_folds: bool = False
    device: Device = "cpu"

    @pydantic.field_validator("heads")
    @classmethod
    def _heads_fit_the_decoder(cls, heads: int, info: pydantic.ValidationInfo) -> int:
        blocks = info.data.get("decoder_blocks")
        if blocks is not None and heads > blocks + 1:
            raise ValueError(f"at most decoder_blocks + 1 = {blocks + 1} heads (one per hidden state), got {heads}")
        return heads

    @pydantic.field_validator("epochs_from_folds")
    @classmethod
    def _a_curve_is_a_count_of_epochs(cls, chosen: bool, info: pydantic.ValidationInfo) -> bool:
        if not chosen:
            return chosen
        data = info.data
        if not data.get("min_rows_seen"):
            raise ValueError("needs min_rows_seen > 0: the most rows a fit may pass, the range the folds choose in")
        if data.get("early_stopping", True):
            raise ValueError("needs early_stopping: false (the folds choose the epochs instead)")
        if data.get("schedule") != "constant" or data.get("aux_fade_after") is not None:
            raise ValueError("needs schedule: constant and no aux_fade_after (both are planned over the epochs)")
        return chosen

    @classmethod
    def cuda_problem(cls) -> str | None:
        """Why torch cannot fit on a CUDA GPU here (None: it can)."""
        return torch_cuda_problem()
