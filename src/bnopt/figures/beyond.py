"""Figures of the beyond-the-paper studies B1 and B3-B10 (issue 12; `bnopt.beyond` holds their checks).

B6-B9 read Fig 1's and Fig 2's runs (VGG16 at LR 0.1), B3 and B4 add init scales and LRs to Fig 1's,
B5 has its own batch-study runs, B1 its own `probes=hessian` VGG runs, B10 its own `probes=rank` DLN runs. Each
`build_beyond_*` returns a matplotlib Figure from a `Results` object (or raises `MissingRuns` /
`MissingRecords`); `catalog` names, saves and draws them. A curve is the mean over every seed of its run
with a min-max band and "(N seeds)" in the legend (`curves.probe_line`), as in the paper's figures; the
statistics drawn are those the checks judge (`beyond.gradient_spread`, `statistics_gap`, ...).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import FormatStrFormatter

from .. import experiments
from ..beyond import (
    CONV_LAYERS,
    CONVERGED,
    RANK_LAYER,
    batch_accuracies,
    batch_grid,
    converged_eigenvalues,
    gradient_spread,
    statistics_gap,
)
from ..readers import (
    WINDOW,
    Missing,
    eval_rows,
    layer_table,
    probe_series,
    smoothed_train,
)
from ..results import Requires, Results
from .common import STEP_LABEL, experiment_runs, figure_title
from .curves import seed_runs
from .panels import color, label, legend, new_figure, set_labels
from .study_panels import LINE_STYLES, eval_curves, final_points, layer_axis, line, seed_values, seeds_note, sweep_panel

# ------------------------------------------------------------------------------------------------- B1


def build_beyond_hessian(res: Results, scale=None):
    """B1: VGG16 vs VGG16+BN at LR 0.1: (a) the top Hessian eigenvalue's magnitude vs step, with batch
    statistics (train mode) and, for BN, running statistics (eval mode), at the converged points B1 counts;
    (b) the curvature along the step's gradient g^T H g / ||g||^2 (B2's descriptive part)."""
    name = "beyond_hessian"
    runs = experiment_runs(res, name, scale, probes=("hessian",))
    fig = new_figure(14, 5.2)
    ax_l, ax_g = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)

    def records(r):
        """A seed's converged |top eigenvalue| in train and eval mode (the points B1 counts) and its g^T H g."""
        rid = r["run_id"]
        try:
            running = converged_eigenvalues(res, rid, "_eval").dropna()
        except Missing:  # a run measured in train mode only
            running = pd.Series(dtype=float)
        ghg = probe_series(res, rid, "hessian", "ghg", 0).dropna()
        return {"batch": converged_eigenvalues(res, rid).dropna(), "running": running, "ghg": ghg}

    tables = seed_values(res, runs, ax_l, name, "hessian records (probe hessian)", records)
    for (model, lr), ts in tables.items():
        mode = ", batch statistics" if model != "vgg16" else ""
        line(ax_l, [t["batch"] for t in ts], color(model), label(model, lr, mode), marker="o", ms=3)
        if model != "vgg16":
            running = [t["running"] for t in ts]
            line(ax_l, running, color(model), label(model, lr, ", running statistics"), ls="--", marker="s", ms=3)
    ax_l.set_yscale("log", nonpositive="mask")
    seeds_note(ax_l, tables, [("-", "solid: train mode (batch statistics)"), ("--", "dashed: eval mode (running)")])
    set_labels(
        ax_l,
        f"(a) Sharpness: |top Hessian eigenvalue| (points with residual < {CONVERGED:g})",
        STEP_LABEL,
        "|λ_max| of the loss on the step's batch",
    )
    legend(ax_l, loc="best")

    drawn = []
    for (model, lr), ts in tables.items():
        ghg = [t["ghg"] for t in ts if len(t["ghg"])]
        line(ax_g, ghg, color(model), label(model, lr), transform=None, marker="o", ms=3)
        drawn += [v for g in ghg for v in g if np.isfinite(v)]
    if drawn and min(drawn) > 0:
        ax_g.set_yscale("log")
    else:  # the curvature along the gradient can be negative: linear near 0, logarithmic beyond
        ax_g.set_yscale("symlog", linthresh=max(1e-2 * float(np.median(np.abs(drawn))) if drawn else 1.0, 1e-12))
        ax_g.axhline(0, color="0.5", lw=0.8)
    seeds_note(ax_g, tables)
    set_labels(ax_g, "(b) Curvature along the step's gradient (Thm 4.2)", STEP_LABEL, "gᵀHg / ‖g‖²")
    legend(ax_g, loc="best")
    title = "B1 — Sharpness of the loss: VGG16 with and without BN, LR 0.1, batch vs running statistics"
    figure_title(fig, title, runs)
    return fig


# ------------------------------------------------------------------------------------------------- B6


def _gap_vs_loss(res: Results, rid: str) -> pd.DataFrame:
    """Per evaluation after step 0: the smoothed training loss at it and train-subset acc - test acc."""
    loss = smoothed_train(res, rid, "loss")
    e = eval_rows(res, rid).dropna(subset=["train_eval_acc", "test_acc"])
    e = e[e.index > 0]
    if not len(e) or not len(loss):
        return pd.DataFrame()
    return pd.DataFrame(
        {"loss": [float(loss.asof(s)) for s in e.index], "gap": (e["train_eval_acc"] - e["test_acc"]).to_numpy()},
        index=e.index,
    )


def build_beyond_regularisation(res: Results, scale=None):
    """B6: VGG16 vs VGG16+BN at LR 0.1: (a) train-subset and test accuracy vs step, (b) the train-test gap
    against the smoothed training loss at each evaluation, one line per seed."""
    name = "beyond_regularisation"
    runs = experiment_runs(res, name, scale)
    fig = new_figure(14, 5.2)
    ax_acc, ax_gap = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)

    def accs(r):
        e = eval_rows(res, r["run_id"])
        return e[["train_eval_acc", "test_acc"]].dropna(how="all") if {"train_eval_acc", "test_acc"} <= set(e) else None

    acc = seed_values(res, runs, ax_acc, name, "evaluation rows (train_eval_acc, test_acc)", accs)
    for (model, lr), tables in acc.items():
        for column, ls, what in (("train_eval_acc", "-", "train subset"), ("test_acc", "--", "test")):
            sub = [t[[column]].dropna().rename(columns={column: "value"}) for t in tables]
            line(ax_acc, sub, color(model), label(model, lr, f", {what}"), transform=None, ls=ls, marker="o", ms=3)
    seeds_note(ax_acc, acc, [("-", "solid: train subset (eval mode)"), ("--", "dashed: test set")])
    set_labels(ax_acc, "(a) Accuracy at each evaluation", STEP_LABEL, "accuracy (eval mode)")
    ax_acc.set_ylim(-0.02, 1.02)
    legend(ax_acc, loc="upper left")

    gaps = seed_values(
        res, runs, ax_gap, name, "evaluations after step 0 with training loss", lambda r: _gap_vs_loss(res, r["run_id"])
    )
    for (model, lr), tables in gaps.items():
        for i, t in enumerate(tables):
            t = t[np.isfinite(t["loss"]) & (t["loss"] > 0)]
            n = f" ({len(tables)} seeds)" if len(tables) > 1 else ""
            lbl = label(model, lr, n) if i == 0 else None
            ax_gap.plot(t["loss"], t["gap"], color=color(model), marker="o", ms=3, lw=1.1, alpha=0.85, label=lbl)
    ax_gap.axhline(0, color="0.5", lw=0.8)
    ax_gap.set_xscale("log")
    ax_gap.invert_xaxis()
    set_labels(
        ax_gap,
        "(b) Train-test gap at matched training loss (one line per seed)",
        f"smoothed training loss (rolling {WINDOW} steps; log, reversed: training proceeds →)",
        "train-subset acc. − test acc.",
    )
    legend(ax_gap, loc="upper left")
    figure_title(fig, "B6 — Does BN regularise? Train-test gap of VGG16 with and without BN, LR 0.1", runs)
    return fig


# --------------------------------------------------------------------------------------------- B3, B4


def build_beyond_init(res: Results, scale=None):
    """B3: VGG16 vs VGG16+BN at LR 0.1 with the Glorot weights times model.init_scale: (a) final accuracy vs
    the init scale, (b) accuracy vs step for every (network, init scale)."""
    name = "beyond_init"
    inits = experiments.init_scales(name)
    runs = {g: experiment_runs(res, name, scale, init_scale=g) for g in inits}
    fig = new_figure(14, 5.2)
    ax_a, ax_b = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    points: dict = {}
    for g, by_pair in runs.items():
        for (model, _), run in by_pair.items():
            points.setdefault(model, {})[g] = final_points(res, run, ax_a)
    sweep_panel(ax_a, points, "init scale (Glorot weights × model.init_scale; log)", "(a) Final accuracy")
    curves = [
        (run, LINE_STYLES[i % len(LINE_STYLES)], label(model, note=f", init ×{g:g}"))
        for i, (g, by_pair) in enumerate(runs.items())
        for (model, _), run in by_pair.items()
    ]
    eval_curves(res, curves, ax_b)
    drawn = {(model, lr, g): run for g, by_pair in runs.items() for (model, lr), run in by_pair.items()}
    figure_title(fig, "B3 — Initialisation scale: VGG16 with and without BN, LR 0.1", drawn)
    return fig


def build_beyond_lr(res: Results, scale=None):
    """B4: VGG16 vs VGG16+BN over an LR grid: (a) final accuracy vs LR, (b) accuracy vs step at every LR."""
    name = "beyond_lr"
    runs = experiment_runs(res, name, scale)
    fig = new_figure(14, 5.2)
    ax_a, ax_b = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    points: dict = {}
    for (model, lr), run in runs.items():
        points.setdefault(model, {})[lr] = final_points(res, run, ax_a)
    sweep_panel(ax_a, points, "learning rate (log)", "(a) Final accuracy (a diverged run drawn at chance)")
    lrs = sorted({lr for _, lr in runs})
    curves = [
        (run, LINE_STYLES[lrs.index(lr) % len(LINE_STYLES)], label(model, lr)) for (model, lr), run in runs.items()
    ]
    eval_curves(res, curves, ax_b)
    figure_title(fig, "B4 — Largest usable learning rate: VGG16 with and without BN", runs)
    return fig


# ------------------------------------------------------------------------------------------------- B5


def build_beyond_batch(res: Results, scale=None):
    """B5: VGG16 vs VGG16+BN at batch 8, 32, 128 (same images seen, LR linear in the batch): (a) final test
    accuracy vs batch, (b) each net's final accuracy with batch statistics (train mode) and with running
    statistics (eval mode) vs batch."""
    name = "beyond_batch"
    fig = new_figure(14, 5.2)
    ax_a, ax_b = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    drawn, tests, stats = {}, {}, {}
    for model, points in batch_grid().items():
        for lr, batch in points:
            batch_run = Requires(batch_size=batch)
            run = res.select([(model, lr)], scale, batch_run, figure=name, experiment=name)[(model, lr)]
            drawn[(model, lr, batch)] = run
            accs = []
            for r in seed_runs(res, run, ax_a):
                try:
                    accs.append(batch_accuracies(res, r["run_id"]))
                except Missing:
                    continue
            tests.setdefault(model, {})[batch] = [a["test"] for a in accs]
            for side in ("batch", "running"):
                stats.setdefault((model, side), {})[batch] = [a[side] for a in accs]
    sweep_panel(ax_a, tests, "batch size (LR = 0.1 × batch / 128; log)", "(a) Final test accuracy", trains_line=False)
    ax_a.set_ylabel("final test accuracy (eval mode)")
    for (model, side), by_b in stats.items():
        xs = sorted(b for b, v in by_b.items() if v)
        ls, what = (
            ("-", "batch statistics (train mode)") if side == "batch" else ("--", "running statistics (eval mode)")
        )
        ax_b.plot(
            xs,
            [np.mean(by_b[b]) for b in xs],
            color=color(model),
            ls=ls,
            marker="o",
            lw=1.3,
            label=f"{label(model)}, {what}",
        )
    ax_b.set_xscale("log")
    ax_b.set_xticks(sorted({b for v in stats.values() for b in v}))
    ax_b.get_xaxis().set_major_formatter(FormatStrFormatter("%g"))
    ax_b.set_ylim(0, 1.02)
    set_labels(
        ax_b,
        "(b) Training accuracy: batch statistics (last 50 steps' batches) vs running (train subset)",
        "batch size (log)",
        "final training accuracy",
    )
    legend(ax_b, loc="best")
    figure_title(fig, "B5 — Small batches: VGG16 with and without BN, the same images seen at every batch", drawn)
    return fig


# ------------------------------------------------------------------------------------------------- B7


def build_beyond_gradients(res: Results, scale=None):
    """B7: VGG16 vs VGG16+BN at LR 0.1: per-layer gradient norms at step 0 and (median) over training, and
    their spread log10(max/min over layers) vs step."""
    name = "beyond_gradients"
    runs = experiment_runs(res, name, scale, probes=("gradnorms",))
    fig = new_figure(16, 5)
    ax0, ax1, ax2 = (fig.add_subplot(1, 3, i) for i in (1, 2, 3))

    def norms(r):
        return layer_table(res, r["run_id"], "gradnorms", "grad_norm", CONV_LAYERS)

    tables = seed_values(res, runs, ax0, name, "per-layer gradient norms (probe gradnorms)", norms)
    at0 = {k: [t.loc[0] for t in ts if 0 in t.index] for k, ts in tables.items()}
    later = {
        k: [t.drop(index=0, errors="ignore").median() for t in ts if len(t.drop(index=0, errors="ignore"))]
        for k, ts in tables.items()
    }
    for ax, values, title in (
        (ax0, at0, "(a) At initialisation (step 0)"),
        (ax1, later, "(b) Median over the measured steps after 0"),
    ):
        for (model, lr), v in values.items():
            line(ax, v, color(model), label(model, lr), marker="o", ms=3.5, lw=1.3)
        ax.set_yscale("log", nonpositive="mask")
        layer_axis(ax, CONV_LAYERS)
        seeds_note(ax, values)
        set_labels(ax, title, "conv layer #k (input → output)", "‖∇W_k L‖ (Frobenius)")
        legend(ax, loc="best")

    spread = seed_values(
        res, runs, ax2, name, "gradient norms of all 13 conv layers", lambda r: gradient_spread(res, r["run_id"])
    )
    for (model, lr), v in spread.items():
        line(ax2, v, color(model), label(model, lr), transform=None, lw=1.2)
    seeds_note(ax2, spread)
    set_labels(ax2, "(c) Spread of the layers' gradient norms", STEP_LABEL, "log10(max_k / min_k ‖∇W_k L‖), k = 1..13")
    legend(ax2, loc="best")
    figure_title(fig, "B7 — Does BN cure vanishing / exploding gradients? VGG16 with and without BN, LR 0.1", runs)
    return fig


# ------------------------------------------------------------------------------------------------- B8


def build_beyond_inference(res: Results, scale=None):
    """B8: VGG16+BN and noisy BN at LR 0.1: accuracy with batch statistics (train mode) and with running
    statistics (eval mode) on the training data, vs step."""
    name = "beyond_inference"
    runs = experiment_runs(res, name, scale)
    fig = new_figure(9, 5.5)
    ax = fig.add_subplot(1, 1, 1)
    gaps = seed_values(res, runs, ax, name, "evaluations after step 0", lambda r: statistics_gap(res, r["run_id"]))
    for (model, lr), tables in gaps.items():
        for column, ls, what in (("acc_batch", "-", "batch stats"), ("acc_running", "--", "running stats")):
            sub = [t[[column]].rename(columns={column: "value"}) for t in tables]
            line(ax, sub, color(model), label(model, lr, f", {what}"), transform=None, ls=ls, marker="o", ms=3)
    extra = [
        ("-", f"solid: batch statistics (train-mode batch acc., rolling {WINDOW} steps)"),
        ("--", "dashed: running statistics (eval-mode acc., training subset)"),
    ]
    seeds_note(ax, gaps, extra)
    set_labels(ax, "Accuracy on training data, batch vs running statistics", STEP_LABEL, "training accuracy")
    ax.set_ylim(-0.02, 1.02)
    legend(ax, loc="lower right")
    figure_title(fig, "B8 — Batch vs running statistics: BN and noisy BN VGG16, LR 0.1", runs)
    return fig


# ------------------------------------------------------------------------------------------------- B9


def build_beyond_effective_lr(res: Results, scale=None):
    """B9: VGG16 vs VGG16+BN at LR 0.1: (a) conv weight-norm growth ||W_k||_t / ||W_k||_0 (median over layers)
    vs step, (b) the effective learning rate lr / ||W_k||^2 per layer at the last measured step (and step 0)."""
    name = "beyond_effective_lr"
    runs = experiment_runs(res, name, scale, probes=("gradnorms",))
    fig = new_figure(14, 5.2)
    ax_g, ax_e = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)

    def norms(r):
        t = layer_table(res, r["run_id"], "gradnorms", "weight_norm", CONV_LAYERS)
        return t if 0 in t.index and len(t) > 1 else None

    tables = seed_values(res, runs, ax_g, name, "weight norms at step 0 and later (probe gradnorms)", norms)
    for (model, lr), ts in tables.items():
        growth = [(t / t.loc[0]).median(axis=1) for t in ts]
        line(ax_g, growth, color(model), label(model, lr), lw=1.3)
    ax_g.axhline(1, color="0.5", lw=0.8)
    seeds_note(ax_g, tables)
    set_labels(ax_g, "(a) Weight-norm growth, median over conv layers #1..#13", STEP_LABEL, "‖W_k‖_t / ‖W_k‖_0")
    legend(ax_g, loc="best")

    for (model, lr), ts in tables.items():
        last = [float(lr) / t.ffill().iloc[-1] ** 2 for t in ts]
        first = [float(lr) / t.loc[0] ** 2 for t in ts]
        line(ax_e, last, color(model), label(model, lr, ", last measured step"), marker="o", ms=3.5, lw=1.3)
        line(ax_e, first, color(model), label(model, lr, ", step 0"), ls=":", marker=".", ms=3, lw=1)
    ax_e.set_yscale("log", nonpositive="mask")
    layer_axis(ax_e, CONV_LAYERS)
    seeds_note(ax_e, tables, [("-", "solid: last measured step"), (":", "dotted: step 0")])
    set_labels(ax_e, "(b) Effective learning rate per layer", "conv layer #k (input → output)", "lr / ‖W_k‖²")
    legend(ax_e, loc="best")
    figure_title(
        fig, "B9 — Weight growth and the effective learning rate lr/‖W‖²: VGG16 with and without BN, LR 0.1", runs
    )
    return fig


# ------------------------------------------------------------------------------------------------ B10


def build_beyond_rank(res: Results, scale=None):
    """B10: DLN vs DLN+BN at LR 1e-6: (a) stable rank of every layer's representation at step 0 and at the
    last measured step, (b) the stable rank of layer #24 vs step."""
    name = "beyond_rank"
    runs = experiment_runs(res, name, scale, probes=("rank",))
    fig = new_figure(14, 5.2)
    ax_l, ax_t = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)

    def ranks(r):
        t = layer_table(res, r["run_id"], "rank", "stable_rank")
        return t if 0 in t.index else None

    tables = seed_values(res, runs, ax_l, name, "stable ranks at step 0 (probe rank)", ranks)
    layers = sorted({k for ts in tables.values() for t in ts for k in t.columns})
    for (model, lr), ts in tables.items():
        line(ax_l, [t.loc[0] for t in ts], color(model), label(model, lr, ", step 0"), ls="--", marker=".", ms=3, lw=1)
        last = [t.ffill().iloc[-1] for t in ts if len(t) > 1]
        if last:
            line(ax_l, last, color(model), label(model, lr, ", last measured step"), marker="o", ms=3.5, lw=1.3)
    layer_axis(ax_l, layers)
    ax_l.set_ylim(bottom=0)
    seeds_note(ax_l, tables, [("--", "dashed: step 0"), ("-", "solid: last measured step")])
    set_labels(
        ax_l,
        "(a) Stable rank of each layer's representation",
        "layer #k (input → output)",
        "stable rank ‖H‖_F² / ‖H‖_2²",
    )
    legend(ax_l, loc="best")

    lines = {k: [t[RANK_LAYER].dropna() for t in ts if RANK_LAYER in t] for k, ts in tables.items()}
    for (model, lr), v in lines.items():
        line(ax_t, v, color(model), label(model, lr), marker="o", ms=3, lw=1.2)
    ax_t.set_ylim(bottom=0)
    seeds_note(ax_t, lines)
    set_labels(ax_t, f"(b) Stable rank of layer #{RANK_LAYER} (last hidden layer)", STEP_LABEL, "stable rank")
    legend(ax_t, loc="best")
    figure_title(fig, "B10 — Rank collapse in the 25-layer deep linear network, with and without BN, LR 1e-6", runs)
    return fig


__all__ = [
    "build_beyond_hessian",
    "build_beyond_batch",
    "build_beyond_init",
    "build_beyond_lr",
    "build_beyond_regularisation",
    "build_beyond_gradients",
    "build_beyond_inference",
    "build_beyond_effective_lr",
    "build_beyond_rank",
]
