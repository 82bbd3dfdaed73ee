"""The notebooks run top to bottom without an error against smoke-scale records (nbclient)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .conftest import REPO
from .test_figures import build_records

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = REPO / "notebooks"
KERNEL = "bnopt-test-python"


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    return build_records(tmp_path_factory.getbasetemp() / "figure_records")


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """A kernel spec running this interpreter (whatever venv the tests run in), found through JUPYTER_PATH."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "bnopt tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return monkeypatch


def run_notebook(name: str) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL, timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError on any error
    return nb


def outputs(nb, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if kind in o.get("data", {})]


@pytest.mark.parametrize("name", ["figures.ipynb", "explore_run.ipynb"])
def test_notebooks_are_saved_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: saved with outputs"


def test_figures_notebook(records, kernel_env, tmp_path):
    kernel_env.setenv("BNOPT_RESULTS", str(records))
    kernel_env.setenv("BNOPT_FIGURES", str(tmp_path / "figs"))
    nb = run_notebook("figures.ipynb")
    images = outputs(nb, "image/png")
    assert len(images) == 12 + 1 + 2  # every paper figure, the re-plotted figure, one run's curves + histogram
    assert len(list((tmp_path / "figs").glob("*.png"))) == 12


def test_explore_notebook_on_a_vgg_and_a_dln_run(records, kernel_env):
    kernel_env.setenv("BNOPT_RESULTS", str(records))
    for run_id in ("", next(p.name for p in sorted((records / "runs").iterdir()) if p.name.startswith("vgg16_bn"))):
        kernel_env.setenv("BNOPT_RUN_ID", run_id)  # "" = the first run found (a DLN run)
        nb = run_notebook("explore_run.ipynb")
        assert len(outputs(nb, "image/png")) == 4  # curves, landscape, ICS, histogram


def test_figures_notebook_without_runs(kernel_env, tmp_path):
    kernel_env.setenv("BNOPT_RESULTS", str(tmp_path / "no-results"))
    nb = run_notebook("figures.ipynb")
    text = json.dumps([o for c in nb.cells for o in c.get("outputs", [])])
    assert "bnopt-train -m experiment=fig1" in text and "no runs yet" in text
