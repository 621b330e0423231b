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
    device: Device = "cpu"

    @pydantic.field_validator("heads")
    @classmethod
    def _heads_fit_the_decoder(cls, heads: int, info: pydantic.ValidationInfo) -> int:
        blocks = info.data.get("decoder_blocks")
        if blocks is not None and heads > blocks + 1:
            raise ValueError(f"at most decoder_blocks + 1 = {blocks + 1} heads (one per hidden state), got {heads}")
        return heads

    @classmethod
    def cuda_problem(cls) -> str | None:
        """Why torch cannot fit on a CUDA GPU here (None: it can)."""
        return torch_cuda_problem()
