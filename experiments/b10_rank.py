"""B10: BN keeps the representations of a deep linear network from collapsing in rank (docs/PROTOCOL.md
section 7).

Reads the `rank` probe's stable ranks ‖H‖_F² / ‖H‖_2² of its own DLN runs at LR 1e-6 (probes=rank). Per seed:
R0 / R1 = log10(stable rank BN / standard) of the last hidden layer (#24) at step 0 / at the last measured
step. Its figure (beyond_rank): every layer's stable rank at step 0 and at the end, and layer #24's vs step.
"""

from bnopt.figures.common import STEP_LABEL, experiment_runs, figure_title
from bnopt.figures.panels import color, label, legend, new_figure, set_labels
from bnopt.figures.study_panels import layer_axis, line, seed_values, seeds_note
from bnopt.readers import DLN_LR, Missing, layer_table, required_series
from bnopt.studies import Statistic, Study, run_id_of
from bnopt.verdicts import Test, Tests, above, fmt, log_ratio

RANK_LAYER = 24  # the last hidden DLN layer (#25 is the output layer, which has no norm)


def stable_rank_at(res, rid: str, layer: int = RANK_LAYER) -> tuple[float, float]:
    """(stable rank at step 0, at the last measured step) of the layer's representation."""
    s = required_series(res, rid, "rank", "stable_rank", layer).dropna()
    if 0 not in s.index or len(s) < 2:
        raise Missing(f"run {rid} has no stable rank of layer #{layer} at step 0 and later")
    return float(s.loc[0]), float(s.iloc[-1])


def layers_panel(ax, tables: dict) -> None:
    """(a) The stable rank of every layer's representation at step 0 and at the last measured step."""
    layers = sorted({k for ts in tables.values() for t in ts for k in t.columns})
    for (model, lr), ts in tables.items():
        line(ax, [t.loc[0] for t in ts], color(model), label(model, lr, ", step 0"), ls="--", marker=".", ms=3, lw=1)
        last = [t.ffill().iloc[-1] for t in ts if len(t) > 1]
        if last:
            line(ax, last, color(model), label(model, lr, ", last measured step"), marker="o", ms=3.5, lw=1.3)
    layer_axis(ax, layers)
    ax.set_ylim(bottom=0)
    seeds_note(ax, tables, [("--", "dashed: step 0"), ("-", "solid: last measured step")])
    set_labels(
        ax,
        "(a) Stable rank of each layer's representation",
        "layer #k (input → output)",
        "stable rank ‖H‖_F² / ‖H‖_2²",
    )
    legend(ax, loc="best")


class B10(Study):
    id = "B10"
    claim = "BN keeps the representations of a deep linear network from collapsing in rank"
    sweeps = ("beyond_rank",)
    figures = ("beyond_rank",)
    regime = ("dln",)
    statistics = (
        Statistic("r0", f"R0 = log10(stable rank BN / standard), layer #{RANK_LAYER}, step 0"),
        Statistic("r1", "R1 = the same at the last measured step"),
    )
    rule = Tests(
        (
            Test(
                "r0",
                above(0.0),
                "at initialisation BN's deep representation has no higher stable rank than the standard DLN's",
            ),
            Test(
                "r1",
                above(0.0),
                "after training BN's deep representation has no higher stable rank than the standard DLN's",
            ),
        )
    )

    def measure(self, res, scale, seed):
        std = run_id_of(res, "dln", DLN_LR, scale, seed, probes=("rank",))
        bn = run_id_of(res, "dln_bn", DLN_LR, scale, seed, probes=("rank",))
        (s0, s1), (b0, b1) = stable_rank_at(res, std), stable_rank_at(res, bn)
        return {"std0": s0, "std1": s1, "bn0": b0, "bn1": b1, "r0": log_ratio(b0, s0), "r1": log_ratio(b1, s1)}

    def lines(self, table):
        return [
            f"seed {s}: stable rank of layer #{RANK_LAYER} (of at most 10): standard {fmt(r['std0'])} at step 0, "
            f"{fmt(r['std1'])} at the end; BN {fmt(r['bn0'])}, {fmt(r['bn1'])}"
            for s, r in table.items()
        ]

    def draw(self, res, scale):
        """DLN vs DLN+BN at LR 1e-6: (a) stable rank of every layer's representation at step 0 and at the
        last measured step, (b) the stable rank of layer #24 vs step."""
        name = self.figures[0]
        runs = experiment_runs(res, name, scale, probes=("rank",))
        fig = new_figure(14, 5.2)
        ax_l, ax_t = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)

        def ranks(r):
            t = layer_table(res, r["run_id"], "rank", "stable_rank")
            return t if 0 in t.index else None

        tables = seed_values(res, runs, ax_l, name, "stable ranks at step 0 (probe rank)", ranks)
        layers_panel(ax_l, tables)
        lines = {k: [t[RANK_LAYER].dropna() for t in ts if RANK_LAYER in t] for k, ts in tables.items()}
        for (model, lr), v in lines.items():
            line(ax_t, v, color(model), label(model, lr), marker="o", ms=3, lw=1.2)
        ax_t.set_ylim(bottom=0)
        seeds_note(ax_t, lines)
        set_labels(ax_t, f"(b) Stable rank of layer #{RANK_LAYER} (last hidden layer)", STEP_LABEL, "stable rank")
        legend(ax_t, loc="best")
        title = "B10 — Rank collapse in the 25-layer deep linear network, with and without BN, LR 1e-6"
        figure_title(fig, title, runs)
        return fig
