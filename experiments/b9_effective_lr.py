"""B9: BN's scale invariance lowers the effective learning rate lr/‖w‖² as the weights grow (docs/PROTOCOL.md
section 7).

Reads the `gradnorms` probe's per-layer weight norms of Fig 1's VGG16 runs at LR 0.1. Per seed: the median over
the conv layers #1..#13 of log10(‖W_k‖ at the last measured step / at step 0); E_BN is BN's, E_diff BN's minus
the standard net's. Its figure (beyond_effective_lr): the weight-norm growth vs step and lr/‖W_k‖² per layer.
"""

import numpy as np

from bnopt.figures.common import STEP_LABEL, experiment_runs, figure_title
from bnopt.figures.panels import color, label, legend, new_figure, set_labels
from bnopt.figures.study_panels import layer_axis, line, seed_values, seeds_note
from bnopt.measures import CONV_LAYERS
from bnopt.readers import VGG_LR, Missing, layer_table, required_series
from bnopt.studies import Statistic, Study, run_id_of
from bnopt.verdicts import Test, Tests, above, fmt


def weight_growth(res, rid: str) -> float:
    """Median over conv layers #1..#13 of log10(||W_k|| at the last measured step / at step 0)."""
    growth = []
    for k in CONV_LAYERS:
        w = required_series(res, rid, "gradnorms", "weight_norm", k).dropna()
        if 0 not in w.index or len(w) < 2:
            raise Missing(f"run {rid} has no weight norms of layer #{k} at step 0 and later")
        growth.append(np.log10(w.iloc[-1] / w.loc[0]))
    return float(np.median(growth))


def effective_lr_panel(ax, tables: dict) -> None:
    """(b) lr / ||W_k||^2 per conv layer at the last measured step and at step 0."""
    for (model, lr), ts in tables.items():
        last = [float(lr) / t.ffill().iloc[-1] ** 2 for t in ts]
        first = [float(lr) / t.loc[0] ** 2 for t in ts]
        line(
            ax,
            last,
            color(model),
            label(model, lr, ", last measured step"),
            marker="o",
            ms=3.5,
            lw=1.3,
            center="geometric",
        )
        line(ax, first, color(model), label(model, lr, ", step 0"), ls=":", marker=".", ms=3, lw=1, center="geometric")
    ax.set_yscale("log", nonpositive="mask")
    layer_axis(ax, CONV_LAYERS)
    seeds_note(ax, tables, [("-", "solid: last measured step"), (":", "dotted: step 0")], center="geometric mean")
    set_labels(ax, "(b) Effective learning rate per layer", "conv layer #k (input → output)", "lr / ‖W_k‖²")
    legend(ax, loc="best")


class B9(Study):
    id = "B9"
    claim = "BN's scale invariance lowers the effective learning rate lr/‖w‖² as the weights grow"
    sweeps = ("beyond_effective_lr",)
    figures = ("beyond_effective_lr",)
    statistics = (
        Statistic("e_bn", "E_BN = median log10(‖W‖ last / ‖W‖ at step 0), BN", column="growth_bn"),
        Statistic("e_diff", "E_diff = E_BN - the same for the standard net", column="diff"),
    )
    rule = Tests(
        (
            Test("e_bn", above(0.0), "BN's conv weights do not grow, so its effective learning rate does not fall"),
            Test("e_diff", above(0.0), "BN's conv weights do not grow more than the standard net's"),
        )
    )

    def measure(self, res, scale, seed):
        std, bn = run_id_of(res, "vgg16", VGG_LR, scale, seed), run_id_of(res, "vgg16_bn", VGG_LR, scale, seed)
        g_std, g_bn = weight_growth(res, std), weight_growth(res, bn)
        return {"growth_std": g_std, "growth_bn": g_bn, "diff": g_bn - g_std}

    def lines(self, table):
        return [
            f"seed {s}: median weight-norm growth (log10) over conv layers: BN {fmt(r['growth_bn'])} (effective LR "
            f"x{fmt(10 ** (-2 * r['growth_bn']))}), standard {fmt(r['growth_std'])} "
            f"(x{fmt(10 ** (-2 * r['growth_std']))})"
            for s, r in table.items()
        ]

    def draw(self, res, scale):
        """VGG16 vs VGG16+BN at LR 0.1: (a) conv weight-norm growth ||W_k||_t / ||W_k||_0 (median over layers)
        vs step, (b) the effective learning rate lr / ||W_k||^2 per layer at the last measured step (and step 0)."""
        name = self.figures[0]
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
        effective_lr_panel(ax_e, tables)
        title = "B9 — Weight growth and the effective learning rate lr/‖W‖²: VGG16 with and without BN, LR 0.1"
        figure_title(fig, title, runs)
        return fig
