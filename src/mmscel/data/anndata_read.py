"""Read AnnData ``.h5ad`` / MuData ``.h5mu`` sources as paired input and target cells.

Feature names follow Kaggle: CITEseq inputs ``<ensembl id>_<symbol>``, Multiome
inputs peaks ``chr1:100-200`` and Multiome targets Ensembl ids.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from mmscel.data.anndata_sources import Sources, describe, open_anndata, open_mudata
from mmscel.data.error_text import shown
from mmscel.errors import InputError

DEFAULT_MODS = {"cite": ("rna", ("prot", "adt")), "multi": ("atac", ("rna",))}


@dataclasses.dataclass(frozen=True)
class Block:
    """One modality's matrix; its rows are the source file's cells.

    Attributes
    ----------
    where : str
        File path (and modality) for error messages.
    matrix : scipy.sparse.csr_matrix or numpy.ndarray
        The values.
    counts : scipy.sparse.csr_matrix or numpy.ndarray or None
        ``layers['counts']``, when present.
    names : numpy.ndarray
        Kaggle-style feature names, in output column order.
    columns : numpy.ndarray or None
        Source column of each output column (None: the same order).
    transform : callable or None
        Applied to the dense rows of ``matrix`` in output order (the processing of raw counts).
    """

    where: str
    matrix: Any
    counts: Any | None
    names: np.ndarray
    columns: np.ndarray | None = None
    transform: Callable[[np.ndarray], np.ndarray] | None = None

    def rows(self, positions: np.ndarray, counts: bool = False) -> np.ndarray:
        """Dense float32 rows in output column order.

        Parameters
        ----------
        positions : numpy.ndarray
            Source rows to take.
        counts : bool
            Read ``counts`` instead of ``matrix``.

        Returns
        -------
        numpy.ndarray
            ``len(positions) x len(names)`` float32.
        """
        source = self.counts if counts else self.matrix
        block = source[positions]
        block = block.toarray() if sparse.issparse(block) else np.asarray(block)
        block = np.asarray(block, dtype=np.float32)
        block = block if self.columns is None else block[:, self.columns]
        return self.transform(block) if self.transform is not None and not counts else block


@dataclasses.dataclass(frozen=True)
class Cells:
    """Paired input and target rows of a set of cells, in output order.

    Attributes
    ----------
    ids : numpy.ndarray
        Cell ids.
    obs : pandas.DataFrame
        Cell annotations, indexed by ``ids``.
    inputs, targets : Block
        The two modalities.
    input_rows, target_rows : numpy.ndarray
        Row of each cell in ``inputs`` and in ``targets``.
    """

    ids: np.ndarray
    obs: pd.DataFrame
    inputs: Block
    targets: Block
    input_rows: np.ndarray
    target_rows: np.ndarray

    def take(self, mask: np.ndarray) -> Cells:
        """The cells where ``mask`` is true, in the same order.

        Parameters
        ----------
        mask : numpy.ndarray
            One bool per cell.

        Returns
        -------
        Cells
            A subset sharing the same blocks.
        """
        return dataclasses.replace(
            self,
            ids=self.ids[mask],
            obs=self.obs.loc[mask],
            input_rows=self.input_rows[mask],
            target_rows=self.target_rows[mask],
        )

    def rows_of(self, role: str) -> np.ndarray:
        """Source rows of the cells in the block ``role``.

        Parameters
        ----------
        role : {'inputs', 'targets'}
            Which block.

        Returns
        -------
        numpy.ndarray
            ``input_rows`` or ``target_rows``.
        """
        return self.input_rows if role == "inputs" else self.target_rows


def read_cells(task_name: str, sources: Sources, layer: str | None) -> tuple[Cells, dict]:
    """Read the training sources (a ``.h5mu`` or paired ``.h5ad`` files) as aligned cells.

    Parameters
    ----------
    task_name : {'cite', 'multi'}
        The task, which decides the feature names and default modalities.
    sources : Sources
        The files to read.
    layer : str or None
        Read values from this layer instead of ``.X``.

    Returns
    -------
    tuple of (Cells, dict)
        The cells, and a description of the sources for ``truth.json``.

    Raises
    ------
    InputError
        If a file is missing or unreadable, lacks the modality, layer or
        matrix, repeats names, or the two modalities hold different cells.
    """
    if sources.mudata is not None:
        return _load_mudata(task_name, sources.mudata, sources.input_mod, sources.target_mod, layer)
    cells = _load_pair(task_name, sources.inputs, sources.targets, layer, targets_obsm=sources.targets_obsm)
    inputs, key = describe(sources.inputs, "inputs"), sources.targets_obsm
    targets = describe(sources.targets, "targets") if key is None else obsm_where(inputs, key)
    return cells, {"inputs": inputs, "targets": targets}


def read_test_cells(task_name: str, sources: Sources, layer: str | None, train: Cells) -> Cells:
    """Read the separate test files as cells with the training feature order.

    Parameters
    ----------
    task_name : {'cite', 'multi'}
        The task.
    sources : Sources
        Holds ``test_inputs`` and ``test_targets``.
    layer : str or None
        Read values from this layer instead of ``.X``.
    train : Cells
        The training cells, whose features the test files must hold.

    Returns
    -------
    Cells
        The test cells, columns reordered to the training order.

    Raises
    ------
    InputError
        As :func:`read_cells`, or if the features differ from training or a
        test cell id is also a training cell id.
    """
    test = _load_pair(task_name, sources.test_inputs, sources.test_targets, layer, "test_", sources.targets_obsm)
    test = _align_features(train, test)
    _check_disjoint(train, test, describe(sources.test_inputs, "test_inputs"))
    return test


def peak_name(name: str) -> str:
    """Kaggle's spelling of an ATAC peak.

    Parameters
    ----------
    name : str
        A peak such as ``chr1-100-200``.

    Returns
    -------
    str
        ``chr1:100-200``; a name that already has ':' is returned unchanged.
    """
    return name if ":" in name else name.replace("-", ":", 1)


def _load_pair(task_name: str, inputs, targets, layer, prefix: str = "", targets_obsm: str | None = None) -> Cells:
    """Read paired ``inputs`` / ``targets`` (.h5ad files or AnnData objects, or the inputs' obsm) as aligned cells."""
    adata_in, where_in = open_anndata(inputs, f"{prefix}inputs"), describe(inputs, f"{prefix}inputs")
    block_in = _block(adata_in, where_in, task_name, "inputs", layer)
    if targets_obsm is None:
        adata_tg = open_anndata(targets, f"{prefix}targets")
        block_tg = _block(adata_tg, describe(targets, f"{prefix}targets"), task_name, "targets", layer)
    else:
        adata_tg = obsm_anndata(adata_in, targets_obsm, where_in)
        block_tg = _block(adata_tg, obsm_where(where_in, targets_obsm), task_name, "targets", None)
    return _pair(adata_in, adata_tg, block_in, block_tg, extra_obs=())


def obsm_where(inputs: str, key: str) -> str:
    """How messages and ``truth.json`` name targets read from ``obsm[key]`` of the inputs ``inputs``."""
    return f"{inputs}:obsm[{key}]"


def obsm_anndata(adata, key: str, where: str):
    """The matrix ``adata.obsm[key]`` as an AnnData of the same cells, its columns named.

    Parameters
    ----------
    adata
        The inputs' AnnData.
    key
        The ``obsm`` entry holding the targets.
    where
        The inputs' file (or role), for messages.

    Returns
    -------
    anndata.AnnData
        Cells x targets: a DataFrame's columns name them, else ``uns['protein_names']`` (scvi-tools).

    Raises
    ------
    InputError
        A missing entry, or an array without as many names as columns.
    """
    import anndata

    if key not in adata.obsm:
        raise InputError(where, f"no obsm {shown(key)} (available: {', '.join(adata.obsm) or 'none'})")
    values = adata.obsm[key]
    if isinstance(values, pd.DataFrame):
        names, matrix = np.asarray(values.columns, dtype=str), values.to_numpy()
    else:
        names, matrix = np.asarray(adata.uns.get("protein_names", []), dtype=str), values
        if matrix.ndim != 2 or len(names) != matrix.shape[1]:
            problem = f"obsm {shown(key)} is an array of {matrix.shape[-1]} columns and uns['protein_names'] "
            problem += f"names {len(names)}: give a DataFrame (its columns name the targets) or those names"
            raise InputError(where, problem)
    matrix = matrix if sparse.issparse(matrix) else np.asarray(matrix, dtype=np.float32)
    var = pd.DataFrame(index=pd.Index(names.astype(object)))
    return anndata.AnnData(X=matrix, obs=pd.DataFrame(index=adata.obs_names.copy()), var=var)


def _load_mudata(task_name: str, source, input_mod, target_mod, layer) -> tuple[Cells, dict]:
    """Read the two modalities of a .h5mu file (or a MuData object) as aligned cells."""
    mdata, path = open_mudata(source), describe(source, "mudata")
    available = list(mdata.mod)
    default_in, default_tg = DEFAULT_MODS[task_name]
    input_mod = _pick_mod(path, available, [input_mod] if input_mod else [default_in])
    target_mod = _pick_mod(path, available, [target_mod] if target_mod else list(default_tg))
    adata_in, adata_tg = mdata.mod[input_mod], mdata.mod[target_mod]
    block_in = _block(adata_in, f"{path}:{input_mod}", task_name, "inputs", layer)
    block_tg = _block(adata_tg, f"{path}:{target_mod}", task_name, "targets", layer)
    cells = _pair(adata_in, adata_tg, block_in, block_tg, extra_obs=(mdata.obs,))
    return cells, {"mudata": path, "input_mod": input_mod, "target_mod": target_mod}


def _pick_mod(path, available: list[str], wanted: list[str]) -> str:
    for name in wanted:
        if name in available:
            return name
    raise InputError(
        path, f"no modality {' or '.join(map(shown, wanted))} (available: {', '.join(available) or 'none'})"
    )


def _block(adata, where: str, task_name: str, role: str, layer: str | None) -> Block:
    """The value matrix and Kaggle-style feature names of one AnnData."""
    if layer is None:
        matrix = adata.X
        if matrix is None:
            raise InputError(where, "has no .X matrix (give layer=...)")
    elif layer in adata.layers:
        matrix = adata.layers[layer]
    else:
        raise InputError(where, f"no layer {shown(layer)} (available: {', '.join(adata.layers) or 'none'})")
    counts = adata.layers["counts"] if "counts" in adata.layers else None
    names = _feature_names(task_name, role, adata.var)
    _check_unique(names, where, "feature names")
    _check_unique(np.asarray(adata.obs_names, dtype=object), where, "cell ids (obs_names)")
    return Block(where, _row_major(matrix), _row_major(counts), names)


def _row_major(matrix):
    """CSR for sparse matrices (cheap row slicing), the array itself otherwise."""
    if matrix is None:
        return None
    if sparse.issparse(matrix):
        return sparse.csr_matrix(matrix)
    return np.asarray(matrix)


def _feature_names(task_name: str, role: str, var: pd.DataFrame) -> np.ndarray:
    """Kaggle-style column names for one modality."""
    symbols = np.asarray(var.index, dtype=str).astype(object)
    if task_name == "cite" and role == "inputs" and "gene_ids" in var:
        return np.asarray(var["gene_ids"].astype(str), dtype=object) + "_" + symbols
    if task_name == "multi" and role == "inputs":
        return np.asarray([peak_name(name) for name in symbols], dtype=object)
    if task_name == "multi" and "gene_ids" in var:
        return np.asarray(var["gene_ids"].astype(str), dtype=object)
    return symbols


def _check_unique(names: np.ndarray, where: str, what: str) -> None:
    values, counts = np.unique(names.astype(str), return_counts=True)
    if (counts > 1).any():
        raise InputError(where, f"duplicate {what}, e.g. {shown(values[counts > 1][:3])}")


def _pair(adata_in, adata_tg, block_in: Block, block_tg: Block, extra_obs) -> Cells:
    """Align the target rows to the input cells; refuse different cell sets."""
    ids = np.asarray(adata_in.obs_names, dtype=str).astype(object)
    target_ids = pd.Index(np.asarray(adata_tg.obs_names, dtype=str))
    target_rows = target_ids.get_indexer(ids)
    if len(target_ids) != len(ids) or (target_rows < 0).any():
        only_in = len(pd.Index(ids).difference(target_ids))
        only_tg = len(target_ids.difference(pd.Index(ids)))
        raise InputError(
            block_tg.where,
            f"holds different cells than {block_in.where} ({only_in} only in inputs, {only_tg} only in targets)",
        )
    frames = [adata_in.obs, adata_tg.obs, *extra_obs]
    return Cells(ids, _merge_obs(frames, ids), block_in, block_tg, np.arange(len(ids)), target_rows)


def _merge_obs(frames, ids: np.ndarray) -> pd.DataFrame:
    """One obs table for ``ids``: columns of the first frame that has each."""
    out = pd.DataFrame(index=pd.Index(ids, name="cell_id"))
    for frame in frames:
        index = pd.Index(np.asarray(frame.index, dtype=str))
        if not index.is_unique:
            continue
        rows = index.get_indexer(ids)
        for column in frame.columns:
            if column not in out.columns:
                values = frame[column].to_numpy(dtype=object)
                out[column] = np.where(rows >= 0, values[np.maximum(rows, 0)], None) if len(values) else None
    return out


def _align_features(train: Cells, test: Cells) -> Cells:
    """Reorder the test columns to the training columns; refuse other feature sets."""
    blocks = {}
    for role in ("inputs", "targets"):
        ref, block = getattr(train, role), getattr(test, role)
        if np.array_equal(ref.names, block.names):
            continue
        position = pd.Index(block.names).get_indexer(ref.names)
        if len(block.names) != len(ref.names) or (position < 0).any():
            missing = pd.Index(ref.names).difference(pd.Index(block.names))[:3].tolist()
            extra = pd.Index(block.names).difference(pd.Index(ref.names))[:3].tolist()
            raise InputError(
                block.where,
                f"test {role} features differ from training ({len(block.names)} vs {len(ref.names)}; "
                f"missing e.g. {shown(missing)}, extra e.g. {shown(extra)})",
            )
        blocks[role] = dataclasses.replace(block, names=ref.names, columns=position)
    return dataclasses.replace(test, **blocks)


def _check_disjoint(train: Cells, test: Cells, where) -> None:
    shared = pd.Index(train.ids).intersection(pd.Index(test.ids))
    if len(shared):
        problem = f"{len(shared)} test cell ids also appear in training, e.g. {shown(shared[:3].tolist())}"
        raise InputError(where, problem)
