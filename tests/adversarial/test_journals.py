"""A crafted Optuna journal cannot make a blend unpickle anything."""

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from mmscel.blend.methods import optuna_weights
from mmscel.blend.objective import dense_statistics
from mmscel.errors import InputError


class TouchOnLoad:
    """Unpickling this object creates ``path``: proof that a pickle from disk was loaded."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def crafted_trial(marker: Path, n_runs: int) -> optuna.trial.FrozenTrial:
    """A finished weight trial whose CMA-ES optimizer state is a payload."""
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE,
        value=0.5,
        params={f"u{i}": 0.5 for i in range(n_runs)},
        distributions={f"u{i}": FloatDistribution(1e-12, 1.0) for i in range(n_runs)},
        user_attrs={"weights": [1.0 / n_runs] * n_runs},
        system_attrs={"cma:optimizer:0": pickle.dumps(TouchOnLoad(marker), protocol=4).hex()},
    )


def statistics(n_runs=3, cells=60, targets=20):
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(cells, targets))
    return dense_statistics([truth + rng.normal(scale=1 + i, size=truth.shape) for i in range(n_runs)], truth)


def test_the_crafted_state_would_run_in_a_plain_cmaes_study(tmp_path):
    """The control: Optuna's CMA-ES sampler does unpickle this state, so the next test means something."""
    marker = tmp_path / "control-ran"
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.CmaEsSampler(seed=0))
    study.add_trial(crafted_trial(marker, 3))
    study.optimize(lambda t: sum(t.suggest_float(f"u{i}", 1e-12, 1.0) for i in range(3)), n_trials=1)
    assert marker.exists()


def test_a_blend_resumed_from_a_crafted_journal_never_unpickles(tmp_path):
    marker = tmp_path / "payload-ran"
    journal = tmp_path / "study-cite-x.journal"
    storage = JournalStorage(JournalFileBackend(str(journal)))
    crafted = optuna.create_study(study_name="b-cite", storage=storage, direction="maximize")
    crafted.add_trial(crafted_trial(marker, 3))
    weights, study = optuna_weights(statistics(), n_trials=8, seed=0, storage=journal, study_name="b-cite")
    assert not marker.exists()
    assert len(study.trials) == 8 and np.isclose(weights.sum(), 1.0)


HOLD_JOURNAL_LOCK = """
import sys, time
from optuna.storages.journal import JournalFileOpenLock
JournalFileOpenLock(sys.argv[1]).acquire()
print("holding", flush=True)
time.sleep(600)
"""


def test_a_blend_after_a_kill_that_left_the_journal_lock_finishes(tmp_path, monkeypatch):
    """The lock a killed session leaves is taken over after the grace period, also with a relative path."""
    monkeypatch.chdir(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_JOURNAL_LOCK, "study.journal"], stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"holding"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert Path("study.journal.lock").exists()  # what the kill left behind
    started = time.monotonic()
    weights, _ = optuna_weights(statistics(), n_trials=5, seed=0, storage=Path("study.journal"), study_name="s")
    assert time.monotonic() - started < 60 and np.isclose(weights.sum(), 1.0)


def test_a_damaged_journal_is_a_one_line_error_naming_it(tmp_path):
    journal = tmp_path / "study.journal"
    journal.write_text('{"op_code": 0, "worker_id": "x"\nnot json\n')
    with pytest.raises(InputError, match="study.journal: damaged Optuna journal"):
        optuna_weights(statistics(), n_trials=5, seed=0, storage=journal, study_name="s")
