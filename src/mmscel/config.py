"""Run configurations (YAML, read with ``yaml.safe_load``, validated by pydantic).

A typo or a bad value is reported as one line naming the file, the key and the
allowed keys or values. Learners and fold schemes are checked against their
registries, so a newly registered one is accepted without touching this file.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pydantic
import yaml

from mmscel.config_overrides import apply_overrides, blame_overrides
from mmscel.errors import InputError
from mmscel.features.config import FEATURE_CONFIGS, CiteFeatures, MultiFeatures, drop_quiet_defaults
from mmscel.folds import FOLD_SCHEMES
from mmscel.learners import LEARNERS, learner_class
from mmscel.store import check_name
from mmscel.targets import BatchCentredGenes, GeneSVD, NativeTargets, ProteinSVD, TargetSpace, batch_labels
from mmscel.tune.space import Distribution, check_space, describe_tune_error

MAX_SEED = 2**31 - 1  # the largest seed every library takes (numpy's legacy seeding, LightGBM, torch)


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _plain_name(value: str) -> str:
    try:
        return check_name(value, "name")
    except InputError as exc:
        raise ValueError(exc.problem) from None


#: a run, blend or study name: a plain identifier, safe as a folder name
PlainName = Annotated[str, pydantic.AfterValidator(_plain_name)]
LearnerName = Annotated[str, pydantic.AfterValidator(LEARNERS.validator())]
SchemeName = Annotated[str, pydantic.AfterValidator(FOLD_SCHEMES.validator())]


class Folds(_Strict):
    """Which shared fold file the run uses."""

    scheme: SchemeName = "auto"
    n_splits: int = pydantic.Field(5, ge=2, le=1000)  # for 'random' and 'donor_day' (group schemes: one per group)
    seed: int = pydantic.Field(0, ge=0, le=MAX_SEED)


class Targets(_Strict):
    """The space the learner fits in."""

    # CITEseq: 'native' proteins or 'svd', an SVD of them with `components` dims.
    # Multiome: always target-SVD coefficients; 'svd' fits only the leading `components`.
    space: Literal["native", "svd"] = "native"
    components: int = pydantic.Field(32, ge=1, le=100_000)
    standardize_cells: bool = False  # per-cell z-score of targets (the metric is invariant to it)
    # per-batch (donor x day) median centring, fitted per fold; predictions get the typical offset back
    batch_centering: bool = False
    clip_quantile: float = pydantic.Field(0.0, ge=0.0, lt=0.5)  # CITEseq: clip cells to [q, 1 - q] quantiles
    median_normalize: bool = False  # CITEseq: divide each cell by its median

    quiet: ClassVar[tuple[str, ...]] = ("batch_centering", "clip_quantile", "median_normalize")

    @pydantic.model_serializer(mode="wrap")
    def _dump(self, handler):
        return drop_quiet_defaults(self, handler(self))


def _mlflow_installed(value: str) -> str:
    if importlib.util.find_spec("mlflow") is None:
        raise ValueError("mlflow is not installed: pip install 'mmscel[mlflow]'")
    return value


#: ``tracking: mlflow`` logs a run, blend or tuning trial to MLflow (:mod:`mmscel.tracking`); never hashed
Tracking = Annotated[Literal["mlflow"], pydantic.AfterValidator(_mlflow_installed)]


class Compute(_Strict):
    """Where the run's folds are fitted; it never changes the results, so it is not part of the run's hash."""

    dask: str | None = None  # a dask.distributed scheduler, e.g. tcp://10.0.0.5:8786 (see `mmscel level1 --dask`)


class RunConfig(_Strict):
    """One level-1 run: a learner on a task, its features, folds and targets."""

    name: PlainName
    task: Literal["cite", "multi"]
    learner: LearnerName
    params: dict[str, Any] = {}
    features: dict[str, Any] = {}
    folds: Folds = Folds()
    targets: Targets = Targets()
    validation_fraction: float = pydantic.Field(0.1, gt=0, lt=0.5)  # early-stopping part of each training fold
    test_predictions: Literal["fold_mean", "refit", "fold_mean_and_refit"] = "fold_mean"
    seed: int = pydantic.Field(0, ge=0, le=MAX_SEED)
    n_jobs: int = pydantic.Field(
        2, ge=1, le=1024
    )  # threads per learner (part of the config: torch sums differ by thread count)
    seeds: int = pydantic.Field(1, ge=1, le=1000)  # seed bagging: copies of the learner per fold, predictions averaged
    # the search space of `mmscel tune` ('params.<key>': distribution); never part of a run, its dump or its hash
    tune: dict[str, Distribution] | None = pydantic.Field(None, exclude=True)
    compute: Compute | None = pydantic.Field(None, exclude=True)
    tracking: Tracking | None = pydantic.Field(None, exclude=True)

    def feature_config(self) -> CiteFeatures | MultiFeatures:
        """The validated feature config of this run's task.

        Raises
        ------
        pydantic.ValidationError
            When ``features`` holds a key the task's feature config lacks, or a bad value.
        """
        return FEATURE_CONFIGS[self.task](**self.features)

    def learner_params(self):
        """The validated parameters of this run's learner (its ``Params`` model).

        Raises
        ------
        pydantic.ValidationError
            When ``params`` holds a key the learner does not take, or a bad value.
        """
        return learner_class(self.learner).Params(**self.params)

    def target_space(self, n_targets: int, gene_svd: GeneSVD | None = None, metadata=None) -> TargetSpace:
        """The target space this config asks for.

        Parameters
        ----------
        n_targets
            Width of the scored targets.
        gene_svd
            The fitted Multiome gene SVD (Multiome runs only).
        metadata
            The training cells' metadata (``donor``, ``day``), in the order of the targets; needed by
            ``batch_centering``.

        Returns
        -------
        TargetSpace
            For Multiome, ``gene_svd`` with learners fitting its leading ``components`` (all of them
            when ``space`` is ``native``); for CITEseq, a protein SVD or the proteins themselves; centred
            per batch when ``batch_centering``.

        Raises
        ------
        InputError
            When a CITEseq-only setting is asked of a Multiome run, or ``batch_centering`` lacks the metadata.
        """
        t = self.targets
        batches = self._batches(metadata)
        if self.task == "multi":
            self._refuse_protein_settings()
            space = gene_svd.with_fitted(t.components if t.space == "svd" else None)
            return space if batches is None else BatchCentredGenes.around(space, batches)
        rows = {"clip_quantile": t.clip_quantile, "median_normalize": t.median_normalize, "batches": batches}
        if t.space == "svd":
            return ProteinSVD(t.components, t.standardize_cells, n_targets, **rows)
        return NativeTargets(t.standardize_cells, n_targets, **rows)

    def _batches(self, metadata):
        if not self.targets.batch_centering:
            return None
        if metadata is None:
            raise InputError(f"{self.name}: targets.batch_centering", "needs the training cells' donor and day")
        return batch_labels(metadata)

    def _refuse_protein_settings(self) -> None:
        used = [key for key in ("standardize_cells", "clip_quantile", "median_normalize") if getattr(self.targets, key)]
        if used:
            raise InputError(
                f"{self.name}: targets.{used[0]}",
                "applies to CITEseq; Multiome runs fit the target-SVD components "
                "(their rows: features.target_clip_quantile, features.target_median_normalize)",
            )

    def hashed(self) -> dict[str, Any]:
        """The config as its hash sees it.

        ``seeds`` is left out at its default (1), so that the hash of a config without seed
        bagging does not depend on the field; ``tune`` (the search space of a tuning session,
        which does not change what a run fits) is never part of it.

        Returns
        -------
        dict
            The config's fields, as :meth:`model_dump` gives them.
        """
        dump = self.model_dump()
        if self.seeds == 1:
            dump.pop("seeds")
        return dump


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping read with ``yaml.safe_load``.

    Parameters
    ----------
    path
        The YAML file (UTF-8).

    Returns
    -------
    dict
        Its top-level mapping (empty for an empty file).

    Raises
    ------
    InputError
        When the file is missing, not YAML, not a mapping, or has a non-string top-level key.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.is_file():
        raise InputError(path, "is not a file")
    try:
        raw = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML: {' '.join(str(exc).split())[:160]}") from None
    if not isinstance(raw, dict):
        raise InputError(path, "expected a mapping of keys to values at the top level")
    odd = [key for key in raw if not isinstance(key, str)]
    if odd:
        raise InputError(path, f"key {odd[0]!r} is not a name: top-level keys must be strings")
    return raw


def default_name(path: Path) -> str:
    """A run's name when its config sets none: ``<task>_<stem>`` under ``configs/<task>/``, else the stem.

    Parameters
    ----------
    path
        The run config's file; only its name and its folder's name are read.

    Returns
    -------
    str
    """
    return f"{path.parent.name}_{path.stem}" if path.parent.name in FEATURE_CONFIGS else path.stem


def load_run_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read and validate a run config.

    Parameters
    ----------
    path
        The config's YAML file; without a ``name`` key the run is named by :func:`default_name`.
    overrides
        ``KEY=VALUE`` settings applied over the file (see :func:`apply_overrides`), validated with it.

    Returns
    -------
    RunConfig
        The validated config, its ``name`` set.

    Raises
    ------
    InputError
        One line naming the file and the first problem (unknown key with the allowed ones, bad value).
    """
    path = Path(path)
    raw = apply_overrides(read_yaml(path), overrides)
    raw.setdefault("name", default_name(path))
    with blame_overrides(overrides):
        return validate_run_config(raw, path)


def validate_run_config(raw: dict, where: str | Path = "config") -> RunConfig:
    """A :class:`RunConfig` from a mapping, its features and learner parameters validated too.

    Parameters
    ----------
    raw
        The config's keys and values, ``name`` included.
    where
        What to name in the message (the config file, or ``"config"``).

    Returns
    -------
    RunConfig
        With its ``features`` and ``params`` checked against their models too.

    Raises
    ------
    InputError
        One line naming ``where`` and the first problem.
    """
    try:
        config = RunConfig(**raw)
        config.feature_config()
        config.learner_params()
    except pydantic.ValidationError as exc:
        raise InputError(where, describe_validation_error(exc, raw)) from None
    if config.tune is not None:
        check_space(config, config.tune, where)
    return config


def describe_validation_error(exc: pydantic.ValidationError, raw: dict) -> str:
    """The first problem of a validation error, as one line naming the key.

    Parameters
    ----------
    exc
        The error of :class:`RunConfig`, of a feature config or of a learner's ``Params``.
    raw
        The validated mapping (its ``learner`` picks the model whose keys are listed).

    Returns
    -------
    str
        ``unknown key '<key>' (allowed: ...)`` for an unknown key, else ``'<key>': <message>``;
        feature keys are prefixed with ``features.`` and learner keys with ``params.``.
    """
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    title = exc.title
    prefix = {"CiteFeatures": "features", "MultiFeatures": "features"}.get(title)
    if prefix is None and title.endswith("Params"):
        prefix = "params"
    if title == "RunConfig" and loc and loc[0] == "tune":
        return describe_tune_error(error)
    key = ".".join(([prefix] if prefix else []) + loc)
    if error["type"] == "extra_forbidden":
        model = _model_for(title, raw)
        if title == "RunConfig" and len(loc) > 1:
            model = {"folds": Folds, "targets": Targets, "compute": Compute}.get(loc[0], model)
        allowed = ", ".join(model.model_fields) if model else "see the docs"
        return f"unknown key '{key}' (allowed: {allowed})"
    message = error["msg"].removeprefix("Value error, ")
    return f"'{key}': {message}"


def _model_for(title: str, raw: dict):
    if title == "RunConfig":
        return RunConfig
    if title in ("CiteFeatures", "MultiFeatures"):
        return CiteFeatures if title == "CiteFeatures" else MultiFeatures
    if title.endswith("Params") and raw.get("learner") in LEARNERS:
        return learner_class(raw["learner"]).Params
    return {"Folds": Folds, "Targets": Targets}.get(title)
