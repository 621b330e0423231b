"""The command line: the baseline pipeline, and every bad input as one line with exit code 2."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from mmscel.data import layout
from mmscel.fsutil import file_checksum


def _assert_bad_input(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _cache_snapshot(data):
    return {p.name: file_checksum(p) for p in sorted((data / ".cache").iterdir())}


def test_help_for_every_command():
    for command in ("synth", "prepare", "import-anndata", "baseline", "score"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout


def test_baseline_scores_the_mean_profile_floor(tiny_prepared, tmp_path):
    submission = tmp_path / "mp.csv.gz"
    result = run_cli("baseline", "--data", tiny_prepared, "--out", submission)
    assert result.returncode == 0, result.stderr
    sub = pd.read_csv(submission)
    assert list(sub.columns) == ["row_id", "target"] and len(sub) == len(
        pd.read_csv(tiny_prepared / "sample_submission.csv")
    )
    from mmscel.scoring import score_submission

    scores, truth = score_submission(submission, tiny_prepared)
    for task in ("cite", "multi"):
        for split in ("public", "private"):
            assert scores.by_task[task][split] == pytest.approx(truth["mean_profile"][task][split], abs=1e-5)
    result = run_cli("score", submission, "--data", tiny_prepared)
    assert result.returncode == 0 and "oracle" in result.stdout and "pooled" in result.stdout


def test_default_outputs_go_under_oof(tiny_prepared, tmp_path):
    result = run_cli("baseline", "--data", tiny_prepared, "--oof", tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "runs" / "submissions" / "mean_profile.csv.gz").exists()


def test_missing_file(tiny_copy):
    (tiny_copy / "test_cite_inputs.h5").unlink()
    _assert_bad_input(run_cli("prepare", "--data", tiny_copy), "test_cite_inputs.h5", "not found")


def test_missing_data_folder(tmp_path):
    _assert_bad_input(run_cli("prepare", tmp_path / "nowhere"), "nowhere")


def test_truncated_h5_keeps_the_previous_cache(tiny_copy):
    before = _cache_snapshot(tiny_copy)
    path = tiny_copy / "train_multi_inputs.h5"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_bad_input(run_cli("prepare", "--data", tiny_copy), "train_multi_inputs.h5")
    assert _cache_snapshot(tiny_copy) == before


def test_corrupt_h5(tiny_copy):
    (tiny_copy / "train_cite_targets.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00garbage" * 500)
    _assert_bad_input(run_cli("prepare", "--data", tiny_copy), "train_cite_targets.h5")


def test_wrong_shape(tiny_copy):
    import tables

    path = tiny_copy / "test_cite_inputs.h5"
    with tables.open_file(path, "a") as h5:
        group = h5.get_node("/test_cite_inputs")
        values = group.block0_values.read()
        h5.remove_node(group, "block0_values")
        h5.create_array(group, "block0_values", values[:, :-3])
    _assert_bad_input(run_cli("prepare", "--data", tiny_copy), "test_cite_inputs.h5", "shape")


def test_ids_that_do_not_match_the_metadata(tiny_copy):
    meta = pd.read_csv(tiny_copy / "metadata.csv")
    train_ids = pd.read_hdf(tiny_copy / "train_multi_targets.h5", start=0, stop=1).index
    meta[meta["cell_id"] != train_ids[0]].to_csv(tiny_copy / "metadata.csv", index=False)
    shutil.rmtree(tiny_copy / ".cache")
    _assert_bad_input(run_cli("prepare", "--data", tiny_copy), "not in metadata.csv", train_ids[0])


def test_metadata_without_its_columns(tiny_copy):
    pd.read_csv(tiny_copy / "metadata.csv").drop(columns="donor").to_csv(tiny_copy / "metadata.csv", index=False)
    _assert_bad_input(run_cli("prepare", "--data", tiny_copy), "metadata.csv", "donor")


def test_train_inputs_and_targets_with_different_cells(tiny_copy):
    targets = pd.read_hdf(tiny_copy / "train_cite_targets.h5")
    from mmscel.data.h5io import write_frame

    shuffled = targets.iloc[::-1]
    write_frame(
        tiny_copy / "train_cite_targets.h5", "train_cite_targets", shuffled.index, shuffled.columns, shuffled.to_numpy()
    )
    _assert_bad_input(run_cli("prepare", "--data", tiny_copy), "train_cite_targets.h5", "differ")


def test_cache_built_from_other_data(tiny_copy, tmp_path):
    other = tmp_path / "other"
    assert run_cli("synth", "--out", other, "--seed", "3", "--no-extras").returncode == 0
    shutil.copy(other / "test_multi_inputs.h5", tiny_copy / "test_multi_inputs.h5")
    _assert_bad_input(
        run_cli("baseline", "--data", tiny_copy, "--out", tmp_path / "s.csv"), "other data", "test_multi_inputs.h5"
    )
    assert not (tmp_path / "s.csv").exists()


def test_cache_missing(tiny_source, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_source, data, ignore=shutil.ignore_patterns(".cache"))
    _assert_bad_input(run_cli("baseline", "--data", data, "--out", tmp_path / "s.csv"), "mmscel prepare")


@pytest.fixture
def submission(tiny_prepared, tmp_path):
    path = tmp_path / "base.csv"
    assert run_cli("baseline", "--data", tiny_prepared, "--out", path).returncode == 0
    return path


def test_submission_with_a_missing_row(submission, tiny_prepared):
    frame = pd.read_csv(submission)
    frame.iloc[:-1].to_csv(submission, index=False)
    _assert_bad_input(run_cli("score", submission, "--data", tiny_prepared), submission.name, "rows, expected")


def test_submission_in_the_wrong_order(submission, tiny_prepared):
    frame = pd.read_csv(submission)
    frame.iloc[[1, 0] + list(range(2, len(frame)))].to_csv(submission, index=False)
    _assert_bad_input(run_cli("score", submission, "--data", tiny_prepared), "row_id")


def test_submission_with_nan(submission, tiny_prepared):
    frame = pd.read_csv(submission)
    frame.loc[10, "target"] = np.nan
    frame.to_csv(submission, index=False)
    _assert_bad_input(run_cli("score", submission, "--data", tiny_prepared), submission.name)


def test_submission_with_wrong_columns(submission, tiny_prepared):
    pd.read_csv(submission).rename(columns={"target": "value"}).to_csv(submission, index=False)
    _assert_bad_input(run_cli("score", submission, "--data", tiny_prepared), "columns")


def test_score_without_truth(submission, tiny_copy):
    shutil.rmtree(tiny_copy / "truth")
    _assert_bad_input(run_cli("score", submission, "--data", tiny_copy), "truth")


def test_synth_refuses_unknown_scale_and_non_empty_folder(tiny_source, tmp_path):
    _assert_bad_input(run_cli("synth", "--scale", "huge", "--out", tmp_path / "x"), "huge")
    before = file_checksum(tiny_source / "metadata.csv")
    _assert_bad_input(run_cli("synth", "--out", tiny_source), "not empty")
    assert file_checksum(tiny_source / "metadata.csv") == before


def test_usage_error_exits_2():
    result = run_cli("synth", "--seed", "notanumber")
    assert result.returncode == 2


def test_writing_a_submission_refuses_constant_cells(tmp_path):
    from mmscel.errors import InputError
    from mmscel.submission import write_submission

    values = np.arange(12, dtype=np.float32)
    values[4:8] = 1.0
    with pytest.raises(InputError, match="constant"):
        write_submission(tmp_path / "s.csv", values, np.array([0, 4, 8]))
    assert not (tmp_path / "s.csv").exists()
    with pytest.raises(InputError, match="12 rows, expected 13"):
        write_submission(tmp_path / "s.csv", np.arange(12, dtype=np.float32), np.array([0, 4, 8]), n_rows=13)
    assert not (tmp_path / "s.csv").exists()


def test_synth_cli_prints_oracle_and_floor(tmp_path):
    result = run_cli("synth", "--out", tmp_path / "d", "--seed", "2", "--no-extras")
    assert result.returncode == 0, result.stderr
    assert "oracle" in result.stdout and "mean profile" in result.stdout
    truth = json.loads((tmp_path / "d" / layout.TRUTH_DIR / layout.TRUTH_JSON).read_text())
    assert truth["seed"] == 2


def test_every_command_documents_its_options():
    for command, expected in (
        ("level1", "Run configs"),
        ("baseline", "--out"),
        ("submit", "--blend"),
        ("runs", "--oof"),
    ):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and expected in result.stdout, result.stdout
    assert "--data" not in run_cli("runs", "--help").stdout  # only the shared options a command uses


def test_version_is_printed_and_matches_the_package():
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"mmscel {version('mmscel')}", result.stderr


def test_an_unwritable_path_says_which_options_write_elsewhere():
    import errno

    from mmscel.cli.common import input_problem

    problem = input_problem(OSError(errno.EROFS, "Read-only file system", "/kaggle/input/x/.cache"))
    assert problem == (
        "/kaggle/input/x/.cache: Read-only file system"
        " (write elsewhere: --cache, --oof or --out name a writable folder)"
    )
    assert (
        input_problem(FileNotFoundError(errno.ENOENT, "No such file or directory", "x"))
        == "x: No such file or directory"
    )


def test_score_by_group_scores_each_donors_cells(submission, tiny_prepared):
    """Truth for one donor's test cells and the mean profile elsewhere: that donor scores 1, the others the floor."""
    import pyarrow.parquet as pq

    from mmscel.scoring import group_scores, score_values

    solution = tiny_prepared / "truth" / "solution.parquet"
    truth = pq.read_table(solution, columns=["target"]).column("target").to_numpy()
    donor_of = pd.read_csv(tiny_prepared / "metadata.csv").set_index("cell_id")["donor"]
    row_donor = donor_of.loc[pd.read_csv(tiny_prepared / "evaluation_ids.csv")["cell_id"]].to_numpy()
    chosen = row_donor[0]
    floor = pd.read_csv(submission)["target"].to_numpy()
    values = np.where(row_donor == chosen, truth, floor)
    pd.DataFrame({"row_id": np.arange(len(values)), "target": values}).to_csv(submission, index=False)

    groups = group_scores(values, tiny_prepared, None, ["donor"])
    assert np.allclose(groups.loc[groups["donor"] == chosen, "score"], 1.0)
    assert (groups.loc[groups["donor"] != chosen, "score"] < 0.9).all()
    scores = score_values(values, solution)
    for (task, split), part in groups.groupby(["task", "split"]):
        assert np.average(part["score"], weights=part["cells"]) == pytest.approx(scores.by_task[task][split])
        assert part["cells"].sum() == scores.n_cells[task][split]

    result = run_cli("score", submission, "--data", tiny_prepared, "--by", "donor", "--against", submission)
    assert result.returncode == 0, result.stderr
    assert "difference" in result.stdout and str(chosen) in result.stdout


def test_score_by_an_unknown_column(submission, tiny_prepared):
    result = run_cli("score", submission, "--data", tiny_prepared, "--by", "tissue")
    _assert_bad_input(result, "metadata.csv", "tissue")
