"""Tuned configs: the best distinct trials of a study written as ordinary run configs."""

from __future__ import annotations

from pathlib import Path

import yaml

from mmscel.config import RunConfig
from mmscel.fsutil import atomic_path
from mmscel.tune.space import set_values, with_values


def best_trials(study, keep: int) -> list:
    """The ``keep`` best COMPLETE trials with distinct parameters, best first.

    Parameters
    ----------
    study
        The study (maximised).
    keep
        How many.

    Returns
    -------
    list of optuna.trial.FrozenTrial
    """
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    chosen, seen = [], set()
    for trial in sorted(complete, key=lambda t: (-t.value, t.number)):
        key = tuple(sorted(trial.params.items()))
        if key not in seen:
            seen.add(key)
            chosen.append(trial)
    return chosen[:keep]


def tuned_paths(base: RunConfig, config_path: Path | None, keep: int, out_config, folder: Path) -> list[Path]:
    """Where the tuned configs go: ``<learner>.tuned.yaml`` (or ``.tuned<k>.yaml``) beside the config.

    Parameters
    ----------
    base
        The tuned run config.
    config_path
        Its YAML file (None: the configs go to the study folder).
    keep
        How many configs.
    out_config
        The first config's path, when given; the others add their number to its stem.
    folder
        The study's folder.

    Returns
    -------
    list of Path
    """
    if out_config is not None:
        first = Path(out_config)
        return [first] + [first.with_name(f"{first.stem}{k}{first.suffix}") for k in range(2, keep + 1)]
    where = config_path.parent if config_path is not None else folder
    if keep == 1:
        return [where / f"{base.learner}.tuned.yaml"]
    return [where / f"{base.learner}.tuned{k}.yaml" for k in range(1, keep + 1)]


def write_tuned_configs(study, raw: dict, base: RunConfig, config_path, keep: int, out_config, folder) -> list[Path]:
    """Write the best ``keep`` distinct trials as run configs with distinct names.

    Parameters
    ----------
    study
        The study.
    raw
        The base config's mapping (as read from its YAML file); the trials' values are set in it.
    base
        The base config (its name and learner).
    config_path, keep, out_config, folder
        As in :func:`tuned_paths`.

    Returns
    -------
    list of Path
        The configs written (none while the study has no complete trial).
    """
    trials = best_trials(study, keep)
    written = []
    for k, (trial, path) in enumerate(zip(trials, tuned_paths(base, config_path, keep, out_config, folder)), 1):
        name = f"{base.name}_tuned" + (f"{k}" if keep > 1 else "")
        with_values(base, trial.params, name)  # the written config is valid
        header = f"# mmscel tune: study {study.study_name}, trial {trial.number}, objective {trial.value:.6f}\n"
        with atomic_path(path) as tmp:
            tmp.write_text(header + yaml.safe_dump(set_values(raw, trial.params, name), sort_keys=False))
        written.append(path)
    return written
