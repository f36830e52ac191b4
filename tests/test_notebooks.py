"""The notebooks in ``notebooks/``: committed without outputs, written against the top-level API,
and each runs top to bottom (small draws; 01 writes the fit that 02 and 03 read)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("01_quickstart", "02_reproduce_the_paper", "03_dynamic_prediction")


def _notebook(name: str) -> dict:
    return json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))


def _code(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_no_outputs_and_uses_the_top_level_api(name):
    nb = _notebook(name)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, cell["source"]
        assert "attachments" not in cell
    code = _code(nb)
    assert "import bayesct as bc" in code[0] and "BAYESCT_NOTEBOOK_DRAWS" in code[0]
    for source in code:
        assert "from bayesct" not in source and "import bayesct." not in source
        assert "bc._" not in source


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_notebooks_run_without_error(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    # The kernel "python3" is this interpreter (the venv's, with ipykernel from the dev extra),
    # whatever kernels the user has registered: JUPYTER_PATH is searched first.
    kernels = tmp_path / "jupyter" / "kernels" / "python3"
    kernels.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (bayesct test)",
        "language": "python",
    }
    (kernels / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("BAYESCT_NOTEBOOK_DRAWS", "200,200,2")
    monkeypatch.setenv("BAYESCT_NOTEBOOK_REPLICATES", "8")
    monkeypatch.setenv("BAYESCT_NOTEBOOK_CHECK_DRAWS", "100")
    fit_dir = tmp_path / "fit"
    monkeypatch.setenv("BAYESCT_NOTEBOOK_FIT", str(fit_dir))
    work = tmp_path / "work"
    work.mkdir()

    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        client = NotebookClient(
            nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(work)}}
        )
        client.execute()  # a cell that raises fails the test (CellExecutionError) with its traceback
        errors = [
            out
            for cell in nb.cells
            if cell.cell_type == "code"
            for out in cell.outputs
            if out.output_type == "error"
        ]
        assert errors == [], name
        if name == NAMES[0]:
            assert (work / "default_cohort.csv").is_file() and fit_dir.is_dir()
    texts = "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "stream"
    )
    assert "Convergence gates" in texts or "CONVERGENCE GATES FAILED" in texts
