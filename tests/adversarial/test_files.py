"""Temporaries left by killed processes are swept; writes that mark work done are atomic."""

import os
import subprocess
import sys

from mmscel.fsutil import atomic_path, sweep_leftovers, sweep_temporaries, write_json
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


def test_what_a_killed_writer_left_beside_a_dataset_is_swept(tmp_path):
    gone, mine = dead_pid(), os.getpid()
    stale = [tmp_path / f".data.partial-{gone}", tmp_path / f".data.import-{gone}.tmp", tmp_path / f".data.old-{gone}"]
    for path in stale:
        (path / "truth").mkdir(parents=True)
        (path / "truth" / "half.h5").write_bytes(b"half")
    kept = [tmp_path / f".data.partial-{mine}", tmp_path / f".other.partial-{gone}", tmp_path / ".data.notes"]
    for path in kept:
        path.mkdir()
    assert sorted(sweep_leftovers(tmp_path / "data")) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)


def test_synth_and_import_sweep_what_a_killed_run_left(tmp_path):
    import anndata
    import numpy as np

    from mmscel.data.anndata_import import import_anndata
    from mmscel.data.synth.generate import generate

    left = tmp_path / f".tiny.partial-{dead_pid()}"
    (left / "truth").mkdir(parents=True)
    generate(tmp_path / "tiny", "tiny", seed=0)
    assert not left.exists() and (tmp_path / "tiny" / "metadata.csv").exists()
    left = tmp_path / f".imported.import-{dead_pid()}.tmp"
    left.mkdir()
    rng = np.random.default_rng(0)
    rna = anndata.AnnData(rng.poisson(1.0, (30, 12)).astype(np.float32))
    adt = anndata.AnnData(rng.poisson(3.0, (30, 4)).astype(np.float32))
    rna.obs_names = adt.obs_names = [f"c{i}" for i in range(30)]
    import_anndata(tmp_path / "imported", "cite", inputs=rna, targets=adt)
    assert not left.exists() and (tmp_path / "imported" / "metadata.csv").exists()


def test_parquet_frames_read_natively_equal_what_pandas_reads(tmp_path):
    import pandas as pd

    from mmscel.fsutil import read_parquet_frame

    frame = pd.DataFrame(
        {"cell_id": ["c1", "c2", "c3"], "fold": [0, 1, -1], "day": [2.0, 3.0, None]},
        index=pd.Index(["a", "b", "c"], name="row"),
    )
    path = tmp_path / "frame.parquet"
    frame.to_parquet(path)
    pd.testing.assert_frame_equal(read_parquet_frame(path), pd.read_parquet(path))
    pd.testing.assert_frame_equal(read_parquet_frame(str(path)), frame)
    chosen = read_parquet_frame(path, columns=["fold"])
    pd.testing.assert_frame_equal(chosen, pd.read_parquet(path, columns=["fold"]))
