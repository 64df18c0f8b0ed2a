"""docs/tutorial.ipynb runs from top to bottom on the current code (its cells assert what they
show), and is stored without outputs, so that git holds only what a person wrote."""

import nbformat
import pytest
from nbclient import NotebookClient

from .helpers import ROOT

NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"


def test_the_stored_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    for index, cell in enumerate(code):
        assert cell.outputs == [] and cell.execution_count is None, f"code cell {index} holds outputs: clear them"
    assert set(notebook.metadata) <= {"kernelspec", "language_info"}  # no widget state or execution records


@pytest.mark.slow
def test_the_notebook_runs_from_top_to_bottom(tmp_path, monkeypatch):
    """About a minute on two shared cores; its runs go under ``tmp_path`` (the kernel's TMPDIR)."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # Raises CellExecutionError, with the cell and its traceback, at the first cell that fails.
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    assert sorted(p.name for p in tmp_path.glob("pyro-vae-tutorial-*/*")) == [
        "gaussian_learned",
        "gaussian_predicted",
        "latent2",
    ]
