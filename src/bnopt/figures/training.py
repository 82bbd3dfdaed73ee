"""Training curves and activation histograms of VGG16: Fig 1, 2, 5 (with the DLN's half) and 6.

Each `build_*` returns a matplotlib Figure from a `Results` object (or raises `MissingRuns`); `catalog`
names, saves and draws them.
"""

from __future__ import annotations

from ..readers import DLN_LR, VGG_LR
from ..results import Results
from .common import experiment_runs, figure_title, from_wandb, lrs_of, models_of
from .curves import acc_panel, eval_acc_panel, loss_panel
from .drift import activation_site
from .panels import color, label, new_figure, ridge, set_labels
from .selection import histograms, titled


def build_fig1(res: Results, scale=None):
    """VGG16 vs VGG16+BN at LR 0.1 and 0.5: train/test accuracy, histograms of layers #3, #11."""
    hist = not from_wandb(res)
    # its histograms read activations.npz: a run holding them, not an ad-hoc probes=none run of the same
    # numbers (the same training, and a lower seed would win otherwise)
    runs = experiment_runs(res, "fig1", scale, probes=("activations",) if hist else ())
    lrs, models = lrs_of(runs), models_of(runs)
    layers = (3, 11)
    hists = histograms(res, runs, VGG_LR, layers, "fig1", "fig1") if hist else {}
    fig = new_figure(14, 9 if hist else 4.8)
    gs = fig.add_gridspec(2 if hist else 1, 4, height_ratios=[1, 1.3] if hist else None)
    acc_panel(fig.add_subplot(gs[0, 0:2]), res, runs, lrs, "(a) Training accuracy")
    eval_acc_panel(fig.add_subplot(gs[0, 2:4]), res, runs, lrs)
    fig.axes[-1].set_title("(b) Test accuracy", fontsize=10)
    if hist:
        for j, (k, m) in enumerate([(k, m) for k in layers for m in models]):
            ax = fig.add_subplot(gs[1, j])
            ridge(ax, hists[(m, k)], color(m))
            set_labels(
                ax,
                f"(c) layer #{k}, {label(m, VGG_LR)}",
                activation_site(m, "vgg"),
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
    figure_title(fig, "Fig. 1 — VGG16 with and without BatchNorm on CIFAR-10", titled(runs, scale))
    return fig


def build_fig2(res: Results, scale=None):
    """Standard, BN and noisy BN VGG16 at LR 0.1: train accuracy, histograms of layers #2, #9, #13."""
    hist = not from_wandb(res)
    runs = experiment_runs(res, "fig2", scale, probes=("activations",) if hist else ())  # as Fig 1: histograms
    models = models_of(runs)
    layers = (2, 9, 13)
    hists = histograms(res, runs, VGG_LR, layers, "fig2", "fig2") if hist else {}
    fig = new_figure(15 if hist else 7, 10 if hist else 4.8)
    gs = fig.add_gridspec(3 if hist else 1, 4 if hist else 1, width_ratios=[1.5, 1, 1, 1] if hist else None)
    acc_panel(fig.add_subplot(gs[:, 0] if hist else gs[0, 0]), res, runs, [VGG_LR], "Training accuracy")
    for r, k in enumerate(layers if hist else ()):
        for c, m in enumerate(models):
            ax = fig.add_subplot(gs[r, c + 1])
            ridge(ax, hists[(m, k)], color(m))
            set_labels(
                ax,
                f"{label(m)}, layer #{k}",
                activation_site(m, "vgg") if r == len(layers) - 1 else None,
                "training step" if c == 0 else None,
            )
    figure_title(
        fig,
        f"Fig. 2 — Standard, BatchNorm and noisy BatchNorm VGG16 at LR {VGG_LR:g}"
        + ("" if hist else " (histograms omitted: not in W&B)"),
        titled(runs, scale),
    )
    return fig


def _fig5_half(res, scale, fig, experiment: str, half: str, panel, lr: float, what: str, title: str):
    runs = experiment_runs(res, experiment, scale, figure=f"fig5_{half}")
    fig = fig or new_figure(8, 5)
    panel(fig.add_subplot(1, 1, 1), res, runs, [lr], what)
    figure_title(fig, title, titled(runs, scale))
    return fig


def build_fig5_vgg(res, scale=None, fig=None):
    """Fig 5a: VGG16 training accuracy, standard, BN, l1, l2, l_inf at LR 0.1 (fig: a SubFigure of Fig 5)."""
    title = "Fig. 5a — ℓp normalisations vs BatchNorm, VGG16 on CIFAR-10"
    return _fig5_half(res, scale, fig, "fig5_lp_vgg", "vgg", acc_panel, VGG_LR, "VGG16: training accuracy", title)


def build_fig5_dln(res, scale=None, fig=None):
    """Fig 5b: DLN training loss, standard, BN, l1, l2, l_inf at LR 1e-6 (fig: a SubFigure of Fig 5)."""
    title = "Fig. 5b — ℓp normalisations vs BatchNorm, deep linear network"
    what = "Deep linear network: training loss"
    return _fig5_half(res, scale, fig, "fig5_lp_dln", "dln", loss_panel, DLN_LR, what, title)


def build_fig6(res, scale=None):
    """Histograms of VGG16 layer #11 under each normalisation (standard, BN, l1, l2, l_inf)."""
    runs = experiment_runs(res, "fig6", scale, probes=("activations",))
    models = models_of(runs)
    hists = {m: h for (m, _), h in histograms(res, runs, VGG_LR, (11,), "fig6", "fig6").items()}
    fig = new_figure(17, 5.5)
    for j, m in enumerate(models):
        ax = fig.add_subplot(1, len(models), j + 1)
        ridge(ax, hists[m], color(m))
        set_labels(ax, label(m, VGG_LR), activation_site(m, "vgg"), "training step" if j == 0 else None)
    figure_title(fig, "Fig. 6 — Activation histograms of VGG16 layer #11 under each normalisation", titled(runs, scale))
    return fig
