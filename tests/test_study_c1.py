"""Study C1 (experiments/c1_speed.py) on hand-made records whose answer is known: it judges as it should, on
the numbers it should (ported from tests/test_claims.py)."""

from __future__ import annotations

from bnopt import studies
from bnopt.verdicts import PAPER
from tests.run_rows import Maker

REPRODUCED, NOT_REPRODUCED = PAPER.holds, PAPER.fails


def judge(res):
    return studies.registry()["C1"].judge(res, None)


def test_c1_bn_faster(tmp_path):
    good = Maker(tmp_path / "a").run("vgg16", 0.1, acc_rate=0.002).run("vgg16_bn", 0.1, acc_rate=0.02).results()
    c = judge(good)
    assert c.verdict == REPRODUCED and c.numbers["ratio"] > 1.5
    assert c.evidence[0].startswith("seed 0: steps to reach ")
    bad = Maker(tmp_path / "b").run("vgg16", 0.1, acc_rate=0.02).run("vgg16_bn", 0.1, acc_rate=0.005).results()
    assert judge(bad).verdict == NOT_REPRODUCED


def test_c1_over_seeds_an_infinite_ratio_is_judged_per_seed(tmp_path):
    """Seed 1's standard net never reaches the target: its ratio is infinite, the statistic has no interval
    (docs/PROTOCOL.md section 2, issue 24) and the rule is applied to each seed's value; all pass."""
    m = Maker(tmp_path)
    for seed, rate in enumerate((0.002, 0.0005, 0.003)):
        m.run("vgg16", 0.1, acc_rate=rate, seed=seed).run("vgg16_bn", 0.1, acc_rate=0.02, seed=seed)
    c = judge(m.results())
    ratio = c.stats[0]
    assert ratio.method == "seeds" and ratio.values[1] == float("inf") and ratio.hi == float("inf")
    assert ratio.lo >= 1.5 and ratio.label == "1/3 seeds infinite: no interval, the rule is applied to each seed"
    assert c.verdict == REPRODUCED and c.n_seeds == "3" and c.seeds == [0, 1, 2]
    assert any(line.startswith("seed 1: ") and "(never)" in line for line in c.evidence)


def test_c1_infinite_ratio_with_a_seed_below_the_band_is_inconclusive(tmp_path):
    """Per seed: one infinite (reproduced), one below 1 (not reproduced): no single verdict."""
    m = Maker(tmp_path)
    for seed, (std, bn) in enumerate(((0.0005, 0.02), (0.02, 0.005), (0.002, 0.02))):
        m.run("vgg16", 0.1, acc_rate=std, seed=seed).run("vgg16_bn", 0.1, acc_rate=bn, seed=seed)
    c = judge(m.results())
    assert c.stats[0].method == "seeds" and c.stats[0].values[1] < 1
    assert c.verdict == "inconclusive"
    assert c.numbers["steps_std"] == float("inf")  # the mean over seeds keeps the infinity
