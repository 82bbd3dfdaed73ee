"""The notebooks run top to bottom without an error against smoke-scale records (nbclient), and
figures.ipynb shows, per figure, the figure drawn from records, else the committed PNG, else "missing".
On a fresh clone (no results/runs, no setting) both open the committed results/small records."""

from __future__ import annotations

import base64
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from bnopt.figures import figure_list

from .conftest import REPO
from .test_figures import shared_records

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = REPO / "notebooks"
KERNEL = "bnopt-test-python"


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    return shared_records(tmp_path_factory)


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """A kernel spec running this interpreter (whatever venv the tests run in), found through JUPYTER_PATH."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "bnopt tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    for name in ("BNOPT_RESULTS", "BNOPT_SCALE", "BNOPT_FIGURES", "BNOPT_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def parameters_index(nb) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    return tagged[0]


def run_notebook(name: str, folder: Path = NOTEBOOKS, **params) -> nbformat.NotebookNode:
    """Execute a notebook of `folder` in that folder, as Jupyter does; `params` go into a cell right after its
    'parameters' cell (as papermill does)."""
    nb = nbformat.read(folder / name, as_version=4)
    if params:
        source = "\n".join(f"{k} = {v!r}" for k, v in params.items())
        nb.cells.insert(parameters_index(nb) + 1, nbformat.v4.new_code_cell(source, id="injected-parameters"))
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=300, resources={"metadata": {"path": str(folder)}})
    client.execute()  # raises CellExecutionError on any error
    return nb


def outputs(nb, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if kind in o.get("data", {})]


def shown_figures(nb) -> dict[str, tuple[str, list[bytes]]]:
    """{figure: (its markdown, the PNGs shown under it)} from the cell listing every figure: a markdown
    output starting with "### <figure name>" opens a figure's section, the images that follow belong to it."""
    shown: dict[str, tuple[str, list[bytes]]] = {}
    for cell in nb.cells:
        current = None
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data", {})
            heading = re.match(r"### (fig\d+|beyond_[a-z_]+)\b", data.get("text/markdown", ""))
            if heading:
                current = heading.group(1)
                assert current not in shown, f"{current} shown twice"
                shown[current] = (data["text/markdown"], [])
            elif current and "image/png" in data:
                shown[current][1].append(base64.b64decode(data["image/png"]))
    return shown


def write_png(path: Path, color: str) -> Path:
    """A small real PNG, different per colour (stands for a committed figure)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.patch.set_facecolor(color)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=20)
    return path


@pytest.mark.parametrize("name", ["figures.ipynb", "explore_run.ipynb"])
def test_notebooks_are_saved_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: saved with outputs"


def test_figures_notebook_parameters_come_first():
    nb = nbformat.read(NOTEBOOKS / "figures.ipynb", as_version=4)
    i = parameters_index(nb)
    assert i == next(j for j, c in enumerate(nb.cells) if c.cell_type == "code"), "parameters: the first code cell"
    for name in ("RESULTS", "SCALE", "FIGURES", "FIGURE_DIRS"):
        assert re.search(rf"^{name} = ", nb.cells[i].source, re.M), f"parameter {name} not in the parameters cell"
    nb = nbformat.read(NOTEBOOKS / "explore_run.ipynb", as_version=4)
    i = parameters_index(nb)
    assert i == next(j for j, c in enumerate(nb.cells) if c.cell_type == "code"), "parameters: the first code cell"
    for name in ("RESULTS", "RUN_ID"):
        assert re.search(rf"^{name} = ", nb.cells[i].source, re.M), f"parameter {name} not in the parameters cell"


# A VGG figure, a DLN figure and a study beyond the paper: the notebook's loop treats every figure alike, and
# tests/test_figures.py draws each of them from the same records (all 23 here took 130 s of the suite)
DRAWN = ["fig1", "fig10", "beyond_edge"]


@pytest.mark.e2e
def test_figures_notebook(records, kernel_env, tmp_path):
    decoy = write_png(tmp_path / "committed" / "fig1.png", "red")  # records exist: the drawn figure wins
    nb = run_notebook(
        "figures.ipynb",
        RESULTS=str(records),
        SAVE_DIR=str(tmp_path / "figs"),
        FIGURE_DIRS=[str(decoy.parent)],
        FIGURES=DRAWN,
    )
    shown = shown_figures(nb)
    assert list(shown) == DRAWN
    for name, (text, images) in shown.items():
        assert "drawn from the run records" in text and "committed" not in text and "missing" not in text, text
        assert len(images) == 1, name
    assert shown["fig1"][1][0] != decoy.read_bytes()
    images = outputs(nb, "image/png")
    # the figures asked for, the re-plotted figure, one run's curves + histogram
    assert len(images) == len(DRAWN) + 1 + 2
    assert sorted(p.stem for p in (tmp_path / "figs").glob("*.png")) == sorted(DRAWN)


@pytest.mark.e2e
def test_figures_notebook_shows_committed_pngs_without_runs(kernel_env, tmp_path):
    """A fresh clone: no run records, committed PNGs in the per-scale and the flat figure folders."""
    root = tmp_path / "results"
    small4 = write_png(root / "small" / "figures" / "fig4.png", "red")
    write_png(root / "figures" / "fig4.png", "blue")  # behind results/small/figures in FIGURE_DIRS
    paper1 = write_png(root / "paper" / "figures" / "fig1.png", "green")
    flat2 = write_png(root / "figures" / "fig2.png", "black")
    entry = {"run_ids": ["vgg16-lr0.1-0123456789"], "seeds": [0], "scale": "small", "steps": {}, "histograms": []}
    (root / "small" / "figures" / "manifest.json").write_text(json.dumps({"fig4": entry}))
    nb = run_notebook("figures.ipynb", RESULTS=str(root), SCALE=None)
    # the figure manifest names the runs of the committed fig4 (read through bnopt.run_selection.figure_manifest)
    assert "vgg16-lr0.1-0123456789" in json.dumps([o for c in nb.cells for o in c.get("outputs", [])])
    shown = shown_figures(nb)
    assert list(shown) == list(figure_list())
    for name, png, command in [
        ("fig4", small4, "make reproduce SCALE=small FIGS=fig4"),
        ("fig1", paper1, "make reproduce SCALE=paper FIGS=fig1"),
        ("fig2", flat2, "make reproduce FIGS=fig2"),
    ]:
        text, images = shown[name]
        assert "missing" not in text.replace(str(png), "").lower(), text
        assert "committed image" in text and str(png) in text and command in text, text
        assert images == [png.read_bytes()], f"{name}: not the committed {png}"
    for name in set(figure_list()) - {"fig1", "fig2", "fig4"}:
        text, images = shown[name]
        assert "**missing**" in text and "bnopt-train experiment=" in text and not images, text
    assert len(outputs(nb, "image/png")) == 3

    # SCALE puts that preset's folder first
    paper4 = write_png(root / "paper" / "figures" / "fig4.png", "yellow")
    shown = shown_figures(run_notebook("figures.ipynb", RESULTS=str(root), SCALE="paper"))
    text, images = shown["fig4"]
    assert images == [paper4.read_bytes()] and "make reproduce SCALE=paper FIGS=fig4" in text, text


@pytest.mark.e2e
def test_explore_notebook_on_a_vgg_and_a_dln_run(records, kernel_env):
    from bnopt.figures.locate import showcase_run
    from bnopt.results import load_runs

    kernel_env.setenv("BNOPT_RESULTS", str(records))
    runs = load_runs(records).runs
    paper = runs[runs.probes == "paper"]
    first, dln, vgg = runs.iloc[0], paper[paper.model == "dln"].iloc[0], paper[paper.model == "vgg16_bn"].iloc[0]
    # "" = the first finished run with the paper's probes, here the DLN's (not the first found: B10's
    # probes=rank run, whose records draw the curves only)
    assert first.probes == "rank" and showcase_run(records) == dln.run_id
    for run_id, images in (("", 4), (first.run_id, 1), (vgg.run_id, 4)):  # curves, landscape, ICS, histogram
        kernel_env.setenv("BNOPT_RUN_ID", run_id)
        nb = run_notebook("explore_run.ipynb")
        assert len(outputs(nb, "image/png")) == images, run_id
        assert f"run {run_id or dln.run_id}:" in all_text(nb)


@pytest.mark.e2e
def test_figures_notebook_without_runs(kernel_env, tmp_path):
    kernel_env.setenv("BNOPT_RESULTS", str(tmp_path / "no-results"))  # the parameters' default from the environment
    nb = run_notebook("figures.ipynb")
    text = json.dumps([o for c in nb.cells for o in c.get("outputs", [])])
    assert "bnopt-train experiment=fig1" in text and "no runs yet" in text
    shown = shown_figures(nb)
    assert list(shown) == list(figure_list()) and all("**missing**" in t and not i for t, i in shown.values())


# ------------------------------------------------------------------ a fresh clone (issue 22 item 2)

COMMITTED = REPO / "results" / "small"


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """A checkout as `git clone` leaves it: pyproject.toml, configs/, notebooks/ and the committed
    results/small/ (its report's records: here Fig 1's four seed-0 runs, copied, and the figure manifest), no
    results/runs/. Copies: nothing is written into the committed results."""
    from bnopt.results import run_rows

    repo = tmp_path_factory.mktemp("clone")
    shutil.copy(REPO / "pyproject.toml", repo)
    (repo / "configs").symlink_to(REPO / "configs")
    shutil.copytree(NOTEBOOKS, repo / "notebooks")
    small = repo / "results" / "small"
    for row in run_rows(COMMITTED):
        if row["experiment"] == "fig1" and row["seed"] == 0:
            shutil.copytree(row["path"], small / "runs" / row["run_id"])
    assert len(list((small / "runs").iterdir())) == 4
    (small / "figures").mkdir()
    shutil.copy(COMMITTED / "figures" / "manifest.json", small / "figures")
    return repo


def all_text(nb) -> str:
    return json.dumps([o for c in nb.cells for o in c.get("outputs", [])])


@pytest.mark.e2e
def test_a_fresh_clone_opens_both_notebooks_on_the_committed_results(fresh_clone, kernel_env):
    """No BNOPT_* setting, Jupyter in notebooks/: both notebooks read results/small (results/runs holds none)."""
    folder, small = fresh_clone / "notebooks", fresh_clone / "results" / "small"
    nb = run_notebook("figures.ipynb", folder, FIGURES=["fig1", "fig4"])
    text = all_text(nb)
    assert f"records: {small} ({fresh_clone / 'results' / 'runs'} holds no runs" in text
    assert "4 runs under" in text and "missing" not in text.lower()
    shown = shown_figures(nb)
    assert list(shown) == ["fig1", "fig4"]
    assert all("drawn from the run records" in t and len(images) == 1 for t, images in shown.values())
    assert f"{small / 'figures' / 'manifest.json'}" in text  # the committed figure manifest is read

    nb = run_notebook("explore_run.ipynb", folder)
    text = all_text(nb)
    assert f"records: {small}" in text and "run vgg16-lr0.1-" in text
    assert len(outputs(nb, "image/png")) == 4  # curves, landscape, ICS, histogram


@pytest.mark.e2e
def test_notebook_paths_are_read_from_the_repository_root(fresh_clone, kernel_env):
    """The README's relative BNOPT_RESULTS=results/small from notebooks/, and an absolute path to a published
    scale folder, whose figure manifest is results/small/figures/manifest.json (not small/small/)."""
    folder, small = fresh_clone / "notebooks", fresh_clone / "results" / "small"
    kernel_env.setenv("BNOPT_RESULTS", "results/small")
    text = all_text(run_notebook("explore_run.ipynb", folder))
    assert f"records: BNOPT_RESULTS=results/small: {small}" in text
    kernel_env.delenv("BNOPT_RESULTS")
    nb = run_notebook("figures.ipynb", folder, RESULTS=str(small), FIGURES=["fig1"], SCALE="small")
    text = all_text(nb)
    assert "no figure manifest" not in text and f"{small / 'figures' / 'manifest.json'}" in text
    assert "drawn from the run records" in shown_figures(nb)["fig1"][0]
