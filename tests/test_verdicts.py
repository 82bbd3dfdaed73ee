"""bnopt.verdicts: a rule declared once judges intervals, gives its thresholds and its sentence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bnopt.verdicts import (
    BEYOND,
    FAIL,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    PAPER,
    PARTLY,
    PASS,
    AtLeast,
    Bands,
    Stat,
    Test,
    Tests,
    above,
    at_least,
    below,
    log_t_interval,
    one,
    t_interval,
    within,
)


def stat(name, *values, pct=False):
    return Stat(name, dict(enumerate(values)), pct=pct)


def test_t_interval_matches_the_closed_form():
    m, lo, hi = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729749462 * 1.0 / math.sqrt(3)  # t(0.975, 2) * s / sqrt(n), s = 1
    assert (m, lo, hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half), rel=1e-12)


@pytest.mark.parametrize(
    "values, verdict",
    [((2.0, 2.1, 2.2), HOLDS), ((1.2, 1.25, 1.3), PARTLY), ((0.5, 0.6, 0.7), FAILS), ((1.0, 1.5, 2.0), INCONCLUSIVE)],
)
def test_bands_judge_the_whole_interval(values, verdict):
    rule = one("r", (at_least(1.5), HOLDS), (above(1.0), PARTLY))
    named = {"r": stat("ratio", *values)}
    for key in named:
        named[key].thresholds = rule.thresholds(key)
    assert rule.judge(named)[0] == verdict
    assert named["r"].verdict == verdict


def test_a_rule_gives_its_thresholds_and_its_sentence_from_one_declaration():
    rule = one("r", (at_least(1.5), HOLDS), (above(1.0), PARTLY))
    assert rule.thresholds("r") == (1.5, 1.0)
    named = {"r": stat("R = a ratio", 2.0, 2.1)}
    sentence = rule.sentence(named, PAPER)
    assert sentence.startswith("rule: R over its whole interval: at or above 1.5 = reproduced; above 1 = partly;")
    assert "otherwise not reproduced" in sentence


def test_bands_over_two_statistics_need_both_conditions():
    rule = Bands(((((("s", below(0.2)), ("b", above(0.8))), HOLDS)), ((("s", below(0.2)), ("b", above(0.5))), PARTLY)))
    named = {"s": stat("standard", 0.1, 0.1, pct=True), "b": stat("BN", 0.7, 0.7, pct=True)}
    for k in named:
        named[k].thresholds = rule.thresholds(k)
    assert rule.judge(named)[0] == PARTLY
    assert rule.sentence(named, PAPER).startswith("rule: reproduced if standard below 20.0% and BN above 80.0%")


def test_sub_tests_are_counted_and_an_inconclusive_one_can_make_the_claim_inconclusive():
    rule = Tests((Test("a", below(0.0), "a is not below 0"), Test("b", above(0.0))))
    both = {"a": stat("A", -1.0, -1.1, -1.05), "b": stat("B", 1.0, 1.1, 1.05)}
    assert rule.judge(both)[0] == HOLDS
    one_fails = {"a": stat("A", 1.0, 1.1, 1.05), "b": stat("B", 1.0, 1.1, 1.05)}
    assert rule.judge(one_fails)[0] == PARTLY
    assert rule.against(one_fails)[0].startswith("against the claim: a is not below 0 (A = 1.05")
    straddles = {"a": stat("A", -1.0, 1.0, 0.0), "b": stat("B", 1.0, 1.1, 1.05)}
    assert rule.judge(straddles)[0] == INCONCLUSIVE and straddles["a"].verdict == INCONCLUSIVE
    assert "(1) A below 0; (2) B above 0; all pass = supported" in rule.sentence(both, BEYOND)


def test_at_least_k_of_n_is_one_sub_test():
    inner = tuple(Test(k, below(0.0)) for k in "xyz")
    rule = Tests((Test("a", below(0.0)), AtLeast(2, inner, "BN smoother on")))
    named = {k: stat(k.upper(), v, v + 0.1, v + 0.05) for k, v in (("a", -1.0), ("x", -1.0), ("y", -1.0), ("z", 1.0))}
    verdict, lines = rule.judge(named)
    assert verdict == HOLDS and lines == ["sub-test BN smoother on 2 of 3 of: X below 0, Y below 0, Z below 0: pass"]
    named["y"] = stat("Y", 1.0, 1.1, 1.05)
    assert rule.judge(named)[0] == PARTLY


def test_within_is_two_sided():
    t = Test("d", within(-0.02, 0.02))
    assert t.judge(stat("D", 0.0, 0.01, 0.005)) == PASS and t.judge(stat("D", 0.05, 0.06, 0.055)) == FAIL
    assert t.judge(stat("D", 0.0, 0.05, 0.025)) == INCONCLUSIVE
    assert t.condition.describe(pct=True) == "within [-2.0%, 2.0%]"


def test_one_seed_has_no_interval_and_gets_the_point_verdict():
    s = stat("G", -0.5)
    assert (s.lo, s.hi, s.label) == (-0.5, -0.5, "1 seed, no interval")
    assert Test("g", below(0.0)).judge(s) == PASS


# ------------------------------------------------------------------------ coverage (PROTOCOL, rules of 2026-12-07)

DRAWS, CHECKED = 2000, 100  # simulated experiments; how many of them are also passed through the functions one by one
MU, SIGMA = 10.0, 2.0  # a normal per-seed statistic
GEO, LOG_SIGMA = 2.0, 0.3  # a lognormal ratio: log10 normal around log10 2 (geometric mean 2)


def _intervals(fn, x: np.ndarray, log: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) of `fn` for every row of x, vectorised (2,000 scalar calls would take seconds): the interval of a
    location-scale family is mean +- c_n x SD, with c_n read from `fn` itself on one sample of SD 1; the first
    CHECKED rows are checked against `fn` called on each."""
    n = x.shape[1]
    unit = np.arange(n, dtype=float)
    unit = (unit - unit.mean()) / unit.std(ddof=1)
    c = math.log10(fn(10.0**unit)[2]) if log else fn(unit)[2]
    y = np.log10(x) if log else x
    m, half = y.mean(axis=1), c * y.std(axis=1, ddof=1)
    lo, hi = (10 ** (m - half), 10 ** (m + half)) if log else (m - half, m + half)
    one_by_one = np.array([fn(row)[1:] for row in x[:CHECKED]])
    assert one_by_one == pytest.approx(np.column_stack([lo, hi])[:CHECKED], rel=1e-9)
    return lo, hi


@pytest.mark.parametrize("n", [3, 5])
def test_the_t_intervals_cover_the_true_mean_95_percent_of_the_time(n):
    """Issue 24 item 1: over 2,000 simulated experiments of n seeds, the 95% t-interval holds the true mean, and
    the t-interval of log10 of lognormal ratios the true geometric mean, in 93-97% of them."""
    rng = np.random.default_rng(24)
    lo, hi = _intervals(t_interval, rng.normal(MU, SIGMA, size=(DRAWS, n)))
    assert 0.93 <= np.mean((lo <= MU) & (MU <= hi)) <= 0.97
    ratios = 10 ** rng.normal(math.log10(GEO), LOG_SIGMA, size=(DRAWS, n))
    lo, hi = _intervals(log_t_interval, ratios, log=True)
    assert 0.93 <= np.mean((lo <= GEO) & (GEO <= hi)) <= 0.97


def test_a_percentile_bootstrap_of_3_seeds_covers_far_less_than_95_percent():
    """Why the bootstrap went: resampling 3 values can only return means between their min and max, and the
    95% percentile interval of those is about [min, max], which holds the true mean about 75% of the time
    (1 - 2 x 0.5^3 for a symmetric distribution), not 95%."""
    rng = np.random.default_rng(24)
    x = rng.normal(MU, SIGMA, size=(DRAWS, 3))
    resamples = 1000
    picks = rng.integers(0, 3, size=(DRAWS, resamples, 3))
    means = np.take_along_axis(x, picks.reshape(DRAWS, -1), axis=1).reshape(DRAWS, resamples, 3).mean(axis=2)
    lo, hi = np.percentile(means, [2.5, 97.5], axis=1)
    covered = np.mean((lo <= MU) & (MU <= hi))
    assert covered < 0.85 and covered == pytest.approx(0.75, abs=0.04)
    t_lo, t_hi = _intervals(t_interval, x)
    assert np.mean((t_lo <= MU) & (MU <= t_hi)) >= 0.93  # the same draws, t-intervals


def test_a_statistic_no_seed_measured_is_inconclusive_not_a_failure():
    s = Stat("R", {0: float("nan"), 1: float("nan")})
    assert s.n == 0 and s.label == "no seed measured it"
    assert Test("r", below(0.0)).judge(s) == INCONCLUSIVE


def test_a_range_statistic_reports_the_seeds_least_and_greatest_not_an_interval_leaving_its_domain():
    """B11's T is a fraction of training: a t-interval over (0.05, 0.1, 1.0) reaches far past 1; "range" gives the
    seeds' least and greatest value and says so."""
    from bnopt.verdicts import Stat

    t = Stat("T", {0: 0.05, 1: 0.1, 2: 1.0}, pct=True)
    assert t.hi > 1.0  # the defect: a 95% t-interval past 100% of training
    r = Stat("T", {0: 0.05, 1: 0.1, 2: 1.0}, "range", pct=True)
    assert (r.lo, r.hi) == (0.05, 1.0) and r.mean == pytest.approx(1.15 / 3)
    assert r.label == "3 seeds, range (least to greatest; not judged, no interval)"
    assert r.summary().endswith("range [5.0%, 100.0%] (3 seeds, range (least to greatest; not judged, no interval))")
