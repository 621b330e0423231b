"""Search spaces: Optuna distributions over a run config's ``params``, ``features`` and ``targets`` keys.

A config's ``tune:`` block maps dotted keys to distributions::

    tune:
      params.learning_rate: {type: float, low: 0.01, high: 0.3, log: true}
      params.num_leaves: {type: int, low: 7, high: 127, log: true}
      targets.components: {type: int, low: 8, high: 32, step: 8}
      params.loss: {type: categorical, choices: [mse, correlation]}

Without it, the learner's ``tune_space`` is searched. Keys are checked against
the learner's parameters, the task's feature config and the target fields, and
every bound (each choice) must itself make a valid config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import pydantic

from mmscel.errors import InputError

if TYPE_CHECKING:
    from mmscel.config import RunConfig

SECTIONS = ("params", "features", "targets")
Choice = bool | int | float | str | None


class _Dist(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _Range(_Dist):
    """A number in ``[low, high]``, on a log scale when ``log``, on a grid of ``step`` when given."""

    _method: ClassVar[str]
    _plain_step: ClassVar[float | None]
    low: float
    high: float
    log: bool = False

    @pydantic.model_validator(mode="after")
    def _bounds(self):
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0 (got {self.low})")
        if self.log and self.step != self._plain_step:
            raise ValueError("log and step cannot be combined")
        return self

    def suggest(self, trial, key: str):
        """Draw ``key`` from an :class:`optuna.Trial`."""
        return getattr(trial, self._method)(key, self.low, self.high, log=self.log, step=self.step)

    def bounds(self) -> list:
        """The values every sample lies between."""
        return [self.low, self.high]


class FloatDistribution(_Range):
    """A float (``step``: None, a continuous draw)."""

    _method = "suggest_float"
    _plain_step = None
    type: Literal["float"]
    step: float | None = pydantic.Field(None, gt=0)


class IntDistribution(_Range):
    """An integer."""

    _method = "suggest_int"
    _plain_step = 1
    type: Literal["int"]
    low: int
    high: int
    step: int = pydantic.Field(1, ge=1)


class CategoricalDistribution(_Dist):
    """One of ``choices`` (plain values: booleans, numbers, strings)."""

    type: Literal["categorical"]
    choices: list[Choice] = pydantic.Field(min_length=1)

    def suggest(self, trial, key: str):
        """Draw ``key`` from an :class:`optuna.Trial`."""
        return trial.suggest_categorical(key, self.choices)

    def bounds(self) -> list:
        """Every choice."""
        return list(self.choices)


Distribution = Annotated[
    FloatDistribution | IntDistribution | CategoricalDistribution, pydantic.Field(discriminator="type")
]
_MODELS = {"float": FloatDistribution, "int": IntDistribution, "categorical": CategoricalDistribution}
_SPACE = pydantic.TypeAdapter(dict[str, Distribution])


def describe_tune_error(error: dict) -> str:
    """One line for a validation error inside a ``tune:`` block.

    Parameters
    ----------
    error
        One entry of :meth:`pydantic.ValidationError.errors` whose location starts with ``tune``.

    Returns
    -------
    str
        ``unknown key 'tune.<key>.<field>' (allowed: ...)``, or ``'tune.<key>[.<field>]': <message>``.
    """
    loc = [str(part) for part in error["loc"]]
    parts = loc[:2] + loc[3:] if len(loc) > 2 and loc[2] in _MODELS else loc
    key = ".".join(parts)
    if error["type"] == "extra_forbidden" and len(loc) > 2 and loc[2] in _MODELS:
        return f"unknown key '{key}' (allowed: {', '.join(_MODELS[loc[2]].model_fields)})"
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        return f"'{key}.type': must be one of {', '.join(_MODELS)}"
    return f"'{key}': {error['msg'].removeprefix('Value error, ')}"


def allowed_keys(config: RunConfig) -> dict[str, list[str]]:
    """The keys a search space may name, per section.

    Parameters
    ----------
    config
        The run config (its learner and task pick the parameter and feature models).

    Returns
    -------
    dict
        ``{"params": [...], "features": [...], "targets": [...]}``.
    """
    from mmscel.features.config import FEATURE_CONFIGS
    from mmscel.learners import learner_class

    models = {
        "params": learner_class(config.learner).Params,
        "features": FEATURE_CONFIGS[config.task],
        "targets": type(config.targets),
    }
    return {section: list(model.model_fields) for section, model in models.items()}


def check_space(config: RunConfig, space: dict, where="config") -> None:
    """Refuse a space whose key is unknown or whose bound (or choice) makes an invalid config.

    Parameters
    ----------
    config
        The run config the space is searched around.
    space
        Dotted keys to validated distributions.
    where
        What to name in the message (the config file).

    Raises
    ------
    InputError
        One line naming the key and the allowed keys, or the bound and the problem.
    """
    allowed = allowed_keys(config)
    for key, distribution in space.items():
        section, _, field = key.partition(".")
        if section not in allowed or field not in allowed[section]:
            names = [f"{section}.{name}" for name in allowed.get(section, [])]
            listed = ", ".join(names) or "params.<key>, features.<key>, targets.<key>"
            raise InputError(where, f"unknown key 'tune.{key}' (allowed: {listed})")
        for value in distribution.bounds():
            try:
                with_values(config, {key: value})
            except InputError as exc:
                raise InputError(where, f"'tune.{key}': the value {value!r} is refused: {exc.problem}") from None


def search_space(config: RunConfig, where="config") -> dict:
    """The space a session searches: the config's ``tune:`` block, else the learner's ``tune_space``.

    Parameters
    ----------
    config
        The run config.
    where
        What to name in a message.

    Returns
    -------
    dict
        Dotted keys to validated distributions.

    Raises
    ------
    InputError
        When the space is empty, or (for a learner's default space) invalid for this config.
    """
    from mmscel.learners import learner_class

    if config.tune is not None:
        space = dict(config.tune)
    else:
        try:
            space = _SPACE.validate_python(learner_class(config.learner).tune_space)
        except pydantic.ValidationError as exc:
            raise InputError(f"learner {config.learner}: tune_space", describe_tune_error(exc.errors()[0])) from None
        check_space(config, space, where)
    if not space:
        raise InputError(where, f"nothing to tune: add a 'tune:' block (learner {config.learner} ships no space)")
    return space


def with_values(config: RunConfig, values: dict[str, Any], name: str | None = None) -> RunConfig:
    """``config`` with the dotted keys of ``values`` set (its ``tune`` block dropped), validated.

    Parameters
    ----------
    config
        The run config.
    values
        Dotted keys (``params.alpha``) to values.
    name
        The new config's name (default: the config's).

    Returns
    -------
    RunConfig

    Raises
    ------
    InputError
        When a value makes an invalid config.
    """
    from mmscel.config import validate_run_config

    return validate_run_config(set_values(config.model_dump(), values, name or config.name))


def set_values(raw: dict, values: dict[str, Any], name: str) -> dict:
    """A copy of the config mapping ``raw`` with the dotted keys of ``values`` set, ``name`` set, no ``tune``.

    Parameters
    ----------
    raw
        A run config's keys and values (as read from YAML, or a dump).
    values
        Dotted keys to values.
    name
        The run's name.

    Returns
    -------
    dict
    """
    out = {key: value for key, value in raw.items() if key != "tune"}
    for key, value in values.items():
        section, _, field = key.partition(".")
        out[section] = {**(out.get(section) or {}), field: value}
    out["name"] = name
    return out


def sample(trial, space: dict) -> dict[str, Any]:
    """Draw every key of ``space`` from ``trial`` (Optuna parameters are named by the dotted keys).

    Parameters
    ----------
    trial
        The :class:`optuna.Trial`.
    space
        Dotted keys to distributions.

    Returns
    -------
    dict
        Dotted keys to the sampled values.
    """
    return {key: distribution.suggest(trial, key) for key, distribution in space.items()}
