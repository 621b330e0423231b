"""mmscel report: the page rendered in headless Chromium, its notes for missing pieces, and the API behind it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

import mmscel
from conftest import run_cli
from mmscel.api import blend_weights, cell_scores, oof_correlation, target_scores, tuning_study
from mmscel.errors import InputError
from mmscel.metrics import pearson_per_row
from mmscel.reporting.scores import target_scores as chunked_target_scores
from mmscel.store import RunStore
from report_store import build_store

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECTIONS = ["Leaderboard", "Runs", "OOF correlation", "Blend weights", "Per-target scores", "Tuning"]


@pytest.fixture(scope="module")
def store(tiny_prepared, tmp_path_factory) -> Path:
    return build_store(tmp_path_factory.getbasetemp() / "report_store", tiny_prepared)


def render(page: Path, profile: Path, screenshot: Path) -> dict:
    """Open ``page`` in headless Chromium (a new empty profile); what it logged, requested and showed."""
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing ({CHROMIUM}): run .ci/ensure-chromium (make test does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package playwright is missing: pip install -e '.[dev]'")
    seen = {"errors": [], "requests": []}
    with sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1100, "height": 900},
        )
        tab = context.new_page()
        tab.on("console", lambda message: seen["errors"].append(message.text) if message.type == "error" else None)
        tab.on("pageerror", lambda error: seen["errors"].append(str(error)))
        tab.on("request", lambda request: seen["requests"].append(request.url))
        tab.goto(page.resolve().as_uri(), wait_until="load")
        seen["images"] = tab.evaluate("() => Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        seen["text"] = tab.inner_text("body")
        tab.screenshot(path=str(screenshot), full_page=True)
        context.close()
    return seen


def colours(screenshot: Path) -> tuple[int, float]:
    """The number of distinct colours of a screenshot, and the share of its pixels that are not white."""
    from PIL import Image

    pixels = np.asarray(Image.open(screenshot).convert("RGB")).reshape(-1, 3)
    distinct = len(np.unique(pixels, axis=0))
    return distinct, float((pixels < 245).any(axis=1).mean())


def test_the_report_renders_in_headless_chromium(store, tiny_prepared, tmp_path):
    out = tmp_path / "page" / "report.html"
    result = run_cli("report", "--data", tiny_prepared, "--oof", store, "--out", out)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout and "no blend" not in result.stdout and "no truth" not in result.stdout
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # written whole, nothing left beside it
    seen = render(out, tmp_path / "profile", tmp_path / "screenshot.png")
    assert seen["errors"] == []
    assert all(url.startswith(("file:", "data:")) for url in seen["requests"]), seen["requests"]
    assert len(seen["images"]) >= 10 and all(seen["images"])
    for title in SECTIONS:
        assert title in seen["text"]
    assert "study report_ridge" in seen["text"] and "headroom" in seen["text"]
    distinct, inked = colours(tmp_path / "screenshot.png")
    assert distinct > 200 and inked > 0.1, (distinct, inked)


def test_missing_pieces_are_notes_not_errors(tiny_copy, tmp_path):
    shutil.rmtree(tiny_copy / "truth")
    oof = tmp_path / "oof"
    config = tmp_path / "ridge.yaml"
    config.write_text(yaml.safe_dump({"task": "cite", "learner": "ridge", "features": {"svd_components": 8}}))
    mmscel.run_level1(config, tiny_copy, oof_root=oof)
    result = mmscel.report(tiny_copy, oof_root=oof)
    assert result.path == oof / "report.html" and result.path.read_text().startswith("<!DOCTYPE html>")
    notes = "\n".join(result.notes)
    for missing in ("no truth/ in", "no blend in", "no tuning study here", "one run only"):
        assert missing in notes, notes
    assert len(result.sections) == 7 and not list(oof.glob(".*.tmp"))


def test_an_empty_store_gives_a_page_of_notes(tiny_prepared, tmp_path):
    result = mmscel.report(tiny_prepared, oof_root=tmp_path / "oof", out=tmp_path / "empty.html")
    assert any(note.startswith("no finished run or blend") for note in result.notes), result.notes
    assert result.path.exists() and not (tmp_path / "oof").exists()


def test_cell_scores_average_to_each_runs_cv(store, tiny_prepared):
    for task in ("cite", "multi"):
        cells = cell_scores(task, oof_root=store, data_dir=tiny_prepared)
        assert list(cells.columns) == ["run", "cell_id", "donor", "day", "cell_type", "fold", "score"]
        for record in RunStore(store).runs(task):
            own = cells[cells["run"] == record.name]
            assert len(own) == record.validated_rows
            assert own["score"].mean() == pytest.approx(record.cv, abs=1e-9)
            for fold, rows in own.groupby("fold"):
                assert rows["score"].mean() == pytest.approx(record.folds[str(fold)]["score"], abs=1e-6)


def test_target_scores_do_not_depend_on_the_chunk_and_match_the_whole_matrix(store, tiny_prepared):
    chunked = chunked_target_scores(RunStore(store), "multi", ["multi_ridge"], tiny_prepared, chunk=7)
    whole = target_scores("multi", ["multi_ridge"], oof_root=store, data_dir=tiny_prepared)
    np.testing.assert_allclose(chunked.to_numpy(), whole.to_numpy(), atol=1e-10)
    predictions = mmscel.load_oof("multi", "multi_ridge", store, tiny_prepared).dropna()
    truth = mmscel.load("multi", "train", tiny_prepared, inputs=False)
    rows = np.flatnonzero(np.isin(truth.cell_ids, predictions.index))
    genes = truth.targets[rows].toarray()
    with np.errstate(invalid="ignore"):  # a gene constant over these cells has no correlation: NaN in both
        direct = [np.corrcoef(genes[:, g], predictions.to_numpy()[:, g])[0, 1] for g in range(genes.shape[1])]
    np.testing.assert_allclose(whole["multi_ridge"].to_numpy(), direct, atol=1e-5)


def test_oof_correlation_is_the_mean_per_cell_pearson_between_runs(store, tiny_prepared):
    frame = oof_correlation("cite", oof_root=store, data_dir=tiny_prepared)
    assert set(frame.index) == {"cite_ridge", "cite_ridge_strong"} and frame.attrs["skipped"] == []
    np.testing.assert_allclose(np.diag(frame), 1.0)
    np.testing.assert_allclose(frame.to_numpy(), frame.to_numpy().T)
    first, second = (mmscel.load_oof("cite", name, store, tiny_prepared).dropna() for name in frame.index)
    direct = pearson_per_row(first.to_numpy(), second.to_numpy()).mean()
    assert frame.iloc[0, 1] == pytest.approx(direct, abs=1e-6)
    multi = oof_correlation("multi", oof_root=store, data_dir=tiny_prepared)
    assert multi.shape == (2, 2) and 0.5 < multi.iloc[0, 1] < 1.0


def test_blend_weights_and_the_latest_study(store):
    weights = blend_weights(store)
    assert set(weights["task"]) == {"cite", "multi"}
    np.testing.assert_allclose(weights.groupby("task")["weight"].sum(), 1.0)
    study = tuning_study(oof_root=store)
    assert study.study_name == "report_ridge" and len(study.trials) == 5
    with pytest.raises(InputError, match="no tuning study nope"):
        tuning_study("nope", oof_root=store)


def test_a_study_is_read_without_writing_and_a_damaged_one_is_named(store, tmp_path):
    from mmscel.tune.journal import journal_study

    folder = RunStore(store).study_dir("report_ridge")
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    study = journal_study(folder / "study.journal", None, read_only=True)  # None: the journal's study
    assert study.study_name == "report_ridge" and len(study.trials) == 5
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before  # no lock, no write
    damaged = tmp_path / "tune" / "broken" / "study.journal"
    damaged.parent.mkdir(parents=True)
    damaged.write_text('{"op_code": 0\nnot json\n')
    with pytest.raises(InputError, match=r"study.journal: damaged Optuna journal \(JSONDecodeError\)"):
        tuning_study("broken", oof_root=tmp_path)
    with pytest.raises(InputError, match="no Optuna journal here"):
        journal_study(tmp_path / "none.journal", "x", read_only=True)
    assert not (tmp_path / "none.journal").exists()
