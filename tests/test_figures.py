"""Figures: every paper figure from real smoke-scale records, missing runs, draw_all, the CLI, W&B frames."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from bnopt import figures
from bnopt.figures.__main__ import main as figures_main
from bnopt.figures.catalog import draw_figure
from bnopt.figures.panels import recording
from bnopt.resolvers import auto_scale
from bnopt.results import Results, load_runs
from bnopt.run_selection import scale_numbers
from bnopt.wandb_source import load_wandb

from .conftest import REPO, make_cfg

STEPS = 20  # smoke scale: probes every 5 steps -> 4 measurements per run
AUTO = auto_scale("auto")  # the preset a command without scale= trains at here (small on a CPU)
VGG = [(m, lr) for m in ("vgg16", "vgg16_bn") for lr in (0.1, 0.5, 0.01)] + [
    (m, 0.1) for m in ("vgg16_noisy_bn", "vgg16_l1", "vgg16_l2", "vgg16_linf")
]
DLN = [(m, lr) for m in ("dln", "dln_bn") for lr in (1e-6, 1e-7)] + [
    (m, 1e-6) for m in ("dln_l1", "dln_l2", "dln_linf")
]
RANK = [(m, 1e-6) for m in ("dln", "dln_bn")]  # B10 (beyond_rank): the DLN trained with probes=rank
HESSIAN = [(m, 0.1) for m in ("vgg16", "vgg16_bn")]  # B1 (beyond_hessian): VGG16 trained with probes=hessian
EDGE = [(m, 1e-6) for m in ("dln", "dln_bn")]  # B12 (beyond_dln_setup): the protocol's set-up with probes=edge
# B3 (beyond_init), B4 (beyond_lr) and B5 (beyond_batch, the smoke preset's batch study: 128 images at batch 8,
# 32, 128): the other init scales, LRs and batches beside Fig 1's runs; their figures read no probes
SWEPT = (
    [(m, 0.1, f"model.init_scale={g}") for m in ("vgg16", "vgg16_bn") for g in (0.1, 10)]
    + [(m, lr, "") for m in ("vgg16", "vgg16_bn") for lr in (1, 2)]
    + [(m, None, f"experiment=beyond_batch scale.batch_size={b}") for m in ("vgg16", "vgg16_bn") for b in (8, 32, 128)]
)


def build_records(root: Path) -> Path:
    """The 37 smoke runs every figure needs, the paper's and the beyond studies' (a finished run is skipped, so
    a second call is cheap)."""
    import torch

    from bnopt.train import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is as fast, and far faster on a busy machine
    try:
        runs = [(m, lr, "probes=paper") for m, lr in VGG + DLN] + [(m, lr, "probes=rank") for m, lr in RANK]
        runs += [(m, lr, "probes=hessian") for m, lr in HESSIAN] + [(m, lr, "probes=edge") for m, lr in EDGE]
        for model, lr, extra in runs + [(m, lr, "probes=none " + x) for m, lr, x in SWEPT]:
            data = [] if model.startswith("dln") else ["data=synthetic"]
            # B5's runs take their LR and steps from the batch (the experiment's interpolations)
            numbers = [] if lr is None else [f"optim.lr={lr}", f"scale.steps={STEPS}"]
            overrides = [f"model={model}", *data, "scale=smoke", "logger=none", *extra.split(), *numbers]
            train(make_cfg([*overrides, f"paths.results={root}"]), progress=False)
    finally:
        torch.set_num_threads(threads)
    return root


def shared_records(tmp_path_factory) -> Path:
    """The smoke records, built once per test session: under pytest-xdist the workers share one folder (the
    session's base folder, above each worker's own) and a file lock, so a second worker that needs them waits
    for the first (about 80 s on 2 cores) instead of training the same 37 runs again."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # pytest-<N>/popen-gw<i> -> pytest-<N>: this session's, shared by its workers
    with FileLock(str(base / "figure_records.lock")):
        return build_records(base / "figure_records")


@pytest.fixture(scope="session")
def records(tmp_path_factory) -> Path:
    return shared_records(tmp_path_factory)


@pytest.fixture(scope="session")
def results(records) -> Results:
    return load_runs(records)


def assert_written(paths: list[Path], name: str) -> None:
    assert [p.name for p in paths] == [f"{name}.png", f"{name}.pdf"]
    png, pdf = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000


# ------------------------------------------------------------------------------ every figure draws


@pytest.mark.integration
@pytest.mark.parametrize("name", figures.figure_list())
def test_figure_draws_from_smoke_records(results, tmp_path, name):
    paths = figures.draw(name, results, tmp_path)
    assert_written(paths, name)


@pytest.mark.integration
@pytest.mark.parametrize("name", ["fig3_vgg", "fig3_dln", "fig5_vgg", "fig5_dln", "fig11_vgg", "fig11_dln"])
def test_half_figure_draws_from_smoke_records(results, tmp_path, name):
    assert_written(getattr(figures, name)(results, tmp_path), name)


@pytest.mark.integration
def test_figures_use_one_colour_per_network(results):
    fig = figures.make_figure("fig12", results)
    acc = fig.axes[0]
    by_label = {line.get_label(): line.get_color() for line in acc.get_lines() if not line.get_label().startswith("_")}
    assert by_label["Batch Norm, LR 0.1"] == figures.MODEL_COLORS["vgg16_bn"] == figures.MODEL_COLORS["dln_bn"]
    assert by_label["Standard, LR 0.1"] == figures.MODEL_COLORS["vgg16"]
    assert len(set(figures.MODEL_COLORS[m] for m in ("dln", "dln_bn", "dln_l1", "dln_l2", "dln_linf"))) == 5
    # the landscape bands are on a log scale for the predictiveness, linear for the VGG loss (small multiples, one
    # panel per network titled by it: its loss range in the first row, its predictiveness in the second)
    loss, grad = [ax for ax in fig.axes if ax.get_title().startswith("Standard, LR 0.1")]
    assert grad.get_yscale() == "log" and loss.get_yscale() == "linear"


# ------------------------------------------------------------------------------------- missing runs


def subset(results: Results, keep) -> Results:
    ids = set(results.runs.loc[keep(results.runs), "run_id"])
    f = lambda df: df[df["run_id"].isin(ids)].reset_index(drop=True)
    return Results(f(results.runs), f(results.metrics), f(results.probes))


@pytest.mark.integration
def test_missing_run_names_the_runs_and_the_command(results, tmp_path):
    only_standard = subset(results, lambda r: r["model"] == "vgg16")
    with pytest.raises(figures.MissingRuns) as e:
        figures.fig1(only_standard, tmp_path)
    msg = str(e.value)
    assert "vgg16_bn LR 0.1" in msg and "vgg16_bn LR 0.5" in msg and "vgg16 LR" not in msg.replace("vgg16_bn", "")
    # the test runs have 20 steps: no preset's numbers, so the command names the preset scale=auto picks here
    assert e.value.command == f"bnopt-train experiment=fig1 scale={AUTO}"
    assert not list(tmp_path.iterdir())  # no empty plot written
    no_dln = subset(results, lambda r: r["family"] == "vgg")
    for name, experiment in [
        ("fig3_dln", "fig3_ics_dln"),
        ("fig3", "fig3_ics_dln"),  # the VGG half is there: only the DLN runs are asked for
        ("fig5", "fig5_lp_dln"),
        ("fig11_dln", "fig11_dln"),
        ("fig11", "fig11_dln"),
        ("fig13", "fig13"),
    ]:
        with pytest.raises(figures.MissingRuns, match=f"bnopt-train experiment={experiment} scale={AUTO}$"):
            figures.make_figure(name, no_dln)
    with pytest.raises(figures.MissingRuns, match="no runs in the results"):
        figures.fig4(load_runs(tmp_path / "nothing"), tmp_path)


@pytest.mark.integration
def test_runs_without_probe_records_are_named(results):
    no_probes = Results(results.runs, results.metrics, results.probes.iloc[0:0])
    with pytest.raises(figures.MissingRecords, match="has no 'landscape' probe records.*probes=paper"):
        figures.make_figure("fig4", no_probes)
    figures.make_figure("fig5_dln", no_probes)  # curves only: drawn without probes


def adhoc_copies(results: Results, experiment: str, folder: Path, **columns) -> pd.DataFrame:
    """The runs rows of an experiment's pairs as `bnopt-train -m model=... optim.lr=...` trains them: the same
    numbers, `probes=none`, no probe records, no activations.npz (in `folder`)."""
    from bnopt import experiments

    runs = results.runs
    keep = [
        runs[(runs.model == m) & (runs.lr == lr) & (runs.probes == "paper") & (runs.init_scale == 1)].iloc[[0]]
        for m, lr in experiments.pairs(experiment)
    ]
    rows = pd.concat(keep, ignore_index=True)
    return rows.assign(run_id=rows.run_id + "-adhoc", probes="none", path=str(folder), **columns)


@pytest.mark.integration
@pytest.mark.parametrize("probe_rows", [False, True])
def test_records_a_figure_lacks_are_named_with_the_scale_of_its_runs(results, tmp_path, probe_rows):
    """Issue 22 item 9: ad-hoc `probes=none` runs at the smoke preset's numbers hold none of Fig 1's
    histograms: the command trains the experiment at that scale (not at the preset a bare command picks)."""
    adhoc = adhoc_copies(results, "fig1", tmp_path, scale="smoke", **scale_numbers("smoke", "vgg"))
    probes = results.probes.iloc[0:0]
    if probe_rows:  # quantile rows but no activations.npz: the histogram reader names the scale too
        row = {"step": 0, "probe": "activations", "layer": 3, "eta": np.nan, "metric": "q50", "value": 0.0}
        probes = pd.DataFrame([{**row, "run_id": r} for r in adhoc.run_id])
    with pytest.raises(figures.MissingRecords) as e:
        figures.make_figure("fig1", Results(adhoc, results.metrics.iloc[0:0], probes))
    assert e.value.command == "bnopt-train experiment=fig1 scale=smoke"
    assert ("no histograms of layer #3" if probe_rows else "trained with probes=none") in str(e.value)


@pytest.mark.integration
@pytest.mark.parametrize("name", ["fig1", "fig2"])
def test_histogram_figures_take_the_run_that_holds_histograms(results, tmp_path, name):
    """Issue 22 item 9: an ad-hoc `probes=none` run of a lower seed (the same training) loses against the
    figure's own run of the same numbers whose histograms the figure draws."""
    runs = results.runs
    adhoc = adhoc_copies(results, name, tmp_path, seed=-1)
    copied = results.metrics[results.metrics.run_id.isin(adhoc.run_id.str.removesuffix("-adhoc"))]
    more = Results(
        pd.concat([runs, adhoc], ignore_index=True),
        pd.concat([results.metrics, copied.assign(run_id=copied.run_id + "-adhoc")], ignore_index=True),
        results.probes,
    )
    panels = figures.describe(draw_figure(name, more), more)["histograms"]
    assert panels and not [p["run_id"] for p in panels if p["run_id"].endswith("-adhoc")]


@pytest.mark.integration
def test_scale_filter_and_run_preference(results):
    runs = results.runs
    with pytest.raises(figures.MissingRuns, match="at scale paper.*experiment=fig4 scale=paper"):
        figures.make_figure("fig4", results, scale="paper")
    # a second, longer but unfinished run of the same (model, lr) loses against the finished one
    fig1_run = (
        (runs["model"] == "vgg16_bn") & (runs["lr"] == 0.1) & (runs["init_scale"] == 1) & (runs["steps"] == STEPS)
    )
    row = runs[fig1_run].iloc[0].copy()
    row["run_id"], row["status"], row["steps"] = "vgg16_bn-unfinished", "running", 10_000
    more = Results(pd.concat([runs, row.to_frame().T], ignore_index=True), results.metrics, results.probes)
    chosen = more.select([("vgg16_bn", row["lr"])])
    assert chosen[("vgg16_bn", row["lr"])]["run_id"] != "vgg16_bn-unfinished"


@pytest.mark.integration
def test_draw_all_shows_which_figure_it_draws(results, tmp_path, capsys):
    """Issue 22 item 12: `make figures` drew for minutes without a word; a bar on stderr names each figure."""
    figures.draw_all(results, tmp_path, figs=["fig5_dln", "fig10"], progress=True)
    err = capsys.readouterr().err
    assert "figure fig5_dln" in err and "figure fig10" in err and "2/2" in err
    figures.draw_all(results, tmp_path, figs=["fig5_dln"])  # no bar unless asked (notebooks, tests)
    assert capsys.readouterr().err == ""


@pytest.mark.integration
def test_draw_all_reports_missing_figures(records, results, tmp_path):
    dln_only = subset(results, lambda r: r["family"] == "dln")
    report = figures.draw_all(dln_only, tmp_path, figs=["fig5_dln", "fig1", "fig6"])
    assert isinstance(report["fig5_dln"], list)
    assert report["fig1"].startswith("missing: no runs of vgg16 LR 0.1")
    assert report["fig1"].endswith(f"produce them with: bnopt-train experiment=fig1 scale={AUTO}")
    assert "experiment=fig6" in report["fig6"]
    with pytest.raises(ValueError, match="unknown figure 'fig7'"):
        figures.draw_all(records, tmp_path, figs=["fig7"])


def bookkeeping(fig) -> list[str]:
    """Attributes of ours on a figure, its subfigures or its Axes (issue 23: the figure code keeps its
    records in a `panels.recording`, never on the matplotlib objects)."""
    parts, i = [fig], 0
    while i < len(parts):  # the figure and its subfigures, nested
        parts += parts[i].subfigs
        i += 1
    parts += fig.axes
    return [f"{type(p).__name__}.{a}" for p in parts for a in vars(p) if a.startswith("bnopt")]


@pytest.mark.integration
def test_a_figure_drawn_twice_keeps_no_records_of_the_one_before(results):
    """Issue 23 item 5: each draw_figure records its own figure: the same builder twice in a row gives the same
    runs and histogram panels (not twice as many), the next figure none of the previous one's."""
    first = draw_figure("fig1", results)
    again = draw_figure("fig1", results)
    assert len(first.histograms) == 4 and again.histograms == first.histograms
    assert list(again.runs) == list(first.runs) and {r["model"] for r in first.runs.values()} == {"vgg16", "vgg16_bn"}
    dln = draw_figure("fig5_dln", results)
    assert dln.runs and not dln.histograms and not set(dln.runs) & set(first.runs)
    assert {r["family"] for r in dln.runs.values()} == {"dln"}
    # a builder called as a notebook would, with no recording open: drawn, and nothing noted anywhere
    assert figures.catalog.builders()["fig1"](results, None).axes
    assert list(draw_figure("fig5_dln", results).runs) == list(dln.runs)


@pytest.mark.integration
@pytest.mark.parametrize("name", ["fig1", "fig3"])
def test_figures_carry_no_bookkeeping_attributes(results, name):
    """No `bnopt_*` attribute on a drawn figure, its subfigures or Axes; a composite's title still names the
    runs of both halves (their titles' runs, recorded per half)."""
    drawn = draw_figure(name, results)
    assert not bookkeeping(drawn.fig)
    assert not bookkeeping(figures.make_figure(name, results))
    footer = next(t.get_text() for t in drawn.fig.texts if " | runs: " in t.get_text())
    named = footer.split(" | runs: ")[1].split(", ")  # the runs the title names
    assert named and set(named) <= set(drawn.runs)
    families = {str(drawn.runs[r]["family"]) for r in named}
    assert families == ({"vgg", "dln"} if name == "fig3" else {"vgg"})


def test_recordings_note_what_is_drawn_while_open_and_nest():
    """The recorder behind the figure manifest: record_runs / figure_title / ridge note into every open
    `recording` (none open: nothing noted, nothing stored on the figure); the title is the innermost one's."""
    from bnopt.figures.common import figure_title
    from bnopt.figures.panels import new_figure, record_runs

    row = lambda rid: {"run_id": rid, "steps": STEPS, "scale": "smoke", "seed": 0}
    titled = {("vgg16", 0.1): row("a"), ("vgg16_bn", 0.1): row("b")}

    def build(fig=None):
        fig = fig if fig is not None else new_figure(4, 3)
        record_runs(fig.add_subplot(1, 1, 1), [row("c"), row("a")])
        figure_title(fig, "Fig. 3a — test", titled)
        return fig

    assert not bookkeeping(build())  # a notebook calling a builder itself
    with recording() as one:
        fig = build()
    with recording() as two:
        build()
    assert list(one.runs) == list(two.runs) == ["c", "a", "b"] and one.title == two.title == titled
    assert one.runs["c"] == row("c") and not one.histograms and not bookkeeping(fig)
    with recording() as outer:
        fig = new_figure(6, 3)
        with recording() as half:
            build(fig.subfigures(1, 2)[0])
        record_runs(fig, [row("d")])
    assert half.title == titled and outer.title is None  # a half's title is its own, not the figure's
    assert list(half.runs) == ["c", "a", "b"] and list(outer.runs) == ["c", "a", "b", "d"]
    assert not bookkeeping(fig)


# ------------------------------------------------------------------------------------------ histograms


class HistogramRecords:
    """A Results stand-in holding one run's activations.npz arrays."""

    source = "local"

    def __init__(self, arrays: dict):
        self.arrays = arrays

    def histograms(self, run_id):
        return self.arrays


def growing_layer(edges: str, scales=(1.0, 3.0, 10.0, 30.0, 100.0)) -> dict:
    """activations.npz arrays of layer #1 growing 100x over five measurements, as the probe writes them."""
    import torch

    from bnopt.probes import ActivationsProbe, ProbeContext

    norm = torch.nn.Identity()
    model = type("Model", (), {"layer": lambda self, k: type("Block", (), {"norm": norm})()})()
    probe = ActivationsProbe(1, [1], bins=64, edges=edges)
    g = torch.Generator().manual_seed(0)
    for step, s in enumerate(scales):
        a = s * torch.randn(16, 8, 8, 8, generator=g) + s
        probe(ProbeContext(100 * step, model, None, None, None, None, None, heard={norm: a}))
    return probe.arrays()


def ridge_panel(arrays: dict):
    from bnopt.figures.panels import new_figure, ridge
    from bnopt.figures.selection import layer_histogram

    h = layer_histogram(HistogramRecords(arrays), "vgg16-lr0.1-x", 1)
    fig = new_figure(4, 4)
    ax = fig.add_subplot(1, 1, 1)
    return h, fig, ax, ridge(ax, h, "#333333")


def test_ridge_draws_each_measurement_in_its_own_bins_on_one_axis():
    """Issue 11: a layer that grows 100x stays readable: each measurement in its own bins on one shared
    x-axis (the union of the edges), at most 5% of the panel's values outside, and the panel says so."""
    arrays = growing_layer("per_measurement")
    with recording() as drawn:
        h, fig, ax, panel = ridge_panel(arrays)
    assert h.edges.shape == (5, 65)
    assert panel["outside"] <= 0.05 and panel["outside"] < 0.005  # the robust range: ~0.2% at most
    assert panel["run_id"] == "vgg16-lr0.1-x" and panel["layer"] == 1 and panel["steps"] == [0, 100, 200, 300, 400]
    assert panel["bins"] == "per_measurement" and drawn.histograms == [panel]
    assert ax.get_xlim() == pytest.approx((arrays["layer1_edges"][:, 0].min(), arrays["layer1_edges"][:, -1].max()))
    note = " ".join(t.get_text() for t in ax.texts)
    assert "bins per measurement" in note and "of values outside" in note
    # each curve spans its own measurement's bins
    lines = [line.get_xdata() for line in ax.get_lines()]
    assert np.ptp(lines[-2]) > 50 * np.ptp(lines[0])

    # the old rule, the first measurement's edges: the grown layer leaves them, and the panel says how much
    old = growing_layer("first")
    _, _, ax, panel = ridge_panel(old)
    assert panel["outside"] > 0.3 and panel["bins"] == "shared"
    assert "same bins for every step" in " ".join(t.get_text() for t in ax.texts)


def test_old_one_row_edges_are_read_for_every_measurement():
    arrays = growing_layer("first")
    arrays["layer1_edges"] = arrays["layer1_edges"][0]  # records written before per-measurement edges
    h, _, _, panel = ridge_panel(arrays)
    assert h.edges.shape == (5, 65) and (h.edges == arrays["layer1_edges"]).all()
    assert panel["bins"] == "shared" and panel["outside"] > 0.3


@pytest.mark.integration
def test_published_figures_have_a_manifest(records, results, tmp_path, monkeypatch, capsys):
    """results/<scale>/figures/manifest.json: per drawn figure its runs (all in the results), seeds, scale,
    steps and histogram panels, none with more than 5% of its values outside the drawn range."""
    from bnopt import publish, run_selection
    from bnopt.run_selection import figure_manifest

    # the test runs are the smoke preset's but for their 20 steps: publish them as the smoke scale's
    real = run_selection.scale_numbers
    smoke = lambda scale, family: {**real(scale, family), **({"steps": STEPS} if scale == "smoke" else {})}
    monkeypatch.setattr(run_selection, "scale_numbers", smoke)
    (tmp_path / "smoke" / "runs" / "gone-run").mkdir(parents=True)  # committed with an older report
    published = publish.publish(records, tmp_path / "smoke", "smoke")
    # issue 22 item 12: bars on stderr over the records, each figure (by name) and the checks; a summary
    err = capsys.readouterr().err
    for stage in (f"records of {records / 'runs'}", "figure fig1", "figure beyond_rank", "judged C1", "judged B11"):
        assert stage in err, stage
    n = len(figures.figure_list())
    assert published.summary.startswith(f"{n} of {n} figure(s) in {tmp_path / 'smoke' / 'figures'}, report ")
    assert re.search(r"\(records \d+ s, figures \d+ s, checks \d+ s, copying records \d+ s\)$", published.summary)
    drawn = [name for name, v in published.figures.items() if not isinstance(v, str)]
    # the records of exactly the runs drawn from are committed beside the report, without checkpoints
    committed = tmp_path / "smoke" / "runs"
    assert {p.name for p in committed.iterdir()} == set(results.runs["run_id"])
    assert not list(committed.glob("*/checkpoint.pt")) and len(list(committed.glob("*/metrics.parquet"))) == len(
        results.runs
    )
    assert set(drawn) == set(figures.figure_list())
    assert (tmp_path / "smoke" / "figures" / "manifest.json").is_file()
    manifest = figure_manifest("smoke", tmp_path)
    assert set(manifest) == set(drawn)
    ids = set(results.runs["run_id"])
    panels = {}
    for name in drawn:
        entry = manifest[name]
        assert entry["run_ids"] and set(entry["run_ids"]) <= ids, name
        assert entry["scale"] == "smoke" and entry["seeds"] == [0], name
        assert set(entry["steps"]) == set(entry["run_ids"]), name
        assert all(0 <= a <= b <= STEPS for a, b in entry["steps"].values()), name
        assert all(p["run_id"] in entry["run_ids"] for p in entry["histograms"]), name
        panels[name] = entry["histograms"]
    assert {n: len(p) for n, p in panels.items() if p} == {"fig1": 4, "fig2": 9, "fig6": 5, "fig9": 6}
    for name, ps in panels.items():
        for p in ps:
            outside = [k for k in p if "outside" in k]
            assert outside and all(p[k] <= 0.05 for k in outside), (name, p)
            assert p["steps"] == [0, 5, 10, 15], (name, p)
    # both halves of a composite are named; a figure not drawn this time keeps its entry while its image stays
    fig3_models = {results.runs.set_index("run_id").loc[r, "family"] for r in manifest["fig3"]["run_ids"]}
    assert fig3_models == {"vgg", "dln"}
    publish.write_figure_manifest(tmp_path / "smoke" / "figures", {"fig4": {"missing": "x"}, "fig7": {"missing": "y"}})
    again = figure_manifest("smoke", tmp_path)
    assert again["fig4"] == manifest["fig4"] and again["fig7"] == {"missing": "y"}
    # issue 22 item 20: the report's header names where its records are: beside it, where they were copied
    header = (tmp_path / "smoke" / "REPORT.md").read_text().splitlines()[2]
    assert header.endswith(f"from {len(results.runs)} run(s); their records are in `{committed}`."), header


def test_notebooks_find_the_results_from_any_folder(tmp_path, monkeypatch):
    """Issue 22 item 2: Jupyter starts a notebook in notebooks/; the results are the repository's whatever
    the folder: relative paths from the repository root, and without a setting results/ when results/runs
    holds runs, else the committed results/small (a fresh clone)."""
    from bnopt.figures.locate import locate_results

    def run_folder(path: Path) -> None:
        path.mkdir(parents=True)
        (path / "config.yaml").write_text("")

    repo = tmp_path.resolve() / "clone"
    (repo / "configs").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("")
    (repo / "notebooks").mkdir()
    results, committed = repo / "results", repo / "results" / "small"
    run_folder(committed / "runs" / "vgg16-lr0.1-0123456789")
    (committed / "figures").mkdir()
    monkeypatch.chdir(repo / "notebooks")
    found = locate_results()
    assert (found.records, found.figures) == (committed, results)
    assert found.note == f"{committed} ({results / 'runs'} holds no runs: the 1 committed runs of {committed / 'runs'})"
    relative = locate_results("results/small")  # the README's setting, read from the repository root
    assert (relative.records, relative.figures) == (committed, results)
    absolute = locate_results(str(committed))  # its figures are results/small/figures, not small/small/figures
    assert (absolute.records, absolute.figures) == (committed, results)
    assert locate_results(str(tmp_path / "elsewhere")).records == tmp_path / "elsewhere"
    run_folder(results / "runs" / "vgg16-lr0.1-mine")  # runs of one's own come first
    assert locate_results().records == results


def test_report_header_says_where_the_records_are():
    from bnopt.report import records_line

    runs = pd.DataFrame({"run_id": ["a", "b"], "status": ["done", "diverged"]})
    committed = Path("results/small/runs")
    assert records_line(runs, Path("results"), committed) == "2 run(s); their records are in `results/small/runs`"
    assert records_line(runs, Path("results"), None) == "2 run(s) under `results/runs`"  # python -m bnopt.report
    runs.loc[1, "status"] = "running"  # not copied beside the report
    assert records_line(runs, Path("results"), committed) == (
        "2 run(s) under `results/runs`; the records of the 1 finished ones are in `results/small/runs`"
    )


# ------------------------------------------------------------------------------------------------ CLI


@pytest.mark.integration
def test_cli(records, tmp_path, capsys):
    assert figures_main(["--results", str(records), "--out", str(tmp_path / "f"), "--figs", "fig10", "fig5_dln"]) == 0
    out, err = capsys.readouterr()
    assert "drew 2 of 2 figures" in out and "figure fig10" in err  # a bar on stderr names each figure
    assert (tmp_path / "f" / "fig10.png").exists() and (tmp_path / "f" / "fig5_dln.pdf").exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    assert figures_main(["--results", str(empty), "--figs", "fig1", "fig3"]) == 0
    out = capsys.readouterr().out
    assert "drew 0 of 2 figures" in out
    assert f"\n  bnopt-train experiment=fig3_ics_dln scale={AUTO}\n" in out
    assert "bnopt-train experiment=fig3_ics_vgg" in out and "bnopt-train experiment=fig1" in out

    assert figures_main(["--results", str(records), "--figs", "fig99"]) == 2
    assert "unknown figure 'fig99'" in capsys.readouterr().err


@pytest.mark.e2e
def test_cli_module_without_results_dir(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bnopt.figures", "--results", str(tmp_path / "nope")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr


# ---------------------------------------------------------------------------------------------- W&B


def fake_history(res: Results, run_id: str) -> list[dict]:
    """What wandb_mirror.WandbMirror logs for a run, as W&B history rows (one dict per step)."""
    rows: dict[int, dict] = defaultdict(dict)
    for r in res.metrics[res.metrics["run_id"] == run_id].to_dict("records"):
        for k, v in r.items():
            if k not in ("step", "kind", "run_id") and not (isinstance(v, float) and math.isnan(v)):
                rows[int(r["step"])][f"{r['kind']}/{k}"] = v
    p = res.probes[(res.probes["run_id"] == run_id) & res.probes["eta"].isna()]
    for r in p.to_dict("records"):
        step, probe, layer, metric = int(r["step"]), r["probe"], int(r["layer"]), r["metric"]
        key = {
            "landscape": f"landscape/{metric}",
            "ics": f"ics/layer{layer}/{metric}",
            "activations": f"activations/layer{layer}/{metric}",
            "rank": f"rank/layer{layer}/{metric}",
            "hessian": f"hessian/{metric}",
            "gradnorms": f"gradnorms/layer{layer}" + ("/weight" if metric == "weight_norm" else ""),
        }[probe]
        rows[step][key] = "NaN" if math.isnan(r["value"]) else r["value"]
        if probe == "activations":  # histograms come as W&B objects: ignored
            rows[step][f"activations/layer{layer}/hist"] = {"_type": "histogram", "bins": [0, 1], "values": [3]}
        if probe == "landscape" and metric == "loss_max":
            rows[step]["landscape/loss_range"] = 1.0  # derived key: ignored
    return [{"_step": s, "_runtime": 1.0, **d} for s, d in sorted(rows.items())]


class FakeRun:
    def __init__(self, res: Results, row, i: int, wrapped: bool):
        cfg = OmegaConf.to_container(OmegaConf.load(Path(row["path"]) / "config.yaml"), resolve=True)
        self.config = {k: {"value": v, "desc": None} for k, v in cfg.items()} if wrapped else cfg
        self.name, self.id, self.state = row["run_id"], f"wb{i:03d}", "finished"
        self.summary = {"status": row["status"], "steps_done": int(row["steps_done"]), "_step": 20}
        self._history = fake_history(res, row["run_id"])

    def scan_history(self, *a, **k):
        return iter(self._history)


def fake_api(results: Results):
    runs = [FakeRun(results, row, i, wrapped=i % 2 == 1) for i, row in enumerate(results.runs.to_dict("records"))]

    class FakeApi:
        def __init__(self, *a, **k):
            pass

        def runs(self, path, *a, **k):
            assert path == "me/bnopt"
            return list(runs)

    return FakeApi


@pytest.mark.integration
def test_wandb_frames_match_the_local_records(results, tmp_path, monkeypatch):
    import wandb

    monkeypatch.setattr(wandb, "Api", fake_api(results))
    wb = load_wandb("me/bnopt")
    assert wb.source == "wandb" and len(wb.runs) == len(results.runs) == 37
    cols = ["run_id", "model", "family", "norm", "lr", "scale", "steps", "width", "status", "probes"]
    pd.testing.assert_frame_equal(
        wb.runs[cols].sort_values("run_id").reset_index(drop=True),
        results.runs[cols].sort_values("run_id").reset_index(drop=True),
        check_dtype=False,
    )
    key = ["run_id", "step", "kind"]
    local = results.metrics.sort_values(key).reset_index(drop=True)
    remote = wb.metrics.sort_values(key).reset_index(drop=True)
    assert len(remote) == len(local)
    for col in ("loss", "acc", "lr", "test_acc", "train_eval_loss"):
        np.testing.assert_allclose(remote[col].to_numpy(float), local[col].to_numpy(float), equal_nan=True)
    local_p = results.probes[results.probes["eta"].isna()]
    pk = ["run_id", "probe", "layer", "metric", "step"]
    merged = local_p.merge(wb.probes, on=pk, how="outer", suffixes=("", "_wb"), indicator=True)
    assert (merged["_merge"] == "both").all()
    np.testing.assert_allclose(merged["value_wb"], merged["value"], equal_nan=True)
    assert wb.histograms(wb.runs["run_id"].iloc[0]) == {}
    dln_bn = load_wandb("me/bnopt", model="dln_bn")
    assert len(dln_bn) == 4 and set(dln_bn.metrics["run_id"]) == set(dln_bn.runs["run_id"])

    # figures from W&B: curves and landscape ranges yes, histograms and per-eta curves with a clear message
    report = figures.draw_all(wb, tmp_path, figs=["fig4", "fig1", "fig6", "fig11", "fig13"])
    assert_written(report["fig4"], "fig4")
    assert_written(report["fig1"], "fig1")
    assert isinstance(report["fig13"], list)
    assert "W&B does not mirror" in report["fig6"] and "not mirrored to W&B" in report["fig11"]


@pytest.mark.integration
def test_cli_from_wandb(results, tmp_path, monkeypatch, capsys):
    import wandb

    monkeypatch.setattr(wandb, "Api", fake_api(results))
    assert figures_main(["--from-wandb", "me/bnopt", "--out", str(tmp_path), "--figs", "fig10", "fig9"]) == 0
    out = capsys.readouterr().out
    assert "37 runs from W&B project me/bnopt" in out and "drew 1 of 2 figures" in out
    assert (tmp_path / "fig10.png").exists()

    def broken(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(wandb, "Api", broken)
    assert figures_main(["--from-wandb", "me/bnopt"]) == 2
    assert "could not read W&B project 'me/bnopt' (ConnectionError: no network)" in capsys.readouterr().err


def test_curves_are_the_mean_over_seeds_with_a_band_and_n_in_the_legend(tmp_path):
    """Several seeds of a (model, LR): one mean line, a min-max band, "(N seeds)"; one seed: as before."""
    from bnopt.figures.curves import acc_panel, eval_acc_panel, loss_panel, seed_runs
    from bnopt.figures.panels import new_figure
    from bnopt.run_selection import Requires, select_runs

    from .run_rows import Maker

    m = Maker(tmp_path)
    for s in (0, 1, 2):
        m.run("vgg16", 0.1, seed=s, acc_rate=0.01 * (1 + s)).run("vgg16_bn", 0.1, seed=s)
    m.run("dln", 1e-6)
    res = m.results()
    runs = select_runs(res, [("vgg16", 0.1), ("vgg16_bn", 0.1)], requires=Requires(seed=0))
    assert [int(r["seed"]) for r in seed_runs(res, runs[("vgg16", 0.1)])] == [0, 1, 2]
    fig = new_figure(10, 4)
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    acc_panel(ax, res, runs, [0.1])
    eval_acc_panel(ax2, res, runs, [0.1])
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Standard, LR 0.1 (3 seeds)" in texts and "band: min-max over seeds" in texts
    assert len(ax.collections) == 3 and len(ax2.collections) == 2  # two bands (+ the legend's band entry)
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "Standard, LR 0.1 (3 seeds)")
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() <= np.nanmin(line.get_ydata()) and band.max() >= np.nanmax(line.get_ydata())
    one = select_runs(res, [("dln", 1e-6)])
    ax3 = new_figure(5, 4).add_subplot(1, 1, 1)
    loss_panel(ax3, res, one, [1e-6])
    assert [t.get_text() for t in ax3.get_legend().get_texts()] == ["Standard, LR 1e-06"] and not ax3.collections


def test_ics_and_beta_lines_average_the_seeds(tmp_path):
    from bnopt.figures.curves import probe_line
    from bnopt.figures.panels import new_figure

    steps = [0, 5, 10]
    tables = [pd.DataFrame({"beta": [1.0 + s, 2.0 + s, 3.0 + s]}, index=pd.Index(steps, name="step")) for s in range(3)]
    ax = new_figure(4, 3).add_subplot(1, 1, 1)
    probe_line(ax, tables, "beta", "k", "BN")
    (line,) = ax.get_lines()
    assert line.get_label() == "BN (3 seeds)" and list(line.get_ydata()) == [2.0, 3.0, 4.0]
    assert len(ax.collections) == 1
    ax1 = new_figure(4, 3).add_subplot(1, 1, 1)
    probe_line(ax1, tables[:1], "beta", "k", "BN")
    assert ax1.get_lines()[0].get_label() == "BN" and not ax1.collections


@pytest.mark.parametrize("n_runs", [2, 66])
def test_footer_of_many_runs_keeps_clear_of_the_axis_labels(n_runs):
    """A figure of many runs names them in several wrapped lines: the strip the layout keeps free grows with
    them, so the footer ends below the lowest axis label (B11's 66 runs wrapped to 3+ lines over its x labels)."""
    from bnopt.figures.panels import footer, new_figure

    fig = new_figure(14, 9)
    for i in range(4):
        fig.add_subplot(2, 2, i + 1).set_xlabel("training step (SGD updates)")
    footer(fig, {i: {"run_id": f"vgg16_bn-lr0.05-{i:010d}", "scale": "small"} for i in range(n_runs)})
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (text,) = fig.texts
    text_top = text.get_window_extent(renderer).y1
    lowest_label = min(ax.xaxis.label.get_window_extent(renderer).y0 for ax in fig.axes)
    assert text_top < lowest_label
    assert (text.get_window_extent(renderer).height > 2 * 6) == (n_runs == 66)  # several lines, only for many
