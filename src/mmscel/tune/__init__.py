"""Tuning sessions (``mmscel tune``): Optuna searches over a run config's parameters, fold by fold.

``space`` holds the search space of a config's ``tune:`` block (and the
learners' default spaces), ``objective`` one trial (the run's cross-validation
on the shared folds, reported and pruned after every fold), ``journal`` the
study's storage, ``session`` a session (study, sampler, pruner, recovery of
killed trials, tuned configs) and ``report`` its table and plots. Nothing here
is imported by ``import mmscel.tune``: the public entry is
:func:`mmscel.tune.session.tune` (``mmscel.tune`` in the top-level API).
"""
