"""B2: Thm 4.2, BN bounds the curvature along the gradient (docs/PROTOCOL.md section 7).

A theorem check, no runs and no seeds: on 200 random BN units (`bn_unit.random_bn_unit`, float64) both sides
of the bound by autograd Hessian-vector products. Its statistic: the fraction of the units in which the bound
holds (a point, not an interval). Its descriptive part, reported and not judged, reads B1's `hessian` runs:
the median g^T H g / ||g||^2 along the step's gradient, BN vs standard, per seed.
"""

from functools import cache

import torch

from bnopt.bn_unit import random_bn_unit
from bnopt.measures import median
from bnopt.readers import VGG_LR, Missing, required_series
from bnopt.studies import Statistic, Study, column, per_seed, run_id_of, train_hint
from bnopt.verdicts import FAILS, HOLDS, PARTLY, Stat, at_least, fmt, log_ratio, one, roundoff

HESSIAN_SWEEP = "beyond_hessian"  # B1's runs: the descriptive part's g^T H g


def thm42_trial(gen, m: int | None = None) -> dict:
    """One BN unit z = gamma (y - mu) / sigma + beta over a batch of m, float64, under a smooth loss of z with
    a non-trivial Hessian H = B^T B / m + 0.1 diag(sech^2 z). v = grad_y L_hat (the BN net's gradient w.r.t.
    the pre-BN activations), g_hat = grad_z L. Returns Thm 4.2's left side v^T (d^2 L_hat / dy^2) v and its two
    right sides: (gamma^2/sigma^2) v^T H v - gamma/(m sigma^2) <g_hat, y_hat> ||v||^2, and the form for an H
    that "preserves the relative norms" of g_hat and v: (gamma^2/sigma^2)(g_hat^T H g_hat - <g_hat, y_hat>
    ||v||^2 / (m gamma)). Every product with a Hessian is an autograd Hessian-vector product. The unit is
    `bn_unit.random_bn_unit`'s (m drawn unless given), then B."""
    unit = random_bn_unit(gen, m)
    m, y, gamma, beta, w = unit.m, unit.y, unit.gamma, unit.beta, unit.w
    b = torch.randn(m, m, generator=gen, dtype=torch.float64)

    def loss_of(z):
        return (w * z).sum() + 0.5 * (b @ z).pow(2).sum() / m + 0.1 * torch.log(torch.cosh(z)).sum()

    sigma = y.var(unbiased=False).sqrt()
    y_hat = (y - y.mean()) / sigma
    v = torch.autograd.grad(loss_of(gamma * y_hat + beta), y, create_graph=True)[0]
    lhs = float(torch.autograd.grad(v, y, grad_outputs=v.detach())[0] @ v.detach())

    z = (gamma * y_hat + beta).detach().requires_grad_(True)
    g_hat = torch.autograd.grad(loss_of(z), z, create_graph=True)[0]

    def quad(u):  # u^T H u by a Hessian-vector product at z
        return float(torch.autograd.grad(g_hat, z, grad_outputs=u, retain_graph=True)[0] @ u)

    v, g, yh, s2 = v.detach(), g_hat.detach(), y_hat.detach(), float(sigma.detach()) ** 2
    inner, vv = float(g @ yh), float(v @ v)
    first = gamma**2 / s2 * quad(v)
    correction = gamma / (m * s2) * inner * vv
    return {
        "lhs": lhs,
        "rhs": first - correction,
        "rhs_preserving": gamma**2 / s2 * (quad(g) - inner * vv / (m * gamma)),
        "correction": correction,
        "size": abs(first) + abs(correction),
    }


@cache
def thm42_trials(trials: int, seed: int) -> tuple[int, int, float]:
    """(trials where the bound holds, where the norm-preserving form holds, the largest gap between the
    bound's sides relative to their terms' size). Cached: the same numbers for every report in a process."""
    gen = torch.Generator().manual_seed(seed)
    holds, holds_preserving, worst = 0, 0, 0.0
    for _ in range(trials):
        t = thm42_trial(gen)
        tol = 1e-9 * t["size"]  # float64 round-off of the terms' size
        holds += t["lhs"] <= t["rhs"] + tol
        holds_preserving += t["lhs"] <= t["rhs_preserving"] + tol
        worst = max(worst, abs(t["lhs"] - t["rhs"]) / max(t["size"], 1e-300))
    return holds, holds_preserving, worst


def curvature_along_gradient(res, scale) -> list[str]:
    """The descriptive part: the median of g^T H g / ||g||^2 after step 0 in B1's VGG16 runs, BN vs standard,
    per seed and its log10 ratio over seeds (reported, not judged: Thm 4.2 is about a layer's activations,
    not the weights); one line saying what trains them when the runs are missing."""
    if res is None:
        return []

    def measure(seed):
        std, bn = (run_id_of(res, m, VGG_LR, scale, seed, probes=("hessian",)) for m in ("vgg16", "vgg16_bn"))
        ghg = [median(required_series(res, rid, "hessian", "ghg", 0).loc[1:]) for rid in (std, bn)]
        return {"ghg_std": ghg[0], "ghg_bn": ghg[1], "ratio": log_ratio(ghg[1], ghg[0])}

    try:
        table = per_seed(res, measure)
    except Missing as e:
        return [f"descriptive part not run: {e}; {train_hint((HESSIAN_SWEEP,), scale)}"]
    lines = [
        f"seed {s}: median g^T H g / ||g||^2 along the step's gradient in VGG16 (LR 0.1, B1's runs): standard "
        f"{fmt(r['ghg_std'])}, BN {fmt(r['ghg_bn'])}"
        for s, r in table.items()
    ]
    stat = Stat("log10(median g^T H g / ||g||^2 BN / standard)", column(table, "ratio"))
    return lines + [stat.summary() + " (descriptive, not judged)"]


class B2(Study):
    id = "B2"
    claim = "Thm 4.2: BN bounds the curvature along the gradient"
    figures = ("(theory)",)
    regime = ("theory",)
    statistics = (Statistic("held", "H = fraction of the random BN units in which the bound holds", pct=True),)
    rule = one("held", (at_least(1.0), HOLDS), (at_least(0.95), PARTLY), otherwise=FAILS)
    trials, seed = 200, 0  # the random units and the generator's seed

    def judge(self, res=None, scale=None):
        """The verdict from the trials alone (no seeds: the statistic is a point, judged by the rule's bands);
        the evidence adds the descriptive part from B1's runs. The report shows `cell`, no statistics table."""
        holds, holds_preserving, worst = thm42_trials(self.trials, self.seed)
        (spec,) = self.statistics
        named = {spec.key: spec.over({"trials": {spec.key: holds / self.trials}}, self.rule.thresholds(spec.key))}
        outcome, _ = self.rule.judge(named)
        j = self.judgement(self.words.word(outcome))
        j.numbers = {
            "trials": self.trials,
            "bound_holds": holds,
            "max_rel_gap_to_equality": worst,
            "preserving_form_holds": holds_preserving,
        }
        j.evidence = [
            f"{self.trials} random BN units (m in [4, 255], float64, seed {self.seed}) under a smooth loss with a "
            "non-diagonal Hessian H w.r.t. the BN output; v = grad_y L_hat; every Hessian product by autograd:",
            f"v^T (d2 L_hat/dy2) v <= (gamma^2/sigma^2) v^T H v - gamma/(m sigma^2) <g_hat, y_hat> ||v||^2 holds in "
            f"{holds}/{self.trials} trials; the largest gap between the sides is {roundoff(worst)} of their terms' "
            "size (it holds with equality: the derivation is in PROTOCOL section 7)",
            f"the form for an H that preserves the relative norms of g_hat and v, with g_hat^T H g_hat in place of "
            f"v^T H v, holds in {holds_preserving}/{self.trials} trials (not judged: a random H need not meet its "
            "condition)",
            *curvature_along_gradient(res, scale),
            self.rule.sentence(named, self.words),
        ]
        j.cell = (
            f"holds in {holds}/{self.trials} random BN units; largest gap {roundoff(worst)} of the terms "
            "(no runs, no seeds)"
        )
        return j
