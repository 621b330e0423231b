"""Blend methods behind one interface: weights on the simplex that maximise the blend objective.

``greedy`` is Caruana's ensemble selection with replacement; ``slsqp`` solves
the simplex-constrained problem with scipy; ``stack`` is nonnegative least
squares of the standardised truth on the standardised predictions; ``optuna``
searches the simplex through the Dirichlet parametrisation from Optuna's FAQ
(``x_i = -log u_i``, normalised) with a seeded CMA-ES sampler, after enqueuing
the equal-weights point and the greedy and SLSQP solutions as first trials,
so it never ends below them. Its study persists in an Optuna journal file, so a
blend session can be resumed and extended.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import minimize, nnls

from mmscel.blend.objective import CellStatistics
from mmscel.registry import Registry
from mmscel.tune.journal import journal_study

_PERSIST_EVERY = 100

#: blend method name -> ``fit(stats, rows, **options) -> weights``
BLEND_METHODS: Registry = Registry("blend method")


def equal_weights(n_runs: int) -> np.ndarray:
    """Weigh every run alike.

    Parameters
    ----------
    n_runs
        Number of runs.

    Returns
    -------
    numpy.ndarray
        ``n_runs`` weights of ``1 / n_runs``.
    """
    return np.full(n_runs, 1.0 / n_runs)


def greedy_weights(stats: CellStatistics, rows=None, steps: int = 25) -> np.ndarray:
    """Caruana ensemble selection with replacement; the best prefix is kept.

    Parameters
    ----------
    stats
        The runs' per-cell statistics against the truth.
    rows
        Cells to score on (None: all).
    steps
        Selections made; each adds the run that scores the blend best.

    Returns
    -------
    numpy.ndarray
        Weights on the simplex: the selection counts of the best-scoring prefix, normalised.
    """
    n_runs = stats.cross.shape[1]
    counts = np.zeros(n_runs)
    best_counts, best_score = None, -np.inf
    for _ in range(steps):
        candidates = [stats.score((counts + np.eye(n_runs)[i]) / (counts.sum() + 1), rows) for i in range(n_runs)]
        counts[int(np.argmax(candidates))] += 1
        if max(candidates) > best_score + 1e-12:
            best_score, best_counts = max(candidates), counts.copy()
    return best_counts / best_counts.sum()


def slsqp_weights(stats: CellStatistics, rows=None, start: np.ndarray | None = None) -> np.ndarray:
    """Maximise the blend score on the simplex with SLSQP.

    Parameters
    ----------
    stats, rows
        As in :func:`greedy_weights`.
    start
        The starting weights (None: equal weights).

    Returns
    -------
    numpy.ndarray
        The solution, clipped at 0 and normalised onto the simplex.
    """
    n_runs = stats.cross.shape[1]
    result = minimize(
        lambda w: -stats.score(w, rows),
        equal_weights(n_runs) if start is None else start,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * n_runs,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
        options={"maxiter": 200, "ftol": 1e-10},
    )
    return _simplex(result.x)


def stack_weights(stats: CellStatistics, rows=None) -> np.ndarray:
    """Nonnegative least squares of the standardised truth on the standardised predictions.

    Parameters
    ----------
    stats, rows
        As in :func:`greedy_weights`.

    Returns
    -------
    numpy.ndarray
        The coefficients normalised onto the simplex (equal weights when all are 0).
    """
    gram, cross = stats.normal_equations(rows)
    jitter = 1e-9 * np.trace(gram) / len(gram)
    lower = np.linalg.cholesky(gram + jitter * np.eye(len(gram)))
    weights, _ = nnls(lower.T, np.linalg.solve(lower, cross))
    return _simplex(weights) if weights.sum() > 0 else equal_weights(len(gram))


def optuna_weights(
    stats: CellStatistics,
    rows=None,
    n_trials: int = 200,
    seed: int = 0,
    storage: Path | None = None,
    study_name: str = "blend",
) -> tuple[np.ndarray, object]:
    """Optuna search on the simplex; returns the best weights and the study.

    The study runs in memory; with ``storage`` (a journal file) the finished
    trials are appended to it every ``_PERSIST_EVERY`` trials and reloaded on
    the next call, so an interrupted or shorter session is resumed and extended.
    The caller names ``storage`` after the blend's inputs: a study is only
    reused for the same runs and cells. (Optuna's SQLite storage costs ~50-150 ms
    a trial, more than the whole objective on full-size OOF.)

    Parameters
    ----------
    stats, rows
        As in :func:`greedy_weights`.
    n_trials
        Trials to have finished in all, counting those reloaded from ``storage``.
    seed
        Seed of the sampler.
    storage
        The journal file to resume from and append to (None: nothing persists).
    study_name
        The study's name in ``storage``.

    Returns
    -------
    tuple
        The best trial's weights, and the :class:`optuna.Study`.
    """
    import optuna

    n_runs = stats.cross.shape[1]
    sampler = (
        optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if n_runs > 1
        else optuna.samplers.RandomSampler(seed=seed)
    )
    study = optuna.create_study(study_name=study_name, direction="maximize", sampler=sampler)
    persisted = journal_study(storage, study_name) if storage else None
    if persisted is not None:  # sampler state is dropped on reading too: a crafted journal cannot reach the unpickler
        kept = [t for t in _finished(persisted) if len(t.user_attrs.get("weights", ())) == n_runs]
        study.add_trials([_without_sampler_state(t) for t in kept])
    if not study.trials:
        for start in (equal_weights(n_runs), greedy_weights(stats, rows), slsqp_weights(stats, rows)):
            study.enqueue_trial(_to_unit(start))

    def objective(trial) -> float:
        x = np.array([-np.log(trial.suggest_float(f"u{i}", 1e-12, 1.0)) for i in range(n_runs)])
        weights = _simplex(x)
        trial.set_user_attr("weights", weights.tolist())
        return stats.score(weights, rows)

    saved = len(_finished(study))
    while (remaining := n_trials - len(_finished(study))) > 0:
        study.optimize(objective, n_trials=min(remaining, _PERSIST_EVERY))
        if persisted is not None:
            persisted.add_trials([_without_sampler_state(t) for t in _finished(study)[saved:]])
            saved = len(_finished(study))
    return np.asarray(study.best_trial.user_attrs["weights"]), study


def _without_sampler_state(trial):
    """A copy of ``trial`` without the CMA-ES optimizer state, which Optuna stores as a pickle.

    mmscel never loads pickles from disk, so a resumed study keeps every trial
    (and its best) but starts a fresh CMA-ES generation.
    """
    import optuna

    return optuna.trial.create_trial(
        state=trial.state,
        value=trial.value,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs=trial.user_attrs,
        system_attrs={k: v for k, v in trial.system_attrs.items() if not k.startswith("cma:")},
    )


def _finished(study) -> list:
    return [t for t in study.trials if t.state.is_finished()]


def _to_unit(weights: np.ndarray) -> dict[str, float]:
    """Optuna parameters that map back onto ``weights`` (x_i = -log u_i proportional to w_i)."""
    x = np.asarray(weights, dtype=np.float64)
    x = x / x.max() if x.max() > 0 else np.ones_like(x)
    return {f"u{i}": float(np.clip(np.exp(-xi), 1e-12, 1.0)) for i, xi in enumerate(x)}


def _simplex(weights) -> np.ndarray:
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    return w / w.sum() if w.sum() > 0 else equal_weights(len(w))


@BLEND_METHODS.register("optuna")
def _optuna(stats, rows=None, n_trials=200, seed=0, storage=None, study_name="blend", **_) -> np.ndarray:
    return optuna_weights(stats, rows, n_trials, seed, storage, study_name)[0]


@BLEND_METHODS.register("greedy")
def _greedy(stats, rows=None, greedy_steps=25, **_) -> np.ndarray:
    return greedy_weights(stats, rows, greedy_steps)


@BLEND_METHODS.register("slsqp")
def _slsqp(stats, rows=None, **_) -> np.ndarray:
    return slsqp_weights(stats, rows)


@BLEND_METHODS.register("stack")
def _stack(stats, rows=None, **_) -> np.ndarray:
    return stack_weights(stats, rows)


@BLEND_METHODS.register("equal")
def _equal(stats, rows=None, **_) -> np.ndarray:
    return equal_weights(stats.cross.shape[1])


def fit_weights(method: str, stats: CellStatistics, rows=None, **options) -> np.ndarray:
    """Weights of the registered ``method`` fitted on ``rows`` (all cells when None).

    Parameters
    ----------
    method
        A name in ``BLEND_METHODS``.
    stats
        The runs' per-cell statistics against the truth.
    rows
        Cells to fit on (None: all).
    **options
        ``n_trials``, ``seed``, ``storage``, ``study_name`` (optuna), ``greedy_steps`` (greedy).

    Returns
    -------
    numpy.ndarray
        One weight per run, on the simplex.

    Raises
    ------
    mmscel.registry.UnknownName
        When ``method`` is not registered.
    """
    return BLEND_METHODS.get(method)(stats, rows, **options)
