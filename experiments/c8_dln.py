"""C8: the same holds in a 25-layer deep linear network (Fig 5b, 10; docs/PROTOCOL.md section 2).

Reads the DLN with and without BN at LR 1e-6. (a) per seed: log10(final loss BN / standard), the final loss
the mean of the last 50 training steps (Fig 5b's runs); (b) per seed: log10(BN / standard) of the landscape
medians (Fig 10's runs, bnopt.measures). (a) and (b) rest on their own seeds: every DLN seed has losses, the
landscape probe may run on fewer; the per-seed table merges the two.

Each run's final loss is reported with k, the singular directions of the target it has learned
(`bnopt.dln_rank`): a final DLN loss is the optimal rank-k residual, so (a) compares learned directions. A
per-step loss range below 4 float32 spacings is rounding, left out of (b)'s loss-range median
(`measures.resolved_ranges`), with the fraction left out per run; a seed whose net has none resolved has no
(b) loss-range ratio (PROTOCOL section 2, rules of 2026-12-07, "DLN (C7, C8)").
"""

from bnopt.measures import (
    FIT,
    SMOOTHER,
    SMOOTHNESS,
    dln_fit,
    fit_text,
    smoothness_lines,
    smoothness_seed,
    smoothness_statistics,
)
from bnopt.readers import DLN_LR, WINDOW
from bnopt.studies import Statistic, Study, per_seed, run_id_of, seed_key
from bnopt.verdicts import AtLeast, Test, Tests, below, log_ratio


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
        """(a)'s numbers of one seed: each net's final loss, k and rank-k residual (<loss|k|residual>_<std|bn>)."""
        std = dln_fit(res, run_id_of(res, "dln", DLN_LR, scale, seed))
        bn = dln_fit(res, run_id_of(res, "dln_bn", DLN_LR, scale, seed))
        row = {f"{q}_std": std[q] for q in FIT} | {f"{q}_bn": bn[q] for q in FIT}
        return row | {"log10_ratio_loss": log_ratio(bn["loss"], std["loss"])}

    def table(self, res, scale):
        """(a)'s and (b)'s per-seed numbers, each over the seeds that have them, merged by seed."""
        loss = per_seed(res, lambda seed: self.measure(res, scale, seed))
        smooth = per_seed(res, lambda seed: smoothness_seed(res, "dln", "dln_bn", DLN_LR, scale, seed))
        return {s: loss.get(s, {}) | smooth.get(s, {}) for s in sorted({*loss, *smooth}, key=seed_key)}

    def lines(self, table):
        smooth = {s: r for s, r in table.items() if all(f"log10_ratio_{k}" in r for k in SMOOTHNESS)}
        return [
            f"seed {s}: final DLN loss at LR {DLN_LR:g} (mean of last {WINDOW} steps; k = singular directions of the "
            f"target learned): BN {fit_text(*(r[f'{q}_bn'] for q in FIT))}, standard "
            f"{fit_text(*(r[f'{q}_std'] for q in FIT))}"
            for s, r in table.items()
            if "loss_bn" in r
        ] + smoothness_lines(smooth, "dln", "dln_bn", DLN_LR)
