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
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pydantic
import scipy.sparse as sp

from mmscel.errors import InputError
from mmscel.targets import RowSubset, TargetBasis
from mmscel.targets.moments import ShiftedRows

if TYPE_CHECKING:
    from mmscel.fold_probe import FoldProbe


class LearnerParams(pydantic.BaseModel):
    """Base of every learner's parameters: frozen, and unknown keys are refused by name.

    Raises
    ------
    pydantic.ValidationError
        On construction, for an unknown key or a value out of range.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    #: fields that steer mmscel's own loop or choose a mode, not passed to the library as such
    own_fields: ClassVar[frozenset[str]] = frozenset()

    def library_params(self) -> dict[str, Any]:
        """The fields the library takes under the same names.

        Returns
        -------
        dict
            Every field but the ``own_fields``, in declaration order.
        """
        return self.model_dump(exclude=set(self.own_fields))

    @classmethod
    def cuda_problem(cls) -> str | None:
        """Why this machine cannot fit with these parameters on a CUDA GPU.

        Parameters models with a ``device`` field ask their library; the others fit on the CPU only.

        Returns
        -------
        str or None
            A one-line reason, or None when it can.
        """
        return "this learner fits on the CPU only"


@dataclass
class FitData:
    """What a learner may fit on: features, targets, and optionally the full targets.

    Parameters
    ----------
    X
        Features (rows x features).
    Y
        Targets in the learner's space (rows x outputs).
    Y_full
        What the :class:`TargetBasis` given with it maps ``Y`` onto: the scored targets of the same rows
        (dense, CSR, or a :class:`RowSubset` of the whole matrix), or, with batch centring, the targets
        moved onto the typical batch (dense proteins, or genes as a
        :class:`~mmscel.targets.moments.ShiftedRows`).

    Raises
    ------
    ValueError
        When ``X`` and ``Y`` differ in rows.
    """

    X: np.ndarray
    Y: np.ndarray
    Y_full: np.ndarray | sp.csr_matrix | RowSubset | ShiftedRows | None = None

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
    (smoke runs and the tests), ``tune_space`` the search space ``mmscel tune`` uses when a config
    has no ``tune:`` block. Learners that can fit on a GPU take ``params.device`` (see
    :mod:`mmscel.learners.device`).

    Parameters
    ----------
    params
        The learner's parameters: a ``Params`` instance, or a mapping validated into one (None: the defaults).
    seed
        Seed of every random choice of the fit.
    n_jobs
        Threads the library may use; a fit or prediction on few rows uses fewer (:meth:`threads`).

    Raises
    ------
    pydantic.ValidationError
        When ``params`` holds an unknown key or a bad value.
    """

    name: ClassVar[str]
    Params: ClassVar[type[LearnerParams]]
    library: ClassVar[str | None] = None
    quick_params: ClassVar[dict[str, Any]] = {}
    # the default search space of `mmscel tune`: 'params.<key>' -> an Optuna distribution (see mmscel.tune.space)
    tune_space: ClassVar[dict[str, dict[str, Any]]] = {}
    uses_validation: ClassVar[bool] = False  # True when fit() early-stops on `valid`
    # True when fit() reads FitData.Y_full (GBs at full scale: read it a batch of rows at a time)
    uses_full_targets: ClassVar[bool] = False
    # Rows per thread below which a thread's start-up and synchronisation cost more than its share
    # of the work (0: n_jobs at any size); measured by bench/learner_overhead.py --threads-by-rows.
    rows_per_thread: ClassVar[int] = 0

    def __init__(self, params: Mapping[str, Any] | LearnerParams | None = None, seed: int = 0, n_jobs: int = 2):
        self.params = params if isinstance(params, self.Params) else self.Params(**dict(params or {}))
        self.seed = int(seed)
        self.n_jobs = int(n_jobs)
        self.best_iterations: list[int] | None = None

    def threads(self, rows: int | None = None) -> int:
        """Threads for work on ``rows`` rows: ``n_jobs``, lowered to one per ``rows_per_thread`` rows.

        Parameters
        ----------
        rows
            Rows the fit or prediction handles (None: ``n_jobs`` whatever the size).

        Returns
        -------
        int
            At least one thread, at most ``n_jobs``.
        """
        if rows is None or not self.rows_per_thread:
            return max(1, self.n_jobs)
        return max(1, min(self.n_jobs, int(rows) // self.rows_per_thread))

    def clone(self, seed: int | None = None) -> BaseLearner:
        """An unfitted copy with the same parameters.

        Parameters
        ----------
        seed
            The copy's seed (None: this learner's).

        Returns
        -------
        BaseLearner
            A new learner of the same class, parameters and thread count.
        """
        return type(self)(self.params, seed=self.seed if seed is None else seed, n_jobs=self.n_jobs)

    @abstractmethod
    def fit(self, train: FitData, valid: FitData | None = None, basis: TargetBasis | None = None) -> BaseLearner:
        """Fit on ``train``; early-stop on ``valid`` when the learner supports it.

        Parameters
        ----------
        train
            The rows to fit.
        valid
            Rows to early-stop on, cut from inside the training fold (None: no early stopping).
        basis
            The map from the learner's outputs to the scored targets, given with ``train.Y_full``
            to learners that take their loss there; else None.

        Returns
        -------
        BaseLearner
            ``self``, fitted.

        Raises
        ------
        FitFailed
            When the fit cannot succeed with these parameters.
        """

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predict the outputs of any rows with the fitted model.

        Parameters
        ----------
        X
            Features (rows x features), the columns the learner was fitted on.

        Returns
        -------
        numpy.ndarray
            Predictions (rows x outputs, float32) in the space of ``train.Y``.
        """

    @abstractmethod
    def save(self, folder: Path) -> list[Path]:
        """Write the fitted model in native formats.

        Parameters
        ----------
        folder
            Where the files go (created when missing).

        Returns
        -------
        list of Path
            The files written.
        """

    @abstractmethod
    def load(self, folder: Path) -> BaseLearner:
        """Load a model written by :meth:`save` into this learner, built with the same parameters.

        Parameters
        ----------
        folder
            The folder :meth:`save` wrote.

        Returns
        -------
        BaseLearner
            ``self``, ready to predict.
        """

    def adapt_to_folds(self, probe: FoldProbe) -> BaseLearner:
        """The learner the cross-validation fits, with any setting it reads off the folds chosen.

        Called once before the first split is fitted. The default chooses nothing.

        Parameters
        ----------
        probe
            The cross-validation's ``cv`` splits, to fit probe copies on (see :mod:`mmscel.fold_probe`).

        Returns
        -------
        BaseLearner
            ``self``, or an unfitted copy with the chosen parameters and the same seed.
        """
        return self

    def check_device(self, where: str = "params.device") -> None:
        """Refuse a ``params.device`` this machine cannot fit on, before anything is fitted or written.

        Learners without a ``device`` parameter fit on the CPU and pass. ``device`` is part of the
        parameters and so of a run's hash: a GPU fit is never taken for a CPU one.

        Parameters
        ----------
        where
            What the error names (``"<run>: params.device"``).

        Raises
        ------
        InputError
            One line: ``cuda`` is asked, and why this machine cannot give it
            (see :meth:`LearnerParams.cuda_problem`).
        """
        device = getattr(self.params, "device", "cpu")
        if device == "cpu":
            return
        problem = self.params.cuda_problem()
        if problem is not None:
            raise InputError(where, f"{device} asked, but {problem}; fit where a GPU is, or set params.device=cpu")

    def fit_info(self) -> dict[str, Any]:
        """Facts about the fit worth a manifest line.

        Returns
        -------
        dict
            ``best_iterations`` (one per model) when the fit set them; else empty.
        """
        return {} if self.best_iterations is None else {"best_iterations": list(map(int, self.best_iterations))}


def as_float32(X) -> np.ndarray:
    """Convert features to the common input type of every learner.

    Parameters
    ----------
    X
        An array-like or a SciPy sparse matrix.

    Returns
    -------
    numpy.ndarray
        ``X`` dense, C-contiguous and float32 (``X`` itself when it is already).
    """
    X = X.toarray() if sp.issparse(X) else X
    return np.ascontiguousarray(X, dtype=np.float32)


def targets_2d(Y) -> np.ndarray:
    """Shape targets as a matrix.

    Parameters
    ----------
    Y
        Targets (rows x outputs, or one value per row).

    Returns
    -------
    numpy.ndarray
        ``Y`` as float32 (rows x outputs); a 1-D target becomes one column.
    """
    Y = np.asarray(Y, dtype=np.float32)
    return Y.reshape(len(Y), -1)
