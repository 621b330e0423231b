"""What the gradient-boosted tree learners share: field types, the boosting fields, per-output model files.

Nothing here imports a GBDT library: each learner module loads its own, only
when a run needs it.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pydantic

from mmscel.learners.base import BaseLearner, LearnerParams

#: boosting rounds
Rounds = Annotated[int, pydantic.Field(ge=1, le=100_000)]
#: shrinkage of each tree's contribution
LearningRate = Annotated[float, pydantic.Field(gt=0)]
#: share of the rows or features that each tree (or round) samples
Fraction = Annotated[float, pydantic.Field(gt=0, le=1)]
#: a nonnegative L2 regularisation strength on leaf values
Penalty = Annotated[float, pydantic.Field(ge=0)]
#: histogram bins per feature
Bins = Annotated[int, pydantic.Field(ge=2, le=65_535)]
#: rounds without a better validation score before the fit stops; 0 disables early stopping
Patience = Annotated[int, pydantic.Field(ge=0, le=100_000)]


class GBDTParams(LearnerParams):
    """The fields that open the parameters of the LightGBM and XGBoost learners.

    Parameters
    ----------
    n_estimators
        Boosting rounds at most (early stopping may end the fit sooner).
    learning_rate
        Shrinkage of each round's trees.
    """

    own_fields: ClassVar[frozenset[str]] = frozenset({"n_estimators", "early_stopping_rounds"})

    n_estimators: Rounds = 300
    learning_rate: LearningRate = 0.05


class GBDTLearner(BaseLearner):
    """A gradient-boosted tree learner: it early-stops on the validation part it is given."""

    uses_validation = True

    @abstractmethod
    def booster_params(self) -> dict[str, Any]:
        """The parameters handed to the library for a fit.

        Returns
        -------
        dict
            The library fields of ``params`` (see :meth:`~mmscel.learners.base.LearnerParams.library_params`)
            with the learner's fixed settings (objective, quiet output, ...), the seed and the thread count.
        """


def save_models(
    folder: Path,
    stem: str,
    suffix: str,
    models: Sequence[Any],
    best_iterations: Sequence[int],
    write: Callable[[Any, int, Path], None],
) -> list[Path]:
    """Write fitted models one file each, and an index naming the files and their best iterations.

    Parameters
    ----------
    folder
        Where the files go (created when missing).
    stem, suffix
        Model ``j`` goes to ``<stem>_<j><suffix>``, the index to ``<stem>.json``.
    models
        The fitted models, in output order.
    best_iterations
        One per model, recorded in the index.
    write
        ``write(model, best_iteration, path)`` saves one model in the library's native format.

    Returns
    -------
    list of Path
        The model files, then the index.

    Raises
    ------
    ValueError
        When ``models`` and ``best_iterations`` differ in length.
    """
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for j, (model, best) in enumerate(zip(models, best_iterations, strict=True)):
        path = folder / f"{stem}_{j}{suffix}"
        write(model, best, path)
        files.append(path)
    index = folder / f"{stem}.json"
    index.write_text(json.dumps({"models": [f.name for f in files], "best_iterations": best_iterations}))
    return [*files, index]


def load_models(folder: Path, stem: str, read: Callable[[Path], Any]) -> tuple[list[Any], list[int]]:
    """Read the models and best iterations that :func:`save_models` wrote.

    Parameters
    ----------
    folder
        The folder :func:`save_models` wrote.
    stem
        The ``stem`` it was given.
    read
        ``read(path)`` loads one model file.

    Returns
    -------
    tuple
        The models in output order, and their best iterations.

    Raises
    ------
    FileNotFoundError
        When the index ``<stem>.json`` is missing.
    """
    index = json.loads((folder / f"{stem}.json").read_text())
    return [read(folder / name) for name in index["models"]], [int(n) for n in index["best_iterations"]]
