"""The loss landscape along the gradient: Fig 4 (VGG16), 10 (DLN), 11 (gradient change vs step size),
12 and 13 (l_p normalisations).

`landscape_panels` (loss range, gradient predictiveness, effective beta-smoothness) is also used by
`explore.plot_landscape`. The composite `fig11` (both halves in one file) is assembled by `catalog`.
"""

from __future__ import annotations

import numpy as np

from ..readers import DLN_LR, VGG_LR, landscape_by_eta, probe_table
from .common import STEP_LABEL, experiment_runs, figure_title, from_wandb
from .curves import acc_panel, loss_panel, probe_line, seed_runs
from .panels import band, color, diverged_note, label, legend, new_figure, set_labels, step_colorbar
from .selection import MissingRecords, scale_of


def _eta_range(res, run_id) -> str:
    t = landscape_by_eta(res, run_id, "loss")
    if not len(t.columns):
        return "η in the probe's set"
    etas = np.asarray(t.columns, dtype=float)
    return f"η ∈ [{etas.min():g}, {etas.max():g}]"


def landscape_panels(axes, res, runs: dict, family: str, panels=("loss", "grad_diff", "beta")) -> None:
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
            if what != "beta" and len(seed_runs(res, run)) > 1:  # a range band per run: the selected seed's
                lbl += f" (seed {int(run['seed'])})"
            if what == "loss":
                band(ax, t.index, t["loss_min"], t["loss_max"], color(model), lbl, log=log_all, zorder=z)
            elif what == "grad_diff":
                band(ax, t.index, t["grad_diff_min"], t["grad_diff_max"], color(model), lbl, log=True, zorder=z)
            elif what == "beta":  # a line: the mean over seeds with a min-max band when there are several
                tables = [probe_table(res, r["run_id"], "landscape") for r in seed_runs(res, run, ax)] or [t]
                positive = lambda y: np.where(np.isfinite(y) & (y > 0), y, np.nan)
                probe_line(ax, tables, "beta", color(model), lbl, z=z, transform=positive, marker="o", ms=3, lw=1.2)
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


# ------------------------------------------------------------------------- Fig 4, 10: the three panels


def _landscape_figure(res, name, experiment, family, title, scale):
    runs = experiment_runs(res, experiment, scale, probes=("landscape",), figure=name)
    fig = new_figure(16, 4.8)
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    landscape_panels(axes, res, runs, family)
    for ax, letter in zip(axes, "abc", strict=True):
        ax.set_title(f"({letter}) {ax.get_title()}", fontsize=10)
    figure_title(fig, title, runs)
    return fig


def build_fig4(res, scale=None):
    """VGG16 loss range, gradient predictiveness, effective beta at LR 0.1."""
    return _landscape_figure(
        res,
        "fig4",
        "fig4",
        "vgg",
        f"Fig. 4 — VGG16 landscape along the gradient at LR {VGG_LR:g}",
        scale,
    )


def build_fig10(res, scale=None):
    """DLN loss range, gradient predictiveness, effective beta at LR 1e-6."""
    return _landscape_figure(
        res,
        "fig10",
        "fig10",
        "dln",
        f"Fig. 10 — Deep linear network landscape along the gradient at LR {DLN_LR:g}",
        scale,
    )


# -------------------------------------------------------------- Fig 11: gradient change vs step size


def _gradient_change_figure(res, name, experiment, family, scale, fig=None):
    if from_wandb(res):
        raise MissingRecords(
            name,
            "the per-η landscape rows are not mirrored to W&B (only their min/max); "
            "draw this figure from local records",
        )
    runs = experiment_runs(res, experiment, scale, probes=("landscape",), figure=name)
    tables = {k: landscape_by_eta(res, r["run_id"], "grad_diff") for k, r in runs.items()}
    for k, t in tables.items():
        if not len(t):
            why = f"run {runs[k]['run_id']} has no per-η landscape rows"
            raise MissingRecords(name, why, experiment, scale_of(runs[k]))
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
    figure_title(
        fig,
        f"Fig. 11{letter} — {what}: gradient change along the gradient vs step size, one curve per measured step",
        runs,
    )
    return fig


def build_fig11_vgg(res, scale=None, fig=None):
    """Fig 11a: VGG16 ||grad L(w - eta g) - g|| vs eta, one curve per step (fig: a SubFigure of Fig 11)."""
    return _gradient_change_figure(res, "fig11_vgg", "fig11_vgg", "vgg", scale, fig)


def build_fig11_dln(res, scale=None, fig=None):
    """Fig 11b: DLN ||grad L(w - eta g) - g|| vs eta, one curve per step (fig: a SubFigure of Fig 11)."""
    return _gradient_change_figure(res, "fig11_dln", "fig11_dln", "dln", scale, fig)


# ------------------------------------------------------------------- Fig 12, 13: l_p normalisations


def _lp_landscape_figure(res, name, experiment, lr, family, title, scale):
    runs = experiment_runs(res, experiment, scale, probes=("landscape",), figure=name)
    fig = new_figure(13, 9.5)
    axes = [fig.add_subplot(2, 2, i + 1) for i in range(4)]
    if family == "vgg":
        acc_panel(axes[0], res, runs, [lr], "(a) Training accuracy")
    else:
        loss_panel(axes[0], res, runs, [lr], "(a) Training loss")
    landscape_panels(axes[1:], res, runs, family)
    for ax, letter in zip(axes[1:], "bcd", strict=True):
        ax.set_title(f"({letter}) {ax.get_title()}", fontsize=10)
    figure_title(fig, title, runs)
    return fig


def build_fig12(res, scale=None):
    """VGG16 l_p variants: accuracy, loss range, predictiveness, beta at LR 0.1."""
    return _lp_landscape_figure(
        res, "fig12", "fig12", VGG_LR, "vgg", f"Fig. 12 — VGG16 with ℓp normalisations at LR {VGG_LR:g}", scale
    )


def build_fig13(res, scale=None):
    """DLN l_p variants: loss, loss range, predictiveness, beta at LR 1e-6."""
    return _lp_landscape_figure(
        res,
        "fig13",
        "fig13",
        DLN_LR,
        "dln",
        f"Fig. 13 — Deep linear network with ℓp normalisations at LR {DLN_LR:g}",
        scale,
    )
