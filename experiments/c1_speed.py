"""C1: BN speeds up training at the same learning rate (Fig 1a; docs/PROTOCOL.md section 2).

Per seed: steps until the smoothed train-mode batch accuracy first reaches 80% of BN's final one, standard
over BN, at LR 0.1 (Fig 1's runs).
"""

from bnopt.readers import VGG_LR, smoothed_acc
from bnopt.studies import Statistic, Study, run_id_of
from bnopt.verdicts import FAILS, HOLDS, PARTLY, above, at_least, fmt, one


def steps_to(curve, threshold: float) -> float:
    """The first step at which the curve reaches the threshold; inf when it never does."""
    hit = curve.index[curve.to_numpy() >= threshold]
    return float(hit[0]) if len(hit) else float("inf")


class C1(Study):
    id = "C1"
    claim = "BN speeds up training at the same learning rate"
    paper = "BN near 100% train acc by ~3-5k steps, standard by ~10k (Fig 1a)"
    sweeps = ("fig1",)
    figures = ("fig1",)
    statistics = (Statistic("ratio", "ratio steps_std / steps_BN", method="log"),)
    rule = one("ratio", (at_least(1.5), HOLDS), (above(1.0), PARTLY), otherwise=FAILS)

    def measure(self, res, scale, seed):
        std, bn = run_id_of(res, "vgg16", VGG_LR, scale, seed), run_id_of(res, "vgg16_bn", VGG_LR, scale, seed)
        acc_std, acc_bn = smoothed_acc(res, std), smoothed_acc(res, bn)
        target = 0.8 * float(acc_bn.iloc[-1])
        t_std, t_bn = steps_to(acc_std, target), steps_to(acc_bn, target)
        return {
            "target_acc": target,
            "steps_bn": t_bn,
            "steps_std": t_std,
            "ratio": t_std / max(t_bn, 1.0),
            "final_smoothed_acc_bn": float(acc_bn.iloc[-1]),
            "final_smoothed_acc_std": float(acc_std.iloc[-1]),
        }

    def lines(self, table):
        return [
            f"seed {s}: steps to reach {fmt(r['target_acc'], True)} smoothed train acc (80% of BN's final) at "
            f"LR 0.1: BN {r['steps_bn']:.0f}, standard {r['steps_std']:.0f}"
            + (" (never)" if r["steps_std"] == float("inf") else "")
            + f"; final smoothed batch acc: BN {fmt(r['final_smoothed_acc_bn'], True)}, "
            f"standard {fmt(r['final_smoothed_acc_std'], True)}"
            for s, r in table.items()
        ]
