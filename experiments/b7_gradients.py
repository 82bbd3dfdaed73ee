"""B7: BN cures vanishing and exploding gradients (docs/PROTOCOL.md section 7).

Reads the `gradnorms` probe's per-layer gradient norms of Fig 1's VGG16 runs at LR 0.1. Per seed: the spread
log10(max_k / min_k ||grad W_k||) over the conv layers #1..#13, at step 0 and its median over the later measured
steps; V0 / V1 = BN's spread - the standard net's. Its figure (beyond_gradients): the per-layer norms and the
spread vs step.
"""

import numpy as np
import pandas as pd

from bnopt.figures.common import STEP_LABEL, experiment_runs, figure_title
from bnopt.figures.panels import color, label, legend, new_figure, set_labels
from bnopt.figures.study_panels import layer_axis, line, seed_values, seeds_note
from bnopt.measures import CONV_LAYERS
from bnopt.readers import VGG_LR, Missing, layer_table, required_series
from bnopt.studies import Statistic, Study, run_id_of
from bnopt.verdicts import Test, Tests, below, fmt


def gradient_spread(res, rid: str) -> pd.Series:
    """Per measured step: log10(max_k / min_k) of ||grad W_k|| over the conv layers #1..#13."""
    cols = {k: required_series(res, rid, "gradnorms", "grad_norm", k) for k in CONV_LAYERS}
    g = pd.DataFrame(cols).replace([np.inf, -np.inf], np.nan).dropna()
    g = g[(g > 0).all(axis=1)]
    return np.log10(g.max(axis=1) / g.min(axis=1))


def layer_norm_panels(res, runs: dict, axes, name: str) -> None:
    """(a) each conv layer's gradient norm at step 0, (b) its median over the measured steps after 0."""

    def norms(r):
        return layer_table(res, r["run_id"], "gradnorms", "grad_norm", CONV_LAYERS)

    tables = seed_values(res, runs, axes[0], name, "per-layer gradient norms (probe gradnorms)", norms)
    at0 = {k: [t.loc[0] for t in ts if 0 in t.index] for k, ts in tables.items()}
    later = {
        k: [t.drop(index=0, errors="ignore").median() for t in ts if len(t.drop(index=0, errors="ignore"))]
        for k, ts in tables.items()
    }
    for ax, values, title in (
        (axes[0], at0, "(a) At initialisation (step 0)"),
        (axes[1], later, "(b) Median over the measured steps after 0"),
    ):
        for (model, lr), v in values.items():
            line(ax, v, color(model), label(model, lr), marker="o", ms=3.5, lw=1.3, center="geometric")
        ax.set_yscale("log", nonpositive="mask")
        layer_axis(ax, CONV_LAYERS)
        seeds_note(ax, values, center="geometric mean")
        set_labels(ax, title, "conv layer #k (input → output)", "‖∇W_k L‖ (Frobenius)")
        legend(ax, loc="best")


class B7(Study):
    id = "B7"
    claim = "BN cures vanishing and exploding gradients"
    sweeps = ("beyond_gradients",)
    figures = ("beyond_gradients",)
    statistics = (
        Statistic("v0", "V0 = spread BN - standard at step 0 (log10 max/min layer grad norm)"),
        Statistic("v1", "V1 = the same, median over training"),
    )
    rule = Tests(
        (
            Test(
                "v0",
                below(0.0),
                "at initialisation BN's gradient norms spread over the layers no less than the standard net's",
            ),
            Test(
                "v1",
                below(0.0),
                "during training BN's gradient norms spread over the layers no less than the standard net's",
            ),
        )
    )

    def measure(self, res, scale, seed):
        std, bn = run_id_of(res, "vgg16", VGG_LR, scale, seed), run_id_of(res, "vgg16_bn", VGG_LR, scale, seed)
        s_std, s_bn = gradient_spread(res, std), gradient_spread(res, bn)
        if 0 not in s_std.index or 0 not in s_bn.index:
            raise Missing(f"no gradient norms at step 0 in {std} or {bn}")
        row = {
            "spread0_std": float(s_std.loc[0]),
            "spread0_bn": float(s_bn.loc[0]),
            "spread_std": float(s_std.drop(0).median()),
            "spread_bn": float(s_bn.drop(0).median()),
        }
        return row | {
            "v0": row["spread0_bn"] - row["spread0_std"],
            "v1": row["spread_bn"] - row["spread_std"],
        }

    def lines(self, table):
        return [
            f"seed {s}: spread of conv-layer gradient norms (log10 max/min over #1..#13) at step 0: standard "
            f"{fmt(r['spread0_std'])}, BN {fmt(r['spread0_bn'])}; median over training: standard "
            f"{fmt(r['spread_std'])}, BN {fmt(r['spread_bn'])}"
            for s, r in table.items()
        ]

    def draw(self, res, scale):
        """VGG16 vs VGG16+BN at LR 0.1: per-layer gradient norms at step 0 and (median) over training, and
        their spread log10(max/min over layers) vs step."""
        name = self.figures[0]
        runs = experiment_runs(res, name, scale, probes=("gradnorms",))
        fig = new_figure(16, 5)
        ax0, ax1, ax2 = (fig.add_subplot(1, 3, i) for i in (1, 2, 3))
        layer_norm_panels(res, runs, (ax0, ax1), name)
        what = "gradient norms of all 13 conv layers"
        spread = seed_values(res, runs, ax2, name, what, lambda r: gradient_spread(res, r["run_id"]))
        for (model, lr), v in spread.items():
            line(ax2, v, color(model), label(model, lr), transform=None, lw=1.2)
        seeds_note(ax2, spread)
        ylabel = "log10(max_k / min_k ‖∇W_k L‖), k = 1..13"
        set_labels(ax2, "(c) Spread of the layers' gradient norms", STEP_LABEL, ylabel)
        legend(ax2, loc="best")
        title = "B7 — Does BN cure vanishing / exploding gradients? VGG16 with and without BN, LR 0.1"
        figure_title(fig, title, runs)
        return fig
