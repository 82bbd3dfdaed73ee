"""Layer distributions over training: Fig 8 (drift of per-unit activation moments of VGG16) and Fig 9
(activation histograms of the deep linear network)."""

from __future__ import annotations

import numpy as np

from ..readers import DLN_LR, VGG_LR
from .common import STEP_LABEL, experiment_runs, figure_title, models_of
from .panels import color, label, legend, new_figure, ridge, set_labels
from .selection import histograms


def build_fig8(res, scale=None):
    """Moment drift of VGG16 layers #2, #9, #13: standard, BN, noisy BN at LR 0.1."""
    runs = experiment_runs(res, "fig8", scale, probes=("activations",))
    models = models_of(runs)
    layers = (2, 9, 13)
    hists = histograms(res, runs, VGG_LR, layers, "fig8", "fig8")
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
            for m in models:
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
    figure_title(
        fig,
        "Fig. 8 — Drift of per-unit activation moments (after norm [+ noise], before ReLU), "
        "μ/σ² per channel over the batch",
        runs,
    )
    return fig


def build_fig9(res, scale=None):
    """DLN histograms of layers #1, #11, #24, standard vs BN at LR 1e-6."""
    runs = experiment_runs(res, "fig9", scale, probes=("activations",))
    models = models_of(runs)
    layers = (1, 11, 24)
    hists = histograms(res, runs, DLN_LR, layers, "fig9", "fig9")
    fig = new_figure(10, 11)
    gs = fig.add_gridspec(len(layers), len(models))
    for r, k in enumerate(layers):
        for c, m in enumerate(models):
            ax = fig.add_subplot(gs[r, c])
            ridge(ax, hists[(m, k)], color(m))
            set_labels(
                ax,
                f"{label(m, DLN_LR)}, layer #{k}",
                "activation (after norm)" if r == len(layers) - 1 else None,
                "training step" if c == 0 else None,
            )
    figure_title(fig, "Fig. 9 — Activation histograms of the deep linear network, layers #1, #11, #24", runs)
    return fig
