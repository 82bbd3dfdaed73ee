"""C2: BN makes a larger learning rate usable (Fig 1a/b; docs/PROTOCOL.md section 2).

Per seed: the final smoothed train-mode batch accuracy of VGG16 and VGG16+BN at LR 0.5 (Fig 1's runs); a
diverged standard run counts as chance. Judged on both statistics together: standard below 20% and BN
above 80% (or 50%). The eval-mode train-subset accuracy is shown, not judged.
"""

from bnopt.readers import CHANCE, final_smoothed_acc, final_train_acc, run_status
from bnopt.studies import Statistic, Study, run_id_of
from bnopt.verdicts import FAIL, HOLDS, PARTLY, PASS, Bands, above, below, fmt, outcomes_over

LARGE_LR = 0.5  # the learning rate standard VGG16 does not train at (Fig 1)


class StatBands(Bands):
    """Bands over several statistics that also say, per statistic, how its interval meets the rule's
    conditions on it (the report's verdict column): one condition = pass / fail; several (nested
    thresholds) = the first one met, in the bands' order, or "neither"; inconclusive when the interval
    allows more than one answer. The joint verdict is Bands'."""

    def judge(self, named):
        verdict, lines = super().judge(named)
        for name in self.stat_names():
            conds = list(dict.fromkeys(c for band, _ in self.bands for s, c in band if s == name))
            stat = named[name]
            if len(conds) == 1:
                stat.verdict = outcomes_over([stat], lambda x, c=conds[0]: PASS if c(x) else FAIL)
            else:
                stat.verdict = outcomes_over(
                    [stat], lambda x, cs=conds, s=stat: next((c.describe(s.pct) for c in cs if c(x)), "neither")
                )
        return verdict, lines


class C2(Study):
    id = "C2"
    claim = "BN makes a larger learning rate usable (standard VGG at LR 0.5 does not train, BN does)"
    paper = "standard VGG at LR 0.5 stays near 10%; BN at 0.5 trains (Fig 1a/b)"
    sweeps = ("fig1",)
    figures = ("fig1",)
    post_hoc = (
        "2026-11-30: the accuracy judged became the final smoothed train-mode batch accuracy (what Fig 1a plots) "
        "instead of the eval-mode train-subset accuracy, after the runs' numbers were seen"
    )
    statistics = (
        Statistic("acc_std", "standard final smoothed acc", column="acc_std_lr0.5", pct=True),
        Statistic("acc_bn", "BN final smoothed acc", column="acc_bn_lr0.5", pct=True),
    )
    rule = StatBands(
        (
            ((("acc_std", below(0.2)), ("acc_bn", above(0.8))), HOLDS),
            ((("acc_std", below(0.2)), ("acc_bn", above(0.5))), PARTLY),
        )
    )

    def measure(self, res, scale, seed):
        std = run_id_of(res, "vgg16", LARGE_LR, scale, seed)
        bn = run_id_of(res, "vgg16_bn", LARGE_LR, scale, seed)
        diverged = run_status(res, std) == "diverged"
        return {
            "acc_std_lr0.5": CHANCE if diverged else final_smoothed_acc(res, std),
            "acc_bn_lr0.5": final_smoothed_acc(res, bn),
            "eval_acc_std_lr0.5": final_train_acc(res, std),
            "eval_acc_bn_lr0.5": final_train_acc(res, bn),
            "std_diverged": bool(diverged),
        }

    def lines(self, table):
        return [
            f"seed {s}: final smoothed train-mode acc at LR 0.5: standard {fmt(r['acc_std_lr0.5'], True)}"
            + (" (diverged)" if r["std_diverged"] else "")
            + f", BN {fmt(r['acc_bn_lr0.5'], True)} (eval-mode train-subset acc, not judged: standard "
            f"{fmt(r['eval_acc_std_lr0.5'], True)}, BN {fmt(r['eval_acc_bn_lr0.5'], True)})"
            for s, r in table.items()
        ]

    def conclude(self, table, extra_stats=()):
        j = super().conclude(table, extra_stats)
        j.numbers.pop("std_diverged", None)  # a flag per seed, not a number
        return j
