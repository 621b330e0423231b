"""Bad data is refused at ``prepare`` and ``import-anndata``: one line naming the file, exit 2, nothing written.

Each case damages one file of a prepared tiny competition (or one AnnData
source) the way a user's edit, a cut download or a wrong layer would.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from support import TINY_AS_FULL, cache_snapshot

from conftest import run_cli
from mmscel.data import layout
from mmscel.data.cache import prepare, values_path
from mmscel.data.h5_reader import FrameReader
from mmscel.data.h5_writer import write_frame
from mmscel.errors import InputError


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2 and a single stderr line without a traceback, holding every fragment; returns the line."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def refused_prepare(data: Path, *fragments: str, command: list[str] | None = None) -> str:
    """Run ``mmscel prepare`` on damaged data; check the refusal and that the cache did not change."""
    before = cache_snapshot(data)
    if command is None:
        result = run_cli("prepare", "--data", data)
    else:
        result = subprocess.run([*command, "prepare", "--data", str(data)], capture_output=True, text=True)
    line = assert_refused(result, *fragments)
    assert cache_snapshot(data) == before
    return line


def edit_csv(path: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    """Rewrite a CSV with one edit, every other field kept as the same text."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(frame).to_csv(path, index=False)


def edit_matrix(path: Path, edit: Callable[[np.ndarray], None]) -> tuple[np.ndarray, np.ndarray]:
    """Rewrite a competition frame with ``edit`` applied to its values; return its cell ids and columns."""
    with FrameReader(path) as reader:
        values, index, columns = reader.read_rows(0, reader.shape[0]), reader.index, reader.columns
    edit(values)
    write_frame(path, path.stem, index, columns, values)
    return index, columns


# ----------------------------------------------------------------------------- the scoring tables


def test_a_short_evaluation_ids_is_refused(tiny_copy):
    path = tiny_copy / layout.EVALUATION_IDS
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 2]))  # cut at a line boundary
    refused_prepare(tiny_copy, str(path), "sample_submission.csv has")


def test_an_evaluated_cell_that_is_not_a_test_cell_is_refused(tiny_copy):
    train_cell = pd.read_csv(tiny_copy / layout.METADATA)["cell_id"].iloc[0]
    path = tiny_copy / layout.EVALUATION_IDS

    def swap(frame):
        frame.loc[3, "cell_id"] = train_cell
        return frame

    edit_csv(path, swap)
    refused_prepare(tiny_copy, str(path), f"cell_id '{train_cell}' of row_id 3", "not a cell of the test inputs")


def test_the_competition_count_is_checked_on_the_full_shapes(tiny_copy):
    path = tiny_copy / layout.EVALUATION_IDS
    refused_prepare(
        tiny_copy, str(path), f"{layout.FULL_SUBMISSION_ROWS:,}", command=[sys.executable, "-c", TINY_AS_FULL]
    )


def test_the_competition_count_passes_when_it_matches(tiny_copy, monkeypatch):
    rows = len(pd.read_csv(tiny_copy / layout.SAMPLE_SUBMISSION))
    shapes = {"cite": {"test": 360, "inputs": 400}, "multi": {"test": 420, "inputs": 1000}}
    monkeypatch.setattr(layout, "FULL_SHAPES", shapes)
    monkeypatch.setattr(layout, "FULL_SUBMISSION_ROWS", rows)
    prepare(tiny_copy)  # the checks run on every prepare, reused tables or not
    monkeypatch.setattr(layout, "FULL_SUBMISSION_ROWS", rows + 1)
    with pytest.raises(InputError, match="the competition's has"):
        prepare(tiny_copy)


# ----------------------------------------------------------------------------- metadata.csv

METADATA_CASES = {
    "blank day": ("day", "", "day on row 4", "is blank"),
    "text day": ("day", "four", "day on row 4", "'four'"),
    "fractional day": ("day", "3.5", "day on row 4", "'3.5'"),
    "blank donor": ("donor", " ", "donor on row 4", "is blank"),
    "blank cell_id": ("cell_id", "", "cell_id on row 4", "is blank"),
}


@pytest.mark.parametrize("case", list(METADATA_CASES))
def test_bad_metadata_values_are_refused(tiny_copy, case):
    column, value, *fragments = METADATA_CASES[case]
    path = tiny_copy / layout.METADATA
    cell = pd.read_csv(path, dtype=str)["cell_id"].iloc[3]

    def damage(frame):
        frame.loc[3, column] = value
        return frame

    edit_csv(path, damage)
    line = refused_prepare(tiny_copy, str(path), *fragments)
    assert column == "cell_id" or f"cell_id '{cell}'" in line


def test_a_repeated_cell_id_is_refused(tiny_copy):
    path = tiny_copy / layout.CITE_DAY2_EXTRA_METADATA

    def repeat(frame):
        frame.loc[5, "cell_id"] = frame.loc[2, "cell_id"]
        return frame

    edit_csv(path, repeat)
    refused_prepare(tiny_copy, str(path), "on row 6 appears more than once")


def test_whole_number_days_written_as_floats_are_accepted(tiny_copy):
    def as_float(frame):
        frame["day"] = frame["day"] + ".0"
        return frame

    edit_csv(tiny_copy / layout.METADATA, as_float)
    assert "metadata" in prepare(tiny_copy).built


# ----------------------------------------------------------------------------- matrices

MATRIX_CASES = {
    "nan input": (layout.CITE.train_inputs, np.nan, "non-finite value nan"),
    "inf target": (layout.CITE.train_targets, np.inf, "non-finite value inf"),
    "negative raw counts": ("train_multi_targets_raw", -3.0, "negative value -3"),
    "negative normalised input": (layout.MULTI.test_inputs, -0.5, "negative value -0.5"),
}


@pytest.mark.parametrize("case", list(MATRIX_CASES))
def test_bad_matrix_values_are_refused(tiny_copy, case):
    stem, value, problem = MATRIX_CASES[case]
    path = tiny_copy / f"{stem}.h5"
    index, columns = edit_matrix(path, lambda values: values.__setitem__((7, 5), value))
    refused_prepare(tiny_copy, str(path), problem, f"row 7 (cell '{index[7]}')", f"column 5 ('{columns[5]}')")


def test_the_first_bad_value_is_named_across_chunks(tiny_copy):
    path = tiny_copy / f"{layout.MULTI.train_inputs}.h5"
    index, columns = edit_matrix(path, lambda values: values.__setitem__((np.s_[301:], 17), np.nan))
    before = cache_snapshot(tiny_copy)
    with pytest.raises(InputError) as info:
        prepare(tiny_copy, chunk_bytes=4 * 1000 * 64)  # 64-row chunks
    assert f"row 301 (cell '{index[301]}'), column 17 ('{columns[17]}')" in str(info.value)
    assert cache_snapshot(tiny_copy) == before


def test_negative_protein_levels_are_data(tiny_prepared):
    targets = sp.load_npz(values_path(tiny_prepared / ".cache", layout.CITE.train_targets))
    assert targets.data.min() < 0  # dsb-normalised levels: refused nowhere


def test_a_sparse_source_with_a_bad_value_is_refused(tiny_prepared, tmp_path):
    folder = tmp_path / "sparse"
    folder.mkdir()
    for stem in layout.CITE.stems():
        matrix = sp.load_npz(values_path(tiny_prepared / ".cache", stem)).tocsr()
        if stem == layout.CITE.train_inputs:
            matrix.data[matrix.indptr[2]] = np.nan
        sp.save_npz(folder / f"{stem}_values.sparse.npz", matrix)
        (folder / f"{stem}_idxcol.npz").write_bytes((tiny_prepared / ".cache" / f"{stem}_idxcol.npz").read_bytes())
    (folder / layout.METADATA).write_bytes((tiny_prepared / layout.METADATA).read_bytes())
    with pytest.raises(InputError, match="non-finite value nan at row 2"):
        prepare(folder)
    assert not values_path(folder / ".cache", layout.CITE.train_inputs).exists()


# ----------------------------------------------------------------------------- import-anndata


def write_h5ad(path: Path, x: np.ndarray, obs: pd.DataFrame, names: list[str], counts: np.ndarray | None = None):
    """An .h5ad of ``x`` (and ``layers['counts']``) for the cells of ``obs``."""
    adata = anndata.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=pd.Index(names)))
    if counts is not None:
        adata.layers["counts"] = sp.csr_matrix(counts)
    adata.write_h5ad(path)
    return path


@pytest.fixture
def sources(tmp_path) -> Callable[..., list[str]]:
    """Writes paired CITE-like sources with one damage; returns the import command's arguments."""

    def make(*, x=None, counts=None, obs=None) -> list[str]:
        rng = np.random.default_rng(0)
        cells = [f"c{i}" for i in range(20)]
        raw = rng.poisson(1.0, (20, 8)).astype(np.float32)
        base = pd.DataFrame({"donor": ["d1"] * 12 + ["d2"] * 8, "day": [2] * 10 + [3] * 10}, index=pd.Index(cells))
        rna = write_h5ad(
            tmp_path / "rna.h5ad",
            np.log1p(raw) if x is None else x(np.log1p(raw)),
            base if obs is None else obs(base),
            [f"G{i}" for i in range(8)],
            raw if counts is None else counts(raw),
        )
        adt = write_h5ad(tmp_path / "adt.h5ad", rng.normal(size=(20, 3)), base, ["P0", "P1", "P2"])
        return ["--task", "cite", "--inputs", str(rna), "--targets", str(adt), "--split-by", "donor"]

    return make


def changed(value, row: int, column: int):
    """An edit that sets one entry of a copy of an array."""

    def edit(array):
        array = array.copy()
        array[row, column] = value
        return array

    return edit


IMPORT_CASES = {
    "nan input": (dict(x=changed(np.nan, 4, 2)), [], ["rna.h5ad:", "non-finite value nan", "(cell 'c4')"]),
    "negative counts": (
        dict(counts=changed(-1.0, 5, 6)),
        ["--raw"],
        ["rna.h5ad layers['counts']", "negative value -1", "(cell 'c5')", "('G6')"],
    ),
    "blank day": (dict(obs=lambda o: o.assign(day=[2.0] * 9 + [np.nan] + [3.0] * 10)), [], ["obs['day'] of cell 'c9'"]),
    "blank donor": (dict(obs=lambda o: o.assign(donor=["d1"] * 12 + [None] + ["d2"] * 7)), [], ["obs['donor']"]),
}


@pytest.mark.parametrize("case", list(IMPORT_CASES))
def test_bad_anndata_sources_are_refused(sources, tmp_path, case):
    damage, options, fragments = IMPORT_CASES[case]
    arguments = sources(**damage)
    out = tmp_path / "out"
    result = run_cli("import-anndata", *arguments, "--test-values", "d2", "--out", out, *options)
    assert_refused(result, *fragments)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
