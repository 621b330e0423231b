"""The one small interface every level-1 base learner implements.

A learner is built from its validated parameters and a seed, fitted on the
rows of a training fold, and predicts any rows. Fitting may use a validation
part for early stopping; the level-1 runner always cuts that part from
*inside* the training fold, never from the fold being predicted. Models are
saved in the libraries' native formats (never pickle) and loaded back into a
learner built with the same parameters.

Targets are whatever space the run works in: the 140 proteins, a compressed
protein space, or Multiome target-SVD components. When the scored targets are
a linear image of that space (``Y_full ~ Z @ basis.components + basis.mean``),
the runner passes the ``basis`` and the full targets, so that a learner can
take its loss on the reconstructed targets (the torch MLP does).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pydantic
import scipy.sparse as sp

from mmscel.targets import TargetBasis


class LearnerParams(pydantic.BaseModel):
    """Base of every learner's parameters: unknown keys are refused by name."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    #: fields that steer mmscel's own loop or choose a mode, not passed to the library as such
    own_fields: ClassVar[frozenset[str]] = frozenset({"n_estimators", "early_stopping_rounds"})

    def library_params(self) -> dict[str, Any]:
        """The fields the library takes under the same names (the ``own_fields`` left out)."""
        return self.model_dump(exclude=set(self.own_fields))


@dataclass
class FitData:
    """What a learner may fit on: features, targets, and optionally the full targets.

    ``Y_full`` (rows x scored targets, dense or CSR) is only given together
    with a :class:`TargetBasis`.
    """

    X: np.ndarray
    Y: np.ndarray
    Y_full: np.ndarray | sp.csr_matrix | None = None

    def __post_init__(self) -> None:
        if len(self.X) != len(self.Y):
            raise ValueError(f"X has {len(self.X)} rows, Y has {len(self.Y)}")


class FitFailed(RuntimeError):
    """A fit that cannot succeed with these parameters (a diverging loss, say).

    Parameters
    ----------
    param
        The parameter to change (``"lr"``), named in the message.
    problem
        What went wrong, on one line.
    """

    def __init__(self, param: str, problem: str):
        self.param, self.problem = param, problem
        super().__init__(f"params.{param}: {problem}")


class BaseLearner(ABC):
    """A level-1 base learner: ``fit`` on a training fold, ``predict`` any rows.

    Subclasses set ``name`` and ``Params`` (a :class:`LearnerParams` model), and
    implement :meth:`fit`, :meth:`predict`, :meth:`save` and :meth:`load`;
    ``library`` names the distribution whose version a run's manifest records,
    ``quick_params`` small settings for a fit in seconds on the tiny data
    (smoke runs and the tests).
    """

    name: ClassVar[str]
    Params: ClassVar[type[LearnerParams]]
    library: ClassVar[str | None] = None
    quick_params: ClassVar[dict[str, Any]] = {}
    uses_validation: ClassVar[bool] = False  # True when fit() early-stops on `valid`
    # True when fit() reads FitData.Y_full (a copy of those rows: GBs at full scale)
    uses_full_targets: ClassVar[bool] = False

    def __init__(self, params: Mapping[str, Any] | LearnerParams | None = None, seed: int = 0, n_jobs: int = 2):
        self.params = params if isinstance(params, self.Params) else self.Params(**dict(params or {}))
        self.seed = int(seed)
        self.n_jobs = int(n_jobs)
        self.best_iterations: list[int] | None = None

    def clone(self, seed: int | None = None) -> BaseLearner:
        """An unfitted copy with the same parameters (and ``seed``, when given)."""
        return type(self)(self.params, seed=self.seed if seed is None else seed, n_jobs=self.n_jobs)

    @abstractmethod
    def fit(self, train: FitData, valid: FitData | None = None, basis: TargetBasis | None = None) -> BaseLearner:
        """Fit on ``train``; early-stop on ``valid`` when the learner supports it."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions (rows x outputs, float32) in the space of ``train.Y``."""

    @abstractmethod
    def save(self, folder: Path) -> list[Path]:
        """Write the fitted model to ``folder`` in native formats; return the files."""

    @abstractmethod
    def load(self, folder: Path) -> BaseLearner:
        """Load a model written by :meth:`save` into this (same-parameter) learner."""

    def fit_info(self) -> dict[str, Any]:
        """Facts about the fit worth a manifest line (best iterations, ...)."""
        return {} if self.best_iterations is None else {"best_iterations": list(map(int, self.best_iterations))}


def as_float32(X) -> np.ndarray:
    """Dense, C-contiguous float32 (the common input type of every learner)."""
    X = X.toarray() if sp.issparse(X) else X
    return np.ascontiguousarray(X, dtype=np.float32)


def targets_2d(Y) -> np.ndarray:
    """Targets as a (rows x outputs) float32 array; a 1-D target becomes one column."""
    Y = np.asarray(Y, dtype=np.float32)
    return Y.reshape(len(Y), -1)
