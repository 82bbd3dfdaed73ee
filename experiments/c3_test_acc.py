"""C3: BN improves test accuracy (Fig 1b; docs/PROTOCOL.md section 2).

Per seed: the final test accuracy of VGG16+BN minus VGG16's at LR 0.1 (Fig 1's runs, no augmentation); the
exact-image subset's accuracies are shown beside it, not judged.
"""

from bnopt.readers import VGG_LR, final_eval
from bnopt.studies import Statistic, Study, run_id_of
from bnopt.verdicts import FAILS, HOLDS, PARTLY, above, at_least, fmt, one


class C3(Study):
    id = "C3"
    claim = "BN improves test accuracy (about 83% vs 80%, no augmentation)"
    paper = "test acc about 83% with BN vs 80% without, 15k steps (Fig 1b)"
    sweeps = ("fig1",)
    figures = ("fig1",)
    statistics = (Statistic("gap", "gap test acc BN - standard", pct=True),)
    rule = one("gap", (at_least(0.01), HOLDS), (above(0.0), PARTLY), otherwise=FAILS)

    def measure(self, res, scale, seed):
        std, bn = run_id_of(res, "vgg16", VGG_LR, scale, seed), run_id_of(res, "vgg16_bn", VGG_LR, scale, seed)
        t_std, t_bn = final_eval(res, std, "test_acc"), final_eval(res, bn, "test_acc")
        return {
            "test_acc_std": t_std,
            "test_acc_bn": t_bn,
            "gap": t_bn - t_std,
            "exact_std": final_eval(res, std, "test_acc_exact"),
            "exact_bn": final_eval(res, bn, "test_acc_exact"),
        }

    def lines(self, table):
        return [
            f"seed {s}: final test acc at LR 0.1: BN {fmt(r['test_acc_bn'], True)}, standard "
            f"{fmt(r['test_acc_std'], True)} (exact-image subset: {fmt(r['exact_bn'], True)} vs "
            f"{fmt(r['exact_std'], True)})"
            for s, r in table.items()
        ]
