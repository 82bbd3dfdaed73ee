"""bnopt.verdicts: a rule declared once judges intervals, gives its thresholds and its sentence."""

from __future__ import annotations

import math

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
