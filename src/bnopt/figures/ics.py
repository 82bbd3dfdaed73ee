"""Fig 3: internal covariate shift (Definition 2.1) of VGG16 (a) and the deep linear network (b).

Each half draws training accuracy (VGG) or loss (DLN) per learning rate, and ||G - G'||_2 and cos(G, G')
of two layers, G the layer's gradient before and G' after the update of the preceding layers. The
composite `fig3` (both halves in one file) is assembled by `catalog`.
"""

from __future__ import annotations

import numpy as np

from ..readers import probe_table
from .common import STEP_LABEL, experiment_runs, figure_title, lrs_of
from .curves import acc_panel, loss_panel, probe_line, seed_runs
from .panels import color, label, legend, new_figure, set_labels
from .selection import MissingRecords, lr_text, same_lr, scale_of, titled


def _ics_figure(res, name, experiment, layers, family, scale, fig=None):
    runs = experiment_runs(res, experiment, scale, probes=("ics",), figure=name)
    lrs = lrs_of(runs)
    fig = fig or new_figure(15, 10)
    gs = fig.add_gridspec(3, 2 * len(lrs))
    for i, lr in enumerate(lrs):
        sub = {k: v for k, v in runs.items() if same_lr(k[1], lr)}
        ax = fig.add_subplot(gs[0, 2 * i : 2 * i + 2])
        if family == "vgg":
            acc_panel(ax, res, sub, [lr], f"Training accuracy, LR {lr_text(lr)}")
        else:
            loss_panel(ax, res, sub, [lr], f"Training loss, LR {lr_text(lr)}")
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
                        scale_of(run),
                    )
                lbl = label(model, lr)
                tables = [probe_table(res, r["run_id"], "ics", k) for r in seed_runs(res, run, ax_l2)] or [t]
                for a, what in ((ax_l2, "l2"), (ax_cos, "cos")):
                    # the DLN's l2 axis is logarithmic: the geometric mean over seeds there
                    center = "geometric" if family == "dln" and what == "l2" else "mean"
                    probe_line(a, tables, what, color(model), lbl, z=2, center=center, marker="o", ms=3, lw=1.2)
            if family == "dln":
                ax_l2.set_yscale("log", nonpositive="mask")
            set_labels(ax_l2, f"Layer #{k}, LR {lr_text(lr)}", None, "ICS: ‖G − G′‖₂ (ideal 0)")
            set_labels(ax_cos, None, STEP_LABEL, "ICS: cos(G, G′) (ideal 1)")
            ax_cos.set_ylim(min(-0.05, float(np.nanmin(ax_cos.get_ylim()))), 1.05)
            legend(ax_l2)
    what = "VGG16 on CIFAR-10" if family == "vgg" else "25-layer deep linear network"
    figure_title(
        fig,
        f"Fig. 3{'a' if family == 'vgg' else 'b'} — Internal covariate shift (Definition 2.1), "
        f"{what}: G = layer gradient before, G′ after the update of the preceding layers",
        titled(runs, scale),
    )
    return fig


def build_fig3_vgg(res, scale=None, fig=None):
    """Fig 3a: VGG16 ICS at LR 0.1 and 0.01, layers #5, #10 (fig: a SubFigure of Fig 3)."""
    return _ics_figure(res, "fig3_vgg", "fig3_ics_vgg", (5, 10), "vgg", scale, fig)


def build_fig3_dln(res, scale=None, fig=None):
    """Fig 3b: DLN ICS at LR 1e-6 and 1e-7, layers #9, #17 (fig: a SubFigure of Fig 3)."""
    return _ics_figure(res, "fig3_dln", "fig3_ics_dln", (9, 17), "dln", scale, fig)
