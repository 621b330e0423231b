"""Features for level-1, cached under the store's ``features/`` folder.

A feature set is keyed by a fingerprint of the data, the feature config and
the seed: the same inputs give the same folder, which later runs reuse. For
Multiome the folder also holds the target SVD (:class:`mmscel.targets.GeneSVD`)
that learners' predictions live in, fitted on the gene targets after the
config's row transforms (clipping, median normalisation); predictions are
still scored against the targets as they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmscel.data.load import load, stacked_inputs
from mmscel.features.blocks import FEATURE_BLOCKS, BlockContext, FeatureBlock, compute_blocks
from mmscel.features.compute import svd_rank
from mmscel.features.config import FEATURE_CONFIGS, CiteFeatures, MultiFeatures
from mmscel.features.impute import imputed_svd
from mmscel.store import RunStore, data_fingerprint, digest, load_array, read_manifest, save_array, write_manifest
from mmscel.targets import GeneSVD
from mmscel.targets.rows import clip_sparse_rows, median_normalize_sparse_rows

FEATURE_VERSION = 3  # the input and target SVDs by mmscel.features.randomized_svd


@dataclass
class FeatureSet:
    """Dense float32 features of the train and test cells of one task.

    ``target_space`` is the fitted Multiome gene SVD (None for CITEseq).
    """

    task: str
    fingerprint: str
    data_fingerprint: str
    train: np.ndarray
    test: np.ndarray
    columns: list[str]
    train_ids: np.ndarray
    test_ids: np.ndarray
    target_space: GeneSVD | None = None
    folder: Path | None = None


def build_features(
    task: str,
    config: CiteFeatures | MultiFeatures | dict | None = None,
    data_dir="data",
    cache_dir=None,
    store: RunStore | str | Path = "oof",
    seed: int = 0,
) -> FeatureSet:
    """The feature set of ``task`` under ``config``: read from the store, or computed and stored.

    Parameters
    ----------
    task
        ``"cite"`` or ``"multi"``.
    config
        The task's feature config (a model, a mapping of its keys, or None for the defaults).
    data_dir, cache_dir
        The prepared competition folder and its cache.
    store
        The store (or its root folder) that caches feature sets.
    seed
        Seed of the randomized SVDs.

    Returns
    -------
    FeatureSet
        Train and test features, their column names and cell ids (and the Multiome target SVD).

    Raises
    ------
    InputError
        When the data is not prepared or lacks the task.
    KeyError
        When ``task`` is not ``"cite"`` or ``"multi"``.
    pydantic.ValidationError
        When a mapping ``config`` holds an unknown key or a bad value.
    """
    store = store if isinstance(store, RunStore) else RunStore(store)
    config = config if isinstance(config, FEATURE_CONFIGS[task]) else FEATURE_CONFIGS[task](**dict(config or {}))
    data_fp = data_fingerprint(task, data_dir, cache_dir)
    fingerprint = digest({"data": data_fp, "config": config.model_dump(), "seed": seed, "version": FEATURE_VERSION})
    folder = store.features_dir(task, fingerprint)
    manifest = read_manifest(folder / "manifest.json")
    if manifest is not None:
        return _load(folder, manifest, store)
    started = time.perf_counter()
    # Inputs are read once, train and test stacked; the Multiome targets only after the inputs are dropped.
    train = load(task, "train", data_dir, cache_dir, inputs=False, targets=task == "cite")
    test = load(task, "test", data_dir, cache_dir, check=False, inputs=False)
    metadata = pd.concat([train.metadata, test.metadata], ignore_index=True)
    ctx = BlockContext(stacked_inputs(task, data_dir, cache_dir), train, metadata, config, seed)
    blocks = compute_blocks(config, ctx)
    arrays = ctx.arrays
    del ctx
    if task == "multi":
        targets = load(task, "train", data_dir, cache_dir, check=False, inputs=False).targets
        prepare_gene_rows(targets, config)
        space = target_svd(targets, config, seed)
        arrays.update(
            target_components=space.components,
            target_mean=np.zeros(space.components.shape[1], np.float32),
            target_coefficients=space.embedding,
        )
    columns = [name for names, _ in blocks for name in names]
    matrix = np.hstack([values for _, values in blocks]).astype(np.float32)
    n_train = train.n_cells
    features = FeatureSet(
        task, fingerprint, data_fp, matrix[:n_train], matrix[n_train:], columns, train.cell_ids, test.cell_ids
    )
    _save(folder, features, arrays, config, time.perf_counter() - started)
    return _load(folder, read_manifest(folder / "manifest.json"), store)


def prepare_gene_rows(targets, config: MultiFeatures) -> None:
    """Clip and median-normalise the rows of the Multiome targets in place, as ``config`` asks, before their SVD.

    Parameters
    ----------
    targets
        The training cells' gene targets (CSR, writable values).
    config
        The Multiome feature config (``target_clip_quantile``, ``target_median_normalize``).
    """
    clip_sparse_rows(targets, config.target_clip_quantile)
    if config.target_median_normalize:
        median_normalize_sparse_rows(targets)


def target_svd(targets, config: MultiFeatures, seed: int) -> GeneSVD:
    """The target SVD of the prepared gene targets, of their zeros imputed first when ``config`` asks.

    With ``target_impute_components`` every zero of the targets is replaced by the value of their
    rank-r reconstruction (the 1st-place solution's imputation), kept as a sparse plus low-rank
    matrix, never dense; the coefficients learners fit are then those of the filled matrix. The
    scored targets stay the data's.

    Parameters
    ----------
    targets
        The training cells' gene targets (CSR; their stored values may be changed in place).
    config
        The Multiome feature config.
    seed
        Seed of the randomized SVDs.

    Returns
    -------
    GeneSVD
        A fitted space.
    """
    if not config.target_impute_components:
        return GeneSVD(config.target_svd_components, seed=seed).fit(targets)
    rank = svd_rank(config.target_svd_components, targets)
    scores, components = imputed_svd(targets, rank, config.target_impute_components, 1, seed, centred=False)
    return GeneSVD.from_fitted(components, scores, seed=seed)


def _save(folder: Path, features: FeatureSet, arrays: dict, config, seconds: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_array(folder / "train.npy", features.train)
    save_array(folder / "test.npy", features.test)
    save_array(folder / "train_ids.npy", features.train_ids.astype(str))
    save_array(folder / "test_ids.npy", features.test_ids.astype(str))
    for name, array in arrays.items():
        save_array(folder / f"{name}.npy", np.asarray(array))
    write_manifest(
        folder / "manifest.json",
        {
            "task": features.task,
            "fingerprint": features.fingerprint,
            "data_fingerprint": features.data_fingerprint,
            "config": config.model_dump(),
            "version": FEATURE_VERSION,
            "columns": features.columns,
            "shape": {"train": list(features.train.shape), "test": list(features.test.shape)},
            "arrays": sorted(arrays),
            "seconds": round(seconds, 2),
        },
    )


def _load(folder: Path, manifest: dict, store: RunStore) -> FeatureSet:
    features = FeatureSet(
        task=manifest["task"],
        fingerprint=manifest["fingerprint"],
        data_fingerprint=manifest["data_fingerprint"],
        train=load_array(folder / "train.npy"),
        test=load_array(folder / "test.npy"),
        columns=list(manifest["columns"]),
        train_ids=load_array(folder / "train_ids.npy").astype(object),
        test_ids=load_array(folder / "test_ids.npy").astype(object),
        folder=folder,
    )
    if "target_components" in manifest["arrays"]:
        components_file = folder / "target_components.npy"
        space = GeneSVD.from_fitted(load_array(components_file), load_array(folder / "target_coefficients.npy"))
        space.source = {"features": features.fingerprint, "components_file": store.relative(components_file)}
        features.target_space = space
    return features


__all__ = [
    "FEATURE_BLOCKS",
    "FEATURE_CONFIGS",
    "BlockContext",
    "CiteFeatures",
    "FeatureBlock",
    "FeatureSet",
    "MultiFeatures",
    "build_features",
]
