"""B4: BN allows much larger learning rates (Bjorck et al. 2018; docs/PROTOCOL.md section 7).

Reads VGG16 with and without BN at each LR of its grid (configs/experiment/beyond_lr.yaml: 0.1, 0.5, 1, 2;
0.1 and 0.5 are Fig 1's runs): whether each run trains (ends `done` with a final eval-mode train-subset
accuracy of at least 20%). Per seed: L_max = the largest LR that trains (0 when none does) and
ratio = L_max(BN) / L_max(standard) (infinite when only BN trains: no interval, the rule is applied to each
seed). Its figure (beyond_lr): final accuracy vs LR, and accuracy vs step at every LR.

The LR grid is the one the sweep's file declares (`experiments.get(...).params`, read, not composed): the runs
table also holds Fig 3a's LR 0.01, and before the sweep is trained only Fig 1's 0.1 and 0.5, so a grid read
from it would judge another grid than the protocol's instead of saying "not run".
"""

from bnopt import experiments
from bnopt.figures.common import figure_title
from bnopt.figures.panels import label, new_figure
from bnopt.figures.study_panels import LINE_STYLES, eval_curves, final_points, sweep_panel
from bnopt.measures import grid_line
from bnopt.readers import CHANCE, TRAINS, final_accuracy, trains
from bnopt.run_selection import Requires
from bnopt.studies import Statistic, Study, run_id_of
from bnopt.verdicts import FAILS, HOLDS, PARTLY, above, at_least, fmt, one

NETS = (("std", "vgg16"), ("bn", "vgg16_bn"))
AGAINST = "BN does not allow a larger learning rate than the standard net on this grid"


def learning_rates(sweep: str) -> list[float]:
    """The `optim.lr` values the sweep declares, sorted."""
    return sorted(float(v) for v in dict(experiments.get(sweep).params)["optim.lr"].split(","))


def largest_training_lr(res, model: str, lrs, scale, seed) -> tuple[float, dict]:
    """(the largest LR of the grid whose run trains, 0 when none does; {lr: final accuracy})."""
    accs, ok = {}, [0.0]
    for lr in lrs:
        rid = run_id_of(res, model, lr, scale, seed)
        accs[lr] = final_accuracy(res, rid)
        if trains(res, rid):
            ok.append(lr)
    return max(ok), accs


def lr_ratio(l_bn: float, l_std: float) -> float:
    """L_max(BN) / L_max(standard): infinite when only BN trains, NaN when neither does."""
    if l_std == 0:
        return float("inf") if l_bn > 0 else float("nan")
    return l_bn / l_std


class B4(Study):
    id = "B4"
    claim = "BN allows much larger learning rates"
    sweeps = ("beyond_lr",)
    figures = ("beyond_lr",)
    statistics = (Statistic("ratio", "ratio = L_max(BN) / L_max(standard)", method="log"),)
    rule = one("ratio", (at_least(4.0), HOLDS), (above(1.0), PARTLY), otherwise=FAILS)

    @property
    def lrs(self) -> list[float]:
        return learning_rates(self.sweeps[0])

    @property
    def notes(self) -> tuple[str, ...]:
        lrs = self.lrs
        return (
            f"'trains' = ends without diverging with a final accuracy >= {TRAINS:.0%} (a diverged run counts as "
            f"{CHANCE:.0%}); the grid's largest LR bounds what can be seen: a ratio of {lrs[-1] / lrs[0]:g} is the "
            "most the grid can show (or infinite, when only BN trains)",
        )

    def measure(self, res, scale, seed):
        l_std, a_std = largest_training_lr(res, "vgg16", self.lrs, scale, seed)
        l_bn, a_bn = largest_training_lr(res, "vgg16_bn", self.lrs, scale, seed)
        row = {"lmax_std": l_std, "lmax_bn": l_bn, "ratio": lr_ratio(l_bn, l_std)}
        return row | {f"acc_std_{lr:g}": a for lr, a in a_std.items()} | {f"acc_bn_{lr:g}": a for lr, a in a_bn.items()}

    def lines(self, table):
        grid = ", ".join(f"{lr:g}" for lr in self.lrs)
        return [
            f"seed {s}: final eval-mode train-subset acc at LR {grid}: {grid_line(r, 'acc', self.lrs)}; largest LR "
            f"that trains: BN {fmt(r['lmax_bn'])}, standard {fmt(r['lmax_std'])}"
            for s, r in table.items()
        ]

    def conclude(self, table, extra_stats=()):
        """The framework's judgement; when not supported, first what that says against the claim (`Bands`
        has no `against` sentence, so the study states it, in the words `Tests.against` uses)."""
        j = super().conclude(table, extra_stats)
        if j.verdict == self.words.fails:
            s = j.stats[0]
            j.evidence.insert(0, f"against the claim: {AGAINST} ({s.short} = {s.fmt(s.mean)}, {s.label})")
        return j

    def draw(self, res, scale):
        """VGG16 vs VGG16+BN over the LR grid: (a) final accuracy vs LR, (b) accuracy vs step at every LR."""
        name, lrs = self.figures[0], self.lrs
        pairs = [(model, lr) for _, model in NETS for lr in lrs]
        runs = res.select(pairs, scale, Requires(), figure=name, experiment=name)
        fig = new_figure(14, 5.2)
        ax_a, ax_b = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        points: dict = {}
        for (model, lr), run in runs.items():
            points.setdefault(model, {})[lr] = final_points(res, run, ax_a)
        sweep_panel(ax_a, points, "learning rate (log)", "(a) Final accuracy (a diverged run drawn at chance)")
        curves = [
            (run, LINE_STYLES[lrs.index(lr) % len(LINE_STYLES)], label(model, lr)) for (model, lr), run in runs.items()
        ]
        eval_curves(res, curves, ax_b)
        figure_title(fig, "B4 — Largest usable learning rate: VGG16 with and without BN", runs)
        return fig
