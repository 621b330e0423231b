"""A tuning session: open (or resume) a study, recover killed trials, run trials, write tuned configs.

The study lives in a journal file under ``oof/tune/<study>/`` (Optuna's
``JournalStorage``) or in a database shared by many machines (see
:mod:`mmscel.tune.storage`); its name defaults to one derived from the task, the
learner, the objective and the data and fold fingerprints, and a study made
from other data is refused. Running a session again adds trials to the same
study. A trial whose process was killed stays RUNNING in a journal (it has no
heartbeat): each session marks such trials FAIL and hands them to Optuna's
retry callback, which enqueues their parameters again; in a database, the
workers' heartbeats do the same.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from mmscel import tracking
from mmscel.config import RunConfig, read_yaml
from mmscel.errors import InputError
from mmscel.level1 import as_run_config
from mmscel.level1_inputs import Level1Inputs, load_inputs
from mmscel.progress import log_file
from mmscel.store import RunStore, data_fingerprint, digest
from mmscel.tune.objective import FACTS_ATTR, OBJECTIVES, WORKER_ATTR, Objective, recorded_facts, worker_alive
from mmscel.tune.sampler import FirstTrialSeededTPE
from mmscel.tune.space import search_space
from mmscel.tune.storage import HEARTBEAT, JOURNAL, StudyStorage, retry_callback
from mmscel.tune.tuned import write_tuned_configs

PRUNERS = ("wilcoxon", "median", "none")
WILCOXON_P = 0.1  # the Wilcoxon pruner's p threshold
SESSION_LOG = "session.log"  # every session's log lines, appended in the study's folder
log = logging.getLogger(__name__)


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
    storage: str | None = None,
    heartbeat: int = HEARTBEAT,
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
        ``wilcoxon`` (default; ``median`` with fewer than 4 folds, see :func:`pruner_for`),
        ``median`` or ``none``.
    out_config
        Where the (first) tuned config goes (default: ``<learner>.tuned.yaml`` beside the config file).
    enqueue
        Dotted-key values to try first (in this order).
    plots
        Write Optuna's plots as HTML files in the study folder.
    storage
        A database URL (``postgresql://user:password@host:port/db``) shared by the workers of many
        machines; None keeps the study in a journal file in its folder.
    heartbeat
        Seconds between a database worker's heartbeats (a trial is failed and retried after twice that).

    Returns
    -------
    TuneResult

    Raises
    ------
    InputError
        A bad config or space, unprepared data, a study of other data or of another learner, a
        database that cannot be reached.
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
    if heartbeat < 1:
        raise InputError("--heartbeat", f"must be 1 second or more (got {heartbeat})")
    inputs_for = _InputsCache(data_dir, cache_dir, store)
    where = StudyStorage(storage, store.study_dir, heartbeat)
    where.connect()
    the_study = _open_study(base, space, inputs_for, where, study, objective)
    folder = store.study_dir(the_study.study_name)
    with log_file(folder / SESSION_LOG):
        failed = recover_killed(the_study, where.shared)
        if failed:
            log.warning(f"study {the_study.study_name}: trials {failed} lost their worker; marked FAIL and retried")
        _run_trials(the_study, base, space, inputs_for, objective, pruner, trials, timeout, enqueue)
    raw = read_yaml(path) if path is not None else base.model_dump()
    written = write_tuned_configs(the_study, raw, base, path, keep, out_config, folder)
    if plots:
        from mmscel.tune.report import write_plots

        write_plots(the_study, folder)
    return TuneResult(the_study, folder, written)


def _open_study(base: RunConfig, space: dict, inputs_for: _InputsCache, storage: StudyStorage, name, objective: str):
    """Open (or create) the study, refusing one of other data, folds, task, learner, settings or objective."""
    data_dir, cache_dir, _ = inputs_for.where
    facts = {"task": base.task, "learner": base.learner, "objective": objective}
    facts["config_fingerprint"] = config_fingerprint(base, space)
    facts["data_fingerprint"] = data_fingerprint(base.task, data_dir, cache_dir)
    if name is not None and storage.exists(name):  # checked before the fold file refuses other data
        _check_facts(storage.open(name), facts, _where(storage, name))
    facts.update(_fold_facts(base, inputs_for, objective))
    name = name or default_study_name(facts)
    study = storage.open(name)
    _check_facts(study, facts, _where(storage, name))
    return study


def _where(storage: StudyStorage, name: str):
    """What an error about study ``name`` names: its journal file or its database."""
    return storage.describe() if storage.shared else storage.folder_of(name) / JOURNAL


def _run_trials(study, base, space, inputs_for, objective, pruner, trials, timeout, enqueue) -> None:
    if trials == 0:
        return
    with _quiet():
        study.sampler = FirstTrialSeededTPE(base.seed)  # workers, and resumed sessions, draw apart
        folds = _cv_fold_count(base, inputs_for)
        used = pruner_for(pruner, folds)
        if used != pruner:
            log.info(f"the {pruner} pruner cannot prune on {folds} folds (p >= {0.5**folds:g}): {used} prunes instead")
        study.pruner = make_pruner(used)
        for values in enqueue:
            study.enqueue_trial(values)
        run = Objective(base, space, inputs_for, objective, per_fold=used == "wilcoxon")
        mlflow = tracking.trial_callbacks(inputs_for.where[2], base.tracking == "mlflow")  # a run per trial
        logged = [_log_trial, *mlflow]
        study.optimize(run, n_trials=trials, timeout=timeout, catch=(InputError,), callbacks=logged)


def _log_trial(study, trial) -> None:
    """One line per finished trial (Optuna's own lines are silenced on the command line)."""
    value = "" if trial.value is None else f" {trial.value:.4f}"
    took = trial.duration.total_seconds() if trial.duration is not None else float("nan")
    best = f"; best {study.best_value:.4f} (trial {study.best_trial.number})" if _has_complete(study) else ""
    log.info(f"trial {trial.number} {trial.state.name}{value} in {took:.1f} s{best}")


def _has_complete(study) -> bool:
    import optuna

    return bool(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


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


def _cv_fold_count(base: RunConfig, inputs_for: _InputsCache) -> int:
    return sum(split.role == "cv" for split in inputs_for(base).plan(base))


def pruner_for(name: str, cv_folds: int) -> str:
    """The pruner a session with ``cv_folds`` folds uses when ``name`` is asked for.

    The Wilcoxon pruner tests whether a trial's fold scores are worse than the
    best trial's on the same folds (one-sided signed-rank test, exact). With
    ``n`` folds the smallest p it can reach is ``2**-n`` (every fold worse), so
    below ``n = 4`` it never falls under ``WILCOXON_P`` and no trial would ever
    be pruned: the competition's 3 donor folds are such a case, and there the
    median pruner takes its place.

    Parameters
    ----------
    name
        The pruner asked for (see :func:`make_pruner`).
    cv_folds
        The number of ``cv`` folds a trial reports.

    Returns
    -------
    str
    """
    if name == "wilcoxon" and 0.5**cv_folds > WILCOXON_P:
        return "median"
    return name


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
            return optuna.pruners.WilcoxonPruner(p_threshold=WILCOXON_P)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def default_study_name(facts: dict) -> str:
    """``<task>_<learner>_<objective>_<data>_<folds>_<config>``: 8 characters of each fingerprint.

    Parameters
    ----------
    facts
        The study's task, learner, objective and data and fold fingerprints.

    Returns
    -------
    str
    """
    parts = (facts["task"], facts["learner"], facts["objective"], facts["data_fingerprint"][:8])
    return "_".join((*parts, facts["fold_fingerprint"][:8], facts["config_fingerprint"][:8]))


def config_fingerprint(base: RunConfig, space: dict) -> str:
    """The digest of what a study's trials share: the config without its name and the keys searched.

    Parameters
    ----------
    base
        The run config the space is searched around.
    space
        Dotted keys to distributions.

    Returns
    -------
    str
    """
    fixed = base.hashed()
    fixed.pop("name", None)
    for key in space:
        section, _, field = key.partition(".")
        fixed.get(section, {}).pop(field, None)
    return digest(fixed)


def _fold_facts(base: RunConfig, inputs_for: _InputsCache, objective: str) -> dict:
    """The study's facts that need the folds (and, for ``blend``, the finished runs of the task)."""
    inputs = inputs_for(base)
    holdout = base.folds.scheme == "last_day" or any(split.role == "holdout" for split in inputs.plan(base))
    if objective == "last_day" and not holdout:
        raise InputError("--objective", "last_day needs data with more than one day")
    facts = {
        "fold_fingerprint": inputs.folds.fingerprint,
        "fold_scheme": base.folds.scheme,
        "sampler": {"name": "TPESampler", "multivariate": True, "seed": base.seed, "plus": "first trial number"},
    }
    if objective == "blend":
        from mmscel.tune.ensemble import blend_facts

        facts.update(blend_facts(inputs_for.where[2], base, inputs))
    return facts


def _check_facts(study, facts: dict, where: Path) -> None:
    """Record a new study's facts; refuse a study of other data, folds, task, learner, objective or runs to blend."""
    recorded = recorded_facts(study)
    if recorded is None and "fold_fingerprint" in facts:
        _record_facts(study, facts)
        recorded = recorded_facts(study)  # a worker that started at the same moment may have recorded its own
    for key in ("data_fingerprint", "fold_fingerprint", "task", "learner", "objective", "config_fingerprint"):
        if recorded and key in facts and recorded.get(key) != facts[key]:
            what = {
                "data_fingerprint": "from other data",
                "fold_fingerprint": "on other folds",
                "config_fingerprint": "with other fixed settings (the config's keys outside the search space)",
            }.get(key, f"for another {key} ({recorded.get(key)})")
            raise InputError(where, f"study '{study.study_name}' was made {what}; pass another --study")
    from mmscel.tune.ensemble import check_runs

    check_runs(study, recorded, facts, where)


def _record_facts(study, facts: dict) -> None:
    """Keep the facts as one attribute (written at once, so no worker reads half of them), then one by one."""
    study.set_user_attr(FACTS_ATTR, facts)
    for key, value in facts.items():
        study.set_user_attr(key, value)


def recover_killed(study, shared: bool = False) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker is gone, and enqueue their parameters again.

    Parameters
    ----------
    study
        The study.
    shared
        The study lives in a database: its workers' heartbeats tell (for any host), otherwise
        the pid recorded by each trial tells (for this host; a journal has no heartbeat).

    Returns
    -------
    list of int
        Numbers of the trials marked FAIL.
    """
    import optuna

    if shared:
        before = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))}
        with _quiet():
            optuna.storages.fail_stale_trials(study)
        now = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
        return sorted(t.number for t in now if t.number not in before)
    retry = retry_callback()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR)
        if worker is None or worker_alive(worker):
            continue
        retry(study, study.tell(trial.number, state=optuna.trial.TrialState.FAIL))
        failed.append(trial.number)
    return failed


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
