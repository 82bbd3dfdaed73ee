"""Layer distributions over training: Fig 8 (drift of per-unit activation moments of VGG16) and Fig 9
(activation histograms of the deep linear network).

What the activations are (`probes.activations`): the output of each layer's norm, before the non-linearity;
in a network with no norm layer (the standard one) the norm is the identity, so they are the layer's
convolution / linear output (`activation_site` says which for the axis labels).

Fig 8 draws every seed of each network (`curves.seed_runs`): the mean over seeds with a min-max band and
"(N seeds)" in the legend; Fig 9's histograms are one run's (a ridge plot cannot average runs): the panel
titles name its seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..readers import DLN_LR, VGG_LR
from .common import STEP_LABEL, experiment_runs, figure_title, models_of
from .curves import band, over_seeds, seed_runs, seeds_note
from .panels import color, label, legend, model_norm, new_figure, record_runs, ridge, set_labels
from .selection import MissingRecords, histograms, layer_histogram, scale_of, titled

NORM_SITES = {
    "batch": "after BN",
    "noisy_batch": "after BN + noise",
    "l1": "after ℓ1 norm",
    "l2": "after ℓ2 norm",
    "linf": "after ℓ∞ norm",
}


def activation_site(model: str, family: str) -> str:
    """Where a network's histogrammed activations are taken, for an axis label: after its norm layer, or
    for a network without one (standard) the layer's own output; before the ReLU in VGG16 (the DLN has no
    non-linearity)."""
    norm = model_norm(model)
    layer = "conv. output" if family == "vgg" else "linear layer output"
    site = f"{layer}, no norm layer" if norm == "none" else NORM_SITES.get(norm, "after norm")
    return f"activation ({site}{', before ReLU' if family == 'vgg' else ''})"


def seed_histograms(res, run, layers, figure: str, ax=None) -> list[dict]:
    """[{layer: LayerHistogram}] of every seed of `run`'s curve that holds `layers`' histograms (a seed
    trained without the activations probe is left out), in seed order; the seeds drawn are noted on `ax`'s
    figure. MissingRecords (from `layer_histogram`) when `run` itself lacks them."""
    out, used = [], []
    for r in seed_runs(res, run):
        try:
            out.append({k: layer_histogram(res, r["run_id"], k, figure, figure, scale_of(r)) for k in layers})
            used.append(r)
        except MissingRecords:
            if str(r["run_id"]) == str(run["run_id"]):
                raise
    if ax is not None:
        record_runs(ax, used)
    return out


def _frame(x, y) -> pd.DataFrame:
    return pd.DataFrame({"value": np.asarray(y, dtype=float)}, index=pd.Index(np.asarray(x), name="step"))


def build_fig8(res, scale=None):
    """Moment drift of VGG16 layers #2, #9, #13: standard, BN, noisy BN at LR 0.1, over every seed."""
    runs = experiment_runs(res, "fig8", scale, probes=("activations",))
    models = models_of(runs)
    layers = (2, 9, 13)
    quantities = [
        ("|μ(t+1) − μ(t)|", lambda h: (h.steps[1:], np.abs(np.diff(h.unit_mean, axis=0)).mean(1)), "consecutive"),
        ("|σ²(t+1) − σ²(t)|", lambda h: (h.steps[1:], np.abs(np.diff(h.unit_var, axis=0)).mean(1)), "consecutive"),
        ("|μ(t) − μ(0)|", lambda h: (h.steps, np.abs(h.unit_mean - h.unit_mean[:1]).mean(1)), "drift"),
        ("|σ²(t) − σ²(0)|", lambda h: (h.steps, np.abs(h.unit_var - h.unit_var[:1]).mean(1)), "drift"),
    ]
    fig = new_figure(17, 10)
    seeds = {m: seed_histograms(res, runs[(m, VGG_LR)], layers, "fig8", fig) for m in models}
    gs = fig.add_gridspec(len(layers), len(quantities))
    for r, k in enumerate(layers):
        for c, (name, fn, kind) in enumerate(quantities):
            ax = fig.add_subplot(gs[r, c])
            for i, m in enumerate(models):
                frames = [_frame(*fn(h[k])) for h in seeds[m]]
                steps, mean, lo, hi = over_seeds(frames, "value")
                z = 3 + len(models) - i
                lbl = label(m, VGG_LR, seeds_note(frames))
                ax.plot(steps, mean, color=color(m), marker="o", ms=2.5, lw=1.2, label=lbl, zorder=z)
                if len(frames) > 1:
                    band(ax, steps, lo, hi, color(m), z)
            note = "between consecutive measurements" if kind == "consecutive" else "since the first measurement"
            set_labels(
                ax,
                f"Layer #{k}: {name}",
                STEP_LABEL if r == len(layers) - 1 else None,
                f"mean over units of {name}\n({note})",
            )
            ax.set_ylim(bottom=0)
            if r == 0 and c == 0:
                if any(len(s) > 1 for s in seeds.values()):
                    ax.fill_between([], [], [], color="0.5", alpha=0.18, lw=0, label="band: min-max over seeds")
                legend(ax)
    figure_title(
        fig,
        "Fig. 8 — Drift of per-unit activation moments (before ReLU: after the norm [+ noise], the conv. output "
        "without one), μ/σ² per channel over the batch; mean over seeds",
        titled(runs, scale),
    )
    return fig


def build_fig9(res, scale=None):
    """DLN histograms of layers #1, #11, #24, standard vs BN at LR 1e-6 (one run each: its seed is named)."""
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
            run = runs[(m, DLN_LR)]
            seed = run.get("seed")
            seed = f", seed {int(seed)}" if seed is not None and seed == seed else ""
            set_labels(
                ax,
                f"{label(m, DLN_LR)}{seed}, layer #{k}",
                activation_site(m, "dln") if r == len(layers) - 1 else None,
                "training step" if c == 0 else None,
            )
    figure_title(
        fig, "Fig. 9 — Activation histograms of the deep linear network, layers #1, #11, #24", titled(runs, scale)
    )
    return fig
