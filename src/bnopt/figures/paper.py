"""The paper's figures (PAPER.md, Figures), one function each, drawn from a `Results` object only.

    from bnopt.results import load_runs
    from bnopt import figures
    res = load_runs("results")
    figures.fig4(res, "results/figures")        # -> [results/figures/fig4.png, results/figures/fig4.pdf]
    fig = figures.make_figure("fig4", res)      # the matplotlib Figure, e.g. for a notebook
    figures.draw_all("results", "results/figures")   # every figure it can; {name: paths or message}

Fig 3, 5 and 11 have an (a) VGG and a (b) DLN half, from different experiments' runs: `fig3` draws both
into fig3.png (and needs both halves' runs); the halves alone are fig3_vgg / fig3_dln (also fig3a / fig3b),
fig5_vgg / fig5_dln and fig11_vgg / fig11_dln.
A figure whose runs are missing raises `MissingRuns` (never an empty plot) with the command that trains
them. Nothing here trains anything.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import SubFigure

from ..results import Results, load_runs
from .panels import (
    LR_STYLES,
    band,
    color,
    diverged_note,
    footer,
    label,
    legend,
    new_figure,
    ridge,
    save,
    set_labels,
    smooth_window,
    smoothed,
    step_colorbar,
)
from .selection import (
    MissingRecords,
    MissingRuns,
    eval_rows,
    landscape_by_eta,
    layer_histogram,
    lr_text,
    probe_table,
    select_runs,
    train_rows,
)

VGG_LR, DLN_LR = 0.1, 1e-6
VGG_STD = ["vgg16", "vgg16_bn"]
DLN_STD = ["dln", "dln_bn"]
VGG_NOISE = ["vgg16", "vgg16_bn", "vgg16_noisy_bn"]
VGG_LP = ["vgg16", "vgg16_bn", "vgg16_l1", "vgg16_l2", "vgg16_linf"]
DLN_LP = ["dln", "dln_bn", "dln_l1", "dln_l2", "dln_linf"]
DEFAULT_OUT = Path("results") / "figures"
STEP_LABEL = "training step (SGD updates)"


def _from_wandb(res: Results) -> bool:
    return getattr(res, "source", "local") == "wandb"


def _title(fig, text: str, runs: dict) -> None:
    if isinstance(fig, SubFigure):  # half of a composite figure: "(a) ...", the composite adds the footer
        fig.suptitle(re.sub(r"^Fig\. \d+([ab]) — ", r"(\1) ", text), fontsize=11)
        fig.bnopt_runs = runs
        return
    rows = list(runs.values())
    steps = sorted({int(r["steps"]) for r in rows if r.get("steps") == r.get("steps")})
    scales = sorted({str(r.get("scale", "?")) for r in rows})
    sub = f"scale {'/'.join(scales)}, {'/'.join(str(s) for s in steps)} steps"
    fig.suptitle(f"{text}\n({sub})", fontsize=11)
    footer(fig, runs)


# ------------------------------------------------------------------------------------ curve panels


def _acc_panel(ax, res, runs: dict, lrs: list[float], title: str = "Training accuracy") -> None:
    """Per-step batch accuracy (moving average) as lines, eval-mode accuracy on a training subset as dots."""
    window, dots = 1, False
    for i, ((model, lr), run) in enumerate(runs.items()):
        tr = train_rows(res, run["run_id"])
        style = _style(lr, lrs)
        lbl, z = label(model, lr, diverged_note(run)), 3 + len(runs) - i
        if "acc" in tr and tr["acc"].notna().any():
            w = smooth_window(len(tr))
            window = max(window, w)
            ax.plot(tr["step"], smoothed(tr["acc"], w), color=color(model), ls=style, lw=1.3, label=lbl, zorder=z)
            lbl = None
        ev = eval_rows(res, run["run_id"])
        if "train_eval_acc" in ev and ev["train_eval_acc"].notna().any():
            dots = True
            ax.plot(
                ev["step"],
                ev["train_eval_acc"],
                color=color(model),
                ls="none",
                marker="o",
                ms=3.5,
                mfc="white" if style != "-" else color(model),
                label=lbl,
                zorder=z,
            )
    avg = f"moving avg. over {window} steps" if window > 1 else "per step"
    ax.plot([], [], color="0.5", lw=1.3, label=f"line: batch accuracy, {avg}")
    if dots:
        ax.plot([], [], color="0.5", ls="none", marker="o", ms=3.5, label="dots: eval-mode acc., training subset")
    set_labels(ax, title, STEP_LABEL, "training accuracy")
    ax.set_ylim(-0.02, 1.02)
    legend(ax, loc="best")


def _style(lr, lrs) -> str:
    for i, x in enumerate(lrs):
        if same(lr, x):
            return LR_STYLES[i % len(LR_STYLES)]
    return "-"


def _test_acc_panel(ax, res, runs: dict, lrs: list[float]) -> None:
    for i, ((model, lr), run) in enumerate(runs.items()):
        ev = eval_rows(res, run["run_id"])
        if "test_acc" not in ev:
            continue
        ax.plot(
            ev["step"],
            ev["test_acc"],
            color=color(model),
            ls=_style(lr, lrs),
            marker="o",
            ms=3,
            lw=1.3,
            label=label(model, lr, diverged_note(run)),
            zorder=3 + len(runs) - i,
        )
    set_labels(ax, "Test accuracy", STEP_LABEL, "test accuracy (eval mode)")
    ax.set_ylim(-0.02, 1.02)
    legend(ax, loc="upper left")


def _loss_panel(ax, res, runs: dict, lrs: list[float], title: str = "Training loss") -> None:
    """DLN: the full-batch training loss at every step (log scale)."""
    for i, ((model, lr), run) in enumerate(runs.items()):
        tr = train_rows(res, run["run_id"])
        y = np.where(np.isfinite(tr["loss"]) & (tr["loss"] > 0), tr["loss"], np.nan)
        ax.plot(
            tr["step"],
            y,
            color=color(model),
            ls=_style(lr, lrs),
            lw=1.3,
            label=label(model, lr, diverged_note(run)),
            zorder=3 + len(runs) - i,
        )
    ax.set_yscale("log", nonpositive="mask")
    set_labels(ax, title, STEP_LABEL, "training loss (squared error, full batch)")
    legend(ax)


# ------------------------------------------------------------------------------------ landscape panels


def _eta_range(res, run_id) -> str:
    t = landscape_by_eta(res, run_id, "loss")
    if not len(t.columns):
        return "η in the probe's set"
    etas = np.asarray(t.columns, dtype=float)
    return f"η ∈ [{etas.min():g}, {etas.max():g}]"


def _landscape_panels(axes, res, runs: dict, family: str, panels=("loss", "grad_diff", "beta")) -> None:
    """Loss range (a), gradient predictiveness range (b), effective beta (c) along the step's gradient."""
    log_all = family == "dln"
    eta = _eta_range(res, next(iter(runs.values()))["run_id"])
    for ax, what in zip(axes, panels, strict=True):
        for i, run in enumerate(runs.values()):
            model, lr, z = run["model"], run["lr"], 3 + len(runs) - i
            t = probe_table(res, run["run_id"], "landscape")
            if not len(t):
                raise MissingRecords("landscape", f"run {run['run_id']} has no landscape records")
            lbl = label(model, lr, diverged_note(run))
            if what == "loss":
                band(ax, t.index, t["loss_min"], t["loss_max"], color(model), lbl, log=log_all, zorder=z)
            elif what == "grad_diff":
                band(ax, t.index, t["grad_diff_min"], t["grad_diff_max"], color(model), lbl, log=True, zorder=z)
            elif what == "beta":
                y = t["beta"].to_numpy(dtype=float)
                ax.plot(
                    t.index,
                    np.where(np.isfinite(y) & (y > 0), y, np.nan),
                    color=color(model),
                    marker="o",
                    ms=3,
                    lw=1.2,
                    label=lbl,
                    zorder=z,
                )
        if what == "loss":
            set_labels(ax, "Loss landscape", STEP_LABEL, f"loss L(w − ηg), range over {eta}")
        elif what == "grad_diff":
            set_labels(ax, "Gradient predictiveness", STEP_LABEL, f"‖∇L(w − ηg) − g‖₂, range over {eta}")
        elif what == "beta":
            set_labels(ax, "Effective β-smoothness", STEP_LABEL, f"max over {eta} of ‖∇L(w − ηg) − g‖ / ‖ηg‖")
            if log_all:
                ax.set_yscale("log", nonpositive="mask")
            else:
                ax.set_ylim(bottom=0)
        legend(ax)


# -------------------------------------------------------------------------------------------- figures


def _fig1(res: Results, scale=None):
    lrs = [VGG_LR, 0.5]
    pairs = [(m, lr) for lr in lrs for m in VGG_STD]
    runs = select_runs(res, "fig1", "fig1", pairs, scale=scale)
    hist = not _from_wandb(res)
    layers = (3, 11)
    hists = (
        {(m, k): layer_histogram(res, runs[(m, VGG_LR)]["run_id"], k, "fig1", "fig1") for k in layers for m in VGG_STD}
        if hist
        else {}
    )
    fig = new_figure(14, 9 if hist else 4.8)
    gs = fig.add_gridspec(2 if hist else 1, 4, height_ratios=[1, 1.3] if hist else None)
    _acc_panel(fig.add_subplot(gs[0, 0:2]), res, runs, lrs, "(a) Training accuracy")
    _test_acc_panel(fig.add_subplot(gs[0, 2:4]), res, runs, lrs)
    fig.axes[-1].set_title("(b) Test accuracy", fontsize=10)
    if hist:
        for j, (k, m) in enumerate([(k, m) for k in layers for m in VGG_STD]):
            ax = fig.add_subplot(gs[1, j])
            ridge(ax, hists[(m, k)], color(m))
            set_labels(
                ax,
                f"(c) layer #{k}, {label(m, VGG_LR)}",
                "activation (after norm, before ReLU)",
                "training step" if j == 0 else None,
            )
    else:
        fig.text(
            0.5,
            0.0,
            "(c) histograms omitted: W&B does not mirror activations.npz",
            ha="center",
            fontsize=8,
            color="0.3",
        )
    _title(fig, "Fig. 1 — VGG16 with and without BatchNorm on CIFAR-10", runs)
    return fig


def _fig2(res: Results, scale=None):
    pairs = [(m, VGG_LR) for m in VGG_NOISE]
    runs = select_runs(res, "fig2", "fig2", pairs, scale=scale)
    layers = (2, 9, 13)
    hist = not _from_wandb(res)
    hists = (
        {
            (m, k): layer_histogram(res, runs[(m, VGG_LR)]["run_id"], k, "fig2", "fig2")
            for k in layers
            for m in VGG_NOISE
        }
        if hist
        else {}
    )
    fig = new_figure(15 if hist else 7, 10 if hist else 4.8)
    gs = fig.add_gridspec(3 if hist else 1, 4 if hist else 1, width_ratios=[1.5, 1, 1, 1] if hist else None)
    _acc_panel(fig.add_subplot(gs[:, 0] if hist else gs[0, 0]), res, runs, [VGG_LR], "Training accuracy")
    for r, k in enumerate(layers if hist else ()):
        for c, m in enumerate(VGG_NOISE):
            ax = fig.add_subplot(gs[r, c + 1])
            ridge(ax, hists[(m, k)], color(m))
            set_labels(
                ax,
                f"{label(m)}, layer #{k}",
                "activation (after norm [+ noise], before ReLU)" if r == len(layers) - 1 else None,
                "training step" if c == 0 else None,
            )
    _title(
        fig,
        f"Fig. 2 — Standard, BatchNorm and noisy BatchNorm VGG16 at LR {VGG_LR:g}"
        + ("" if hist else " (histograms omitted: not in W&B)"),
        runs,
    )
    return fig


def _ics_figure(res, name, experiment, models, lrs, layers, family, scale, fig=None):
    pairs = [(m, lr) for lr in lrs for m in models]
    runs = select_runs(res, name, experiment, pairs, probes=("ics",), scale=scale)
    fig = fig or new_figure(15, 10)
    gs = fig.add_gridspec(3, 2 * len(lrs))
    for i, lr in enumerate(lrs):
        sub = {k: v for k, v in runs.items() if same(k[1], lr)}
        ax = fig.add_subplot(gs[0, 2 * i : 2 * i + 2])
        if family == "vgg":
            _acc_panel(ax, res, sub, [lr], f"Training accuracy, LR {lr_text(lr)}")
        else:
            _loss_panel(ax, res, sub, [lr], f"Training loss, LR {lr_text(lr)}")
        for j, k in enumerate(layers):
            ax_l2 = fig.add_subplot(gs[1, 2 * i + j])
            ax_cos = fig.add_subplot(gs[2, 2 * i + j], sharex=ax_l2)
            for (model, _), run in sub.items():
                t = probe_table(res, run["run_id"], "ics", k)
                if not len(t):
                    raise MissingRecords(
                        name,
                        f"run {run['run_id']} has no ICS records of layer #{k} (train with probes=paper)",
                        experiment,
                    )
                lbl = label(model, lr)
                ax_l2.plot(t.index, t["l2"], color=color(model), marker="o", ms=3, lw=1.2, label=lbl)
                ax_cos.plot(t.index, t["cos"], color=color(model), marker="o", ms=3, lw=1.2, label=lbl)
            if family == "dln":
                ax_l2.set_yscale("log", nonpositive="mask")
            set_labels(ax_l2, f"Layer #{k}, LR {lr_text(lr)}", None, "ICS: ‖G − G′‖₂ (ideal 0)")
            set_labels(ax_cos, None, STEP_LABEL, "ICS: cos(G, G′) (ideal 1)")
            ax_cos.set_ylim(min(-0.05, float(np.nanmin(ax_cos.get_ylim()))), 1.05)
            legend(ax_l2)
    what = "VGG16 on CIFAR-10" if family == "vgg" else "25-layer deep linear network"
    _title(
        fig,
        f"Fig. 3{'a' if family == 'vgg' else 'b'} — Internal covariate shift (Definition 2.1), "
        f"{what}: G = layer gradient before, G′ after the update of the preceding layers",
        runs,
    )
    return fig


def same(a, b) -> bool:
    return abs(float(a) - float(b)) <= 1e-6 * max(abs(float(a)), abs(float(b)))


def _fig3_vgg(res, scale=None, fig=None):
    return _ics_figure(res, "fig3_vgg", "fig3_ics_vgg", VGG_STD, [VGG_LR, 0.01], (5, 10), "vgg", scale, fig)


def _fig3_dln(res, scale=None, fig=None):
    return _ics_figure(res, "fig3_dln", "fig3_ics_dln", DLN_STD, [DLN_LR, 1e-7], (9, 17), "dln", scale, fig)


def _landscape_figure(res, name, experiment, models, lr, family, title, scale):
    runs = select_runs(res, name, experiment, [(m, lr) for m in models], probes=("landscape",), scale=scale)
    fig = new_figure(16, 4.8)
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    _landscape_panels(axes, res, runs, family)
    for ax, letter in zip(axes, "abc", strict=True):
        ax.set_title(f"({letter}) {ax.get_title()}", fontsize=10)
    _title(fig, title, runs)
    return fig


def _fig4(res, scale=None):
    return _landscape_figure(
        res,
        "fig4",
        "fig4",
        VGG_STD,
        VGG_LR,
        "vgg",
        f"Fig. 4 — VGG16 landscape along the gradient at LR {VGG_LR:g}",
        scale,
    )


def _fig10(res, scale=None):
    return _landscape_figure(
        res,
        "fig10",
        "fig10",
        DLN_STD,
        DLN_LR,
        "dln",
        f"Fig. 10 — Deep linear network landscape along the gradient at LR {DLN_LR:g}",
        scale,
    )


def _fig5_vgg(res, scale=None, fig=None):
    runs = select_runs(res, "fig5_vgg", "fig5_lp_vgg", [(m, VGG_LR) for m in VGG_LP], scale=scale)
    fig = fig or new_figure(8, 5)
    _acc_panel(fig.add_subplot(1, 1, 1), res, runs, [VGG_LR], "VGG16: training accuracy")
    _title(fig, "Fig. 5a — ℓp normalisations vs BatchNorm, VGG16 on CIFAR-10", runs)
    return fig


def _fig5_dln(res, scale=None, fig=None):
    runs = select_runs(res, "fig5_dln", "fig5_lp_dln", [(m, DLN_LR) for m in DLN_LP], scale=scale)
    fig = fig or new_figure(8, 5)
    _loss_panel(fig.add_subplot(1, 1, 1), res, runs, [DLN_LR], "Deep linear network: training loss")
    _title(fig, "Fig. 5b — ℓp normalisations vs BatchNorm, deep linear network", runs)
    return fig


def _fig6(res, scale=None):
    runs = select_runs(res, "fig6", "fig6", [(m, VGG_LR) for m in VGG_LP], probes=("activations",), scale=scale)
    hists = {m: layer_histogram(res, runs[(m, VGG_LR)]["run_id"], 11, "fig6", "fig6") for m in VGG_LP}
    fig = new_figure(17, 5.5)
    for j, m in enumerate(VGG_LP):
        ax = fig.add_subplot(1, len(VGG_LP), j + 1)
        ridge(ax, hists[m], color(m))
        set_labels(ax, label(m, VGG_LR), "activation (after norm, before ReLU)", "training step" if j == 0 else None)
    _title(fig, "Fig. 6 — Activation histograms of VGG16 layer #11 under each normalisation", runs)
    return fig


def _fig8(res, scale=None):
    runs = select_runs(res, "fig8", "fig8", [(m, VGG_LR) for m in VGG_NOISE], probes=("activations",), scale=scale)
    layers = (2, 9, 13)
    hists = {
        (m, k): layer_histogram(res, runs[(m, VGG_LR)]["run_id"], k, "fig8", "fig8") for k in layers for m in VGG_NOISE
    }
    quantities = [
        ("|μ(t+1) − μ(t)|", lambda h: (h.steps[1:], np.abs(np.diff(h.unit_mean, axis=0)).mean(1)), "consecutive"),
        ("|σ²(t+1) − σ²(t)|", lambda h: (h.steps[1:], np.abs(np.diff(h.unit_var, axis=0)).mean(1)), "consecutive"),
        ("|μ(t) − μ(0)|", lambda h: (h.steps, np.abs(h.unit_mean - h.unit_mean[:1]).mean(1)), "drift"),
        ("|σ²(t) − σ²(0)|", lambda h: (h.steps, np.abs(h.unit_var - h.unit_var[:1]).mean(1)), "drift"),
    ]
    fig = new_figure(17, 10)
    gs = fig.add_gridspec(len(layers), len(quantities))
    for r, k in enumerate(layers):
        for c, (name, fn, kind) in enumerate(quantities):
            ax = fig.add_subplot(gs[r, c])
            for m in VGG_NOISE:
                x, y = fn(hists[(m, k)])
                ax.plot(x, y, color=color(m), marker="o", ms=2.5, lw=1.2, label=label(m, VGG_LR))
            note = "between consecutive measurements" if kind == "consecutive" else "since the first measurement"
            set_labels(
                ax,
                f"Layer #{k}: {name}",
                STEP_LABEL if r == len(layers) - 1 else None,
                f"mean over units of {name}\n({note})",
            )
            ax.set_ylim(bottom=0)
            if r == 0 and c == 0:
                legend(ax)
    _title(
        fig,
        "Fig. 8 — Drift of per-unit activation moments (after norm [+ noise], before ReLU), "
        "μ/σ² per channel over the batch",
        runs,
    )
    return fig


def _fig9(res, scale=None):
    runs = select_runs(res, "fig9", "fig9", [(m, DLN_LR) for m in DLN_STD], probes=("activations",), scale=scale)
    layers = (1, 11, 24)
    hists = {
        (m, k): layer_histogram(res, runs[(m, DLN_LR)]["run_id"], k, "fig9", "fig9") for k in layers for m in DLN_STD
    }
    fig = new_figure(10, 11)
    gs = fig.add_gridspec(len(layers), len(DLN_STD))
    for r, k in enumerate(layers):
        for c, m in enumerate(DLN_STD):
            ax = fig.add_subplot(gs[r, c])
            ridge(ax, hists[(m, k)], color(m))
            set_labels(
                ax,
                f"{label(m, DLN_LR)}, layer #{k}",
                "activation (after norm)" if r == len(layers) - 1 else None,
                "training step" if c == 0 else None,
            )
    _title(fig, "Fig. 9 — Activation histograms of the deep linear network, layers #1, #11, #24", runs)
    return fig


def _gradient_change_figure(res, name, experiment, models, lr, family, scale, fig=None):
    if _from_wandb(res):
        raise MissingRecords(
            name,
            "the per-η landscape rows are not mirrored to W&B (only their min/max); "
            "draw this figure from local records",
        )
    runs = select_runs(res, name, experiment, [(m, lr) for m in models], probes=("landscape",), scale=scale)
    tables = {k: landscape_by_eta(res, r["run_id"], "grad_diff") for k, r in runs.items()}
    for k, t in tables.items():
        if not len(t):
            raise MissingRecords(name, f"run {runs[k]['run_id']} has no per-η landscape rows", experiment)
    steps = np.concatenate([t.index.to_numpy() for t in tables.values()])
    fig = fig or new_figure(13, 5)
    axes = []
    for j in range(len(tables)):
        axes.append(fig.add_subplot(1, len(tables), j + 1, sharey=axes[0] if axes else None))
    step_color = step_colorbar(fig, axes, steps)
    for ax, ((model, lr_), t) in zip(axes, tables.items(), strict=True):
        etas = np.asarray(t.columns, dtype=float)
        for step, row in t.iterrows():
            y = row.to_numpy(dtype=float)
            ax.plot(
                etas, np.where(np.isfinite(y) & (y > 0), y, np.nan), color=step_color(step), marker="o", ms=2.5, lw=1.0
            )
        ax.set_xscale("log")
        if family == "vgg" and len(etas) <= 10:  # label the measured step sizes themselves
            ax.set_xticks(etas, [f"{e:g}" for e in etas], fontsize=8)
            ax.minorticks_off()
        ax.set_yscale("log", nonpositive="mask")
        set_labels(ax, label(model, lr_), "step size η", "‖∇L(w − ηg) − g‖₂" if ax is axes[0] else None)
    letter = "a" if family == "vgg" else "b"
    what = "VGG16" if family == "vgg" else "deep linear network"
    _title(
        fig,
        f"Fig. 11{letter} — {what}: gradient change along the gradient vs step size, one curve per measured step",
        runs,
    )
    return fig


def _fig11_vgg(res, scale=None, fig=None):
    return _gradient_change_figure(res, "fig11_vgg", "fig11", VGG_STD, VGG_LR, "vgg", scale, fig)


def _fig11_dln(res, scale=None, fig=None):
    return _gradient_change_figure(res, "fig11_dln", "fig10", DLN_STD, DLN_LR, "dln", scale, fig)


# A composite: the paper's two-part figure, (a) VGG and (b) DLN, in one file; both halves' runs needed.
COMPOSITES = {
    "fig3": ("Fig. 3 — Internal covariate shift (Definition 2.1)", ("fig3_vgg", "fig3_dln"), "rows", (15, 19)),
    "fig5": ("Fig. 5 — ℓp normalisations vs BatchNorm", ("fig5_vgg", "fig5_dln"), "cols", (16, 5.8)),
    "fig11": (
        "Fig. 11 — Gradient change ‖∇L(w − ηg) − g‖ vs step size η, one curve per measured step",
        ("fig11_vgg", "fig11_dln"),
        "rows",
        (13, 10),
    ),
}


def _composite(name: str, res, scale=None):
    title, halves, layout, size = COMPOSITES[name]
    fig = new_figure(*size)
    subs = fig.subfigures(2, 1) if layout == "rows" else fig.subfigures(1, 2)
    missing: list[MissingRuns] = []
    for half, sub in zip(halves, subs, strict=True):
        try:
            HALVES[half](res, scale, sub)
        except MissingRuns as e:
            missing.append(e)
    if missing:
        commands = [e.command for e in missing if e.command]
        raise (MissingRuns if any(type(e) is MissingRuns for e in missing) else MissingRecords)(
            name,
            "; ".join(f"{e.figure}: {e.detail}" for e in missing),
            command=" ; ".join(dict.fromkeys(commands)) or None,
        )
    runs = {}
    for sub in subs:
        runs.update({(k, sub): v for k, v in sub.bnopt_runs.items()})
    _title(fig, title, runs)
    return fig


def _lp_landscape_figure(res, name, experiment, models, lr, family, title, scale):
    runs = select_runs(res, name, experiment, [(m, lr) for m in models], probes=("landscape",), scale=scale)
    fig = new_figure(13, 9.5)
    axes = [fig.add_subplot(2, 2, i + 1) for i in range(4)]
    if family == "vgg":
        _acc_panel(axes[0], res, runs, [lr], "(a) Training accuracy")
    else:
        _loss_panel(axes[0], res, runs, [lr], "(a) Training loss")
    _landscape_panels(axes[1:], res, runs, family)
    for ax, letter in zip(axes[1:], "bcd", strict=True):
        ax.set_title(f"({letter}) {ax.get_title()}", fontsize=10)
    _title(fig, title, runs)
    return fig


def _fig12(res, scale=None):
    return _lp_landscape_figure(
        res, "fig12", "fig12", VGG_LP, VGG_LR, "vgg", f"Fig. 12 — VGG16 with ℓp normalisations at LR {VGG_LR:g}", scale
    )


def _fig13(res, scale=None):
    return _lp_landscape_figure(
        res,
        "fig13",
        "fig13",
        DLN_LP,
        DLN_LR,
        "dln",
        f"Fig. 13 — Deep linear network with ℓp normalisations at LR {DLN_LR:g}",
        scale,
    )


# -------------------------------------------------------------------------------------------- registry

HALVES: dict[str, Callable] = {
    "fig3_vgg": _fig3_vgg,
    "fig3_dln": _fig3_dln,
    "fig5_vgg": _fig5_vgg,
    "fig5_dln": _fig5_dln,
    "fig11_vgg": _fig11_vgg,
    "fig11_dln": _fig11_dln,
}
BUILDERS: dict[str, Callable] = {
    "fig1": _fig1,
    "fig2": _fig2,
    "fig3": lambda res, scale=None: _composite("fig3", res, scale),
    "fig4": _fig4,
    "fig5": lambda res, scale=None: _composite("fig5", res, scale),
    "fig6": _fig6,
    "fig8": _fig8,
    "fig9": _fig9,
    "fig10": _fig10,
    "fig11": lambda res, scale=None: _composite("fig11", res, scale),
    "fig12": _fig12,
    "fig13": _fig13,
    **HALVES,
}
# what draw_all draws by default: the paper's figures, one file each (the halves are drawn on request)
FIGURES = ("fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "fig8", "fig9", "fig10", "fig11", "fig12", "fig13")
# the experiment config(s) (configs/experiment/<name>.yaml) whose runs each figure draws
EXPERIMENTS = {
    "fig1": ("fig1",),
    "fig2": ("fig2",),
    "fig3": ("fig3_ics_vgg", "fig3_ics_dln"),
    "fig4": ("fig4",),
    "fig5": ("fig5_lp_vgg", "fig5_lp_dln"),
    "fig6": ("fig6",),
    "fig8": ("fig8",),
    "fig9": ("fig9",),
    "fig10": ("fig10",),
    "fig11": ("fig11", "fig10"),
    "fig12": ("fig12",),
    "fig13": ("fig13",),
    "fig3_vgg": ("fig3_ics_vgg",),
    "fig3_dln": ("fig3_ics_dln",),
    "fig5_vgg": ("fig5_lp_vgg",),
    "fig5_dln": ("fig5_lp_dln",),
    "fig11_vgg": ("fig11",),
    "fig11_dln": ("fig10",),
}
ALIASES = {
    "fig3a": "fig3_vgg",
    "fig3b": "fig3_dln",
    "fig5a": "fig5_vgg",
    "fig5b": "fig5_dln",
    "fig11a": "fig11_vgg",
    "fig11b": "fig11_dln",
    "fig3_ics_vgg": "fig3_vgg",
    "fig3_ics_dln": "fig3_dln",
    "fig5_lp_vgg": "fig5_vgg",
    "fig5_lp_dln": "fig5_dln",
}


def figure_names(figs=None) -> list[str]:
    """Figure names to draw (None = FIGURES); aliases such as fig3a -> fig3_vgg resolved; ValueError if unknown."""
    if not figs:
        return list(FIGURES)
    out: list[str] = []
    for name in figs:
        name = ALIASES.get(name, name)
        if name not in BUILDERS:
            raise ValueError(f"unknown figure {name!r}; choose from {', '.join([*BUILDERS, *ALIASES])}")
        if name not in out:
            out.append(name)
    return out


def make_figure(name: str, results: Results, scale: str | None = None):
    """The matplotlib Figure of one figure (for notebooks); raises MissingRuns when runs are missing."""
    (name,) = figure_names([name])
    return BUILDERS[name](results, scale)


def draw(name: str, results: Results, out_dir: str | Path = DEFAULT_OUT, scale: str | None = None) -> list[Path]:
    """Draw one figure to out_dir/<name>.png and .pdf; returns the two paths."""
    (name,) = figure_names([name])
    return save(make_figure(name, results, scale), out_dir, name)


def _drawer(name: str, doc: str):
    def fn(results: Results, out_dir: str | Path = DEFAULT_OUT, scale: str | None = None) -> list[Path]:
        return draw(name, results, out_dir, scale)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{doc}\n\nWrites out_dir/{name}.png and .pdf; raises MissingRuns when runs are missing."
    return fn


fig1 = _drawer("fig1", "Fig 1: VGG16 vs VGG16+BN at LR 0.1 and 0.5: train/test accuracy, histograms #3, #11.")
fig2 = _drawer("fig2", "Fig 2: standard, BN, noisy BN at LR 0.1: train accuracy, histograms #2, #9, #13.")
fig3_vgg = _drawer("fig3_vgg", "Fig 3a: VGG16 ICS at LR 0.1 and 0.01, layers #5, #10.")
fig3_dln = _drawer("fig3_dln", "Fig 3b: DLN ICS at LR 1e-6 and 1e-7, layers #9, #17.")
fig4 = _drawer("fig4", "Fig 4: VGG16 loss range, gradient predictiveness, effective beta at LR 0.1.")
fig5_vgg = _drawer("fig5_vgg", "Fig 5a: VGG16 train accuracy, standard, BN, l1, l2, l_inf at LR 0.1.")
fig5_dln = _drawer("fig5_dln", "Fig 5b: DLN train loss, standard, BN, l1, l2, l_inf at LR 1e-6.")
fig6 = _drawer("fig6", "Fig 6: histograms of VGG16 layer #11, standard, BN, l1, l2, l_inf.")
fig8 = _drawer("fig8", "Fig 8: moment drift of VGG16 layers #2, #9, #13, standard, BN, noisy BN.")
fig9 = _drawer("fig9", "Fig 9: DLN histograms of layers #1, #11, #24, standard vs BN.")
fig10 = _drawer("fig10", "Fig 10: DLN loss range, gradient predictiveness, effective beta at LR 1e-6.")
fig11_vgg = _drawer("fig11_vgg", "Fig 11a: VGG16 ||grad L(w - eta g) - g|| vs eta, one curve per step.")
fig11_dln = _drawer("fig11_dln", "Fig 11b: DLN ||grad L(w - eta g) - g|| vs eta, one curve per step.")
fig12 = _drawer("fig12", "Fig 12: VGG16 l_p variants: accuracy, loss range, predictiveness, beta.")
fig13 = _drawer("fig13", "Fig 13: DLN l_p variants: loss, loss range, predictiveness, beta.")
fig3 = _drawer("fig3", "Fig 3: ICS, (a) VGG16 (fig3_vgg) and (b) DLN (fig3_dln) in one figure.")
fig5 = _drawer("fig5", "Fig 5: l_p normalisations, (a) VGG16 accuracy (fig5_vgg) and (b) DLN loss (fig5_dln).")
fig11 = _drawer("fig11", "Fig 11: gradient change vs eta, (a) VGG16 (fig11_vgg) and (b) DLN (fig11_dln).")


def draw_all(
    results_root: str | Path | Results = "results",
    out_dir: str | Path | None = None,
    figs=None,
    scale: str | None = None,
) -> dict[str, list[Path] | str]:
    """Every figure it can draw. Returns {name: [png, pdf]} for drawn figures and {name: message} for the
    others: "missing: ... ; produce them with: bnopt-train -m experiment=..." or "failed: ..." (a bug)."""
    names = figure_names(figs)
    if isinstance(results_root, Results):
        results = results_root
        out = Path(out_dir) if out_dir is not None else DEFAULT_OUT
    else:
        results = load_runs(results_root)
        out = Path(out_dir) if out_dir is not None else Path(results_root) / "figures"
    report: dict[str, list[Path] | str] = {}
    for name in names:
        try:
            report[name] = save(make_figure(name, results, scale), out, name)
        except MissingRuns as e:
            report[name] = f"missing: {e.detail}" + (f"; produce them with: {e.command}" if e.command else "")
        except Exception as e:  # one broken figure must not stop the others
            tb = traceback.extract_tb(e.__traceback__)[-1]
            report[name] = f"failed: {type(e).__name__}: {e} ({Path(tb.filename).name}:{tb.lineno})"
    return report
