"""Beyond the paper (issue 12): popular claims about BN and later papers' findings, judged like C1-C9.

Each study B1..B10 reads a `Results`, measures per seed, summarises each judged statistic over seeds
(mean and a 95% interval, `claims.Stat`) and returns a verdict: supported | partly | not supported |
inconclusive | not run. The rules are docs/PROTOCOL.md section 7, written before the runs they judge.
Studies whose runs are Fig 1's or Fig 2's (B6-B9) read those runs; B3 (init scales) and B4 (LR grid) add
runs to Fig 1's; B1 (and B2's descriptive part) reads its own `probes=hessian` runs, B10 its own `probes=rank` runs.
Nothing here trains anything.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import torch

from . import claims, experiments
from .bn_unit import random_bn_unit
from .claims import (
    FAIL,
    INCONCLUSIVE,
    NOT_RUN,
    PASS,
    Check,
    Stat,
    column,
    fill,
    fmt,
    per_seed,
    run_id_of,
    subtest,
    subtests_verdict,
)
from .readers import (
    CHANCE,
    DLN_LR,
    TRAINS,
    VGG_LR,
    WINDOW,
    Missing,
    diverged,
    eval_rows,
    final_accuracy,
    final_eval,
    final_smoothed_acc,
    final_train_acc,
    final_train_loss,
    required_series,
    smoothed_acc,
    smoothed_train,
    trains,
)
from .results import Results

SUPPORTED, PARTLY, NOT_SUPPORTED = "supported", "partly", "not supported"
STUDIES = {
    "B1": "BN lowers the sharpness (top Hessian eigenvalue) of the loss; running statistics bring it back",
    "B2": "Thm 4.2: BN bounds the curvature along the gradient",
    "B3": "BN makes training insensitive to the initialisation scale",
    "B4": "BN allows much larger learning rates",
    "B5": "BN fails at small batch sizes",
    "B6": "BN regularises: a smaller train-test gap at the same training loss",
    "B7": "BN cures vanishing and exploding gradients",
    "B8": "At inference, running statistics stand in for the batch statistics the net trained with",
    "B9": "BN's scale invariance lowers the effective learning rate lr/‖w‖² as the weights grow",
    "B10": "BN keeps the representations of a deep linear network from collapsing in rank",
}
CONV_LAYERS = tuple(range(1, 14))  # VGG16's conv layers #1..#13 (the classifier, #14, is left out)
RANK_LAYER = 24  # B10: the last hidden DLN layer (#25 is the output layer, which has no norm)
WORDS = {
    claims.REPRODUCED: SUPPORTED,
    claims.PARTLY: PARTLY,
    claims.NOT_REPRODUCED: NOT_SUPPORTED,
    INCONCLUSIVE: INCONCLUSIVE,
    NOT_RUN: NOT_RUN,
}


class Study(Check):
    """A beyond-the-paper study's check: a `claims.Check` whose text is the study's claim."""

    @property
    def text(self) -> str:
        return STUDIES[self.claim]


def _count_verdict(verdicts: list[str]) -> str:
    """All sub-tests pass = supported, some = partly, none = not supported; inconclusive when an
    inconclusive sub-test could change that (claims.subtests_verdict, in the studies' words)."""
    return WORDS[subtests_verdict(verdicts)]


def _below_0(x: float) -> bool:
    return x < 0


def _above_0(x: float) -> bool:
    return x > 0


def _within_2_points(x: float) -> bool:
    return -0.02 <= x <= 0.02


def _against(stat: Stat, sentence: str) -> str:
    """The plain statement of a sub-test that failed: what the numbers say against the popular claim."""
    return f"against the claim: {sentence} ({stat.name.split(' = ')[0]} = {stat.fmt(stat.mean)}, {stat.label})"


def _close(c: Study, table: dict, tests: list, lines: list[str], notes: list[str]) -> Study:
    """A study judged by sub-tests: tests = [(Stat, passes(value) -> bool, what a failure says against the
    claim)], each judged on its interval; the evidence is a plain "against the claim" line per failed
    sub-test, the per-seed lines, each statistic's summary, then the notes (what is measured, the rule); the
    verdict counts the sub-tests (`_count_verdict`)."""
    verdicts = [subtest(stat, passes) for stat, passes, _ in tests]
    stats = [stat for stat, _, _ in tests]
    fill(c, table, stats)
    against = [_against(stat, sentence) for stat, _, sentence in tests if stat.verdict == FAIL]
    c.evidence = against + lines + [stat.summary() for stat in stats] + notes
    c.verdict = _count_verdict(verdicts)
    return c


def _judge_one(c: Study, table: dict, stat: Stat, rule, lines: list[str], notes: list[str], against: str) -> Study:
    """A study one statistic decides with its own verdict rule (value -> verdict), judged on its interval;
    `against`: what a "not supported" says against the claim, stated first."""
    stat.verdict = claims.judge([stat], rule)
    fill(c, table, [stat])
    plain = [_against(stat, against)] if stat.verdict == NOT_SUPPORTED else []
    c.evidence = plain + lines + [stat.summary()] + notes
    c.verdict = stat.verdict
    return c


# ------------------------------------------------------------------------------------------------- B1

CONVERGED = 0.1  # B1: a power-iteration point counts when its residual ||Hv - lambda v|| / |lambda| is below this


def converged_eigenvalues(res: Results, rid: str, suffix: str = "") -> pd.Series:
    """|top_eig<suffix>| at every measured step, NaN where the power iteration did not converge (residual not
    below CONVERGED) or the value is not finite: the points B1 counts and its figure draws. Missing when the
    run has no such records."""
    lam = required_series(res, rid, "hessian", "top_eig" + suffix, 0)
    resid = required_series(res, rid, "hessian", "top_eig_residual" + suffix, 0).reindex(lam.index)
    return lam.abs().where((resid < CONVERGED) & np.isfinite(lam))


def sharpness(res: Results, rid: str, suffix: str = "") -> tuple[float, int, int]:
    """(median |top_eig<suffix>| over the converged points after step 0, points counted, points measured);
    Missing when fewer than half the points converged (PROTOCOL section 7, B1)."""
    lam = converged_eigenvalues(res, rid, suffix)
    lam = lam[lam.index > 0]
    ok = lam.dropna()
    if not len(lam) or 2 * len(ok) < len(lam):
        mode = "eval" if suffix else "train"
        raise Missing(
            f"run {rid}: {len(ok)} of {len(lam)} {mode}-mode power iterations converged (residual < {CONVERGED:g})"
        )
    return float(ok.median()), len(ok), len(lam)


def hessian_runs(res: Results, scale, seed) -> tuple[str, str]:
    """(standard, BN) VGG16 runs at LR 0.1 with hessian records (configs/experiment/beyond_hessian.yaml)."""
    return tuple(run_id_of(res, m, VGG_LR, scale, seed, probes=("hessian",)) for m in ("vgg16", "vgg16_bn"))


def check_b1(res: Results, scale=None) -> Study:
    c = Study("B1", NOT_RUN, figure="beyond_hessian")

    def measure(seed):
        std, bn = hessian_runs(res, scale, seed)
        (lam_std, k_std, n_std), (lam_bn, k_bn, n_bn) = sharpness(res, std), sharpness(res, bn)
        lam_eval, k_eval, n_eval = sharpness(res, bn, "_eval")
        return {
            "top_eig_std": lam_std,
            "top_eig_bn": lam_bn,
            "top_eig_eval_bn": lam_eval,
            "counted": f"{k_std}/{n_std}, {k_bn}/{n_bn}, {k_eval}/{n_eval}",
            "s1": claims.log_ratio(lam_bn, lam_std),
            "s2": claims.log_ratio(lam_eval, lam_bn),
        }

    table = per_seed(res, measure)
    s1 = Stat("S1 = log10(median |top_eig| BN / standard), train mode", column(table, "s1"), thresholds=(0.0,))
    s2 = Stat("S2 = log10(median |top_eig| BN, eval mode / train mode)", column(table, "s2"), thresholds=(0.0,))
    lines = [
        f"seed {s}: median |top eigenvalue| after step 0: standard {fmt(r['top_eig_std'])}, BN {fmt(r['top_eig_bn'])} "
        f"(batch statistics), BN {fmt(r['top_eig_eval_bn'])} (running statistics); converged points counted "
        f"(standard, BN, BN eval): {r['counted']}"
        for s, r in table.items()
    ]
    notes = [
        "measured: 20 power-iteration Hessian-vector products on the step's batch at each measured step; train mode "
        "uses the batch statistics, eval mode the running statistics, from the same start vector; a point counts when "
        f"its residual is below {CONVERGED:g}",
        "rule: sub-test 1 passes when S1's whole interval is below 0 (BN's loss is less sharp), sub-test 2 when S2's "
        "is above 0 (running statistics bring sharpness back); both = supported, one = partly, none = not supported",
    ]
    tests = [
        (s1, _below_0, "with batch statistics the BN net's loss is sharper than the standard net's, not flatter"),
        (s2, _above_0, "running statistics do not make the BN net's loss sharper than its batch statistics do"),
    ]
    return _close(c, table, tests, lines, notes)


# ------------------------------------------------------------------------------------------------- B2


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


def curvature_along_gradient(res: Results | None, scale) -> list[str]:
    """B2's descriptive part: the median of g^T H g / ||g||^2 after step 0 in B1's VGG16 runs, BN vs standard,
    per seed and its log10 ratio over seeds (reported, not judged: Thm 4.2 is about a layer's activations,
    not the weights); one line saying what trains them when the runs are missing."""
    if res is None:
        return []

    def measure(seed):
        std, bn = hessian_runs(res, scale, seed)
        ghg = [claims.median(required_series(res, rid, "hessian", "ghg", 0).loc[1:]) for rid in (std, bn)]
        return {"ghg_std": ghg[0], "ghg_bn": ghg[1], "ratio": claims.log_ratio(ghg[1], ghg[0])}

    try:
        table = per_seed(res, measure)
    except Missing as e:
        return [f"descriptive part not run: {e}; {claims.train_hint('B1', scale)}"]
    lines = [
        f"seed {s}: median g^T H g / ||g||^2 along the step's gradient in VGG16 (LR 0.1, B1's runs): standard "
        f"{fmt(r['ghg_std'])}, BN {fmt(r['ghg_bn'])}"
        for s, r in table.items()
    ]
    stat = Stat("log10(median g^T H g / ||g||^2 BN / standard)", column(table, "ratio"))
    return lines + [stat.summary() + " (descriptive, not judged)"]


def check_b2(res: Results | None = None, scale=None, trials: int = 200, seed: int = 0) -> Study:
    """Thm 4.2 on random BN units (no runs): does the curvature of the BN net's loss along its gradient obey
    the theorem's bound? `thm42_trial` computes both sides with autograd in float64."""
    c = Study("B2", NOT_RUN, figure="(theory)")
    holds, holds_preserving, worst = thm42_trials(trials, seed)
    c.numbers = {
        "trials": trials,
        "bound_holds": holds,
        "max_rel_gap_to_equality": worst,
        "preserving_form_holds": holds_preserving,
    }
    c.evidence = [
        f"{trials} random BN units (m in [4, 255], float64, seed {seed}) under a smooth loss with a non-diagonal "
        "Hessian H w.r.t. the BN output; v = grad_y L_hat; every Hessian product by autograd:",
        f"v^T (d2 L_hat/dy2) v <= (gamma^2/sigma^2) v^T H v - gamma/(m sigma^2) <g_hat, y_hat> ||v||^2 holds in "
        f"{holds}/{trials} trials; the largest gap between the sides is {claims.roundoff(worst)} of their terms' size "
        "(it holds with equality: the derivation is in PROTOCOL section 7)",
        f"the form for an H that preserves the relative norms of g_hat and v, with g_hat^T H g_hat in place of "
        f"v^T H v, holds in {holds_preserving}/{trials} trials (not judged: a random H need not meet its condition)",
        *curvature_along_gradient(res, scale),
        "rule: the bound holds in all trials = supported; in >= 95% = partly; otherwise not supported",
    ]
    c.cell = (
        f"holds in {holds}/{trials} random BN units; largest gap {claims.roundoff(worst)} of the terms "
        "(no runs, no seeds)"
    )
    c.verdict = SUPPORTED if holds == trials else (PARTLY if holds >= 0.95 * trials else NOT_SUPPORTED)
    return c


# --------------------------------------------------------------------------------------------- B3, B4


def _grid_line(row: dict, prefix: str, values) -> str:
    """'BN a / b / c; standard d / e / f' from a per-seed row's <prefix>_<bn|std>_<value> accuracies."""
    nets = (("bn", "BN"), ("std", "standard"))
    return "; ".join(
        f"{name} " + " / ".join(fmt(row[f"{prefix}_{key}_{v:g}"], True) for v in values) for key, name in nets
    )


def check_b3(res: Results, scale=None) -> Study:
    c = Study("B3", NOT_RUN, figure="beyond_init")
    inits = experiments.init_scales("beyond_init")

    def measure(seed):
        row = {}
        for key, model in (("std", "vgg16"), ("bn", "vgg16_bn")):
            accs = [final_accuracy(res, run_id_of(res, model, VGG_LR, scale, seed, init_scale=g)) for g in inits]
            row |= {f"acc_{key}_{g:g}": a for g, a in zip(inits, accs, strict=True)}
            row |= {f"m_{key}": min(accs), f"w_{key}": max(accs) - min(accs)}
        return row

    table = per_seed(res, measure)
    m_bn = Stat("M_BN = BN's lowest final accuracy over the init scales", column(table, "m_bn"), pct=True)
    w_bn = Stat("W_BN = BN's accuracy range (max - min) over the init scales", column(table, "w_bn"), pct=True)
    m_bn.thresholds, w_bn.thresholds = (TRAINS,), (0.05,)
    scales = ", ".join(f"{g:g}" for g in inits)
    lines = [
        f"seed {s}: final eval-mode train-subset acc at init scale {scales}: {_grid_line(r, 'acc', inits)} "
        f"(standard, not judged: lowest {fmt(r['m_std'], True)}, range {fmt(r['w_std'], True)})"
        for s, r in table.items()
    ]
    notes = [
        f"init scale: the Glorot weights times model.init_scale; a diverged run counts as {CHANCE:.0%}; "
        f"'trains' = final accuracy >= {TRAINS:.0%}",
        "rule: sub-test 1 passes when M_BN's whole interval is at or above 20%, sub-test 2 when W_BN's is at or "
        "below 5 points; both = supported, one = partly, none = not supported",
    ]
    tests = [
        (m_bn, lambda x: x >= TRAINS, "BN does not train at every initialisation scale"),
        (w_bn, lambda x: x <= 0.05, "BN's final accuracy still depends strongly on the initialisation scale"),
    ]
    return _close(c, table, tests, lines, notes)


def largest_training_lr(res: Results, model: str, lrs, scale, seed) -> tuple[float, dict]:
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


def b4_rule(ratio: float) -> str:
    return SUPPORTED if ratio >= 4 else (PARTLY if ratio > 1 else NOT_SUPPORTED)


def check_b4(res: Results, scale=None) -> Study:
    c = Study("B4", NOT_RUN, figure="beyond_lr")
    lrs = sorted({lr for _, lr in experiments.pairs("beyond_lr")})

    def measure(seed):
        l_std, a_std = largest_training_lr(res, "vgg16", lrs, scale, seed)
        l_bn, a_bn = largest_training_lr(res, "vgg16_bn", lrs, scale, seed)
        row = {"lmax_std": l_std, "lmax_bn": l_bn, "ratio": lr_ratio(l_bn, l_std)}
        return row | {f"acc_std_{lr:g}": a for lr, a in a_std.items()} | {f"acc_bn_{lr:g}": a for lr, a in a_bn.items()}

    table = per_seed(res, measure)
    ratio = Stat("ratio = L_max(BN) / L_max(standard)", column(table, "ratio"), method="bootstrap", thresholds=(1, 4))
    grid = ", ".join(f"{lr:g}" for lr in lrs)
    lines = [
        f"seed {s}: final eval-mode train-subset acc at LR {grid}: {_grid_line(r, 'acc', lrs)}; largest LR that "
        f"trains: BN {fmt(r['lmax_bn'])}, standard {fmt(r['lmax_std'])}"
        for s, r in table.items()
    ]
    notes = [
        f"'trains' = ends without diverging with a final accuracy >= {TRAINS:.0%} (a diverged run counts as "
        f"{CHANCE:.0%}); the grid's largest LR bounds what can be seen: a ratio of {lrs[-1] / lrs[0]:g} is the most "
        "the grid can show (or infinite, when only BN trains)",
        "rule: supported when the ratio's whole interval is at or above 4; partly when within (1, 4); not supported "
        "when at or below 1; otherwise inconclusive",
    ]
    against = "BN does not allow a larger learning rate than the standard net on this grid"
    return _judge_one(c, table, ratio, b4_rule, lines, notes, against)


# ------------------------------------------------------------------------------------------------- B5


def batch_grid() -> dict[str, list[tuple[float, int]]]:
    """{model: [(lr, batch), ...]} of B5's sweep (configs/experiment/beyond_batch.yaml), by batch."""
    out: dict = {}
    for model, lr, batch in experiments.batch_points("beyond_batch"):
        out.setdefault(model, []).append((lr, batch))
    return {m: sorted(v, key=lambda p: p[1]) for m, v in out.items()}


def batch_accuracies(res: Results, rid: str, window: int = WINDOW) -> dict:
    """A B5 run's final test accuracy, smoothed train-mode batch accuracy (batch statistics) and eval-mode
    train-subset accuracy (running statistics); CHANCE for each when it diverged."""
    if diverged(res, rid):
        return {"test": CHANCE, "batch": CHANCE, "running": CHANCE}
    nan_to_chance = lambda x: CHANCE if x != x else x  # noqa: E731
    return {
        "test": nan_to_chance(final_eval(res, rid, "test_acc")),
        "batch": nan_to_chance(final_smoothed_acc(res, rid, window)),
        "running": nan_to_chance(final_train_acc(res, rid)),
    }


def check_b5(res: Results, scale=None) -> Study:
    c = Study("B5", NOT_RUN, figure="beyond_batch")
    grid = batch_grid()
    batches = [b for _, b in grid["vgg16_bn"]]
    small, large = min(batches), max(batches)

    def measure(seed):
        row = {}
        for key, model in (("std", "vgg16"), ("bn", "vgg16_bn")):
            for lr, batch in grid[model]:
                acc = batch_accuracies(res, run_id_of(res, model, lr, scale, seed, batch_size=batch))
                row |= {f"{name}_{key}_{batch}": v for name, v in acc.items()}
        for batch in batches:
            row[f"a_{batch}"] = row[f"test_bn_{batch}"] - row[f"test_std_{batch}"]
            row[f"d_{batch}"] = abs(row[f"batch_bn_{batch}"] - row[f"running_bn_{batch}"])
        row["s1"] = row[f"a_{small}"] - row[f"a_{large}"]
        row["s2"] = row[f"d_{small}"] - row[f"d_{large}"]
        return row

    table = per_seed(res, measure)
    s1 = Stat(f"S1 = A({small}) - A({large}), A = test acc BN - standard", column(table, "s1"), pct=True)
    s2 = Stat(
        f"S2 = D({small}) - D({large}), D = abs(batch - running statistics acc) of BN", column(table, "s2"), pct=True
    )
    s1.thresholds = s2.thresholds = (0.0,)
    lines = []
    for s, r in table.items():
        gap = ", ".join(f"{fmt(r[f'batch_bn_{b}'], True)} vs {fmt(r[f'running_bn_{b}'], True)}" for b in batches)
        sizes = ", ".join(str(b) for b in batches)
        lines.append(
            f"seed {s}: test acc at batch {sizes}: {_grid_line(r, 'test', batches)}; BN batch- vs running-"
            f"statistics acc: {gap}"
        )
    lrs = ", ".join(f"{lr:g} at {b}" for lr, b in grid["vgg16_bn"])
    notes = [
        f"every batch sees the same number of training images (scale.batch_study); LR scaled linearly with the "
        f"batch ({lrs}); batch side: train-mode accuracy of the last 50 steps' batches; running side: eval-mode "
        "accuracy on the fixed training subset; a diverged run counts as 10%",
        "rule: sub-test 1 passes when S1's whole interval is below 0 (BN's advantage shrinks with the batch), "
        "sub-test 2 when S2's is above 0 (the statistics gap grows as the batch shrinks); both = supported, one = "
        "partly, none = not supported",
    ]
    tests = [
        (s1, _below_0, "BN's lead over the standard net does not shrink at the smallest batch"),
        (s2, _above_0, "the gap between batch and running statistics does not grow as the batch shrinks"),
    ]
    return _close(c, table, tests, lines, notes)


# ------------------------------------------------------------------------------------------------- B6


def matched_gap(res: Results, rid: str, level: float, window: int = WINDOW) -> dict:
    """Train-subset acc - test acc at the first evaluation where the smoothed training loss (of the last
    training step up to it: the evaluation after step t-1 is recorded at step t) is <= level."""
    loss = smoothed_train(res, rid, "loss", window)
    e = eval_rows(res, rid).dropna(subset=["train_eval_acc", "test_acc"])
    reached = [s for s in e.index if s > 0 and loss.asof(s) <= level * (1 + 1e-12)]
    if not reached:
        raise Missing(f"run {rid} never reaches the matched training loss {level:.4g} at an evaluation")
    step = int(reached[0])
    return {"step": step, "gap": float(e.loc[step, "train_eval_acc"] - e.loc[step, "test_acc"])}


def check_b6(res: Results, scale=None) -> Study:
    c = Study("B6", NOT_RUN, figure="beyond_regularisation")

    def measure(seed):
        std, bn = run_id_of(res, "vgg16", VGG_LR, scale, seed), run_id_of(res, "vgg16_bn", VGG_LR, scale, seed)
        level = max(final_train_loss(res, std), final_train_loss(res, bn))
        a, b = matched_gap(res, std, level), matched_gap(res, bn, level)
        return {"level": level, "step_std": a["step"], "step_bn": b["step"], "gap_std": a["gap"], "gap_bn": b["gap"]}

    table = per_seed(res, measure)
    for row in table.values():
        row["gap_diff"] = row["gap_bn"] - row["gap_std"]
    g = Stat("G = gap BN - gap standard (train-subset acc - test acc)", column(table, "gap_diff"), pct=True)
    g.thresholds = (0.0,)
    lines = [
        f"seed {s}: matched smoothed training loss {fmt(r['level'])}; standard reaches it at step {r['step_std']} "
        f"(gap {fmt(r['gap_std'], True)}), BN at step {r['step_bn']} (gap {fmt(r['gap_bn'], True)})"
        for s, r in table.items()
    ]
    rule = (
        "rule: supported if the whole interval of G is below 0; not supported if at or above 0; otherwise inconclusive"
    )
    against = "BN's train-test gap is not smaller than the standard net's at the same training loss"
    return _judge_one(c, table, g, lambda x: SUPPORTED if x < 0 else NOT_SUPPORTED, lines, [rule], against)


# ------------------------------------------------------------------------------------------------- B7


def gradient_spread(res: Results, rid: str) -> pd.Series:
    """Per measured step: log10(max_k / min_k) of ||grad W_k|| over the conv layers #1..#13."""
    cols = {k: required_series(res, rid, "gradnorms", "grad_norm", k) for k in CONV_LAYERS}
    g = pd.DataFrame(cols).replace([np.inf, -np.inf], np.nan).dropna()
    g = g[(g > 0).all(axis=1)]
    return np.log10(g.max(axis=1) / g.min(axis=1))


def check_b7(res: Results, scale=None) -> Study:
    c = Study("B7", NOT_RUN, figure="beyond_gradients")

    def measure(seed):
        std, bn = run_id_of(res, "vgg16", VGG_LR, scale, seed), run_id_of(res, "vgg16_bn", VGG_LR, scale, seed)
        s_std, s_bn = gradient_spread(res, std), gradient_spread(res, bn)
        if 0 not in s_std.index or 0 not in s_bn.index:
            raise Missing(f"no gradient norms at step 0 in {std} or {bn}")
        return {
            "spread0_std": float(s_std.loc[0]),
            "spread0_bn": float(s_bn.loc[0]),
            "spread_std": float(s_std.drop(0).median()),
            "spread_bn": float(s_bn.drop(0).median()),
        }

    table = per_seed(res, measure)
    for row in table.values():
        row["v0"] = row["spread0_bn"] - row["spread0_std"]
        row["v1"] = row["spread_bn"] - row["spread_std"]
    v0 = Stat(
        "V0 = spread BN - standard at step 0 (log10 max/min layer grad norm)", column(table, "v0"), thresholds=(0.0,)
    )
    v1 = Stat("V1 = the same, median over training", column(table, "v1"), thresholds=(0.0,))
    lines = [
        f"seed {s}: spread of conv-layer gradient norms (log10 max/min over #1..#13) at step 0: standard "
        f"{fmt(r['spread0_std'])}, BN {fmt(r['spread0_bn'])}; median over training: standard "
        f"{fmt(r['spread_std'])}, BN {fmt(r['spread_bn'])}"
        for s, r in table.items()
    ]
    rule = (
        "rule: each sub-test passes when its whole interval is below 0; both = supported, one = partly, none = "
        "not supported; inconclusive when an inconclusive sub-test could change that"
    )
    tests = [
        (v0, _below_0, "at initialisation BN's gradient norms spread over the layers no less than the standard net's"),
        (v1, _below_0, "during training BN's gradient norms spread over the layers no less than the standard net's"),
    ]
    return _close(c, table, tests, lines, [rule])


# ------------------------------------------------------------------------------------------------- B8


def statistics_gap(res: Results, rid: str, window: int = WINDOW) -> pd.DataFrame:
    """Per evaluation: acc_batch (smoothed train-mode batch acc), acc_running (eval-mode train-subset acc)."""
    batch = smoothed_acc(res, rid, window)
    e = eval_rows(res, rid).dropna(subset=["train_eval_acc"])
    steps = [s for s in e.index if s in batch.index and s > 0]
    out = pd.DataFrame({"acc_batch": batch.loc[steps].to_numpy(), "acc_running": e.loc[steps, "train_eval_acc"]})
    out.index = steps
    if not len(out):
        raise Missing(f"run {rid} has no evaluation after step 0")
    return out


def check_b8(res: Results, scale=None) -> Study:
    c = Study("B8", NOT_RUN, figure="beyond_inference")

    def measure(seed):
        row = {}
        for key, model in (("bn", "vgg16_bn"), ("noisy", "vgg16_noisy_bn")):
            last = statistics_gap(res, run_id_of(res, model, VGG_LR, scale, seed)).iloc[-1]
            row |= {f"batch_{key}": last.acc_batch, f"running_{key}": last.acc_running}
            row[f"d_{key}"] = last.acc_running - last.acc_batch
        return row

    table = per_seed(res, measure)
    d_bn = Stat("D_BN = running - batch statistics acc, BN", column(table, "d_bn"), pct=True)
    d_noisy = Stat("D_noisy = the same, noisy BN (batch side with its noise)", column(table, "d_noisy"), pct=True)
    for stat in (d_bn, d_noisy):
        stat.thresholds = (-0.02, 0.02)
    lines = [
        f"seed {s}: last evaluation: BN batch-statistics acc {fmt(r['batch_bn'], True)}, running-statistics "
        f"acc {fmt(r['running_bn'], True)}; noisy BN {fmt(r['batch_noisy'], True)} (with its noise) vs "
        f"{fmt(r['running_noisy'], True)}"
        for s, r in table.items()
    ]
    notes = [
        "batch side: train-mode batch accuracy of the step's batch before its update (rolling 50 steps); running "
        "side: eval-mode accuracy on the fixed 5,000-image training subset; noisy BN without its noise but with "
        "batch statistics is not recorded",
        "rule: a sub-test passes when its whole interval lies within [-2, +2] points, fails when wholly outside; "
        "both = supported, one = partly, none = not supported",
    ]
    tests = [
        (d_bn, _within_2_points, "running statistics do not stand in for BN's batch statistics (more than 2 points)"),
        (d_noisy, _within_2_points, "running statistics do not stand in for noisy BN's noisy batch statistics"),
    ]
    return _close(c, table, tests, lines, notes)


# ------------------------------------------------------------------------------------------------- B9


def weight_growth(res: Results, rid: str) -> float:
    """Median over conv layers #1..#13 of log10(||W_k|| at the last measured step / at step 0)."""
    growth = []
    for k in CONV_LAYERS:
        w = required_series(res, rid, "gradnorms", "weight_norm", k).dropna()
        if 0 not in w.index or len(w) < 2:
            raise Missing(f"run {rid} has no weight norms of layer #{k} at step 0 and later")
        growth.append(np.log10(w.iloc[-1] / w.loc[0]))
    return float(np.median(growth))


def check_b9(res: Results, scale=None) -> Study:
    c = Study("B9", NOT_RUN, figure="beyond_effective_lr")

    def measure(seed):
        std, bn = run_id_of(res, "vgg16", VGG_LR, scale, seed), run_id_of(res, "vgg16_bn", VGG_LR, scale, seed)
        g_std, g_bn = weight_growth(res, std), weight_growth(res, bn)
        return {"growth_std": g_std, "growth_bn": g_bn, "diff": g_bn - g_std}

    table = per_seed(res, measure)
    e_bn = Stat("E_BN = median log10(‖W‖ last / ‖W‖ at step 0), BN", column(table, "growth_bn"), thresholds=(0.0,))
    e_diff = Stat("E_diff = E_BN - the same for the standard net", column(table, "diff"), thresholds=(0.0,))
    lines = [
        f"seed {s}: median weight-norm growth (log10) over conv layers: BN {fmt(r['growth_bn'])} (effective LR "
        f"x{fmt(10 ** (-2 * r['growth_bn']))}), standard {fmt(r['growth_std'])} (x{fmt(10 ** (-2 * r['growth_std']))})"
        for s, r in table.items()
    ]
    rule = (
        "rule: sub-test 1 passes when E_BN's whole interval is above 0, sub-test 2 when E_diff's is; both = "
        "supported, one = partly, none = not supported"
    )
    tests = [
        (e_bn, _above_0, "BN's conv weights do not grow, so its effective learning rate does not fall"),
        (e_diff, _above_0, "BN's conv weights do not grow more than the standard net's"),
    ]
    return _close(c, table, tests, lines, [rule])


# ------------------------------------------------------------------------------------------------ B10


def stable_rank_at(res: Results, rid: str, layer: int = RANK_LAYER) -> tuple[float, float]:
    """(stable rank at step 0, at the last measured step) of the layer's representation."""
    s = required_series(res, rid, "rank", "stable_rank", layer).dropna()
    if 0 not in s.index or len(s) < 2:
        raise Missing(f"run {rid} has no stable rank of layer #{layer} at step 0 and later")
    return float(s.loc[0]), float(s.iloc[-1])


def check_b10(res: Results, scale=None) -> Study:
    c = Study("B10", NOT_RUN, figure="beyond_rank")

    def measure(seed):
        std = run_id_of(res, "dln", DLN_LR, scale, seed, probes=("rank",))
        bn = run_id_of(res, "dln_bn", DLN_LR, scale, seed, probes=("rank",))
        (s0, s1), (b0, b1) = stable_rank_at(res, std), stable_rank_at(res, bn)
        return {
            "std0": s0,
            "std1": s1,
            "bn0": b0,
            "bn1": b1,
            "r0": claims.log_ratio(b0, s0),
            "r1": claims.log_ratio(b1, s1),
        }

    table = per_seed(res, measure)
    r0 = Stat(
        f"R0 = log10(stable rank BN / standard), layer #{RANK_LAYER}, step 0", column(table, "r0"), thresholds=(0.0,)
    )
    r1 = Stat("R1 = the same at the last measured step", column(table, "r1"), thresholds=(0.0,))
    lines = [
        f"seed {s}: stable rank of layer #{RANK_LAYER} (of at most 10): standard {fmt(r['std0'])} at step 0, "
        f"{fmt(r['std1'])} at the end; BN {fmt(r['bn0'])}, {fmt(r['bn1'])}"
        for s, r in table.items()
    ]
    rule = (
        "rule: each sub-test passes when its whole interval is above 0; both = supported, one = partly, none = not "
        "supported; inconclusive when an inconclusive sub-test could change that"
    )
    tests = [
        (r0, _above_0, "at initialisation BN's deep representation has no higher stable rank than the standard DLN's"),
        (r1, _above_0, "after training BN's deep representation has no higher stable rank than the standard DLN's"),
    ]
    return _close(c, table, tests, lines, [rule])


CHECKS = {
    "B1": check_b1,
    "B2": check_b2,
    "B3": check_b3,
    "B4": check_b4,
    "B5": check_b5,
    "B6": check_b6,
    "B7": check_b7,
    "B8": check_b8,
    "B9": check_b9,
    "B10": check_b10,
}


def run_studies(res: Results, scale: str | None = None) -> list[Study]:
    """Every study B1..B10 in order; one whose runs are missing is not run, with the command that trains them."""
    out = []
    for study, fn in CHECKS.items():
        try:
            out.append(fn(res, scale))
        except Missing as e:
            out.append(Study(study, NOT_RUN, [f"not run: {e}", claims.train_hint(study, scale)]))
    return out


__all__ = ["STUDIES", "Study", "run_studies", "SUPPORTED", "PARTLY", "NOT_SUPPORTED", "PASS", "FAIL"]
