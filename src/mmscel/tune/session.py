"""A tuning session: open (or resume) a study, recover killed trials, run trials, write tuned configs.

The study lives in a journal file under ``oof/tune/<study>/`` (Optuna's
``JournalStorage``); its name defaults to one derived from the task, the
learner, the objective and the data and fold fingerprints, and a study made
from other data is refused. Running a session again adds trials to the same
study. A trial whose process was killed stays RUNNING in a journal (it has no
heartbeat): each session marks such trials FAIL and hands them to
:class:`optuna.storages.RetryFailedTrialCallback`, which enqueues their parameters again.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from mmscel.config import RunConfig, read_yaml
from mmscel.errors import InputError
from mmscel.level1 import Level1Inputs, as_run_config, load_inputs
from mmscel.store import RunStore, data_fingerprint
from mmscel.tune.journal import journal_study
from mmscel.tune.objective import OBJECTIVES, WORKER_ATTR, Objective, worker_alive
from mmscel.tune.space import search_space
from mmscel.tune.tuned import write_tuned_configs

PRUNERS = ("wilcoxon", "median", "none")
JOURNAL = "study.journal"
MAX_RETRY = 2  # a trial killed this often in a row is not enqueued again


@dataclass
class TuneResult:
    """A finished session: the study, its folder, and the tuned configs written."""

    study: object
    folder: Path
    configs: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The study's name."""
        return self.study.study_name


def tune(
    config,
    data_dir="data",
    cache_dir=None,
    oof_root: RunStore | str | Path = "oof",
    *,
    trials: int = 20,
    timeout: float | None = None,
    study: str | None = None,
    objective: str = "cv",
    keep: int = 1,
    pruner: str = "wilcoxon",
    out_config: str | Path | None = None,
    enqueue: tuple[dict, ...] = (),
    plots: bool = True,
) -> TuneResult:
    """Run ``trials`` more trials of a run config's study and write its best trials as configs.

    Parameters
    ----------
    config
        A run config, a mapping of its keys, or its YAML file (whose ``tune:`` block is the search space).
    data_dir, cache_dir, oof_root
        The prepared competition folder, its cache, and the store (the study lives in ``tune/<study>/``).
    trials
        Trials to add (0: only report and write the configs).
    timeout
        Seconds after which no new trial starts.
    study
        The study's name (default: derived from task, learner, objective and the data and fold fingerprints).
    objective
        ``cv`` or ``last_day``.
    keep
        How many of the best distinct trials become configs.
    pruner
        ``wilcoxon`` (default), ``median`` or ``none``.
    out_config
        Where the (first) tuned config goes (default: ``<learner>.tuned.yaml`` beside the config file).
    enqueue
        Dotted-key values to try first (in this order).
    plots
        Write Optuna's plots as HTML files in the study folder.

    Returns
    -------
    TuneResult

    Raises
    ------
    InputError
        A bad config or space, unprepared data, a study of other data or of another learner.
    """
    _check_choice("objective", objective, OBJECTIVES)
    _check_choice("pruner", pruner, PRUNERS)
    if trials < 0:
        raise InputError("--trials", f"must be 0 or more (got {trials})")
    if keep < 1:
        raise InputError("--keep", f"must be 1 or more (got {keep})")
    path = Path(config) if isinstance(config, str | Path) else None
    base = as_run_config(config)
    space = search_space(base, path or "config")
    store = oof_root if isinstance(oof_root, RunStore) else RunStore(oof_root)
    inputs_for = _InputsCache(data_dir, cache_dir, store)
    the_study = _open_study(base, inputs_for, study, objective, make_pruner(pruner))
    folder = store.study_dir(the_study.study_name)
    recover_killed(the_study)
    _run_trials(the_study, base, space, inputs_for, objective, pruner, trials, timeout, enqueue)
    raw = read_yaml(path) if path is not None else base.model_dump()
    written = write_tuned_configs(the_study, raw, base, path, keep, out_config, folder)
    if plots:
        from mmscel.tune.report import write_plots

        write_plots(the_study, folder)
    return TuneResult(the_study, folder, written)


def _open_study(base: RunConfig, inputs_for: _InputsCache, name: str | None, objective: str, pruner):
    """Open (or create) the study, refusing one of other data, folds, task, learner or objective."""
    data_dir, cache_dir, store = inputs_for.where
    facts = {"task": base.task, "learner": base.learner, "objective": objective}
    facts["data_fingerprint"] = data_fingerprint(base.task, data_dir, cache_dir)
    if name is not None and (store.study_dir(name) / JOURNAL).exists():  # before the fold file refuses other data
        journal = store.study_dir(name) / JOURNAL
        _check_facts(journal_study(journal, name), facts, journal)
    facts.update(_fold_facts(base, inputs_for(base), objective))
    name = name or default_study_name(facts)
    journal = store.study_dir(name) / JOURNAL
    study = journal_study(journal, name, pruner=pruner)
    _check_facts(study, facts, journal)
    return study


def _run_trials(study, base, space, inputs_for, objective, pruner, trials, timeout, enqueue) -> None:
    import optuna

    if trials == 0:
        return
    with _quiet():
        seed = base.seed + len(study.trials)  # a resumed session does not repeat the first session's draws
        study.sampler = optuna.samplers.TPESampler(multivariate=True, seed=seed)
        for values in enqueue:
            study.enqueue_trial(values)
        per_fold = pruner == "wilcoxon"
        run = Objective(base, space, inputs_for, objective, per_fold)
        study.optimize(run, n_trials=trials, timeout=timeout, catch=(InputError,))


class _InputsCache:
    """The inputs of each distinct feature config, loaded once per session."""

    def __init__(self, data_dir, cache_dir, store: RunStore):
        self.where = (data_dir, cache_dir, store)
        self.loaded: dict[str, Level1Inputs] = {}

    def __call__(self, config: RunConfig) -> Level1Inputs:
        key = repr(sorted(config.feature_config().model_dump().items()))
        if key not in self.loaded:
            self.loaded = {key: load_inputs(config, *self.where)}  # one feature set in memory at a time
        return self.loaded[key]


def make_pruner(name: str):
    """The Optuna pruner called ``name``.

    Parameters
    ----------
    name
        ``wilcoxon`` (:class:`optuna.pruners.WilcoxonPruner`, made for k-fold scores), ``median``
        (:class:`optuna.pruners.MedianPruner` on running means) or ``none``.

    Returns
    -------
    optuna.pruners.BasePruner
    """
    import optuna

    _check_choice("pruner", name, PRUNERS)
    if name == "wilcoxon":
        with _quiet():
            return optuna.pruners.WilcoxonPruner(p_threshold=0.1)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def default_study_name(facts: dict) -> str:
    """``<task>_<learner>_<objective>_<data fingerprint>_<fold fingerprint>`` (8 characters of each).

    Parameters
    ----------
    facts
        The study's task, learner, objective and data and fold fingerprints.

    Returns
    -------
    str
    """
    parts = (facts["task"], facts["learner"], facts["objective"], facts["data_fingerprint"][:8])
    return "_".join((*parts, facts["fold_fingerprint"][:8]))


def _fold_facts(base: RunConfig, inputs: Level1Inputs, objective: str) -> dict:
    holdout = base.folds.scheme == "last_day" or any(split.role == "holdout" for split in inputs.plan(base))
    if objective == "last_day" and not holdout:
        raise InputError("--objective", "last_day needs data with more than one day")
    return {
        "fold_fingerprint": inputs.folds.fingerprint,
        "fold_scheme": base.folds.scheme,
        "sampler": {"name": "TPESampler", "multivariate": True, "seed": base.seed},
    }


def _check_facts(study, facts: dict, where: Path) -> None:
    """Record the facts of a new study; refuse a study of other data, folds, task, learner or objective."""
    recorded = study.user_attrs
    if not recorded and "fold_fingerprint" in facts:
        for key, value in facts.items():
            study.set_user_attr(key, value)
        return
    for key in ("data_fingerprint", "fold_fingerprint", "task", "learner", "objective"):
        if recorded and key in facts and recorded.get(key) != facts[key]:
            what = {"data_fingerprint": "from other data", "fold_fingerprint": "on other folds"}.get(
                key, f"for another {key} ({recorded.get(key)})"
            )
            raise InputError(where, f"study '{study.study_name}' was made {what}; pass another --study")


def recover_killed(study) -> list[int]:
    """Mark FAIL the RUNNING trials whose process is gone, and enqueue their parameters again.

    Parameters
    ----------
    study
        The study (journal storage: its trials have no heartbeat).

    Returns
    -------
    list of int
        Numbers of the trials marked FAIL.
    """
    import optuna

    with _quiet():
        retry = retry_callback()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR)
        if worker is None or worker_alive(worker):
            continue
        retry(study, study.tell(trial.number, state=optuna.trial.TrialState.FAIL))
        failed.append(trial.number)
    return failed


def retry_callback():
    """Optuna's callback that enqueues a failed trial's parameters again (at most ``MAX_RETRY`` times).

    Optuna 4.9 renamed ``RetryFailedTrialCallback`` to ``RetryHeartbeatStaleTrialCallback``; the
    new name is used where it exists.

    Returns
    -------
    callable
        ``callback(study, failed_trial)``.
    """
    import optuna

    storages = optuna.storages
    retry = getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or storages.RetryFailedTrialCallback
    return retry(max_retry=MAX_RETRY)


@contextlib.contextmanager
def _quiet():
    """Silence Optuna's experimental-feature warnings (the Wilcoxon pruner, multivariate TPE, the retry callback)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"--{what}", f"unknown {what} {value!r} (allowed: {', '.join(allowed)})")
