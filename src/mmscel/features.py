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
from mmscel.data.load import load, stacked_inputs
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


def build_features(
    task: str, config: CiteFeatures | MultiFeatures, data_dir, cache_dir=None, oof_root="oof", seed: int = 0
) -> FeatureSet:
    """The feature set of ``task`` under ``config``: loaded from the cache or computed and cached."""
    data_fp = data_fingerprint(task, data_dir, cache_dir)
    fingerprint = digest({"data": data_fp, "config": config.model_dump(), "seed": seed, "version": FEATURE_VERSION})
    folder = Path(oof_root) / "features" / f"{task}-{fingerprint}"
    manifest = read_manifest(folder / "manifest.json")
    if manifest is not None:
        return _load(folder, manifest)
    started = time.perf_counter()
    # Inputs are read once, train and test stacked; the Multiome targets only after the inputs are dropped.
    train = load(task, "train", data_dir, cache_dir, inputs=False, targets=task == "cite")
    test = load(task, "test", data_dir, cache_dir, check=False, inputs=False)
    inputs = stacked_inputs(task, data_dir, cache_dir)
    if task == "cite":
        blocks, arrays = _cite_features(inputs, train, test, config, seed)
    else:
        blocks, arrays = _multi_features(inputs, train, test, config, seed)
        del inputs
        arrays.update(
            _target_svd(load(task, "train", data_dir, cache_dir, check=False, inputs=False).targets, config, seed)
        )
    columns = [name for names, _ in blocks for name in names]
    matrix = np.hstack([values for _, values in blocks]).astype(np.float32)
    result = FeatureSet(
        task,
        fingerprint,
        data_fp,
        matrix[: train.n_cells],
        matrix[train.n_cells :],
        columns,
        train.cell_ids,
        test.cell_ids,
    )
    _save(folder, result, arrays, config, time.perf_counter() - started)
    return _load(folder, read_manifest(folder / "manifest.json"))


def _cite_features(inputs: sp.csr_matrix, train, test, config: CiteFeatures, seed: int):
    metadata = pd.concat([train.metadata, test.metadata], ignore_index=True)
    svd, components = truncated_svd(inputs, config.svd_components, seed)
    if config.batch_centering:
        svd = centre_by_group(svd, metadata)
    blocks = [([f"svd_{i}" for i in range(svd.shape[1])], svd)]
    genes = selected_genes(first_rows(inputs, train.n_cells), train, config)
    if len(genes):
        blocks.append(([f"gene:{train.input_names[g]}" for g in genes], inputs[:, genes].toarray()))
    if config.cell_stats:
        blocks.append((STAT_NAMES, cell_stats(inputs)))
    if config.donor_sex:
        blocks.append((["female"], female(metadata)))
    return blocks, {"input_svd_components": components, "selected_genes": genes}


def _multi_features(inputs: sp.csr_matrix, train, test, config: MultiFeatures, seed: int):
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
    if config.batch_centering:
        svd = centre_by_group(svd, metadata)
    blocks.insert(0, ([f"svd_{i}" for i in range(svd.shape[1])], svd))
    if binary_svd is not None:
        blocks.insert(1, ([f"binsvd_{i}" for i in range(binary_svd.shape[1])], binary_svd))
    if config.donor_sex:
        blocks.append((["female"], female(metadata)))
    return blocks, {"input_svd_components": components}


def _target_svd(targets: sp.csr_matrix, config: MultiFeatures, seed: int) -> dict[str, np.ndarray]:
    """The Multiome target basis (uncentred TruncatedSVD) and the train cells' coefficients in it."""
    target_svd = TruncatedSVD(
        n_components=_rank(config.target_svd_components, targets), algorithm="randomized", random_state=seed
    )
    coefficients = target_svd.fit_transform(targets).astype(np.float32)
    return {
        "target_components": target_svd.components_.astype(np.float32),
        "target_mean": np.zeros(targets.shape[1], np.float32),
        "target_coefficients": coefficients,
    }


def first_rows(matrix: sp.csr_matrix, n_rows: int) -> sp.csr_matrix:
    """The first ``n_rows`` rows of a CSR matrix as a view (no copy of the values)."""
    end = matrix.indptr[n_rows]
    view = sp.csr_matrix((n_rows, matrix.shape[1]), dtype=matrix.dtype)
    # Assigned, not passed to the constructor: scipy copies a slice that is under half of its base array.
    view.data, view.indices, view.indptr = matrix.data[:end], matrix.indices[:end], matrix.indptr[: n_rows + 1]
    return view


def _rank(wanted: int, matrix) -> int:
    return max(1, min(wanted, min(matrix.shape) - 1))


def truncated_svd(matrix: sp.csr_matrix, n_components: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Randomized TruncatedSVD of a sparse matrix: (scores, components), float32."""
    svd = TruncatedSVD(n_components=_rank(n_components, matrix), algorithm="randomized", random_state=seed)
    scores = svd.fit_transform(matrix)
    return scores.astype(np.float32), svd.components_.astype(np.float32)


def transform(matrix: sp.csr_matrix, steps: list[str], copy: bool = True) -> sp.csr_matrix:
    """Binarise, log1p or row-L2-normalise a sparse matrix, in the given order (sparsity kept).

    With ``copy=False`` the values of ``matrix`` are changed in place; a copy
    shares the column indices and row pointer of ``matrix`` (only the values are new).
    """
    out = (
        sp.csr_matrix((matrix.data.copy(), matrix.indices, matrix.indptr), shape=matrix.shape, copy=False)
        if steps and copy
        else matrix
    )
    for step in steps:
        if step == "binarize":
            out.data[:] = 1.0
        elif step == "log1p":
            np.log1p(out.data, out=out.data)
        elif step == "l2":
            for start, stop in row_blocks(out):
                values = out.data[out.indptr[start] : out.indptr[stop]]  # a view: scaled in place
                counts = np.diff(out.indptr[start : stop + 1])
                rows = np.repeat(np.arange(stop - start), counts)
                norms = np.sqrt(np.bincount(rows, weights=np.square(values, dtype=np.float64), minlength=stop - start))
                values *= np.repeat(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32), counts)
    return out


def row_blocks(matrix: sp.csr_matrix, max_nnz: int = 2**24):
    """(start, stop) row ranges of a CSR matrix holding about ``max_nnz`` non-zeros each.

    Per-cell statistics walk these blocks so that their temporaries stay small
    (the full Multiome inputs hold 0.9 billion non-zeros).
    """
    n_rows = matrix.shape[0]
    if n_rows == 0:
        return
    per_row = max(1, int(matrix.indptr[-1]) // n_rows)
    step = max(1, max_nnz // per_row)
    for start in range(0, n_rows, step):
        yield start, min(start + step, n_rows)


STAT_NAMES = ["stat:nonzero_ratio", "stat:mean", "stat:std"] + [f"stat:nonzero_q{int(q * 100)}" for q in QUANTILES]


def cell_stats(matrix: sp.csr_matrix) -> np.ndarray:
    """Per-cell technical statistics: non-zero ratio, mean, std and quantiles of the non-zero values."""
    matrix = matrix.tocsr()
    out = np.empty((matrix.shape[0], len(STAT_NAMES)), np.float32)
    for start, stop in row_blocks(matrix):
        out[start:stop] = _block_stats(matrix[start:stop], matrix.shape[1])
    return out


def _block_stats(block: sp.csr_matrix, n_cols: int) -> np.ndarray:
    counts = np.diff(block.indptr)
    sums = np.asarray(block.sum(axis=1)).ravel()
    squares = np.asarray(block.multiply(block).sum(axis=1)).ravel()
    mean = sums / n_cols
    std = np.sqrt(np.maximum(squares / n_cols - mean**2, 0.0))
    rows = np.repeat(np.arange(block.shape[0]), counts)
    ordered = block.data[np.lexsort((block.data, rows))]
    quantiles = []
    for q in QUANTILES:
        position = block.indptr[:-1] + np.floor(q * np.maximum(counts - 1, 0)).astype(np.int64)
        quantiles.append(
            np.where(counts > 0, ordered[np.minimum(position, max(len(ordered) - 1, 0))] if len(ordered) else 0.0, 0.0)
        )
    return np.column_stack([counts / n_cols, mean, std, *quantiles])


def chromosome_ratios(matrix: sp.csr_matrix, peaks: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Per-cell share of non-zero peaks on each chromosome (contigs pooled as 'other')."""
    chromosome = np.array([str(p).split(":")[0].split("-")[0] for p in peaks], dtype=object)
    chromosome = np.where(np.char.startswith(chromosome.astype(str), "chr"), chromosome, "other")
    names, codes = np.unique(chromosome, return_inverse=True)
    indicator = sp.csr_matrix(
        (np.ones(len(codes), np.float32), (np.arange(len(codes)), codes)), shape=(len(codes), len(names))
    )
    hits = np.empty((matrix.shape[0], len(names)), np.float32)
    for start, stop in row_blocks(matrix):
        present = matrix[start:stop]
        present.data[:] = 1.0
        hits[start:stop] = (present @ indicator).toarray()
    ratios = hits / np.maximum(np.bincount(codes, minlength=len(names)), 1)
    return [f"chrom:{n}" for n in names], ratios.astype(np.float32)


def selected_genes(train_inputs: sp.csr_matrix, train, config: CiteFeatures) -> np.ndarray:
    """Input columns kept raw: genes named after a target protein, and the top-k correlated per target."""
    chosen: set[int] = set()
    if config.protein_genes:
        proteins = set(train.target_names)
        chosen |= {i for i, name in enumerate(train.input_names) if str(name).split("_", 1)[-1] in proteins}
    if config.top_correlated_genes:
        corr = sparse_correlation(train_inputs, train.targets)
        top = np.argsort(-np.abs(np.nan_to_num(corr)), axis=0)[: config.top_correlated_genes]
        chosen |= set(top.ravel().tolist())
    return np.asarray(sorted(chosen), dtype=np.int64)


def sparse_correlation(X: sp.csr_matrix, Y: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of sparse ``X`` with every column of dense ``Y`` (genes x targets)."""
    n = X.shape[0]
    Y = np.asarray(Y, dtype=np.float64)
    y_centred = Y - Y.mean(axis=0)
    x_sum, x_sq, cov = np.zeros(X.shape[1]), np.zeros(X.shape[1]), np.zeros((X.shape[1], Y.shape[1]))
    for start, stop in row_blocks(X):
        block = X[start:stop].astype(np.float64)
        x_sum += np.asarray(block.sum(axis=0)).ravel()
        x_sq += np.asarray(block.multiply(block).sum(axis=0)).ravel()
        cov += np.asarray(block.T @ y_centred[start:stop])
    x_mean = x_sum / n
    x_sd = np.sqrt(np.maximum(x_sq / n - x_mean**2, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (cov / n) / (x_sd[:, None] * Y.std(axis=0)[None, :])


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
        features.target_basis = TargetBasis(
            load_array(folder / "target_components.npy"), load_array(folder / "target_mean.npy")
        )
        features.train_target_coefficients = load_array(folder / "target_coefficients.npy")
    return features
