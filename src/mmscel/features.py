"""Features for level-1: TruncatedSVD of the inputs (and of Multiome targets), selected genes,
per-cell technical statistics and donor sex, cached under ``oof/features/``.

Inputs stay sparse all the way to the SVD (fitted on train + test inputs, as
the top teams did); only the compressed features are dense. A feature set is
keyed by a fingerprint of the data and the feature config: the same inputs
give the same folder, which later runs reuse.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from mmscel.config import CiteFeatures, MultiFeatures
from mmscel.data import layout
from mmscel.data.load import load
from mmscel.learners.base import TargetBasis
from mmscel.store import data_fingerprint, digest, load_array, read_manifest, save_array, write_manifest

FEATURE_VERSION = 1
QUANTILES = (0.25, 0.5, 0.75)


@dataclass
class FeatureSet:
    """Dense float32 features of the train and test cells of one task."""

    task: str
    fingerprint: str
    data_fingerprint: str
    train: np.ndarray
    test: np.ndarray
    columns: list[str]
    train_ids: np.ndarray
    test_ids: np.ndarray
    target_basis: TargetBasis | None = None  # Multiome: genes ~ coefficients @ components
    train_target_coefficients: np.ndarray | None = None
    folder: Path | None = None


def build_features(task: str, config: CiteFeatures | MultiFeatures, data_dir, cache_dir=None, oof_root="oof", seed: int = 0) -> FeatureSet:
    """The feature set of ``task`` under ``config``: loaded from the cache or computed and cached."""
    data_fp = data_fingerprint(task, data_dir, cache_dir)
    fingerprint = digest({"data": data_fp, "config": config.model_dump(), "seed": seed, "version": FEATURE_VERSION})
    folder = Path(oof_root) / "features" / f"{task}-{fingerprint}"
    manifest = read_manifest(folder / "manifest.json")
    if manifest is not None:
        return _load(folder, manifest)
    started = time.perf_counter()
    train, test = load(task, "train", data_dir, cache_dir), load(task, "test", data_dir, cache_dir, check=False)
    builder = _cite_features if task == "cite" else _multi_features
    blocks, arrays = builder(train, test, config, seed)
    columns = [name for names, _ in blocks for name in names]
    matrix = np.hstack([values for _, values in blocks]).astype(np.float32)
    result = FeatureSet(task, fingerprint, data_fp, matrix[: train.n_cells], matrix[train.n_cells :], columns, train.cell_ids, test.cell_ids)
    _save(folder, result, arrays, config, time.perf_counter() - started)
    return _load(folder, read_manifest(folder / "manifest.json"))


def _cite_features(train, test, config: CiteFeatures, seed: int):
    inputs = sp.vstack([train.inputs, test.inputs]).tocsr()
    metadata = pd.concat([train.metadata, test.metadata], ignore_index=True)
    svd, components = truncated_svd(inputs, config.svd_components, seed)
    if config.batch_centering:
        svd = centre_by_group(svd, metadata)
    blocks = [([f"svd_{i}" for i in range(svd.shape[1])], svd)]
    genes = selected_genes(train, config)
    if len(genes):
        blocks.append(([f"gene:{train.input_names[g]}" for g in genes], inputs[:, genes].toarray()))
    if config.cell_stats:
        blocks.append((STAT_NAMES, cell_stats(inputs)))
    if config.donor_sex:
        blocks.append((["female"], female(metadata)))
    return blocks, {"input_svd_components": components, "selected_genes": genes}


def _multi_features(train, test, config: MultiFeatures, seed: int):
    inputs = sp.vstack([train.inputs, test.inputs]).tocsr()
    # Drop the per-split copies: at full scale each copy of the ATAC inputs is ~7.4 GB.
    train.inputs = test.inputs = None
    metadata = pd.concat([train.metadata, test.metadata], ignore_index=True)
    blocks = []
    if config.cell_stats:
        blocks.append((STAT_NAMES, cell_stats(inputs)))
    if config.chromosome_ratios:
        names, ratios = chromosome_ratios(inputs, train.input_names)
        blocks.append((names, ratios))
    binary_svd = None
    if config.binary_svd_components:
        binary_svd, _ = truncated_svd(transform(inputs, ["binarize"]), config.binary_svd_components, seed + 1)
    svd, components = truncated_svd(transform(inputs, config.transforms, copy=False), config.svd_components, seed)
    del inputs
    if config.batch_centering:
        svd = centre_by_group(svd, metadata)
    blocks.insert(0, ([f"svd_{i}" for i in range(svd.shape[1])], svd))
    if binary_svd is not None:
        blocks.insert(1, ([f"binsvd_{i}" for i in range(binary_svd.shape[1])], binary_svd))
    if config.donor_sex:
        blocks.append((["female"], female(metadata)))
    target_svd = TruncatedSVD(n_components=_rank(config.target_svd_components, train.targets), algorithm="randomized", random_state=seed)
    coefficients = target_svd.fit_transform(train.targets).astype(np.float32)
    arrays = {
        "input_svd_components": components,
        "target_components": target_svd.components_.astype(np.float32),
        "target_mean": np.zeros(train.targets.shape[1], np.float32),
        "target_coefficients": coefficients,
    }
    return blocks, arrays


def _rank(wanted: int, matrix) -> int:
    return max(1, min(wanted, min(matrix.shape) - 1))


def truncated_svd(matrix: sp.csr_matrix, n_components: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Randomized TruncatedSVD of a sparse matrix: (scores, components), float32."""
    svd = TruncatedSVD(n_components=_rank(n_components, matrix), algorithm="randomized", random_state=seed)
    scores = svd.fit_transform(matrix)
    return scores.astype(np.float32), svd.components_.astype(np.float32)


def transform(matrix: sp.csr_matrix, steps: list[str], copy: bool = True) -> sp.csr_matrix:
    """Binarise, log1p or row-L2-normalise a sparse matrix, in the given order (sparsity kept).

    With ``copy=False`` the values of ``matrix`` are changed in place where possible.
    """
    out = matrix.copy() if steps and copy else matrix
    for step in steps:
        if step == "binarize":
            out.data[:] = 1.0
        elif step == "log1p":
            np.log1p(out.data, out=out.data)
        elif step == "l2":
            norms = np.sqrt(np.asarray(out.multiply(out).sum(axis=1)).ravel())
            out = sp.diags(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32)) @ out
            out = out.tocsr()
    return out


STAT_NAMES = ["stat:nonzero_ratio", "stat:mean", "stat:std"] + [f"stat:nonzero_q{int(q * 100)}" for q in QUANTILES]


def cell_stats(matrix: sp.csr_matrix) -> np.ndarray:
    """Per-cell technical statistics: non-zero ratio, mean, std and quantiles of the non-zero values."""
    matrix = matrix.tocsr()
    n_rows, n_cols = matrix.shape
    counts = np.diff(matrix.indptr)
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    squares = np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel()
    mean = sums / n_cols
    std = np.sqrt(np.maximum(squares / n_cols - mean**2, 0.0))
    rows = np.repeat(np.arange(n_rows), counts)
    ordered = matrix.data[np.lexsort((matrix.data, rows))]
    quantiles = []
    for q in QUANTILES:
        position = matrix.indptr[:-1] + np.floor(q * np.maximum(counts - 1, 0)).astype(np.int64)
        quantiles.append(np.where(counts > 0, ordered[np.minimum(position, max(len(ordered) - 1, 0))] if len(ordered) else 0.0, 0.0))
    return np.column_stack([counts / n_cols, mean, std, *quantiles]).astype(np.float32)


def chromosome_ratios(matrix: sp.csr_matrix, peaks: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Per-cell share of non-zero peaks on each chromosome (contigs pooled as 'other')."""
    chromosome = np.array([str(p).split(":")[0].split("-")[0] for p in peaks], dtype=object)
    chromosome = np.where(np.char.startswith(chromosome.astype(str), "chr"), chromosome, "other")
    names, codes = np.unique(chromosome, return_inverse=True)
    indicator = sp.csr_matrix((np.ones(len(codes), np.float32), (np.arange(len(codes)), codes)), shape=(len(codes), len(names)))
    present = matrix.copy()
    present.data[:] = 1.0
    hits = np.asarray((present @ indicator).todense())
    ratios = hits / np.maximum(np.bincount(codes, minlength=len(names)), 1)
    return [f"chrom:{n}" for n in names], ratios.astype(np.float32)


def selected_genes(train, config: CiteFeatures) -> np.ndarray:
    """Input columns kept raw: genes named after a target protein, and the top-k correlated per target."""
    chosen: set[int] = set()
    if config.protein_genes:
        proteins = set(train.target_names)
        chosen |= {i for i, name in enumerate(train.input_names) if str(name).split("_", 1)[-1] in proteins}
    if config.top_correlated_genes:
        corr = sparse_correlation(train.inputs, train.targets)
        top = np.argsort(-np.abs(np.nan_to_num(corr)), axis=0)[: config.top_correlated_genes]
        chosen |= set(top.ravel().tolist())
    return np.asarray(sorted(chosen), dtype=np.int64)


def sparse_correlation(X: sp.csr_matrix, Y: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of sparse ``X`` with every column of dense ``Y`` (genes x targets)."""
    n = X.shape[0]
    Y = np.asarray(Y, dtype=np.float64)
    x_mean = np.asarray(X.mean(axis=0)).ravel()
    x_sq = np.asarray(X.multiply(X).mean(axis=0)).ravel()
    x_sd = np.sqrt(np.maximum(x_sq - x_mean**2, 0.0))
    y_centred = Y - Y.mean(axis=0)
    cov = np.asarray(X.T @ y_centred) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / (x_sd[:, None] * Y.std(axis=0)[None, :])


def centre_by_group(values: np.ndarray, metadata: pd.DataFrame) -> np.ndarray:
    """Subtract each (donor, day) group's median (a per-batch correction)."""
    out = values.copy()
    groups = metadata["donor"].astype(str) + "_" + metadata["day"].astype(str)
    for _, rows in groups.groupby(groups).indices.items():
        out[rows] -= np.median(values[rows], axis=0)
    return out


def female(metadata: pd.DataFrame) -> np.ndarray:
    """Donor sex as a 0/1 column (the competition's donor 13176 is female; other datasets get 0)."""
    return (metadata["donor"].astype(str).to_numpy() == str(layout.FEMALE_DONOR)).astype(np.float32)[:, None]


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


def _load(folder: Path, manifest: dict) -> FeatureSet:
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
        features.target_basis = TargetBasis(load_array(folder / "target_components.npy"), load_array(folder / "target_mean.npy"))
        features.train_target_coefficients = load_array(folder / "target_coefficients.npy")
    return features
