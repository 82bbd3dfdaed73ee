"""C9: BN bounds the gradient norm w.r.t. the layer activations (Thm 4.1; docs/PROTOCOL.md section 2).

No runs, no seeds: on random BN units (bnopt.bn_unit, float64), autograd's ||grad_y L_hat||^2 against the
theorem's closed forms. Statistics, one value each: E, the largest relative error of the appendix form (1/m,
an equality), and B, the fraction of trials where ||grad_y L_hat||^2 <= gamma^2/sigma^2 ||grad_z L||^2. The
printed form (1/sqrt(m), an inequality) is counted, not judged. Thm 4.2 is not checked here (B2 checks it),
so the claim is at most partly reproduced.
"""

import torch

from bnopt.bn_unit import random_bn_unit
from bnopt.studies import Statistic, Study
from bnopt.verdicts import PARTLY, Bands, at_least, below, roundoff

TRIALS = 200
SLACK = 1 + 1e-12  # an inequality holds up to float64 round-off
EXACT_AND_BOUNDED = (("appendix_err", below(1e-8)), ("bounded", at_least(1.0)))  # C9's band (E, B below)


def thm41_trial(gen: torch.Generator) -> tuple[float, float, float, float]:
    """One random unit under a smooth loss of its BN output: (||grad_y L_hat||^2, the appendix form, the
    printed form, gamma^2/sigma^2 ||grad_z L||^2)."""
    unit = random_bn_unit(gen)
    m, y, gamma, beta, w = unit.m, unit.y, unit.gamma, unit.beta, unit.w
    mu, sigma = y.mean(), y.var(unbiased=False).sqrt()
    y_hat = (y - mu) / sigma
    z = gamma * y_hat + beta
    loss = (w * z).sum() + 0.5 * (z**2).sum()  # any smooth loss of the BN output
    grad_z = torch.autograd.grad(loss, z, retain_graph=True)[0]
    grad_y = torch.autograd.grad(loss, y)[0]
    gz, yh, s2 = grad_z.detach(), y_hat.detach(), float(sigma.detach()) ** 2
    base = float(gz.pow(2).sum() - gz.sum() ** 2 / m)
    inner = float((gz * yh).sum()) ** 2
    scale = gamma**2 / s2
    return (
        float(grad_y.pow(2).sum()),
        scale * (base - inner / m),
        scale * (base - inner / m**0.5),
        scale * float(gz.pow(2).sum()),
    )


def thm41_check(trials: int = TRIALS, seed: int = 0) -> dict:
    """The check's numbers over `trials` random units drawn from one generator seeded `seed`."""
    gen = torch.Generator().manual_seed(seed)
    err_appendix, printed_holds, bounded = 0.0, 0, 0
    for _ in range(trials):
        lhs, appendix, printed, bound = thm41_trial(gen)
        err_appendix = max(err_appendix, abs(lhs - appendix) / max(abs(appendix), 1e-300))
        printed_holds += lhs <= printed * SLACK
        bounded += lhs <= bound * SLACK
    return {
        "trials": trials,
        "max_rel_err_appendix_equality": err_appendix,
        "printed_inequality_holds": printed_holds,
        "bounded_by_gamma2_over_sigma2_g2": bounded,
    }


class C9(Study):
    id = "C9"
    claim = "Theory: BN bounds the gradient norm w.r.t. layer activations (Thm 4.1)"
    paper = (
        "Thm 4.1: ||grad_y L_hat||^2 <= gamma^2/sigma^2 (||g||^2 - <1,g>^2/m - <g, y_hat>^2/sqrt(m)) as printed; "
        "the appendix proof gives 1/m and equality"
    )
    figures = ("(theory)",)
    regime = ("theory",)
    statistics = (
        Statistic("appendix_err", "E = max relative error of the appendix form", "max_rel_err_appendix_equality"),
        Statistic(
            "bounded", "B = fraction of trials within gamma^2/sigma^2 ||grad_z L||^2", "bounded_fraction", pct=True
        ),
    )
    rule = Bands(((EXACT_AND_BOUNDED, PARTLY),))  # partly at most: Thm 4.2 is not checked here

    def judge(self, res=None, scale=None, trials: int = TRIALS, seed: int = 0):
        """The check's verdict from its numbers (point statistics: no runs, no seeds, no intervals)."""
        n = thm41_check(trials, seed)
        row = n | {"bounded_fraction": n["bounded_by_gamma2_over_sigma2_g2"] / trials}
        named = {s.key: s.over({None: row}, self.rule.thresholds(s.key)) for s in self.statistics}
        outcome, _ = self.rule.judge(named)
        err, printed = n["max_rel_err_appendix_equality"], n["printed_inequality_holds"]
        bounded = n["bounded_by_gamma2_over_sigma2_g2"]
        j = self.judgement(
            self.words.word(outcome),
            [
                f"{trials} random BN units (m in [4, 255]), float64 autograd vs closed forms:",
                f"appendix form (1/m, equality): max relative error {roundoff(err)}",
                f"printed form (1/sqrt(m), inequality) holds in {printed}/{trials} trials",
                f"||grad_y L_hat||^2 <= gamma^2/sigma^2 ||grad_z L||^2 in {bounded}/{trials} trials",
                "Thm 4.2 (Hessian quadratic form) is not checked here",
                self.rule.sentence(named, self.words),
            ],
        )
        j.numbers = n
        j.cell = (
            f"appendix form exact to {roundoff(err)}; bound holds in {bounded}/{trials} random BN units "
            "(no runs, no seeds)"
        )
        return j
