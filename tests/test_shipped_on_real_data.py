"""Every shipped config and the shipped blend, unchanged, on every dataset of ../shared/real-data.

The sets differ from the competition in every way a user's data can: one training donor
(BMMC), no donor or day at all (PBMC, muon), a few dozen proteins or genes instead of
thousands, raw counts in ``.X``, proteins kept in ``obsm`` (scvi-tools' layout, read
through the Python API). Each is imported, prepared, fitted by the ten shipped level-1
configs of its task, blended by ``configs/blend.yaml`` and submitted.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest

import mmscel
from mmscel.data.anndata_import import import_anndata
from mmscel.data.cache import prepare
from mmscel.store import RunStore, read_manifest

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real-data"
LEARNERS = ("ridge", "lgbm", "xgb", "catboost", "mlp")

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.slow,
    pytest.mark.skipif(not REAL.is_dir(), reason=f"real data folder {REAL} is absent"),
]


def _starter(folder: str, inputs: str, targets: str) -> dict:
    """The 2021 benchmark's files: train donor s1d1, test donor s1d2."""
    base = REAL / folder
    return {
        "inputs": base / f"train_{inputs}.h5ad",
        "targets": base / f"train_{targets}.h5ad",
        "test_inputs": base / f"test_{inputs}.h5ad",
        "test_targets": base / f"test_{targets}.h5ad",
    }


def _scvi_cite(name: str) -> dict:
    """A 10x CITE-seq set as scvi-tools keeps it: RNA counts in ``.X``, protein counts in ``obsm``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rna = anndata.read_h5ad(REAL / "pbmc_citeseq_10x" / f"{name}.h5ad")
    proteins = anndata.AnnData(
        X=np.asarray(rna.obsm["protein_expression"], dtype=np.float32),
        obs=pd.DataFrame(index=rna.obs_names),
        var=pd.DataFrame(index=[str(p) for p in rna.uns["protein_names"]]),
    )
    return {"inputs": rna, "targets": proteins, "test_fraction": 0.3}


DATASETS = {
    "bmmc_cite": ("cite", lambda: _starter("bmmc_cite_starter", "mod1", "mod2")),
    "bmmc_multiome": ("multi", lambda: _starter("bmmc_multiome_starter", "mod2", "mod1")),
    "pbmc_5k_protein": ("cite", lambda: _scvi_cite("pbmc_5k_protein_v3")),
    "pbmc_10k_protein": ("cite", lambda: _scvi_cite("pbmc_10k_protein_v3")),
    "muon_multiome": ("multi", lambda: {"mudata": REAL / "pbmc_multiome_muon" / "pbmc_rna_atac.h5mu"}),
}
SIGNAL = {"bmmc_multiome"}  # no better than the mean profile (see the real-data README): runs, not scores


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_shipped_configs_and_blend_run_unchanged(dataset, tmp_path):
    task, sources = DATASETS[dataset]
    data = tmp_path / "data"
    import_anndata(data, task, **sources())
    prepare(data)
    oof = tmp_path / "oof"

    for learner in LEARNERS:
        record = mmscel.run_level1(ROOT / "configs" / task / f"{learner}.yaml", data, oof_root=oof).record
        assert record.fold_scheme == "auto" and np.isfinite(record.cv), (dataset, learner)
        if dataset not in SIGNAL:
            assert record.cv > record.cv_mean_profile, (dataset, learner, record.cv, record.cv_mean_profile)
    applied = read_manifest(oof / "folds" / f"{task}_auto.json")["applied"]
    assert applied["scheme"] == "random", applied  # one donor and one day, or neither recorded

    mmscel.run_level2(ROOT / "configs" / "blend.yaml", data, oof_root=oof)
    stored = RunStore(oof).blend("blend")
    assert list(stored.tasks) == [task] and stored.manifest["skipped_tasks"] == [
        other for other in ("cite", "multi") if other != task
    ]
    assert sorted(stored.tasks[task].runs) == sorted(f"{task}_{learner}" for learner in LEARNERS)
    assert np.isfinite(stored.tasks[task].nested)

    record = mmscel.submit(data, oof_root=oof)
    assert record["rows"] > 0 and record["filled_with_mean_profile"] == [o for o in ("cite", "multi") if o != task]
