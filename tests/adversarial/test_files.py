"""Temporaries left by killed processes are swept; writes that mark work done are atomic."""

import os
import subprocess
import sys

from mmscel.fsutil import atomic_path, sweep_temporaries, write_json
from mmscel.level1 import run_level1


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_the_temporaries_of_dead_processes_are_swept(tmp_path):
    gone, mine = dead_pid(), os.getpid()
    stale = [
        tmp_path / f".oof.npy.{gone}.tmp",
        tmp_path / "fold_0" / f".model.{gone}.tmp",
        tmp_path / f".run.old-{gone}",
    ]
    stale[1].mkdir(parents=True)
    (stale[1] / "part.txt").write_text("half a model")
    stale[0].write_bytes(b"half")
    stale[2].mkdir()
    kept = [tmp_path / f".test.npy.{mine}.tmp", tmp_path / "oof.npy", tmp_path / ".lock", tmp_path / ".hidden.tmp"]
    for path in kept:
        path.write_text("x")
    removed = sweep_temporaries(tmp_path)
    assert sorted(removed) == sorted(stale) and not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert sweep_temporaries(tmp_path / "missing") == []


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = write_json(tmp_path / "manifest.json", {"a": 1})
    try:
        with atomic_path(path, durable=True) as tmp:
            tmp.write_text("{half")
            raise RuntimeError("killed")
    except RuntimeError:
        pass
    assert path.read_text().startswith("{") and '"a": 1' in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_a_run_sweeps_what_a_killed_run_left(tiny_prepared, tmp_path):
    config = {"task": "cite", "learner": "ridge", "features": {"svd_components": 8}, "n_jobs": 1}
    left = tmp_path / "oof" / "cite" / "cite_ridge" / "folds" / "fold_0" / f".model.{dead_pid()}.tmp"
    left.mkdir(parents=True)
    (left / "ridge.npz").write_bytes(b"half")
    run_level1(config, tiny_prepared, oof_root=tmp_path / "oof")
    assert not left.exists()
