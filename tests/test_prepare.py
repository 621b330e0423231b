"""h5 -> sparse cache round trip, reuse, staleness, and the loading API."""

import os
import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmscel.data import layout, load
from mmscel.data.cache import LEAK_REPORT, idxcol_path, prepare, values_path
from mmscel.errors import InputError


@pytest.mark.parametrize("stem", layout.H5_STEMS + tuple(s + "_raw" for s in layout.H5_STEMS))
def test_one_block_round_trip(tiny_prepared, stem):
    cache = tiny_prepared / ".cache"
    matrix = sp.load_npz(values_path(cache, stem))
    assert matrix.format == "csr" and matrix.dtype == np.float32
    with np.load(idxcol_path(cache, stem), allow_pickle=False) as idxcol:
        index, columns = idxcol["index"], idxcol["columns"]
    frame = pd.read_hdf(tiny_prepared / f"{stem}.h5")
    assert list(index) == list(frame.index) and list(columns) == list(frame.columns)
    np.testing.assert_array_equal(matrix.toarray(), frame.to_numpy())


def test_two_block_file_is_aligned_to_the_training_columns(tiny_prepared):
    cache = tiny_prepared / ".cache"
    stem = layout.CITE_DAY2_EXTRA
    matrix = sp.load_npz(values_path(cache, stem))
    with np.load(idxcol_path(cache, stem), allow_pickle=False) as idxcol:
        columns = idxcol["columns"]
    train_columns = pd.read_hdf(tiny_prepared / "train_cite_inputs.h5", start=0, stop=1).columns
    assert list(columns) == list(train_columns)
    frame = pd.read_hdf(tiny_prepared / f"{stem}.h5")
    assert frame.shape[1] > len(train_columns)
    np.testing.assert_array_equal(matrix.toarray(), frame[train_columns].to_numpy())
    meta = pd.read_parquet(cache / "metadata_cite_day_2_donor_27678.parquet")
    assert len(meta) == frame.shape[0]


def test_tables_and_leak_report(tiny_prepared):
    cache = tiny_prepared / ".cache"
    meta = pd.read_parquet(cache / "metadata.parquet")
    assert list(meta.columns) == list(layout.METADATA_COLUMNS)
    evaluation = pd.read_parquet(cache / "evaluation.parquet")
    assert len(evaluation) == len(pd.read_csv(tiny_prepared / "evaluation_ids.csv"))
    assert len(pd.read_parquet(cache / "sample_submission.parquet")) == len(evaluation)
    pairs = pd.read_parquet(cache / LEAK_REPORT)
    import json

    assert len(pairs) == json.loads((tiny_prepared / "truth" / "truth.json").read_text())["cite_leak_rows"]


def test_up_to_date_cache_is_reused_and_stale_entries_rebuilt(tiny_copy):
    report = prepare(tiny_copy)
    assert report.built == [] and "train_multi_inputs" in report.reused
    source = tiny_copy / "test_multi_inputs.h5"
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    report = prepare(tiny_copy)
    assert report.built == []  # same bytes (checksum): only the time changed
    shutil.copy(tiny_copy / "train_multi_inputs.h5", tiny_copy / "backup.h5")
    frame = pd.read_hdf(source)
    frame.iloc[0, :] = 0.0
    from mmscel.data.h5io import write_frame

    write_frame(source, layout.MULTI.test_inputs, frame.index, frame.columns, frame.to_numpy())
    report = prepare(tiny_copy)
    assert report.built == ["test_multi_inputs"]
    assert sp.load_npz(values_path(tiny_copy / ".cache", "test_multi_inputs"))[0].nnz == 0


def test_interrupted_prepare_resumes(tiny_source, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(tiny_source, data, ignore=shutil.ignore_patterns(".cache"))
    from mmscel.data import cache_matrices

    real = cache_matrices._convert_h5
    calls = []

    def dying(source, stem, *args, **kwargs):
        if stem == layout.MULTI.train_inputs:
            raise KeyboardInterrupt
        calls.append(stem)
        return real(source, stem, *args, **kwargs)

    monkeypatch.setattr(cache_matrices, "_convert_h5", dying)
    with pytest.raises(KeyboardInterrupt):
        prepare(data)
    assert not values_path(data / ".cache", layout.MULTI.train_inputs).exists()
    assert not [p for p in (data / ".cache").iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(cache_matrices, "_convert_h5", real)
    report = prepare(data)
    assert set(calls) <= set(report.reused) and layout.MULTI.train_inputs in report.built


def test_custom_cache_folder_and_sparse_source_folder(tiny_prepared, tmp_path):
    report = prepare(tiny_prepared, tmp_path / "elsewhere")
    assert values_path(tmp_path / "elsewhere", "train_cite_inputs").exists() and report.built
    sparse_only = tmp_path / "sparse"
    sparse_only.mkdir()
    for stem in layout.CITE.stems():
        for path in (values_path(tiny_prepared / ".cache", stem), idxcol_path(tiny_prepared / ".cache", stem)):
            shutil.copy(path, sparse_only / path.name)
    shutil.copy(tiny_prepared / "metadata.csv", sparse_only / "metadata.csv")
    report = prepare(sparse_only)
    assert set(report.built) >= set(layout.CITE.stems())
    split = load("cite", "train", sparse_only)
    assert split.inputs.shape == (480, 400)


def test_load_api(tiny_prepared):
    train = load("cite", "train", tiny_prepared)
    assert sp.issparse(train.inputs) and train.inputs.dtype == np.float32
    assert isinstance(train.targets, np.ndarray) and train.targets.shape == (480, 140)
    assert list(train.metadata["cell_id"]) == list(train.cell_ids)
    assert set(train.metadata["technology"]) == {"citeseq"}
    multi = load("multi", "train", tiny_prepared)
    assert sp.issparse(multi.targets) and multi.targets.shape[0] == multi.inputs.shape[0]
    test = load("multi", "test", tiny_prepared)
    assert test.targets is None and (test.metadata["cell_type"] == "hidden").all()
    with pytest.raises(ValueError):
        load("cite", "valid", tiny_prepared)


def test_load_refuses_a_cache_built_from_other_data(tiny_copy, tmp_path):
    from mmscel.data.synth.generate import generate

    other = tmp_path / "other"
    generate(other, "tiny", seed=5, extras=False)
    shutil.copy(other / "train_cite_targets.h5", tiny_copy / "train_cite_targets.h5")
    with pytest.raises(InputError, match="other data"):
        load("cite", "train", tiny_copy)
