"""Split imported cells into training and test cells, by an obs column or at random."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmscel.data.anndata_read import Cells
from mmscel.data.error_text import shown
from mmscel.errors import InputError


@dataclasses.dataclass(frozen=True)
class SplitRule:
    """How cells without separate test files are split.

    Attributes
    ----------
    split_by : str or None
        An obs column: cells whose value is in ``test_values`` go to test.
    test_values : sequence or None
        The values of ``split_by`` that go to test.
    test_fraction : float
        Without ``split_by``, the share of cells drawn at random for test.
    seed : int
        Seed of the random split.
    """

    split_by: str | None = None
    test_values: Sequence[Any] | None = None
    test_fraction: float = 0.3
    seed: int = 0


def split_cells(cells: Cells, rule: SplitRule) -> tuple[np.ndarray, dict]:
    """Decide which cells go to test.

    Parameters
    ----------
    cells : Cells
        All cells of the import.
    rule : SplitRule
        By column when ``rule.split_by`` is set, else at random.

    Returns
    -------
    tuple of (numpy.ndarray, dict)
        One bool per cell (True: test), and a description of the split for ``truth.json``.

    Raises
    ------
    InputError
        If the obs column is missing, or the split leaves no training or no test cells.
    """
    if rule.split_by is not None:
        is_test, split = _column_split(cells, rule.split_by, rule.test_values)
    else:
        is_test = _random_split(len(cells.ids), rule.test_fraction, rule.seed)
        split = {"method": "fraction", "test_fraction": float(rule.test_fraction), "seed": int(rule.seed)}
    _check_split_sizes(cells, is_test, split)
    return is_test, split


def _column_split(cells: Cells, column: str, test_values) -> tuple[np.ndarray, dict]:
    """Cells whose ``column`` value is one of ``test_values`` go to test."""
    if column not in cells.obs.columns:
        available = ", ".join(map(str, cells.obs.columns)) or "none"
        raise InputError(cells.inputs.where, f"no obs column {shown(column)} to split by (available: {available})")
    values = cells.obs[column].astype(str).to_numpy()
    wanted = [str(v) for v in test_values]
    split = {"method": "column", "column": column, "test_values": wanted}
    return np.isin(values, wanted), split


def _random_split(n_cells: int, fraction: float, seed: int) -> np.ndarray:
    """A seeded random test mask holding ``round(fraction * n_cells)`` cells."""
    n_test = int(round(float(fraction) * n_cells))
    is_test = np.zeros(n_cells, dtype=bool)
    is_test[np.random.default_rng(seed).permutation(n_cells)[:n_test]] = True
    return is_test


def _check_split_sizes(cells: Cells, is_test: np.ndarray, split: dict) -> None:
    n_test = int(is_test.sum())
    if n_test == 0 or n_test == len(is_test):
        side = "no test cells" if n_test == 0 else "no training cells"
        detail = ", ".join(f"{k}={v}" for k, v in split.items() if k != "method")
        column = f"obs[{shown(split.get('column'))}]"
        where = f"{cells.inputs.where} {column}" if split["method"] == "column" else "test_fraction"
        raise InputError(where, f"the split ({detail}) leaves {side} of {len(is_test)}")
