"""Tuning sessions (``mmscel tune``): Optuna searches over a run config's parameters, fold by fold.

``space`` holds the search space of a config's ``tune:`` block (and the
learners' default spaces), ``objective`` one trial (the run's cross-validation
on the shared folds, reported and pruned after every fold), ``ensemble`` the
``blend`` objective (a trial scored by what it adds to the task's finished
runs), ``storage`` where a study lives (a journal file, or a database shared by
many machines), ``sampler`` the seeded TPE sampler, ``session`` a session
(study, pruner, recovery of killed trials, tuned configs) and ``report`` its
table and plots. Nothing here is imported by ``import mmscel.tune``: the public
entry is :func:`mmscel.tune.session.tune` (``mmscel.tune`` in the top-level API).
"""

import sys
import types


class _CallablePackage(types.ModuleType):
    """``mmscel.tune(...)`` runs a session even once this package has replaced the API function of that name.

    Importing ``mmscel.tune.<module>`` makes the package the ``tune`` attribute of
    ``mmscel``, where the top-level API had put :func:`mmscel.tune.session.tune`.
    """

    def __call__(self, *args, **kwargs):
        from mmscel.tune.session import tune

        return tune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
