"""The loss landscape along the gradient: Fig 4 (VGG16), 10 (DLN), 11 (gradient change vs step size),
12 and 13 (l_p normalisations).

`landscape_panels` (loss range, gradient predictiveness, effective beta-smoothness) is also used by
`explore.plot_landscape`. The composite `fig11` (both halves in one file) is assembled by `catalog`.

Seeds: the range panels draw every seed of a network (`curves.seed_runs`), one band each (its range over
the probe's step sizes), the bands of one network together as opaque as one band; the beta panel draws the
centre over seeds (the geometric mean on the DLN's log axis, the mean on VGG16's linear one) with a min-max
band. Fig 12 and 13 draw their range panels as small multiples, one panel per network on shared axes: five
networks' overlapping bands in one panel cannot be told apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes

from ..readers import DLN_LR, VGG_LR, landscape_by_eta, probe_table
from .common import STEP_LABEL, experiment_runs, figure_title, from_wandb
from .curves import acc_panel, loss_panel, probe_line, seed_runs
from .panels import band, color, diverged_note, label, legend, new_figure, record_runs, set_labels, step_colorbar
from .selection import MissingRecords, scale_of, titled

RANGE_ALPHA = 0.3  # the opacity of one network's range bands where all its seeds' bands overlap
# (title, y label) of the three panels; {eta} is the probe's range of step sizes
PANEL_TEXT = {
    "loss": ("Loss landscape", "loss L(w − ηg), range over {eta}"),
    "grad_diff": ("Gradient predictiveness", "‖∇L(w − ηg) − g‖₂, range over {eta}"),
    "beta": ("Effective β-smoothness", "max over {eta} of ‖∇L(w − ηg) − g‖ / ‖ηg‖"),
}
RANGE_COLUMNS = {"loss": ("loss_min", "loss_max"), "grad_diff": ("grad_diff_min", "grad_diff_max")}


def _eta_range(res, run_id) -> str:
    t = landscape_by_eta(res, run_id, "loss")
    if not len(t.columns):
        return "η in the probe's set"
    etas = np.asarray(t.columns, dtype=float)
    return f"η ∈ [{etas.min():g}, {etas.max():g}]"


def seed_tables(res, run) -> list[tuple[dict, object]]:
    """[(runs row, landscape table)] of every seed of `run`'s curve (`curves.seed_runs`) with landscape
    records, in seed order; MissingRecords when `run` itself has none."""
    own = probe_table(res, run["run_id"], "landscape")
    if not len(own):
        raise MissingRecords("landscape", f"run {run['run_id']} has no landscape records")
    out = []
    for r in seed_runs(res, run):
        t = own if str(r["run_id"]) == str(run["run_id"]) else probe_table(res, r["run_id"], "landscape")
        if len(t):
            out.append((r, t))
    return out


def _drawn(ax, seeds: list) -> list:
    """The seeds' tables, the seeds noted on `ax`'s figure (the figure manifest)."""
    record_runs(ax, [r for r, _ in seeds])
    return [t for _, t in seeds]


def range_note(n: int) -> str:
    """What a network's range bands are, for its label: "(N seeds, a band each)" with several seeds."""
    return f" ({n} seeds, a band each)" if n > 1 else ""


def seed_ranges(ax, tables: list, what: str, col: str, lbl: str | None, log: bool, z: float = 2) -> None:
    """One network's range of `what` (loss or grad_diff) over the step sizes: one band per seed's table, the
    bands together RANGE_ALPHA opaque where all overlap, their edges thin; `lbl` on one legend entry."""
    lo_col, hi_col = RANGE_COLUMNS[what]
    n = len(tables)
    alpha = 1 - (1 - RANGE_ALPHA) ** (1 / n) if n > 1 else 0.25
    for t in tables:
        band(ax, t.index, t[lo_col], t[hi_col], col, None, log=log, alpha=alpha, zorder=z)
        if n > 1:  # band's two edge lines: thinner and lighter with several seeds
            for edge in ax.get_lines()[-2:]:
                edge.set(linewidth=0.5, alpha=0.6)
    if lbl is not None:  # one legend entry for the seeds' bands
        ax.fill_between([], [], [], color=col, alpha=RANGE_ALPHA if n > 1 else 0.25, lw=0, label=lbl)


def _range_overlay(ax, runs: dict, seeds: dict, what: str, log: bool, eta: str) -> None:
    for i, (key, run) in enumerate(runs.items()):
        tables = _drawn(ax, seeds[key])
        lbl = label(run["model"], run["lr"], diverged_note(run) + range_note(len(tables)))
        seed_ranges(ax, tables, what, color(run["model"]), lbl, log, z=3 + len(runs) - i)
    title, ylabel = PANEL_TEXT[what]
    set_labels(ax, title, STEP_LABEL, ylabel.format(eta=eta))
    legend(ax)


def _range_multiples(axes: Sequence[Axes], runs: dict, seeds: dict, what: str, log: bool, eta: str) -> None:
    """One panel per network (the caller shares their axes): its seeds' range bands, titled by network."""
    if len(axes) != len(runs):
        raise ValueError(f"{len(axes)} axes for {len(runs)} networks' {what} ranges")
    for j, (ax, (key, run)) in enumerate(zip(axes, runs.items(), strict=True)):
        tables = _drawn(ax, seeds[key])
        seed_ranges(ax, tables, what, color(run["model"]), None, log)
        text = label(run["model"], run["lr"], diverged_note(run) + range_note(len(tables)))
        set_labels(ax, None, STEP_LABEL, PANEL_TEXT[what][1].format(eta=eta) if j == 0 else None)
        ax.set_title(text, fontsize=9, color=color(run["model"]))


def landscape_panels(axes, res, runs: dict, family: str, panels=("loss", "grad_diff", "beta")) -> None:
    """Loss range (a), gradient predictiveness range (b), effective beta (c) along the step's gradient.

    Each of `axes` is one Axes (every network in it) or, for a range panel, a sequence of Axes, one per
    network (small multiples, in the order of `runs`). Every seed of a network is drawn (module docstring)."""
    log_all = family == "dln"
    eta = _eta_range(res, next(iter(runs.values()))["run_id"])
    seeds = {key: seed_tables(res, run) for key, run in runs.items()}  # read once for every panel
    for target, what in zip(axes, panels, strict=True):
        if what in RANGE_COLUMNS:
            log = log_all or what == "grad_diff"
            if isinstance(target, Axes):
                _range_overlay(target, runs, seeds, what, log, eta)
            else:
                _range_multiples(target, runs, seeds, what, log, eta)
            continue
        ax = target
        center = "geometric" if log_all else "mean"  # the centre a log axis shows halfway
        positive = lambda y: np.where(np.isfinite(y) & (y > 0), y, np.nan)
        for i, (key, run) in enumerate(runs.items()):
            probe_line(
                ax,
                _drawn(ax, seeds[key]),
                "beta",
                color(run["model"]),
                label(run["model"], run["lr"], diverged_note(run)),
                z=3 + len(runs) - i,
                transform=positive,
                center=center,
                marker="o",
                ms=3,
                lw=1.2,
            )
        title, ylabel = PANEL_TEXT["beta"]
        set_labels(ax, title, STEP_LABEL, ylabel.format(eta=eta))
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
    figure_title(fig, title, titled(runs, scale))
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
        titled(runs, scale),
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
    """(a) training accuracy / loss and (d) beta on top; (b) the loss range and (c) the gradient
    predictiveness range below, each a row of small multiples, one panel per network on shared axes."""
    runs = experiment_runs(res, experiment, scale, probes=("landscape",), figure=name)
    n = len(runs)
    fig = new_figure(max(13, 3.4 * n), 14)
    top, *rows = fig.subfigures(3, 1, height_ratios=[1.25, 1, 1])
    ax_a, ax_d = top.add_subplot(1, 2, 1), top.add_subplot(1, 2, 2)
    if family == "vgg":
        acc_panel(ax_a, res, runs, [lr], "(a) Training accuracy")
    else:
        loss_panel(ax_a, res, runs, [lr], "(a) Training loss")
    multiples = []
    for row in rows:
        axes = [row.add_subplot(1, n, 1)]
        axes += [row.add_subplot(1, n, j + 1, sharex=axes[0], sharey=axes[0]) for j in range(1, n)]
        multiples.append(axes)
    landscape_panels([*multiples, ax_d], res, runs, family)
    ax_d.set_title(f"(d) {ax_d.get_title()}", fontsize=10)
    for row, letter, what in zip(rows, "bc", ("loss", "grad_diff"), strict=True):
        row.suptitle(f"({letter}) {PANEL_TEXT[what][0]}: one panel per network, one band per seed", fontsize=10)
    figure_title(fig, title, titled(runs, scale))
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
