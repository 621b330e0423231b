"""The sampler of a tuning session: multivariate TPE, seeded by the first trial each worker runs.

Workers that share a study and seed their samplers alike draw the same
parameters (TPE's first trials are random draws from the seed). A study hands
out trial numbers atomically, so the number of a worker's first trial is its
own: seeding TPE with ``seed + that number`` keeps workers apart, and a lone
session (whose first trial is numbered by the trials already in the study) draws
the same parameters every time it is run on the same study.
"""

from __future__ import annotations

import warnings

from optuna.samplers import BaseSampler, TPESampler


class FirstTrialSeededTPE(BaseSampler):
    """:class:`optuna.samplers.TPESampler` (multivariate), seeded when this process starts its first trial.

    Parameters
    ----------
    seed
        The run config's seed; the sampler's is ``seed + the number of this process's first trial``.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self.seed_used: int | None = None
        self._tpe: TPESampler | None = None

    def before_trial(self, study, trial) -> None:
        """Make the TPE sampler at the first trial, then let it prepare the trial."""
        if self._tpe is None:
            import optuna

            self.seed_used = self.seed + trial.number
            with warnings.catch_warnings():  # multivariate TPE is marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self._tpe = TPESampler(multivariate=True, seed=self.seed_used)
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        """As TPE does."""
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        """As TPE does."""
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        """As TPE does."""
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        """As TPE does."""
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """As TPE does (Optuna calls it when trials run in threads)."""
        if self._tpe is not None:
            self._tpe.reseed_rng()
