"""The paper's figures from run records: `python -m bnopt.figures` or, in Python,

    from bnopt.results import load_runs
    from bnopt import figures
    res = load_runs("results")
    figures.fig1(res, "results/figures")              # one figure -> [fig1.png, fig1.pdf]
    figures.draw_all("results", "results/figures")    # every figure it can; {name: paths or message}
    figures.make_figure("fig4", res)                  # a matplotlib Figure (notebooks)
    drawn = figures.draw_figure("fig4", res)          # Drawn(fig, runs, histograms): what it was drawn from
    figures.describe(drawn, res)                      # its figure-manifest entry: runs, steps, histogram panels
    figures.draw_all(load_wandb("entity/project"))    # the same frames from W&B (bnopt.wandb_source)

Figure names (figure_list(), drawn by default): fig1, fig2, fig3, fig4, fig5, fig6, fig8, fig9, fig10, fig11,
fig12, fig13, then the figures the studies in experiments/ draw themselves (`Study.draw`: beyond_hessian of B1,
..., beyond_rank of B10; `bnopt.studies`); the (a) VGG / (b) DLN halves of Fig 3,
5, 11 alone: fig3_vgg, fig3_dln, fig5_vgg, fig5_dln, fig11_vgg, fig11_dln. Figures read records only
through a `bnopt.results.Results` object and never train; missing runs raise `MissingRuns` with the
`bnopt-train experiment=<name> scale=<preset>` command that produces them. One colour per network everywhere
(`MODEL_COLORS`). Helpers for one run (`plot_run_curves`, `plot_run_histogram`, ...) are in `explore`.

Modules: `catalog` (names, composites, make_figure / draw / draw_all), one per figure family: `training`
(Fig 1, 2, 5, 6), `ics` (Fig 3), `landscape` (Fig 4, 10, 11, 12, 13), `drift` (Fig 8, 9); `study_panels`
(what the studies' own figures share); what they share: `common` (networks, learning rates, title),
`curves` (accuracy / loss panels), `panels` (style, panel types), `selection` (which runs, record slices);
`locate` (where the notebooks find the results, whatever folder Jupyter starts in).
"""

from __future__ import annotations

from .catalog import (
    ALIASES,
    Drawn,
    describe,
    draw,
    draw_all,
    draw_figure,
    fig1,
    fig2,
    fig3,
    fig3_dln,
    fig3_vgg,
    fig4,
    fig5,
    fig5_dln,
    fig5_vgg,
    fig6,
    fig8,
    fig9,
    fig10,
    fig11,
    fig11_dln,
    fig11_vgg,
    fig12,
    fig13,
    figure_list,
    figure_names,
    make_figure,
)
from .explore import plot_ics, plot_landscape, plot_run_curves, plot_run_histogram
from .panels import MODEL_COLORS, NORM_COLORS, NORM_LABELS, color, label, png_bytes, save, show
from .selection import MissingRecords, MissingRuns, select_runs, train_command

__all__ = [
    "figure_list",
    "ALIASES",
    "MODEL_COLORS",
    "NORM_COLORS",
    "NORM_LABELS",
    "MissingRuns",
    "MissingRecords",
    "color",
    "label",
    "describe",
    "Drawn",
    "draw_figure",
    "draw",
    "draw_all",
    "make_figure",
    "figure_names",
    "png_bytes",
    "save",
    "show",
    "select_runs",
    "train_command",
    "plot_run_curves",
    "plot_run_histogram",
    "plot_landscape",
    "plot_ics",
    "fig1",
    "fig2",
    "fig3",
    "fig3_vgg",
    "fig3_dln",
    "fig4",
    "fig5",
    "fig5_vgg",
    "fig5_dln",
    "fig6",
    "fig8",
    "fig9",
    "fig10",
    "fig11",
    "fig11_vgg",
    "fig11_dln",
    "fig12",
    "fig13",
]
