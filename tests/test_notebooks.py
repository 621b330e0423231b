"""The notebooks: committed without outputs, and executed on the tiny competition in a real kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from report_store import build_store

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PLOTS = {"01_data": 4, "02_runs_and_blend": 6, "03_tuning": 2}  # figures each notebook draws


def test_the_notebooks_are_committed_without_outputs():
    found = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))
    assert found == sorted(PLOTS)
    for name in found:
        book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbformat.validate(book)
        for number, cell in enumerate(book.cells):
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name} cell {number} holds outputs"


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_a_notebook_runs_and_draws_its_plots(name, tiny_prepared, tmp_path, tmp_path_factory, monkeypatch):
    if name == "02_runs_and_blend":  # reads a store with runs, a blend and a study; writes nothing
        oof = build_store(tmp_path_factory.getbasetemp() / "report_store", tiny_prepared)
    else:  # caches features, or runs a study, in a store of its own
        oof = tmp_path / "oof"
    monkeypatch.setenv("MMSCEL_DATA", str(tiny_prepared))
    monkeypatch.setenv("MMSCEL_OOF", str(oof))
    monkeypatch.setenv("MMSCEL_TRIALS", "6")
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    outputs = [output for cell in book.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) >= PLOTS[name], f"{name} drew {len(images)} figures"
