"""The beyond-the-paper studies' figures (B3-B10) from small hand-made records: each draws every seed of its
runs, and missing runs or records raise MissingRuns / MissingRecords instead of an empty plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from bnopt import figures
from bnopt.figures.catalog import PAPER_FIGURES, draw_figure
from bnopt.results import Results
from bnopt.run_selection import MissingRecords, MissingRuns
from tests.run_rows import run_row

# the figures the studies in experiments/ draw themselves (Study.draw), in study order
BEYOND_FIGURES = (
    "beyond_hessian",
    "beyond_init",
    "beyond_lr",
    "beyond_batch",
    "beyond_regularisation",
    "beyond_gradients",
    "beyond_inference",
    "beyond_effective_lr",
    "beyond_rank",
)

STEPS = np.arange(0, 200)
EVALS = [0, 50, 100, 150, 200]
PROBE_STEPS = range(0, 200, 20)
VGG = {"vgg16": 0.1, "vgg16_bn": 0.1, "vgg16_noisy_bn": 0.1}
SEEDS = {"vgg16": (0, 1), "vgg16_bn": (0, 1), "vgg16_noisy_bn": (0,), "dln": (0, 1), "dln_bn": (0, 1)}


def vgg_or_dln_row(model: str, lr: float, seed: int, probes: str) -> dict:
    return run_row(model, lr, seed, run_id=f"{model}-lr{lr:g}-{probes}-s{seed}", steps=len(STEPS), probes=probes)


def vgg_records(rid: str, bn: bool, seed: int, gradnorms: bool = True):
    rng = np.random.default_rng(seed)
    acc = 0.1 + 0.8 * (1 - np.exp(-STEPS / (40 if bn else 120)))
    loss = 2.3 * np.exp(-STEPS / (60 if bn else 200)) + 0.05
    train = pd.DataFrame(dict(step=STEPS, kind="train", loss=loss, acc=acc + rng.normal(0, 0.01, len(STEPS))))
    e = np.array(EVALS)
    tr_acc = 0.1 + 0.8 * (1 - np.exp(-e / (40 if bn else 120)))
    ev = pd.DataFrame(dict(step=e, kind="eval", train_eval_acc=tr_acc, test_acc=tr_acc - 0.05 * e / 200))
    metrics = pd.concat([train, ev], ignore_index=True).assign(run_id=rid)
    rows = []
    for s in PROBE_STEPS if gradnorms else ():
        for k in range(1, 15):
            g = (1.0 if bn else 10.0 ** (-3 + k / 5)) * (1 + 0.1 * rng.random())
            w = (1 + k / 10) * (1 + s / (200 if bn else 2000))
            rows += [(s, "gradnorms", k, np.nan, "grad_norm", g), (s, "gradnorms", k, np.nan, "weight_norm", w)]
    return metrics, rows


def dln_records(rid: str, bn: bool, seed: int, rank: bool = True):
    loss = 1e4 * np.exp(-STEPS / 100) + 1
    metrics = pd.DataFrame(dict(step=STEPS, kind="train", loss=loss, run_id=rid))
    rows = []
    for s in PROBE_STEPS if rank else ():
        for k in range(1, 26):
            sr = (4.0 if bn else 4.0 / k) * (1 + 0.05 * seed) * (1 - s / 1000)
            rows += [(s, "rank", k, np.nan, "stable_rank", sr), (s, "rank", k, np.nan, "rank", 10.0)]
    return metrics, rows


def hessian_records(bn: bool, seed: int) -> list[tuple]:
    """B1's records: |top eigenvalue| 10 (BN, 30 with running statistics) or 100 (standard), one point per
    run not converged (residual 0.5), g^T H g / ||g||^2 of either sign."""
    rows = []
    for s in PROBE_STEPS:
        resid = 0.5 if s == 40 else 0.01
        lam = (10.0 if bn else 100.0) * (1 + 0.1 * seed)
        rows += [(s, "hessian", 0, np.nan, "top_eig", lam), (s, "hessian", 0, np.nan, "top_eig_residual", resid)]
        rows += [(s, "hessian", 0, np.nan, "ghg", lam / 10 * (1 if s % 40 else -1))]
        rows += [(s, "hessian", 0, np.nan, "top_eig_eval", 3 * lam)]
        rows += [(s, "hessian", 0, np.nan, "top_eig_residual_eval", resid)]
    return rows


def make_results(
    models=("vgg16", "vgg16_bn", "vgg16_noisy_bn", "dln", "dln_bn"), probes: bool = True, sweeps=("vgg16", "vgg16_bn")
) -> Results:
    runs, metrics, probe_rows = [], [], []
    for model in models:
        dln = model.startswith("dln")
        for seed in SEEDS[model]:
            row = vgg_or_dln_row(model, 1e-6 if dln else VGG[model], seed, "rank" if dln else "paper")
            runs.append(row)
            bn = model.endswith("bn")
            m, rows = (dln_records if dln else vgg_records)(row["run_id"], bn, seed, probes)
            metrics.append(m)
            probe_rows += [(*r, row["run_id"]) for r in rows]
    for model in [m for m in ("vgg16", "vgg16_bn") if m in models]:  # B1's probes=hessian runs
        for seed in SEEDS[model]:
            row = vgg_or_dln_row(model, 0.1, seed, "hessian")
            runs.append(row)
            metrics.append(vgg_records(row["run_id"], model.endswith("bn"), seed, gradnorms=False)[0])
            probe_rows += [(*r, row["run_id"]) for r in (hessian_records(model.endswith("bn"), seed) if probes else [])]
    for model in sweeps:  # B3's init scales and B4's LR grid beside Fig 1's runs (init scale 1, LR 0.1)
        bn = model.endswith("bn")
        for seed in SEEDS[model]:
            points = [(0.1, g) for g in (0.1, 10.0)] + [(lr, 1.0) for lr in (0.5, 1.0, 2.0)]
            for lr, g in points:
                diverged = not bn and (lr > 0.5 or g > 1)
                row = vgg_or_dln_row(model, lr, seed, "paper") | {
                    "run_id": f"{model}-lr{lr:g}-x{g:g}-s{seed}",
                    "init_scale": g,
                    "status": "diverged" if diverged else "done",
                }
                runs.append(row)
                m, _ = vgg_records(row["run_id"], bn, seed, gradnorms=False)
                metrics.append(m[m["step"] < 30] if diverged else m)
            for batch in (8, 32, 128):  # B5: the small scale's batch study (51,200 images at every batch)
                lr = 0.1 * batch / 128
                row = vgg_or_dln_row(model, lr, seed, "none") | {
                    "run_id": f"{model}-lr{lr:g}-b{batch}-s{seed}",
                    "batch_size": batch,
                    "steps": 51200 // batch,
                }
                runs.append(row)
                metrics.append(vgg_records(row["run_id"], bn, seed, gradnorms=False)[0])
    probe_frame = pd.DataFrame(probe_rows, columns=["step", "probe", "layer", "eta", "metric", "value", "run_id"])
    return Results(pd.DataFrame(runs), pd.concat(metrics, ignore_index=True), probe_frame)


@pytest.fixture(scope="module")
def res() -> Results:
    return make_results()


# study, networks, and whether the figure draws the init-scale (B3) / LR-grid (B4) runs or only Fig 1's point
DRAWN = {
    "beyond_hessian": ("B1", ("vgg16", "vgg16_bn"), "hessian"),
    "beyond_init": ("B3", ("vgg16", "vgg16_bn"), "init"),
    "beyond_lr": ("B4", ("vgg16", "vgg16_bn"), "lr"),
    "beyond_batch": ("B5", ("vgg16", "vgg16_bn"), "batch"),
    "beyond_regularisation": ("B6", ("vgg16", "vgg16_bn"), ""),
    "beyond_gradients": ("B7", ("vgg16", "vgg16_bn"), ""),
    "beyond_inference": ("B8", ("vgg16_bn", "vgg16_noisy_bn"), ""),
    "beyond_effective_lr": ("B9", ("vgg16", "vgg16_bn"), ""),
    "beyond_rank": ("B10", ("dln", "dln_bn"), ""),
}


@pytest.mark.integration
@pytest.mark.parametrize("name", BEYOND_FIGURES)
def test_beyond_figure_draws_every_seed(res, tmp_path, name):
    drawn = draw_figure(name, res)
    fig = drawn.fig
    assert isinstance(fig, Figure)
    study, models, sweep = DRAWN[name]
    runs = res.runs.assign(init_scale=res.runs["init_scale"].fillna(1.0), batch_size=res.runs["batch_size"].fillna(0))
    b5 = runs["batch_size"] > 0  # B5's batch-study runs
    hessian = runs["probes"] == "hessian"  # B1's runs
    fig1_point = (runs["init_scale"] == 1.0) & (runs["lr"].isin([0.1, 1e-6])) & ~b5 & ~hessian
    swept = {
        "hessian": hessian,
        "init": (runs["lr"] == 0.1) & ~b5 & ~hessian,
        "lr": (runs["init_scale"] == 1.0) & ~b5 & ~hessian,
        "batch": b5,
        "": fig1_point,
    }[sweep]
    want = set(runs.loc[runs["model"].isin(models) & swept, "run_id"])
    assert set(drawn.runs) == want  # every seed of every curve, for the figure manifest
    assert fig._suptitle.get_text().startswith(f"{study} — ")
    labels = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert any("(2 seeds)" in t for t in labels), labels
    png, pdf = figures.draw(name, res, tmp_path)
    assert png.name == f"{name}.png" and png.stat().st_size > 10_000 and pdf.exists()
    assert figures.describe(drawn, res)["seeds"] == [0, 1]


def test_a_seed_trained_again_with_other_probes_draws_the_run_with_the_figures_records(res):
    """Fig 9's DLN runs (probes=paper) and B10's (probes=rank) share model, LR and seeds: B10 draws each
    seed from its rank run, though the paper run comes first and has as many steps."""
    other = [vgg_or_dln_row(m, 1e-6, 1, "paper") for m in ("dln", "dln_bn")]
    frames = [dln_records(r["run_id"], r["model"] == "dln_bn", 1, rank=False)[0] for r in other]
    both = Results(
        pd.concat([pd.DataFrame(other), res.runs], ignore_index=True),
        pd.concat([*frames, res.metrics], ignore_index=True),
        res.probes,
    )
    drawn = draw_figure("beyond_rank", both)
    assert set(drawn.runs) == set(res.runs.loc[res.runs["model"].isin(("dln", "dln_bn")), "run_id"])
    assert figures.describe(drawn, both)["seeds"] == [0, 1]


def test_beyond_figures_follow_the_paper_figures():
    """The studies' own figures, found through the registry, in study order after the paper's (a new study's
    figure is appended: B11's beyond_edge, B12's beyond_dln_setup)."""
    assert figures.figure_list()[: len(PAPER_FIGURES) + len(BEYOND_FIGURES)] == [*PAPER_FIGURES, *BEYOND_FIGURES]
    added = ["beyond_edge", "beyond_dln_setup"]
    assert figures.figure_list()[len(PAPER_FIGURES) + len(BEYOND_FIGURES) :] == added
    assert figures.figure_names(["beyond_rank"]) == ["beyond_rank"]


@pytest.mark.integration
@pytest.mark.parametrize(
    "name,models",
    [
        ("beyond_hessian", ("vgg16",)),
        ("beyond_regularisation", ("vgg16",)),
        ("beyond_gradients", ("vgg16_bn",)),
        ("beyond_inference", ("vgg16_bn",)),
        ("beyond_effective_lr", ("vgg16", "dln", "dln_bn")),
        ("beyond_rank", ("vgg16", "vgg16_bn", "dln")),
    ],
)
def test_missing_runs_raise(name, models):
    with pytest.raises(MissingRuns, match=f"experiment={name}"):
        figures.make_figure(name, make_results(models))


@pytest.mark.parametrize("name", ["beyond_init", "beyond_lr", "beyond_batch"])
def test_a_sweep_without_its_extra_points_raises(name):
    """Fig 1's point alone (init scale 1, LR 0.1, the preset's batch) does not make B3's, B4's or B5's figure:
    its sweep's runs are needed."""
    with pytest.raises(MissingRuns, match=f"experiment={name}"):
        figures.make_figure(name, make_results(sweeps=("vgg16",)))


@pytest.mark.parametrize("name", ["beyond_hessian", "beyond_gradients", "beyond_effective_lr", "beyond_rank"])
def test_runs_without_the_probe_records_raise(name):
    with pytest.raises(MissingRecords):
        figures.make_figure(name, make_results(probes=False))


def test_gap_panel_reads_the_smoothed_loss_at_each_evaluation(res):
    fig = figures.make_figure("beyond_regularisation", res)
    gap = fig.axes[1]
    assert gap.get_xscale() == "log"
    lines = [line for line in gap.get_lines() if len(line.get_xdata()) == len(EVALS) - 1]  # evaluations after 0
    assert len(lines) == 4  # one per seed and network
    x = np.asarray(lines[0].get_xdata(), dtype=float)
    loss = 2.3 * np.exp(-STEPS / 200) + 0.05  # the standard net, seed 0 (drawn first)
    want = pd.Series(loss, index=STEPS).rolling(50, min_periods=1).mean()
    np.testing.assert_allclose(x, [want.asof(s) for s in EVALS[1:]])


def test_a_network_whose_sweep_runs_are_all_still_training_is_left_out(res):
    """B4's figure while the standard net's runs are all running: drawn with BN's line only, no error."""
    runs = res.runs.copy()
    runs.loc[runs["model"] == "vgg16", "status"] = "running"
    fig = figures.make_figure("beyond_lr", Results(runs, res.metrics, res.probes))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("Batch Norm") for t in labels) and not any(t.startswith("Standard") for t in labels)


def test_sharpness_panel_draws_only_the_converged_points(res):
    """B1's panel (a): |top eigenvalue| at the points whose residual is below 0.1 (step 40 is left out), geometric
    mean over the 2 seeds (a log axis); BN also with running statistics. Panel (b): g^T H g / ||g||^2 with its
    sign, on a symlog axis."""
    fig = figures.make_figure("beyond_hessian", res)
    sharp, ghg = fig.axes
    lines = {ln.get_label(): ln for ln in sharp.get_lines() if len(ln.get_xdata())}
    std = lines["Standard, LR 0.1 (2 seeds, geometric mean)"]
    assert 40 not in list(std.get_xdata()) and len(std.get_xdata()) == len(PROBE_STEPS) - 1
    np.testing.assert_allclose(std.get_ydata(), np.sqrt(100.0 * 110.0))  # geometric mean of 100 and 110 (log axis)
    bn_eval = lines["Batch Norm, LR 0.1, running statistics (2 seeds, geometric mean)"]
    np.testing.assert_allclose(bn_eval.get_ydata(), np.sqrt(30.0 * 33.0))
    assert sharp.get_yscale() == "log" and ghg.get_yscale() == "symlog"
    assert min(y for ln in ghg.get_lines() for y in ln.get_ydata()) < 0  # negative curvature kept
