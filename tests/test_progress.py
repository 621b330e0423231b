"""Progress and logs: plain lines when piped, -v/-q, and the log file of every run, blend and study."""

import logging

import pytest
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


class _Kept(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_a_log_file_gets_debug_lines_without_passing_them_to_the_users_handlers(tmp_path, monkeypatch):
    logger, root, kept = logging.getLogger("mmscel"), logging.getLogger(), _Kept()
    monkeypatch.setattr(logger, "level", logging.NOTSET)  # as in a script: mmscel's logger left alone
    monkeypatch.setattr(logger, "propagate", True)
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(root, "level", logging.INFO)  # logging.basicConfig(level=logging.INFO)
    root.addHandler(kept)
    own = logging.getLogger("mmscel.test_own_level")
    monkeypatch.setattr(own, "level", logging.DEBUG)  # a logger the user asked for details of
    try:
        with progress.log_file(tmp_path / "run.log"):
            logging.getLogger("mmscel.test").debug("detail for the file")
            logging.getLogger("mmscel.test").info("a step")
            own.debug("asked for")
        logging.getLogger("mmscel.test").debug("after the block")
    finally:
        root.removeHandler(kept)
    assert [r.getMessage() for r in kept.records] == ["a step", "asked for"]
    text = (tmp_path / "run.log").read_text()
    assert "detail for the file" in text and "a step" in text and "after the block" not in text
    assert logger.level == logging.NOTSET and logger.propagate and logger.handlers == []


def test_a_log_file_keeps_a_consoles_level_and_nests(tmp_path, monkeypatch):
    logger, console = logging.getLogger("mmscel"), _Kept()
    monkeypatch.setattr(logger, "level", logging.INFO)
    monkeypatch.setattr(logger, "propagate", False)  # as configure_logging leaves it
    monkeypatch.setattr(logger, "handlers", [console])
    with progress.log_file(tmp_path / "outer.log"), progress.log_file(tmp_path / "inner.log"):
        logger.debug("detail")
        logger.info("step")
    assert [r.getMessage() for r in console.records] == ["step"]
    assert "detail" in (tmp_path / "inner.log").read_text() and "detail" in (tmp_path / "outer.log").read_text()
    assert logger.level == logging.INFO and console.level == logging.NOTSET and logger.handlers == [console]


def test_steps_told_by_a_callback_and_steps_inside_steps(caplog, monkeypatch):
    import io

    from rich.console import Console

    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    with caplog.at_level(logging.INFO, logger="mmscel"), progress.steps("rounds", 4) as advance:
        advance()
        advance(3)
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["rounds: 1/4 (25%)", "rounds: 4/4 (100%)"]
    screen = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=screen, force_terminal=True, width=80))
    for _ in progress.track(range(2), "folds"):  # rich shows one live display: the inner step is a line of it
        assert list(progress.track(range(3), "epochs")) == [0, 1, 2]
        with progress.steps("rounds", 2) as advance:
            advance(2)
    assert progress._live == [] and "epochs" in screen.getvalue()


@pytest.mark.parametrize(
    ("name", "params", "label"),
    [
        ("mlp", {"hidden": [8], "epochs": 3, "early_stopping": False}, "mlp epochs: 3/3"),
        ("xgb", {"n_estimators": 5}, "xgb rounds: 5/5"),
        ("lgbm", {"n_estimators": 5, "min_data_in_leaf": 5}, "lgbm rounds: 5/5"),
        ("catboost", {"iterations": 5, "loss": "RMSE"}, "catboost rounds: 5/5"),
    ],
)
def test_learners_say_how_far_their_epochs_and_rounds_are(caplog, monkeypatch, name, params, label):
    from mmscel.learners import learner_class
    from test_learners_gbdt import make_data

    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    train, _, _ = make_data()
    with caplog.at_level(logging.INFO, logger="mmscel.progress"):
        learner_class(name)(params, seed=0, n_jobs=1).fit(train)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith(label) for line in lines), lines
    if name in ("lgbm", "catboost"):  # one model per output
        assert any(line.startswith(f"{name} {'boosters' if name == 'lgbm' else 'models'}: 3/3") for line in lines)
