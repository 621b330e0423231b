"""Progress and logs: plain lines when piped, -v/-q, and the log file of every run, blend and study."""

import logging

import yaml

from conftest import run_cli
from mmscel import progress
from test_tune import ALPHA, RIDGE, write


def test_a_plain_progress_line_says_how_far_and_how_long():
    assert progress.progress_line("prepare x", 3, 10, 12.0) == "prepare x: 3/10 (30%), 12 s, ~28 s left"
    assert progress.progress_line("prepare x", 10, 10, 40.4) == "prepare x: 10/10 (100%), 40 s"


def test_piped_progress_is_plain_lines_at_most_every_interval(caplog, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    with caplog.at_level(logging.INFO, logger="mmscel"):
        assert list(progress.track(range(3), "step")) == [0, 1, 2]
    lines = [r.getMessage() for r in caplog.records if r.name == "mmscel.progress"]
    assert [line.split(",")[0] for line in lines] == ["step: 1/3 (33%)", "step: 2/3 (67%)", "step: 3/3 (100%)"]
    caplog.clear()
    monkeypatch.setattr(progress, "PLAIN_EVERY", 3600.0)
    with caplog.at_level(logging.INFO, logger="mmscel"):
        list(progress.track(range(5), "quiet step"))
    assert not caplog.records  # a step shorter than the interval says nothing


def test_level1_and_level2_piped_log_their_folds_and_keep_log_files(tiny_prepared, tmp_path):
    config = write(tmp_path, "ridge", **RIDGE)
    oof = tmp_path / "oof"
    run = run_cli("level1", config, "--data", tiny_prepared, "--oof", oof)
    assert run.returncode == 0, run.stderr
    assert "cite/ridge: ridge, config" in run.stderr and "score 0." in run.stderr  # plain lines: not a terminal
    assert "\x1b[" not in run.stderr  # no terminal control codes in a pipe
    log = (oof / "cite" / "ridge" / "run.log").read_text()
    assert "0 (cv," in log and "last_day (holdout," in log and "cite/ridge: CV 0." in log
    blend = tmp_path / "blend.yaml"
    blend.write_text(yaml.safe_dump({"name": "b", "method": "greedy", "runs": {"cite": ["ridge"]}}))
    level2 = run_cli("level2", blend, "--data", tiny_prepared, "--oof", oof)
    assert level2.returncode == 0, level2.stderr
    assert "blend b/cite: in-sample" in (oof / "blend" / "b" / "blend.log").read_text()
    other = write(tmp_path, "ridge", **{**RIDGE, "params": {"alpha": 3.0}})
    quiet = run_cli("-q", "level1", other, "--data", tiny_prepared, "--oof", oof, "--overwrite")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    rerun = (oof / "cite" / "ridge" / "run.log").read_text()
    assert "cite/ridge: CV 0." in rerun and rerun != log  # the file keeps every detail while the console is quiet


def test_a_tuning_session_logs_each_trial_in_its_folder(tiny_prepared, tmp_path):
    config = write(tmp_path, "ridge", **RIDGE, tune=ALPHA)
    oof = tmp_path / "oof"
    result = run_cli("-v", "tune", config, "--data", tiny_prepared, "--oof", oof, "--trials", "2", "--study", "s")
    assert result.returncode == 0, result.stderr
    assert "trial 1 COMPLETE" in result.stderr
    log = (oof / "tune" / "s" / "session.log").read_text()
    assert "trial 0 COMPLETE" in log and "trial 1 COMPLETE" in log and "best 0." in log
