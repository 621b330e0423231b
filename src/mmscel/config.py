"""Run configurations (YAML, read with ``yaml.safe_load``, validated by pydantic).

A typo or a bad value is reported as one line naming the file, the key and the
allowed keys or values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml

from mmscel.errors import InputError
from mmscel.learners import REGISTRY, learner_class


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class CiteFeatures(_Strict):
    """Features of the CITEseq inputs."""

    svd_components: int = pydantic.Field(128, ge=2)
    protein_genes: bool = True  # raw columns of genes named after a target protein
    top_correlated_genes: int = pydantic.Field(0, ge=0)  # per target, on train
    batch_centering: bool = False  # subtract each (donor, day) group's median
    cell_stats: bool = True
    donor_sex: bool = True


class MultiFeatures(_Strict):
    """Features of the Multiome inputs and the target SVD."""

    svd_components: int = pydantic.Field(128, ge=2)
    transforms: list[Literal["binarize", "log1p", "l2"]] = []
    binary_svd_components: int = pydantic.Field(0, ge=0)  # a second SVD on the binarised matrix
    target_svd_components: int = pydantic.Field(128, ge=2)
    cell_stats: bool = True
    chromosome_ratios: bool = True
    donor_sex: bool = True
    batch_centering: bool = False


class Folds(_Strict):
    """Which shared fold file the run uses."""

    scheme: Literal["donor", "day", "donor_day", "last_day", "random"] = "donor"
    n_splits: int = pydantic.Field(5, ge=2)  # for 'random' (group schemes use one fold per group)
    seed: int = 0


class Targets(_Strict):
    """The space the learner fits in."""

    # CITEseq: 'native' proteins or 'svd', an SVD of them with `components` dims.
    # Multiome: always target-SVD coefficients; 'svd' fits only the leading `components`.
    space: Literal["native", "svd"] = "native"
    components: int = pydantic.Field(32, ge=1)
    standardize_cells: bool = False  # per-cell z-score of targets (the metric is invariant to it)


class RunConfig(_Strict):
    """One level-1 run: a learner on a task, its features, folds and targets."""

    name: str
    task: Literal["cite", "multi"]
    learner: Literal[tuple(REGISTRY)]  # type: ignore[valid-type]
    params: dict[str, Any] = {}
    features: dict[str, Any] = {}
    folds: Folds = Folds()
    targets: Targets = Targets()
    validation_fraction: float = pydantic.Field(0.1, gt=0, lt=0.5)  # early-stopping part of each training fold
    test_predictions: Literal["fold_mean", "refit"] = "fold_mean"
    seed: int = 0
    n_jobs: int = pydantic.Field(2, ge=1)  # threads per learner (part of the config: torch sums differ by thread count)
    seeds: int = pydantic.Field(1, ge=1)  # seed bagging: copies of the learner per fold, predictions averaged

    def feature_config(self) -> CiteFeatures | MultiFeatures:
        """The validated feature config of this run's task."""
        return (CiteFeatures if self.task == "cite" else MultiFeatures)(**self.features)

    def learner_params(self):
        """The validated parameters of this run's learner."""
        return learner_class(self.learner).Params(**self.params)

    def hashed(self) -> dict[str, Any]:
        """The config as its hash sees it: fields added later (``seeds``) enter only when not at
        their default, so runs made before them keep their hash and are still reused."""
        dump = self.model_dump()
        if self.seeds == 1:
            dump.pop("seeds")
        return dump


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping read with ``yaml.safe_load``; problems become one-line :class:`InputError`."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML: {' '.join(str(exc).split())[:160]}") from None
    if not isinstance(raw, dict):
        raise InputError(path, "expected a mapping of keys to values at the top level")
    odd = [key for key in raw if not isinstance(key, str)]
    if odd:
        raise InputError(path, f"key {odd[0]!r} is not a name: top-level keys must be strings")
    return raw


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate a run config; errors become one-line :class:`InputError`."""
    path = Path(path)
    raw = read_yaml(path)
    raw.setdefault(
        "name", path.stem if path.parent.name not in ("cite", "multi") else f"{path.parent.name}_{path.stem}"
    )
    try:
        config = RunConfig(**raw)
        config.feature_config()
        config.learner_params()
    except pydantic.ValidationError as exc:
        raise InputError(path, describe_validation_error(exc, raw)) from None
    return config


def describe_validation_error(exc: pydantic.ValidationError, raw: dict) -> str:
    """The first problem of a validation error as 'key: what is wrong (allowed ...)'."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    title = exc.title
    prefix = {"CiteFeatures": "features", "MultiFeatures": "features"}.get(title)
    if prefix is None and title.endswith("Params"):
        prefix = "params"
    key = ".".join(([prefix] if prefix else []) + loc)
    if error["type"] == "extra_forbidden":
        model = _model_for(title, raw)
        if title == "RunConfig" and len(loc) > 1:
            model = {"folds": Folds, "targets": Targets}.get(loc[0], model)
        allowed = ", ".join(model.model_fields) if model else "see the docs"
        return f"unknown key '{key}' (allowed: {allowed})"
    return f"'{key}': {error['msg']}"


def _model_for(title: str, raw: dict):
    if title == "RunConfig":
        return RunConfig
    if title in ("CiteFeatures", "MultiFeatures"):
        return CiteFeatures if title == "CiteFeatures" else MultiFeatures
    if title.endswith("Params") and raw.get("learner") in REGISTRY:
        return learner_class(raw["learner"]).Params
    return {"Folds": Folds, "Targets": Targets}.get(title)
