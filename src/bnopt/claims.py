"""The paper's claims C1-C9 (docs/PROTOCOL.md) as numeric checks against run records.

Each check reads a `Results` (from `load_runs`), measures named numbers per seed, summarises each judged
statistic over seeds (mean and a 95% interval: Student-t for means, a percentile bootstrap for ratios and
fractions), puts the paper's reference beside them and returns a verdict: reproduced | partly | not
reproduced | inconclusive (the interval straddles a threshold of the rule) | not run. Thresholds are fixed
here and in docs/PROTOCOL.md section 2, and never tuned to make a check pass. With one seed there is no
interval: the verdict is the point verdict, labelled "1 seed, no interval".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy import stats

from . import experiments
from .bn_unit import random_bn_unit
from .probes import ICS_LAYERS
from .readers import (
    CHANCE,
    DLN_LR,
    VGG_LR,
    Missing,
    final_eval,
    final_smoothed_acc,
    final_train_acc,
    final_train_loss,
    probe_series,
    run_status,
    smoothed_acc,
)
from .results import MissingRuns, Requires, Results, select_runs

REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_RUN = "reproduced", "partly", "not reproduced", "not run"
INCONCLUSIVE = "inconclusive"
PASS, FAIL = "pass", "fail"
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 10_000, 0

CLAIMS = {
    "C1": "BN speeds up training at the same learning rate",
    "C2": "BN makes a larger learning rate usable (standard VGG at LR 0.5 does not train, BN does)",
    "C3": "BN improves test accuracy (about 83% vs 80%, no augmentation)",
    "C4": "Noisy BN trains about as well as BN although its layer distributions drift far more",
    "C5": "BN does not reduce internal covariate shift (Definition 2.1); it is often larger",
    "C6": "BN makes the loss landscape smoother: loss variation, gradient predictiveness, effective beta",
    "C7": "l1, l2, l-infinity normalisations give the same or better optimisation benefit",
    "C8": "The same holds in a 25-layer deep linear network",
    "C9": "Theory: BN bounds the gradient norm w.r.t. layer activations (Thm 4.1)",
}


@dataclass
class Stat:
    """One judged statistic over seeds: per-seed values, their mean and a 95% interval.

    `method`: "t" (Student-t interval of the mean, n-1 degrees of freedom) or "bootstrap" (percentile
    bootstrap of the mean; used where the statistic is not a plain mean: ratios that can be infinite,
    fractions of pairs, or any non-finite per-seed value). `thresholds`: the rule's cut points; the interval
    is judged by the verdicts of the values in it (`candidates`). `pct`: shown as a percentage."""

    name: str
    values: dict
    method: str = "t"
    thresholds: tuple = ()
    pct: bool = False
    verdict: str = ""
    mean: float = field(init=False)
    lo: float = field(init=False)
    hi: float = field(init=False)

    def __post_init__(self):
        vals = np.array([float(v) for v in self.values.values()], dtype=float)
        vals = vals[~np.isnan(vals)]
        if self.method == "t" and not np.isfinite(vals).all():
            self.method = "bootstrap"
        self.mean, self.lo, self.hi = interval(vals, self.method)

    @property
    def n(self) -> int:
        return int(sum(1 for v in self.values.values() if float(v) == float(v)))

    @property
    def label(self) -> str:
        if self.n <= 1:
            return "1 seed, no interval"
        kind = "t-interval" if self.method == "t" else "percentile bootstrap"
        return f"{self.n} seeds, 95% {kind}"

    def candidates(self) -> list[float]:
        """Values inside [lo, hi] that meet every verdict the interval can give: its ends and both sides
        of each threshold strictly inside it (the rules are monotone step functions of the statistic)."""
        if self.lo != self.lo:
            return [float("nan")]
        out = [self.lo, self.hi]
        for t in self.thresholds:
            if self.lo <= t <= self.hi:
                out += [t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf)]
        return [v for v in out if self.lo <= v <= self.hi] or [self.lo]

    def fmt(self, x: float) -> str:
        return fmt(x, self.pct)

    def summary(self) -> str:
        per_seed = ", ".join(f"s{s}: {self.fmt(v)}" for s, v in self.values.items())
        body = f"{self.name}: per seed {per_seed}; mean {self.fmt(self.mean)}"
        if self.n > 1:
            body += f", 95% interval [{self.fmt(self.lo)}, {self.fmt(self.hi)}]"
        return body + f" ({self.label})" + (f" -> {self.verdict}" if self.verdict else "")


def t_quantile(q: float, df: int) -> float:
    """Quantile q of Student's t with df degrees of freedom."""
    return float(stats.t.ppf(q, df))


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, lo, hi): mean +- t(1 - alpha/2, n-1) s / sqrt(n); one value: lo = hi = the value."""
    v = np.asarray(values, dtype=float)
    if not len(v):
        return (float("nan"),) * 3
    m = float(v.mean())
    if len(v) == 1:
        return m, m, m
    half = t_quantile(0.5 + confidence / 2, len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return m, m - half, m + half


def bootstrap_interval(
    values, confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float, float]:
    """(mean, lo, hi): percentile bootstrap of the mean over seeds, fixed generator seed. The bounds are
    order statistics of the resampled means (no interpolation), so infinite values stay meaningful."""
    v = np.asarray(values, dtype=float)
    if not len(v):
        return (float("nan"),) * 3
    m = float(v.mean())
    if len(v) == 1:
        return m, m, m
    idx = np.random.default_rng(seed).integers(0, len(v), size=(resamples, len(v)))
    means = np.sort(v[idx].mean(axis=1))
    alpha = (1 - confidence) / 2
    lo = means[int(math.floor(alpha * (resamples - 1)))]
    hi = means[int(math.ceil((1 - alpha) * (resamples - 1)))]
    return m, float(lo), float(hi)


def interval(values, method: str = "t") -> tuple[float, float, float]:
    return t_interval(values) if method == "t" else bootstrap_interval(values)


def judge(stats: list[Stat], rule: Callable[..., str]) -> str:
    """The rule's verdict when every combination of values inside the statistics' intervals gives the
    same verdict; INCONCLUSIVE otherwise. `rule` takes the statistics' values in order."""
    outcomes = {rule(*combo) for combo in itertools.product(*(s.candidates() for s in stats))}
    return outcomes.pop() if len(outcomes) == 1 else INCONCLUSIVE


def subtest(stat: Stat, passes: Callable[[float], bool]) -> str:
    """pass / fail / inconclusive of one sub-test on one statistic's interval (sets stat.verdict)."""
    stat.verdict = judge([stat], lambda x: PASS if passes(x) else FAIL)
    return stat.verdict


@dataclass
class Check:
    claim: str
    verdict: str
    evidence: list[str] = field(default_factory=list)
    reference: str = ""
    figure: str = ""
    numbers: dict = field(default_factory=dict)
    seeds: list = field(default_factory=list)  # seeds behind the verdict (empty: no runs, e.g. C9)
    stats: list = field(default_factory=list)  # the judged statistics (Stat)
    per_seed: dict = field(default_factory=dict)  # seed -> {number: value}
    cell: str = ""  # the numbers in one line where there are no per-seed statistics (a theorem's check)

    @property
    def text(self) -> str:
        return CLAIMS[self.claim]

    @property
    def n_seeds(self) -> str:
        """ "N" or "min-max" over the judged statistics (sub-tests can rest on different seeds); "-" if none."""
        ns = sorted({s.n for s in self.stats}) or ([len(self.seeds)] if self.seeds else [])
        if not ns:
            return "-"
        return str(ns[0]) if ns[0] == ns[-1] else f"{ns[0]}-{ns[-1]}"


# ----------------------------------------------------------------------------------------------- readers


def seeds_of(res: Results) -> list:
    """The seeds in the runs table, sorted ([None] when the table has no seed column)."""
    runs = res.runs
    if runs is None or "seed" not in runs or not len(runs):
        return [None]
    return sorted(int(s) for s in runs["seed"].dropna().unique())


def run_id_of(res: Results, model: str, lr: float, scale: str | None, seed: int | None = None, **requires) -> str:
    """The run of (model, lr, seed) a check reads; `requires`: the other `results.Requires` it must meet, e.g.
    probes=(...), the probe records it must hold (a run trained with other probes, e.g. a beyond study's, has
    the same training but not those records), init_scale (B3) or batch_size (B5)."""
    wanted = Requires(seed=seed, **requires)
    try:
        return str(select_runs(res, [(model, lr)], scale, wanted)[(model, float(lr))]["run_id"])
    except MissingRuns:
        raise Missing(f"no run of {model} at LR {lr:g}{wanted.describe()}") from None


def _seed_key(seed) -> tuple:
    return (seed is None, -1 if seed is None else seed)


def per_seed(res: Results, measure: Callable[[int | None], dict]) -> dict:
    """{seed: measure(seed)} over the seeds whose runs all exist; raises the first Missing if none."""
    out, first = {}, None
    for s in seeds_of(res):
        try:
            out[s] = measure(s)
        except Missing as e:
            first = first or e
    if not out:
        raise first or Missing("no runs")
    return out


def seed_means(table: dict) -> dict:
    """Mean over seeds of each number measured per seed (non-finite kept, NaN dropped)."""
    keys = dict.fromkeys(k for row in table.values() for k in row)
    out = {}
    for k in keys:
        vals = [float(row[k]) for row in table.values() if k in row and _is_num(row[k])]
        vals = [v for v in vals if v == v]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out


def _is_num(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def column(table: dict, key: str) -> dict:
    return {s: row[key] for s, row in table.items() if key in row}


def log_ratio(a: float, b: float) -> float:
    """log10(a / b); -inf / inf at 0; NaN when either is NaN or negative."""
    if not (a == a and b == b) or a < 0 or b < 0:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.log10(a) - np.log10(b))


def _decide(c: Check, stat: Stat, rule: str) -> Check:
    """A claim one statistic decides (C1, C3, C5): its summary and the rule close the evidence, and its
    verdict is the claim's."""
    c.evidence += [stat.summary(), rule]
    c.verdict = stat.verdict
    return c


def fill(c: Check, table: dict, stats: list[Stat]) -> None:
    c.per_seed, c.seeds, c.stats = table, list(table), stats
    c.numbers = seed_means(table) | {"n_seeds": len(table)}


def steps_to(curve: pd.Series, threshold: float) -> float:
    hit = curve.index[curve.to_numpy() >= threshold]
    return float(hit[0]) if len(hit) else float("inf")


def median(s: pd.Series) -> float:
    s = s.replace([np.inf, -np.inf], np.nan).dropna()
    return float(s.median()) if len(s) else float("nan")


def unit_drift(res: Results, rid: str, layers=(2, 9, 13)) -> float:
    """Mean over layers, consecutive measurements and units of |mu_{t+1} - mu_t| (Fig 8's first panel)."""
    h = res.histograms(rid)
    vals = []
    for k in layers:
        means = h.get(f"layer{k}_unit_mean")
        if means is not None and len(means) > 1:
            vals.append(np.abs(np.diff(means, axis=0)).mean())
    if not vals:
        raise Missing(f"run {rid} has no per-unit activation moments (activations probe)")
    return float(np.mean(vals))


def fmt(x: float, pct: bool = False) -> str:
    if x != x:
        return "n/a"
    if abs(x) == float("inf"):
        return "inf" if x > 0 else "-inf"
    return f"{100 * x:.1f}%" if pct else f"{x:.4g}"


def _verdict(passed: int, total: int) -> str:
    if total == 0:
        return NOT_RUN
    return REPRODUCED if passed == total else (PARTLY if passed > 0 else NOT_REPRODUCED)


def _count_rule(*outcomes: str) -> str:
    """All sub-tests pass = reproduced, some = partly, none = not reproduced (values are PASS/FAIL)."""
    return _verdict(sum(o == PASS for o in outcomes), len(outcomes))


def subtests_verdict(verdicts: list[str]) -> str:
    """The claim's verdict from its sub-tests' interval verdicts: the count rule when it does not depend
    on how the inconclusive sub-tests turn out, INCONCLUSIVE otherwise."""
    options = [[PASS, FAIL] if v == INCONCLUSIVE else [v] for v in verdicts]
    outcomes = {_count_rule(*combo) for combo in itertools.product(*options)}
    return outcomes.pop() if len(outcomes) == 1 else INCONCLUSIVE


# ----------------------------------------------------------------------------------------------- checks


def check_c1(res: Results, scale=None) -> Check:
    c = Check(
        "C1", NOT_RUN, reference="BN near 100% train acc by ~3-5k steps, standard by ~10k (Fig 1a)", figure="fig1"
    )

    def measure(seed):
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

    table = per_seed(res, measure)
    ratio = Stat("ratio steps_std / steps_BN", column(table, "ratio"), "bootstrap", thresholds=(1.0, 1.5))
    ratio.verdict = judge([ratio], lambda r: REPRODUCED if r >= 1.5 else (PARTLY if r > 1.0 else NOT_REPRODUCED))
    fill(c, table, [ratio])
    c.evidence = [
        f"seed {s}: steps to reach {fmt(r['target_acc'], True)} smoothed train acc (80% of BN's final) at "
        f"LR 0.1: BN {r['steps_bn']:.0f}, standard {r['steps_std']:.0f}"
        + (" (never)" if r["steps_std"] == float("inf") else "")
        + f"; final smoothed batch acc: BN {fmt(r['final_smoothed_acc_bn'], True)}, "
        f"standard {fmt(r['final_smoothed_acc_std'], True)}"
        for s, r in table.items()
    ]
    return _decide(
        c,
        ratio,
        "rule: reproduced if the whole interval of the ratio is >= 1.5; partly if within (1, 1.5); "
        "not reproduced if <= 1; otherwise inconclusive",
    )


def check_c2(res: Results, scale=None) -> Check:
    c = Check(
        "C2", NOT_RUN, reference="standard VGG at LR 0.5 stays near 10%; BN at 0.5 trains (Fig 1a/b)", figure="fig1"
    )

    def measure(seed):
        std, bn = run_id_of(res, "vgg16", 0.5, scale, seed), run_id_of(res, "vgg16_bn", 0.5, scale, seed)
        diverged = run_status(res, std) == "diverged"
        return {
            "acc_std_lr0.5": CHANCE if diverged else final_smoothed_acc(res, std),
            "acc_bn_lr0.5": final_smoothed_acc(res, bn),
            "eval_acc_std_lr0.5": final_train_acc(res, std),
            "eval_acc_bn_lr0.5": final_train_acc(res, bn),
            "std_diverged": bool(diverged),
        }

    table = per_seed(res, measure)
    a_std = Stat("standard final smoothed acc", column(table, "acc_std_lr0.5"), thresholds=(0.2,), pct=True)
    a_bn = Stat("BN final smoothed acc", column(table, "acc_bn_lr0.5"), thresholds=(0.5, 0.8), pct=True)
    subtest(a_std, lambda a: a < 0.2)
    a_bn.verdict = judge([a_bn], lambda a: "> 80%" if a > 0.8 else ("(50%, 80%]" if a > 0.5 else "<= 50%"))

    def rule(s, b):
        if s < 0.2 and b > 0.8:
            return REPRODUCED
        return PARTLY if s < 0.2 and b > 0.5 else NOT_REPRODUCED

    fill(c, table, [a_std, a_bn])
    c.numbers.pop("std_diverged", None)
    c.evidence = [
        f"seed {s}: final smoothed train-mode acc at LR 0.5: standard {fmt(r['acc_std_lr0.5'], True)}"
        + (" (diverged)" if r["std_diverged"] else "")
        + f", BN {fmt(r['acc_bn_lr0.5'], True)} (eval-mode train-subset acc, not judged: standard "
        f"{fmt(r['eval_acc_std_lr0.5'], True)}, BN {fmt(r['eval_acc_bn_lr0.5'], True)})"
        for s, r in table.items()
    ]
    c.evidence += [
        a_std.summary(),
        a_bn.summary(),
        "rule: reproduced if standard < 20% and BN > 80%; partly if standard < 20% and BN > 50% "
        "(each over its whole interval; inconclusive when the intervals allow more than one verdict)",
    ]
    c.verdict = judge([a_std, a_bn], rule)
    return c


def check_c3(res: Results, scale=None) -> Check:
    c = Check("C3", NOT_RUN, reference="test acc about 83% with BN vs 80% without, 15k steps (Fig 1b)", figure="fig1")

    def measure(seed):
        std, bn = run_id_of(res, "vgg16", VGG_LR, scale, seed), run_id_of(res, "vgg16_bn", VGG_LR, scale, seed)
        t_std, t_bn = final_eval(res, std, "test_acc"), final_eval(res, bn, "test_acc")
        return {
            "test_acc_std": t_std,
            "test_acc_bn": t_bn,
            "gap": t_bn - t_std,
            "exact_std": final_eval(res, std, "test_acc_exact"),
            "exact_bn": final_eval(res, bn, "test_acc_exact"),
        }

    table = per_seed(res, measure)
    gap = Stat("gap test acc BN - standard", column(table, "gap"), thresholds=(0.0, 0.01), pct=True)
    gap.verdict = judge([gap], lambda g: REPRODUCED if g >= 0.01 else (PARTLY if g > 0 else NOT_REPRODUCED))
    fill(c, table, [gap])
    c.evidence = [
        f"seed {s}: final test acc at LR 0.1: BN {fmt(r['test_acc_bn'], True)}, standard "
        f"{fmt(r['test_acc_std'], True)} (exact-image subset: {fmt(r['exact_bn'], True)} vs "
        f"{fmt(r['exact_std'], True)})"
        for s, r in table.items()
    ]
    return _decide(
        c,
        gap,
        "rule: reproduced if the whole interval of the gap is >= 1 point; partly if within (0, 1); "
        "not reproduced if <= 0; otherwise inconclusive",
    )


def check_c4(res: Results, scale=None) -> Check:
    c = Check(
        "C4",
        NOT_RUN,
        reference="noisy BN trains about as well as BN (Fig 2, training accuracy under its noise); its per-step "
        "moment changes reach ~1 while standard and BN stay near 0 (Fig 8)",
        figure="fig2, fig8",
    )

    def measure(seed):
        std, bn, noisy = (run_id_of(res, m, VGG_LR, scale, seed) for m in ("vgg16", "vgg16_bn", "vgg16_noisy_bn"))
        a_std, a_bn, a_noisy = (final_smoothed_acc(res, r) for r in (std, bn, noisy))
        d_bn, d_noisy, d_std = unit_drift(res, bn), unit_drift(res, noisy), unit_drift(res, std)
        return {
            "acc_bn": a_bn,
            "acc_noisy": a_noisy,
            "acc_std": a_std,
            "acc_diff": a_noisy - a_bn,
            "eval_acc_bn": final_train_acc(res, bn),
            "eval_acc_noisy": final_train_acc(res, noisy),
            "eval_acc_std": final_train_acc(res, std),
            "drift_bn": d_bn,
            "drift_noisy": d_noisy,
            "drift_std": d_std,
            "drift_ratio": d_noisy / d_bn if d_bn > 0 else float("inf"),
        }

    table = per_seed(res, measure)
    diff = Stat(
        "(a) acc noisy BN - BN (smoothed, train mode)", column(table, "acc_diff"), thresholds=(-0.05,), pct=True
    )
    ratio = Stat("(b) drift noisy BN / BN", column(table, "drift_ratio"), "bootstrap", thresholds=(2.0,))
    verdicts = [subtest(diff, lambda d: d >= -0.05), subtest(ratio, lambda r: r >= 2.0)]
    fill(c, table, [diff, ratio])
    c.evidence = [
        f"seed {s}: final smoothed train-mode acc at LR 0.1: noisy BN {fmt(r['acc_noisy'], True)}, "
        f"BN {fmt(r['acc_bn'], True)}, standard {fmt(r['acc_std'], True)} (eval-mode train-subset acc: "
        f"{fmt(r['eval_acc_noisy'], True)}, {fmt(r['eval_acc_bn'], True)}, {fmt(r['eval_acc_std'], True)}); "
        f"mean |mu_(t+1) - mu_t| per unit, layers #2, #9, #13: noisy BN {fmt(r['drift_noisy'])}, "
        f"BN {fmt(r['drift_bn'])}, standard {fmt(r['drift_std'])}"
        for s, r in table.items()
    ]
    c.evidence += [
        diff.summary(),
        ratio.summary(),
        "the judged accuracy is the train-mode batch accuracy under the network's own noise (Fig 2's quantity); "
        "the eval-mode accuracy differs because eval mode uses running statistics and no noise, which is "
        "not the network noisy BN trained",
        "rule: (a) noisy BN within 5 points of BN, (b) its drift >= 2x BN's, each over its whole interval; "
        "both = reproduced, one = partly; inconclusive when an inconclusive sub-test could change that",
    ]
    c.verdict = subtests_verdict(verdicts)
    return c


ICS_EXPERIMENTS = {"vgg": "fig3_ics_vgg", "dln": "fig3_ics_dln"}


def _ics_pairs(res, scale, family):
    """((standard, BN), lr, layer) of Fig 3's runs: networks and LRs from its experiment config (standard
    first in the sweep), layers the ICS probe's defaults for the family."""
    pairs = experiments.pairs(ICS_EXPERIMENTS[family])
    models = tuple(dict.fromkeys(m for m, _ in pairs))
    lrs = list(dict.fromkeys(lr for _, lr in pairs))
    return [(models, lr, k) for lr in lrs for k in ICS_LAYERS[family]]


def check_c5(res: Results, scale=None) -> Check:
    c = Check(
        "C5",
        NOT_RUN,
        reference="BN's ICS (l2 difference, cosine) is not smaller, often larger, than the "
        "standard net's (Fig 3a VGG layers #5, #10; Fig 3b DLN #9, #17)",
        figure="fig3",
    )
    lines, pair_sets = {}, {}

    def measure(seed):
        not_reduced, total = 0, 0
        lines[seed], pair_sets[seed] = [], set()
        for family in ("vgg", "dln"):
            for (m_std, m_bn), lr, k in _ics_pairs(res, scale, family):
                try:
                    std = run_id_of(res, m_std, lr, scale, seed, probes=("ics",))
                    bn = run_id_of(res, m_bn, lr, scale, seed, probes=("ics",))
                except Missing:
                    continue
                l2_s, l2_b = (
                    median(probe_series(res, std, "ics", "l2", k)),
                    median(probe_series(res, bn, "ics", "l2", k)),
                )
                cs_s, cs_b = (
                    median(probe_series(res, std, "ics", "cos", k)),
                    median(probe_series(res, bn, "ics", "cos", k)),
                )
                if l2_s != l2_s or l2_b != l2_b:
                    continue
                reduced = l2_b < l2_s and cs_b > cs_s  # BN better on both measures
                total += 1
                not_reduced += not reduced
                pair_sets[seed].add((family, k, lr))
                lines[seed].append(
                    f"seed {seed} {family} layer #{k} LR {lr:g}: median l2 BN {fmt(l2_b)} vs std {fmt(l2_s)}; "
                    f"median cos BN {fmt(cs_b)} vs std {fmt(cs_s)} -> "
                    + ("BN reduces ICS" if reduced else "BN does not reduce ICS")
                )
        if total == 0:
            raise Missing("no ICS probe records")
        return {"pairs": total, "pairs_not_reduced": not_reduced, "fraction_not_reduced": not_reduced / total}

    table = per_seed(res, measure)
    # the fraction is comparable over seeds only on the same pairs: keep the seeds that have every pair
    # any seed has (else those with the most pairs), e.g. DLN-only seeds beyond the VGG runs' seeds drop out
    union = set().union(*(pair_sets[s] for s in table))
    best = max(len(pair_sets[s]) for s in table)
    keep = [s for s in table if pair_sets[s] == union] or [s for s in table if len(pair_sets[s]) == best]
    dropped = [s for s in table if s not in keep]
    table = {s: table[s] for s in keep}
    frac = Stat(
        "fraction of pairs where BN does not reduce ICS",
        column(table, "fraction_not_reduced"),
        "bootstrap",
        thresholds=(0.5, 0.75),
        pct=True,
    )
    frac.verdict = judge([frac], lambda f: REPRODUCED if f >= 0.75 else (PARTLY if f >= 0.5 else NOT_REPRODUCED))
    fill(c, table, [frac])
    c.evidence = [line for s in keep for line in lines[s]]
    if dropped:
        c.evidence.append(
            f"seeds {', '.join(map(str, dropped))} left out: they lack pairs the other seeds have "
            f"({len(union)} pairs in all)"
        )
    return _decide(
        c,
        frac,
        "rule: reproduced if BN does not reduce ICS (lower l2 and higher cosine) in >= 75% of "
        "(network, layer, LR) pairs over the whole interval; partly if in >= 50%; otherwise inconclusive "
        "when the interval straddles 50% or 75%",
    )


SMOOTHNESS = ("loss_range", "grad_diff_max", "beta")


def _smoothness(res, rid) -> dict:
    lo, hi = probe_series(res, rid, "landscape", "loss_min"), probe_series(res, rid, "landscape", "loss_max")
    grad_diff = probe_series(res, rid, "landscape", "grad_diff_max")
    return {
        "loss_range": median(hi - lo),
        "grad_diff_max": median(grad_diff),
        "beta": median(probe_series(res, rid, "landscape", "beta")),
        "grad_diff_peak": float(grad_diff.max()),
    }


def _smoothness_seed(res, std_model, bn_model, lr, scale, seed) -> dict:
    std = run_id_of(res, std_model, lr, scale, seed, probes=("landscape",))
    bn = run_id_of(res, bn_model, lr, scale, seed, probes=("landscape",))
    s, b = _smoothness(res, std), _smoothness(res, bn)
    if any(v != v for v in (*s.values(), *b.values())):
        raise Missing("no landscape probe records")
    out = {f"{std_model}_{k}": v for k, v in s.items()} | {f"{bn_model}_{k}": v for k, v in b.items()}
    out |= {f"log10_ratio_{k}": log_ratio(b[k], s[k]) for k in SMOOTHNESS}
    return out


def _smoothness_lines(table, std_model, bn_model, lr) -> list[str]:
    def g(r, m, k):
        return fmt(r[f"{m}_{k}"])

    return [
        f"seed {seed}: {bn_model.split('_')[0]} LR {lr:g}, medians over measured steps, BN vs standard: "
        f"loss range {g(r, bn_model, 'loss_range')} vs {g(r, std_model, 'loss_range')}; gradient "
        f"predictiveness (max ||grad diff||) {g(r, bn_model, 'grad_diff_max')} vs {g(r, std_model, 'grad_diff_max')} "
        f"(peaks {g(r, bn_model, 'grad_diff_peak')} vs {g(r, std_model, 'grad_diff_peak')}); effective beta "
        f"{g(r, bn_model, 'beta')} vs {g(r, std_model, 'beta')}"
        for seed, r in table.items()
    ]


def _smoothness_stats(table, prefix: str = "") -> list[Stat]:
    stats = [
        Stat(f"{prefix}log10(BN / standard) {k}", column(table, f"log10_ratio_{k}"), thresholds=(0.0,))
        for k in SMOOTHNESS
    ]
    for s in stats:
        subtest(s, lambda x: x < 0)
    return stats


def check_c6(res: Results, scale=None) -> Check:
    c = Check(
        "C6",
        NOT_RUN,
        reference="gradient predictiveness: standard peaks ~250, BN mostly < 30; effective "
        "beta: BN ~20 and flat, standard 5-45 (Fig 4)",
        figure="fig4, fig11",
    )
    table = per_seed(res, lambda seed: _smoothness_seed(res, "vgg16", "vgg16_bn", VGG_LR, scale, seed))
    stats = _smoothness_stats(table)
    fill(c, table, stats)
    c.evidence = _smoothness_lines(table, "vgg16", "vgg16_bn", VGG_LR) + [s.summary() for s in stats]
    c.evidence.append(
        "rule: BN lower (log10 ratio < 0 over the whole interval) on all three medians = reproduced, on some = "
        "partly; inconclusive when an inconclusive median could change that"
    )
    c.verdict = subtests_verdict([s.verdict for s in stats])
    return c


def _pair_table(res, scale, std_model, p_model, lr, key) -> dict:
    """{seed: {key: value}} for the seeds where both runs exist (empty if none)."""

    def measure(seed):
        a, b = run_id_of(res, std_model, lr, scale, seed), run_id_of(res, p_model, lr, scale, seed)
        return key(a, b)

    try:
        return per_seed(res, measure)
    except Missing:
        return {}


@dataclass(frozen=True)
class LpSubtest:
    """One family's half of C7: each l_p net against a reference net of the same family, per seed."""

    family: str  # VGG | DLN
    ref: str  # the reference model
    ref_name: str
    prefix: str  # the l_p models are prefix + l1 | l2 | linf
    lr: float
    measure: Callable[[Results, str], float]  # (results, run id) -> the run's number
    quantity: str
    keys: tuple[str, str]  # per-seed table keys of the l_p net's and the reference's number
    statistic: str  # the Stat's name; {p} is the norm
    compare: Callable[[float, float], float]  # (l_p number, reference number) -> statistic
    threshold: float
    passes: Callable[[float], bool]
    pct: bool


C7_SUBTESTS = (
    LpSubtest(
        "VGG",
        "vgg16_bn",
        "BN",
        "vgg16_",
        VGG_LR,
        final_train_acc,
        "final train-subset acc",
        ("acc", "acc_bn"),
        "acc {p} - BN",
        lambda x, ref: x - ref,
        -0.05,
        lambda d: d >= -0.05,
        True,
    ),
    LpSubtest(
        "DLN",
        "dln",
        "standard",
        "dln_",
        DLN_LR,
        final_train_loss,
        "final loss",
        ("loss", "loss_std"),
        "log10(loss {p} / standard)",
        log_ratio,
        0.0,
        lambda x: x < 0,
        False,
    ),
)


def check_c7(res: Results, scale=None) -> Check:
    c = Check(
        "C7",
        NOT_RUN,
        reference="l_p nets train as well as or better than BN (Fig 5a); DLN at 10k steps: "
        "l1 ~1e2 vs BN 5e2 vs standard 1.6e3 (Fig 5b)",
        figure="fig5, fig6, fig12, fig13",
    )
    stats, tables = [], {}
    for sub in C7_SUBTESTS:
        for p in ("l1", "l2", "linf"):
            model = f"{sub.prefix}{p}"
            t = _pair_table(
                res,
                scale,
                sub.ref,
                model,
                sub.lr,
                lambda ref, x, m=sub.measure: {"value": m(res, x), "ref": m(res, ref)},
            )
            if not t:
                c.evidence.append(f"{sub.family} {p}: not run (no {sub.ref} and {model} at LR {sub.lr:g} of one seed)")
                continue
            t = {s: {sub.keys[0]: r["value"], sub.keys[1]: r["ref"]} for s, r in t.items()}
            tables[f"{sub.family.lower()}_{p}"] = t
            value, ref = sub.keys
            c.evidence += [
                f"seed {s}: {sub.family} {p}: {sub.quantity} {fmt(r[value], sub.pct)} "
                f"vs {sub.ref_name} {fmt(r[ref], sub.pct)}"
                for s, r in t.items()
            ]
            st = Stat(
                f"{sub.family} {p}: {sub.statistic.format(p=p)}",
                {s: sub.compare(r[value], r[ref]) for s, r in t.items()},
                thresholds=(sub.threshold,),
                pct=sub.pct,
            )
            subtest(st, sub.passes)
            stats.append(st)
    if not stats:
        raise Missing("no l_p runs")
    c.stats = stats
    c.seeds = sorted({s for t in tables.values() for s in t}, key=_seed_key)
    c.per_seed = tables
    c.numbers = {"passed": sum(s.verdict == PASS for s in stats), "total": len(stats)}
    c.numbers |= {f"{k}_{n}": v for k, t in tables.items() for n, v in seed_means(t).items()}
    c.evidence += [s.summary() for s in stats]
    c.evidence.append(
        "rule: VGG l_p within 5 points of BN's train acc; DLN l_p final loss below standard's (each over its "
        "whole interval); all = reproduced, some = partly; inconclusive when an inconclusive sub-test could "
        "change that"
    )
    c.verdict = subtests_verdict([s.verdict for s in stats])
    return c


def check_c8(res: Results, scale=None) -> Check:
    c = Check(
        "C8",
        NOT_RUN,
        reference="DLN at 10k steps: loss ~1.6e3 standard vs 5e2 BN; landscape smoother with BN (Fig 5b, 10)",
        figure="fig3, fig5, fig9, fig10, fig13",
    )

    def measure(seed):
        l_std = final_train_loss(res, run_id_of(res, "dln", DLN_LR, scale, seed))
        l_bn = final_train_loss(res, run_id_of(res, "dln_bn", DLN_LR, scale, seed))
        return {"loss_std": l_std, "loss_bn": l_bn, "log10_ratio_loss": log_ratio(l_bn, l_std)}

    # (a) and (b) on their own seeds: every DLN seed has losses, the landscape probe may run on fewer
    table = per_seed(res, measure)
    smooth_table = per_seed(res, lambda seed: _smoothness_seed(res, "dln", "dln_bn", DLN_LR, scale, seed))
    loss = Stat("(a) log10(final loss BN / standard)", column(table, "log10_ratio_loss"), thresholds=(0.0,))
    subtest(loss, lambda x: x < 0)
    smooth = _smoothness_stats(smooth_table, "(b) ")
    smooth_verdict = judge(smooth, lambda *xs: PASS if sum(x < 0 for x in xs) >= 2 else FAIL)
    merged = {s: table.get(s, {}) | smooth_table.get(s, {}) for s in sorted({*table, *smooth_table}, key=_seed_key)}
    fill(c, merged, [loss, *smooth])
    c.evidence = [
        f"seed {s}: final DLN loss at LR 1e-6 (mean of last 50 steps): BN {fmt(r['loss_bn'])}, standard "
        f"{fmt(r['loss_std'])}"
        for s, r in table.items()
    ]
    c.evidence += _smoothness_lines(smooth_table, "dln", "dln_bn", DLN_LR)
    c.evidence += [s.summary() for s in (loss, *smooth)]
    c.evidence += [
        f"sub-tests: (a) BN's final loss lower: {loss.verdict}; (b) BN smoother on >= 2 of 3 medians: {smooth_verdict}",
        "rule: (a) and (b) over the whole intervals: both = reproduced, one = partly; inconclusive when an "
        "inconclusive sub-test could change that",
    ]
    c.verdict = subtests_verdict([loss.verdict, smooth_verdict])
    return c


def check_c9(res: Results | None = None, scale=None, trials: int = 200, seed: int = 0) -> Check:
    """Thm 4.1 on random data: gradient through BN of one unit vs the closed form, in float64."""
    c = Check(
        "C9",
        NOT_RUN,
        reference="Thm 4.1: ||grad_y L_hat||^2 <= gamma^2/sigma^2 (||g||^2 - <1,g>^2/m - "
        "<g, y_hat>^2/sqrt(m)) as printed; the appendix proof gives 1/m and equality",
        figure="(theory)",
    )
    g = torch.Generator().manual_seed(seed)
    err_appendix, printed_holds, bounded = 0.0, 0, 0
    for _ in range(trials):
        unit = random_bn_unit(g)
        m, y, gamma, beta, w = unit.m, unit.y, unit.gamma, unit.beta, unit.w
        mu, sigma = y.mean(), y.var(unbiased=False).sqrt()
        y_hat = (y - mu) / sigma
        z = gamma * y_hat + beta
        loss = (w * z).sum() + 0.5 * (z**2).sum()  # any smooth loss of the BN output
        grad_z = torch.autograd.grad(loss, z, retain_graph=True)[0]
        grad_y = torch.autograd.grad(loss, y)[0]
        lhs = float(grad_y.pow(2).sum())
        gz, yh, s2 = grad_z.detach(), y_hat.detach(), float(sigma.detach()) ** 2
        base = float(gz.pow(2).sum() - gz.sum() ** 2 / m)
        inner = float((gz * yh).sum()) ** 2
        appendix = gamma**2 / s2 * (base - inner / m)
        printed = gamma**2 / s2 * (base - inner / m**0.5)
        err_appendix = max(err_appendix, abs(lhs - appendix) / max(abs(appendix), 1e-300))
        printed_holds += lhs <= printed * (1 + 1e-12)
        bounded += lhs <= gamma**2 / s2 * float(gz.pow(2).sum()) * (1 + 1e-12)
    c.numbers = {
        "trials": trials,
        "max_rel_err_appendix_equality": err_appendix,
        "printed_inequality_holds": printed_holds,
        "bounded_by_gamma2_over_sigma2_g2": bounded,
    }
    c.evidence = [
        f"{trials} random BN units (m in [4, 255]), float64 autograd vs closed forms:",
        f"appendix form (1/m, equality): max relative error {roundoff(err_appendix)}",
        f"printed form (1/sqrt(m), inequality) holds in {printed_holds}/{trials} trials",
        f"||grad_y L_hat||^2 <= gamma^2/sigma^2 ||grad_z L||^2 in {bounded}/{trials} trials",
        "Thm 4.2 (Hessian quadratic form) is not checked here",
    ]
    holds = err_appendix < 1e-8 and bounded == trials
    c.verdict = PARTLY if holds else NOT_REPRODUCED  # partly: Thm 4.2 unchecked
    return c


ROUNDOFF = 1e-12  # far above float64 round-off in these checks (about 1e-15) and far below a real error


def roundoff(error: float) -> str:
    """A relative error of a float64 identity check, as the report prints it: "below 1e-12" while it is
    round-off, whose digits are noise (B2's gap is 1.2e-15 with AVX2's vectorised sums and 1.3e-15 with
    ATEN_CPU_CAPABILITY=default: the CPU picks the summation order), else the number."""
    return f"below {ROUNDOFF:g}" if error < ROUNDOFF else f"{error:.2e}"


CHECKS = [check_c1, check_c2, check_c3, check_c4, check_c5, check_c6, check_c7, check_c8, check_c9]


def run_checks(res: Results, scale: str | None = None) -> list[Check]:
    out = []
    for fn in CHECKS:
        claim = fn.__name__.split("_")[1].upper()
        try:
            out.append(fn(res, scale))
        except Missing as e:
            out.append(Check(claim, NOT_RUN, [f"not run: {e}", train_hint(claim, scale)]))
    return out


def train_hint(claim: str, scale: str | None) -> str:
    """The commands that train a claim's runs, from the experiment configs that declare the claim."""
    extra = f" scale={scale}" if scale else ""
    commands = [f"`{e.command}{extra}`" for e in experiments.for_claim(claim)]
    return "train its runs with " + " and ".join(commands) if commands else "needs no runs"
