"""B3: BN makes training insensitive to the initialisation scale (docs/PROTOCOL.md section 7).

Reads VGG16 with and without BN at LR 0.1 at each init scale (the Glorot weights times model.init_scale) of
its sweep (configs/experiment/beyond_init.yaml; scale 1 is Fig 1's run): the final eval-mode train-subset
accuracy (a diverged run counts as 10%). Per seed: M_BN = BN's lowest accuracy over the scales, W_BN = its
range (max - min). Its figure (beyond_init): final accuracy vs the init scale, and accuracy vs step.

The init scales are the values the sweep's file declares (`experiments.get(...).params`, read, not composed):
the runs table cannot tell them apart from Fig 1's scale-1 runs, so a judgement on the scales it happens to
hold would judge Fig 1's runs alone as "insensitive" (one scale: range 0) before the sweep is trained.
"""

from bnopt import experiments
from bnopt.figures.common import figure_title
from bnopt.figures.panels import label, new_figure
from bnopt.figures.study_panels import LINE_STYLES, eval_curves, final_points, sweep_panel
from bnopt.measures import grid_line
from bnopt.readers import CHANCE, TRAINS, VGG_LR, final_accuracy
from bnopt.run_selection import Requires
from bnopt.studies import Statistic, Study, run_id_of
from bnopt.verdicts import Test, Tests, at_least, at_most, fmt

NETS = (("std", "vgg16"), ("bn", "vgg16_bn"))


def init_scales(sweep: str) -> list[float]:
    """The `model.init_scale` values the sweep declares, in its order."""
    return [float(v) for v in dict(experiments.get(sweep).params)["model.init_scale"].split(",")]


class B3(Study):
    id = "B3"
    claim = "BN makes training insensitive to the initialisation scale"
    sweeps = ("beyond_init",)
    figures = ("beyond_init",)
    statistics = (
        Statistic("m_bn", "M_BN = BN's lowest final accuracy over the init scales", pct=True),
        Statistic("w_bn", "W_BN = BN's accuracy range (max - min) over the init scales", pct=True),
    )
    rule = Tests(
        (
            Test("m_bn", at_least(TRAINS), "BN does not train at every initialisation scale"),
            Test("w_bn", at_most(0.05), "BN's final accuracy still depends strongly on the initialisation scale"),
        )
    )
    notes = (
        f"init scale: the Glorot weights times model.init_scale; a diverged run counts as {CHANCE:.0%}; "
        f"'trains' = final accuracy >= {TRAINS:.0%}",
    )

    @property
    def inits(self) -> list[float]:
        return init_scales(self.sweeps[0])

    def measure(self, res, scale, seed):
        row = {}
        for key, model in NETS:
            accs = [final_accuracy(res, run_id_of(res, model, VGG_LR, scale, seed, init_scale=g)) for g in self.inits]
            row |= {f"acc_{key}_{g:g}": a for g, a in zip(self.inits, accs, strict=True)}
            row |= {f"m_{key}": min(accs), f"w_{key}": max(accs) - min(accs)}
        return row

    def lines(self, table):
        scales = ", ".join(f"{g:g}" for g in self.inits)
        return [
            f"seed {s}: final eval-mode train-subset acc at init scale {scales}: {grid_line(r, 'acc', self.inits)} "
            f"(standard, not judged: lowest {fmt(r['m_std'], True)}, range {fmt(r['w_std'], True)})"
            for s, r in table.items()
        ]

    def draw(self, res, scale):
        """VGG16 vs VGG16+BN at LR 0.1 with the Glorot weights times model.init_scale: (a) final accuracy vs
        the init scale, (b) accuracy vs step for every (network, init scale)."""
        name = self.figures[0]
        pairs = [(model, VGG_LR) for _, model in NETS]
        runs = {g: res.select(pairs, scale, Requires(init_scale=g), figure=name, experiment=name) for g in self.inits}
        fig = new_figure(14, 5.2)
        ax_a, ax_b = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        points: dict = {}
        for g, by_pair in runs.items():
            for (model, _), run in by_pair.items():
                points.setdefault(model, {})[g] = final_points(res, run, ax_a)
        sweep_panel(ax_a, points, "init scale (Glorot weights × model.init_scale; log)", "(a) Final accuracy")
        curves = [
            (run, LINE_STYLES[i % len(LINE_STYLES)], label(model, note=f", init ×{g:g}"))
            for i, (g, by_pair) in enumerate(runs.items())
            for (model, _), run in by_pair.items()
        ]
        eval_curves(res, curves, ax_b)
        drawn = {(model, lr, g): run for g, by_pair in runs.items() for (model, lr), run in by_pair.items()}
        figure_title(fig, "B3 — Initialisation scale: VGG16 with and without BN, LR 0.1", drawn)
        return fig
