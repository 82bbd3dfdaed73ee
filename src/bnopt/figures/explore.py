"""Plots of one run (or a few) for notebooks: any run id, any recorded layer; same colours as the paper figures.

res = load_runs("results")
plot_run_curves(res, run_id)              # loss, accuracy (VGG), test accuracy / eval loss
plot_run_histogram(res, run_id, 11)       # stacked histograms + quantile bands of layer #11
plot_landscape(res, [run_a, run_b])       # loss range, predictiveness, beta; gradient change vs eta
plot_ics(res, [run_a, run_b], layer=5)    # ||G - G'|| and cos(G, G')
"""

from __future__ import annotations

import numpy as np

from ..readers import WINDOW, eval_rows, landscape_by_eta, probe_table, train_rows
from ..results import Results
from .common import STEP_LABEL
from .landscape import landscape_panels
from .panels import band, color, label, legend, new_figure, ridge, set_labels, smoothed, step_colorbar
from .selection import layer_histogram


def _row(results: Results, run_id: str):
    runs = results.runs
    match = runs[runs["run_id"] == run_id]
    if not len(match):
        raise KeyError(f"run {run_id!r} not in the results ({len(runs)} runs; e.g. {', '.join(runs['run_id'][:3])})")
    return match.iloc[0]


def _ids(run_ids) -> list[str]:
    return [run_ids] if isinstance(run_ids, str) else list(run_ids)


def plot_run_curves(results: Results, run_id: str):
    """Training loss (log), batch accuracy (VGG) and the evaluation points of one run."""
    run = _row(results, run_id)
    tr, ev = train_rows(results, run_id), eval_rows(results, run_id)
    vgg = "acc" in tr and tr["acc"].notna().any()
    fig = new_figure(13 if vgg else 9, 4.2)
    axes = [fig.add_subplot(1, 2 if vgg else 1, i + 1) for i in range(2 if vgg else 1)]
    c, lbl = color(run["model"]), label(run["model"], run["lr"])
    w = WINDOW  # the claims' and the paper figures' window
    ax = axes[0]
    ax.plot(
        tr.index,
        np.where(tr["loss"] > 0, tr["loss"], np.nan),
        color=c,
        lw=0.6,
        alpha=0.4,
        label="batch loss" if vgg else "full-batch loss",
    )
    if vgg and w > 1:
        ax.plot(tr.index, smoothed(tr["loss"], w), color=c, lw=1.4, label=f"moving avg. ({w} steps)")
    _plot_eval_points(ax, ev, ("test_loss", "train_eval_loss"), "none", c)
    ax.set_yscale("log", nonpositive="mask")
    set_labels(ax, f"{lbl}: loss", STEP_LABEL, "loss")
    legend(ax)
    if vgg:
        ax = axes[1]
        ax.plot(tr.index, smoothed(tr["acc"], w), color=c, lw=1.4, label=f"batch acc (moving avg. {w})")
        _plot_eval_points(ax, ev, ("test_acc", "train_eval_acc"), "--", c)
        ax.set_ylim(-0.02, 1.02)
        set_labels(ax, f"{lbl}: accuracy", STEP_LABEL, "accuracy")
        legend(ax)
    fig.suptitle(
        f"{run_id} ({run.get('status', '?')}, {run.get('steps_done', '?')}/{run.get('steps', '?')} steps)", fontsize=10
    )
    return fig


def plot_run_histogram(results: Results, run_id: str, layer: int, max_curves: int = 12):
    """Stacked per-step histograms of one layer and its activation quantiles over training."""
    run = _row(results, run_id)
    h = layer_histogram(results, run_id, layer)
    fig = new_figure(11, 4.8)
    ax = fig.add_subplot(1, 2, 1)
    ridge(ax, h, color(run["model"]), max_curves=max_curves)
    set_labels(ax, f"layer #{layer}: histograms", "activation (after norm, before non-linearity)", "training step")
    ax = fig.add_subplot(1, 2, 2)
    q = probe_table(results, run_id, "activations", layer)
    c = color(run["model"])
    if len(q):
        band(ax, q.index, q["q01"], q["q99"], c, "1–99%", alpha=0.12)
        band(ax, q.index, q["q05"], q["q95"], c, "5–95%", alpha=0.2)
        band(ax, q.index, q["q25"], q["q75"], c, "25–75%", alpha=0.35)
        ax.plot(q.index, q["q50"], color=c, lw=1.5, label="median")
        ax.plot(q.index, q["mean"], color="0.2", lw=1, ls="--", label="mean")
    set_labels(ax, f"layer #{layer}: quantiles", STEP_LABEL, "activation")
    legend(ax)
    fig.suptitle(f"{run_id}: {label(run['model'], run['lr'])}", fontsize=10)
    return fig


def plot_landscape(results: Results, run_ids):
    """Loss range, gradient predictiveness, effective beta (as Fig 4) and gradient change vs eta (Fig 11)."""
    ids = _ids(run_ids)
    rows = [_row(results, r) for r in ids]
    family = rows[0].get("family", "vgg")
    fig = new_figure(16, 8.5)
    gs = fig.add_gridspec(2, max(3, len(ids)))
    landscape_panels([fig.add_subplot(gs[0, i]) for i in range(3)], results, dict(zip(ids, rows, strict=True)), family)
    axes = [fig.add_subplot(gs[1, i]) for i in range(len(ids))]
    tables = [landscape_by_eta(results, r, "grad_diff") for r in ids]
    steps = np.concatenate([t.index.to_numpy() for t in tables if len(t)] or [np.zeros(1)])
    step_color = step_colorbar(fig, axes, steps)
    for ax, t, r in zip(axes, tables, rows, strict=True):
        for step, row in t.iterrows():
            y = row.to_numpy(dtype=float)
            ax.plot(
                np.asarray(t.columns, dtype=float),
                np.where(y > 0, y, np.nan),
                color=step_color(step),
                lw=1,
                marker="o",
                ms=2,
            )
        ax.set_xscale("log")
        ax.set_yscale("log", nonpositive="mask")
        set_labels(ax, label(r["model"], r["lr"]), "step size η", "‖∇L(w − ηg) − g‖₂")
    return fig


def plot_ics(results: Results, run_ids, layer: int | None = None):
    """ICS of the given runs: ||G - G'|| and cos(G, G') per measured layer (or one layer)."""
    ids = _ids(run_ids)
    p = results.probes
    layers = sorted(p.loc[(p["probe"] == "ics") & p["run_id"].isin(ids), "layer"].unique()) if len(p) else []
    if layer is not None:
        layers = [layer]
    if not layers:
        raise LookupError(f"no ICS records for runs {ids}")
    fig = new_figure(5 * len(layers) + 1, 6.5)
    gs = fig.add_gridspec(2, len(layers))
    for j, k in enumerate(layers):
        a, b = fig.add_subplot(gs[0, j]), fig.add_subplot(gs[1, j])
        for r in ids:
            run = _row(results, r)
            t = probe_table(results, r, "ics", k)
            if not len(t):
                continue
            lbl = label(run["model"], run["lr"])
            a.plot(t.index, t["l2"], color=color(run["model"]), marker="o", ms=3, label=lbl)
            b.plot(t.index, t["cos"], color=color(run["model"]), marker="o", ms=3, label=lbl)
        a.set_yscale("log", nonpositive="mask")
        set_labels(a, f"layer #{k}", None, "‖G − G′‖₂")
        set_labels(b, None, STEP_LABEL, "cos(G, G′)")
        legend(a)
    return fig


def _plot_eval_points(ax, ev, cols: tuple[str, str], ls: str, color) -> None:
    """The eval rows of a (test, train-subset) column pair: test in grey squares, train in the run's colour."""
    for col, marker in zip(cols, ("s", "o"), strict=True):
        if col in ev and ev[col].notna().any():
            ax.plot(
                ev.index,
                ev[col],
                ls=ls,
                marker=marker,
                ms=4,
                color="0.3" if col == cols[0] else color,
                label=f"eval: {col}",
            )
