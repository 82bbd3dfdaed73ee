"""C8: the same holds in a 25-layer deep linear network (Fig 5b, 10; docs/PROTOCOL.md section 2).

Reads the DLN with and without BN at LR 1e-6. (a) per seed: log10(final loss BN / standard), the final loss
the mean of the last 50 training steps (Fig 5b's runs); (b) per seed: log10(BN / standard) of the landscape
medians (Fig 10's runs, bnopt.measures). (a) and (b) rest on their own seeds: every DLN seed has losses, the
landscape probe may run on fewer; the per-seed table merges the two.
"""

from bnopt.measures import SMOOTHER, SMOOTHNESS, smoothness_lines, smoothness_seed, smoothness_statistics
from bnopt.readers import DLN_LR, final_train_loss
from bnopt.studies import Statistic, Study, per_seed, run_id_of, seed_key
from bnopt.verdicts import AtLeast, Test, Tests, below, fmt, log_ratio


class C8(Study):
    id = "C8"
    claim = "The same holds in a 25-layer deep linear network"
    paper = "DLN at 10k steps: loss ~1.6e3 standard vs 5e2 BN; landscape smoother with BN (Fig 5b, 10)"
    sweeps = ("fig5_lp_dln", "fig10")
    figures = ("fig3", "fig5", "fig9", "fig10", "fig13")
    regime = ("dln",)
    statistics = (
        Statistic("log10_ratio_loss", "(a) log10(final loss BN / standard)"),
        *smoothness_statistics("(b) "),
    )
    rule = Tests((Test("log10_ratio_loss", below(0.0)), AtLeast(2, SMOOTHER, name="(b) BN smoother on at least")))

    def measure(self, res, scale, seed):
        """(a)'s numbers of one seed."""
        l_std = final_train_loss(res, run_id_of(res, "dln", DLN_LR, scale, seed))
        l_bn = final_train_loss(res, run_id_of(res, "dln_bn", DLN_LR, scale, seed))
        return {"loss_std": l_std, "loss_bn": l_bn, "log10_ratio_loss": log_ratio(l_bn, l_std)}

    def table(self, res, scale):
        """(a)'s and (b)'s per-seed numbers, each over the seeds that have them, merged by seed."""
        loss = per_seed(res, lambda seed: self.measure(res, scale, seed))
        smooth = per_seed(res, lambda seed: smoothness_seed(res, "dln", "dln_bn", DLN_LR, scale, seed))
        return {s: loss.get(s, {}) | smooth.get(s, {}) for s in sorted({*loss, *smooth}, key=seed_key)}

    def lines(self, table):
        smooth = {s: r for s, r in table.items() if all(f"log10_ratio_{k}" in r for k in SMOOTHNESS)}
        return [
            f"seed {s}: final DLN loss at LR 1e-6 (mean of last 50 steps): BN {fmt(r['loss_bn'])}, standard "
            f"{fmt(r['loss_std'])}"
            for s, r in table.items()
            if "loss_bn" in r
        ] + smoothness_lines(smooth, "dln", "dln_bn", DLN_LR)
