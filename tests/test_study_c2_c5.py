"""Studies C2-C5 (experiments/c2_large_lr.py .. c5_ics.py) on hand-made records whose answer is known: each
judges as it should, on the numbers it should (ported from tests/test_claims.py)."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from bnopt import studies
from bnopt.verdicts import INCONCLUSIVE, PAPER
from tests.run_rows import Maker

REPRODUCED, PARTLY, NOT_REPRODUCED = PAPER.holds, PAPER.partly, PAPER.fails
CONFIGS = studies.STUDY_DIR.parent / "configs" / "experiment"


def judge(cid, res):
    return studies.registry()[cid].judge(res, None)


# ------------------------------------------------------------------------------------------------- C2


def test_c2_large_learning_rate(tmp_path):
    good = Maker(tmp_path / "a").run("vgg16", 0.5, final_acc=0.1).run("vgg16_bn", 0.5, final_acc=0.9).results()
    c = judge("C2", good)
    assert c.verdict == REPRODUCED and c.numbers["acc_bn_lr0.5"] == pytest.approx(0.9, abs=1e-3)
    assert "std_diverged" not in c.numbers
    bad = Maker(tmp_path / "b").run("vgg16", 0.5, final_acc=0.9).run("vgg16_bn", 0.5, final_acc=0.9).results()
    assert judge("C2", bad).verdict == NOT_REPRODUCED
    diverged = (
        Maker(tmp_path / "c")
        .run("vgg16", 0.5, final_acc=np.nan, status="diverged")
        .run("vgg16_bn", 0.5, final_acc=0.6)
        .results()
    )
    c = judge("C2", diverged)
    assert c.verdict == PARTLY and c.numbers["acc_std_lr0.5"] == pytest.approx(0.1)  # a diverged run is chance
    assert "standard 10.0% (diverged), BN 60.0%" in c.evidence[0]


def test_c2_uses_train_mode_smoothed_accuracy(tmp_path):
    m = Maker(tmp_path).run("vgg16", 0.5, final_acc=0.1, eval_acc=0.5)
    c = judge("C2", m.run("vgg16_bn", 0.5, final_acc=0.9, eval_acc=0.6).results())
    assert c.verdict == REPRODUCED and c.numbers["eval_acc_bn_lr0.5"] == pytest.approx(0.6)


def test_c2_says_how_each_statistic_meets_the_rule(tmp_path):
    """The verdict column: standard below 20% pass / fail; BN the highest band it is above, over its interval."""
    m = Maker(tmp_path / "a")
    for seed, (std, bn) in enumerate(((0.10, 0.60), (0.11, 0.65), (0.12, 0.62))):
        m.run("vgg16", 0.5, final_acc=std, seed=seed).run("vgg16_bn", 0.5, final_acc=bn, seed=seed)
    c = judge("C2", m.results())
    assert c.verdict == PARTLY and [s.verdict for s in c.stats] == ["pass", "above 50.0%"]
    m = Maker(tmp_path / "b")
    for seed, (std, bn) in enumerate(((0.30, 0.70), (0.10, 0.90), (0.12, 0.85))):
        m.run("vgg16", 0.5, final_acc=std, seed=seed).run("vgg16_bn", 0.5, final_acc=bn, seed=seed)
    c = judge("C2", m.results())
    assert c.verdict == INCONCLUSIVE and [s.verdict for s in c.stats] == [INCONCLUSIVE, INCONCLUSIVE]
    assert c.evidence[-1].startswith("rule: reproduced if standard final smoothed acc below 20.0% and BN")


# ------------------------------------------------------------------------------------------------- C3


def test_c3_test_accuracy(tmp_path):
    good = Maker(tmp_path / "a").run("vgg16", 0.1, test_acc=0.80).run("vgg16_bn", 0.1, test_acc=0.83).results()
    assert judge("C3", good).verdict == REPRODUCED
    meh = Maker(tmp_path / "b").run("vgg16", 0.1, test_acc=0.80).run("vgg16_bn", 0.1, test_acc=0.805).results()
    assert judge("C3", meh).verdict == PARTLY
    bad = Maker(tmp_path / "c").run("vgg16", 0.1, test_acc=0.83).run("vgg16_bn", 0.1, test_acc=0.80).results()
    assert judge("C3", bad).verdict == NOT_REPRODUCED


def _c3_seeds(tmp_path, gaps):
    m = Maker(tmp_path)
    for seed, gap in enumerate(gaps):
        m.run("vgg16", 0.1, test_acc=0.80, seed=seed).run("vgg16_bn", 0.1, test_acc=0.80 + gap, seed=seed)
    return m.results()


def test_c3_over_seeds(tmp_path):
    c = judge("C3", _c3_seeds(tmp_path / "a", [0.03, 0.031, 0.032]))
    assert c.verdict == REPRODUCED and c.n_seeds == "3" and c.seeds == [0, 1, 2]
    gap = c.stats[0]
    assert gap.mean == pytest.approx(0.031) and gap.lo > 0.01 and gap.method == "t"
    assert c.numbers["gap"] == pytest.approx(0.031)
    c = judge("C3", _c3_seeds(tmp_path / "b", [-0.01, 0.02, 0.05]))  # straddles 0 and 1 point
    assert c.verdict == INCONCLUSIVE
    c = judge("C3", _c3_seeds(tmp_path / "c", [0.03]))
    assert c.verdict == REPRODUCED and c.n_seeds == "1" and "1 seed, no interval" in " ".join(c.evidence)


def test_seeds_missing_a_run_are_left_out(tmp_path):
    m = Maker(tmp_path)
    for seed in range(3):
        m.run("vgg16", 0.1, test_acc=0.80, seed=seed)
    m.run("vgg16_bn", 0.1, test_acc=0.83, seed=0).run("vgg16_bn", 0.1, test_acc=0.83, seed=2)
    c = judge("C3", m.results())
    assert c.seeds == [0, 2] and c.n_seeds == "2"


# ------------------------------------------------------------------------------------------------- C4


def test_c4_noisy_bn(tmp_path):
    m = Maker(tmp_path / "a").run("vgg16", 0.1, drift=0.01).run("vgg16_bn", 0.1, final_acc=0.95, drift=0.01)
    good = m.run("vgg16_noisy_bn", 0.1, final_acc=0.93, drift=0.5).results()
    c = judge("C4", good)
    assert c.verdict == REPRODUCED and c.numbers["drift_noisy"] == pytest.approx(0.5)
    # (b) is reported (a ratio: geometric mean, t on log10) but not judged: an implementation check
    drift = c.stats[1]
    assert drift.mean == pytest.approx(50.0) and drift.method == "log" and drift.verdict == ""
    assert [s.verdict for s in c.stats] == ["pass", ""] and "not judged" in drift.name
    assert (
        c.evidence[0].startswith("(b) is an implementation check, not evidence") and "measured 0.5-0.5" in c.evidence[0]
    )
    m = Maker(tmp_path / "b").run("vgg16", 0.1).run("vgg16_bn", 0.1, final_acc=0.95, drift=0.01)
    bad = m.run("vgg16_noisy_bn", 0.1, final_acc=0.5, drift=0.01).results()
    assert judge("C4", bad).verdict == NOT_REPRODUCED


def test_c4_drift_is_not_counted(tmp_path):
    """Noisy BN that trains as well as BN with no more drift than BN: (b) would fail, yet C4 is reproduced
    (under the old rule, partly): only (a) is judged."""
    m = Maker(tmp_path).run("vgg16", 0.1).run("vgg16_bn", 0.1, final_acc=0.95, drift=0.01)
    c = judge("C4", m.run("vgg16_noisy_bn", 0.1, final_acc=0.95, drift=0.01).results())
    assert c.numbers["drift_ratio"] == pytest.approx(1.0) and c.verdict == REPRODUCED
    assert c.evidence[-1] == (
        "rule: reproduced when the whole interval of (a) acc noisy BN - BN (smoothed, train mode) is at or above "
        "-5.0%, not reproduced when none of it is; otherwise inconclusive"
    )


@pytest.mark.parametrize(
    "noisy,want",
    [
        ((0.93, 0.94, 0.95), REPRODUCED),  # noisy BN 2 points below BN: interval wholly above -5 points
        ((0.85, 0.86, 0.87), NOT_REPRODUCED),  # 9 points below: wholly below -5
        ((0.87, 0.90, 0.93), INCONCLUSIVE),  # 5 points below, seeds spread 3 points: straddles -5
    ],
)
def test_c4_accuracy_over_seeds_is_judged_on_its_t_interval(tmp_path, noisy, want):
    m = Maker(tmp_path)
    for seed, acc in enumerate(noisy):
        m.run("vgg16", 0.1, seed=seed).run("vgg16_bn", 0.1, final_acc=0.95, seed=seed)
        m.run("vgg16_noisy_bn", 0.1, final_acc=acc, drift=0.5, seed=seed)
    c = judge("C4", m.results())
    diff = c.stats[0]
    assert diff.method == "t" and diff.n == 3 and diff.mean == pytest.approx(np.mean(noisy) - 0.95, abs=1e-3)
    assert c.verdict == want


def test_c4_uses_train_mode_smoothed_accuracy(tmp_path):
    # noisy BN trains under its noise to 93% (train mode), but its eval-mode net reaches only 40%
    m = Maker(tmp_path / "a").run("vgg16", 0.1, drift=0.01).run("vgg16_bn", 0.1, final_acc=0.95, drift=0.01)
    res = m.run("vgg16_noisy_bn", 0.1, final_acc=0.93, eval_acc=0.40, drift=0.5).results()
    c = judge("C4", res)
    assert c.verdict == REPRODUCED
    assert c.numbers["acc_noisy"] == pytest.approx(0.93, abs=1e-3)
    assert c.numbers["eval_acc_noisy"] == pytest.approx(0.40)
    assert "running statistics and no noise" in " ".join(c.evidence)
    # and the reverse: high eval-mode accuracy (and a large drift) does not rescue a net that does not train
    # under its noise
    m = Maker(tmp_path / "b").run("vgg16", 0.1, drift=0.01).run("vgg16_bn", 0.1, final_acc=0.95, drift=0.01)
    res = m.run("vgg16_noisy_bn", 0.1, final_acc=0.50, eval_acc=0.95, drift=0.5).results()
    c = judge("C4", res)
    assert c.verdict == NOT_REPRODUCED and [s.verdict for s in c.stats] == ["fail", ""]


def test_c4_without_activation_moments_is_not_run(tmp_path):
    m = Maker(tmp_path).run("vgg16", 0.1).run("vgg16_bn", 0.1).run("vgg16_noisy_bn", 0.1)
    for rid in ("vgg16-lr0.1", "vgg16_bn-lr0.1", "vgg16_noisy_bn-lr0.1"):
        (tmp_path / "runs" / rid / "activations.npz").unlink()
    c = judge("C4", m.results())
    assert c.verdict == "not run" and "no per-unit activation moments" in c.evidence[0]
    assert "experiment=fig2" in c.evidence[1] and "experiment=fig8" in c.evidence[1]


# ------------------------------------------------------------------------------------------------- C5


NETS = {"vgg": ("vgg16", "vgg16_bn"), "dln": ("dln", "dln_bn")}
SPREAD = {0: -0.01, 1: 0.0, 2: 0.01, 3: 0.005}  # log10 seed spread of BN's l2, so the intervals have width


def _ics(maker, family, lr, bn_l2, seeds=(0, 1, 2), bn_g_norm=1.0, std_acc=0.95):
    """Standard and BN runs at `lr` over `seeds`: the standard net's l2 1 (gradient norm 1), BN's `bn_l2`
    (times 10**SPREAD[seed]) with gradient norm `bn_g_norm`, at every ICS layer and measured step; the
    standard net's final train-subset accuracy `std_acc`, BN's 0.95."""
    std, bn = NETS[family]
    for seed in seeds:
        maker.run(std, lr, ics_l2=1.0, ics_cos=0.9, seed=seed, final_acc=std_acc)
        maker.run(bn, lr, ics_l2=bn_l2 * 10 ** SPREAD[seed], ics_cos=0.5, ics_g_norm=bn_g_norm, seed=seed)
    return maker


def test_c5_ics(tmp_path):
    """Fig 3a's VGG at LR 0.1 over 3 seeds, BN's relative l2 twice the standard net's at both layers: both
    pairs pass. LR 0.5 runs (every run with probes=paper has ICS records), where BN's is half the standard
    net's, are not Fig 3's and do not count."""
    m = _ics(Maker(tmp_path), "vgg", 0.1, 2.0)
    c = judge("C5", _ics(m, "vgg", 0.5, 0.5).results())
    assert c.verdict == REPRODUCED and [s.verdict for s in c.stats] == ["pass", "pass"]
    assert [s.name for s in c.stats] == [
        "VGG #5 LR 0.1: log10(relative l2 BN / standard)",
        "VGG #10 LR 0.1: log10(relative l2 BN / standard)",
    ]
    assert not any(k.endswith("_0.5") or "0.5_" in k for k in c.per_seed[0])
    vgg5 = c.stats[0]
    assert vgg5.method == "t" and vgg5.n == 3 and vgg5.mean == pytest.approx(np.log10(2.0)) and vgg5.lo > 0
    assert vgg5.values[0] == pytest.approx(np.log10(2.0) - 0.01)
    assert c.evidence[0] == (
        "VGG LR 0.1, how far each net trained (final train-subset accuracy, median over 3 seeds): standard 95%, BN 95%"
    )
    assert c.evidence[1].startswith("seed 0 VGG #5 LR 0.1: median relative l2 BN 1.954 vs std 1;")
    assert c.evidence[2] == (
        "seed 1 VGG #5 LR 0.1: median relative l2 BN 2 vs std 1; median l2 BN 2 vs std 1; median cos BN 0.5 vs std 0.9"
    )
    assert c.evidence[-1].startswith("rule: sub-tests, each over its whole interval: (1) VGG #5 LR 0.1:")
    assert "at least 75% pass = reproduced, at least 50% = partly, fewer = not reproduced" in c.evidence[-1]


def test_c5_judges_the_relative_l2_not_the_raw_one(tmp_path):
    """BN's raw l2 is twice the standard net's, but its gradient is 10x larger: its relative l2 is 0.2 of the
    standard net's, so BN reduces ICS in the scale-free sense (the raw l2 is reported, not judged)."""
    c = judge("C5", _ics(Maker(tmp_path), "vgg", 0.1, 2.0, bn_g_norm=10.0).results())
    assert c.verdict == NOT_REPRODUCED and [s.verdict for s in c.stats] == ["fail", "fail"]
    assert c.stats[0].mean == pytest.approx(np.log10(0.2))
    assert c.evidence[2].startswith("seed 1 VGG #5 LR 0.1: median relative l2 BN 0.2 vs std 1; median l2 BN 2 vs")


def test_c5_says_where_the_standard_net_barely_trains(tmp_path):
    """At C5's LR 0.01 the standard VGG barely trains (20% here): its layers barely move, so its relative l2
    is small for that reason; the evidence says how far each net trained and flags it (not judged: the
    verdict is the same as with a net that trains)."""
    c = judge("C5", _ics(Maker(tmp_path), "vgg", 0.01, 2.0, std_acc=0.2).results())
    assert c.verdict == REPRODUCED and c.evidence[0] == (
        "VGG LR 0.01, how far each net trained (final train-subset accuracy, median over 3 seeds): standard 20%, "
        "BN 95%; the standard net barely trains here, so its layers barely move and the ratio partly measures that"
    )


def test_c5_without_a_pair_of_3_seeds_is_not_run(tmp_path):
    c = judge("C5", _ics(Maker(tmp_path), "vgg", 0.1, 2.0, seeds=(0, 1)).results())
    assert c.verdict == "not run" and "no (network, layer, LR) pair has ICS records of 3 seeds" in c.evidence[0]


# C5's rule on per-seed tables (what C5.measure returns; records would take seconds per test for 8 pairs)
FIG3_PAIRS = ("vgg_5_0.1", "vgg_10_0.1", "vgg_5_0.01", "vgg_10_0.01", "dln_9_1e-06", "dln_17_1e-06", "dln_9_1e-07")
FIG3_PAIRS += ("dln_17_1e-07",)


def _table(bn_rel: dict, seeds=(0, 1, 2)) -> dict:
    """{seed: C5's per-seed row}: in each pair, the standard net's relative l2, l2 and cos 1, 1, 0.9; BN's
    relative l2 and l2 `bn_rel[pair]` times 10**SPREAD[seed], cos 0.5. A pair given a tuple (ratio, seeds)
    has only those seeds."""
    table = {}
    for seed in seeds:
        row = {}
        for key, ratio in bn_rel.items():
            ratio, has = ratio if isinstance(ratio, tuple) else (ratio, seeds)
            if seed not in has:
                continue
            bn = ratio * 10 ** SPREAD[seed]
            row[key] = np.log10(bn)
            row |= {f"{key}_rel_std": 1.0, f"{key}_l2_std": 1.0, f"{key}_cos_std": 0.9}
            row |= {f"{key}_rel_bn": bn, f"{key}_l2_bn": bn, f"{key}_cos_bn": 0.5}
        if row:
            table[seed] = row
    return table


def _conclude(table):
    return studies.registry()["C5"].conclude(table)


@pytest.mark.parametrize(
    "groups,want",
    [
        ((2.0, 2.0, 2.0, 2.0), REPRODUCED),  # BN's relative l2 higher in every pair
        ((2.0, 2.0, 2.0, 0.5), REPRODUCED),  # 6 of 8 pairs pass: 75%
        ((2.0, 2.0, 0.5, 0.5), PARTLY),  # half
        ((2.0, 0.5, 0.5, 0.5), NOT_REPRODUCED),  # 2 of 8
        ((0.5, 0.5, 0.5, 0.5), NOT_REPRODUCED),  # BN's lower everywhere
        ((2.0, 2.0, 1.0, 0.5), INCONCLUSIVE),  # 4 pass, 2 straddle 0, 2 fail: 50-75%, partly or reproduced
        ((2.0, 2.0, 2.0, 1.0), REPRODUCED),  # 6 pass, 2 straddle 0: at least 75% either way
    ],
)
def test_c5_counts_the_fraction_of_pairs(groups, want):
    """Fig 3's 8 pairs, BN's relative l2 over the standard net's = groups[i] in the i-th (network, LR)."""
    ratios = {key: groups[i // 2] for i, key in enumerate(FIG3_PAIRS)}
    c = _conclude(_table(ratios))
    verdicts = [s.verdict for s in c.stats]
    assert c.verdict == want and len(verdicts) == 8 and {s.n for s in c.stats} == {3}
    assert verdicts.count("pass") == 2 * groups.count(2.0) and verdicts.count("fail") == 2 * groups.count(0.5)
    assert verdicts.count(INCONCLUSIVE) == 2 * groups.count(1.0)


def test_c5_a_pair_with_fewer_than_3_seeds_is_not_judged():
    """VGG #5, #10 at LR 0.1 have 3 seeds (BN higher); the DLN's pairs only 2 (BN lower): the DLN pairs are not
    judged, not even in the seeds that have them."""
    c = _conclude(
        _table({"vgg_5_0.1": 2.0, "vgg_10_0.1": 2.0, "dln_9_1e-06": (0.5, (0, 1)), "dln_17_1e-06": (0.5, (0, 1))})
    )
    assert c.verdict == REPRODUCED and [s.name.split(":")[0] for s in c.stats] == ["VGG #5 LR 0.1", "VGG #10 LR 0.1"]
    assert not any("DLN" in line for line in c.evidence)


def test_c5_a_pair_is_judged_over_the_seeds_that_have_it():
    """The DLN has 4 seeds, VGG 3 (the DLN runs have more seeds): each pair's interval is over its own."""
    c = _conclude(_table({"vgg_5_0.1": (2.0, (0, 1, 2)), "dln_9_1e-06": 0.5}, seeds=(0, 1, 2, 3)))
    assert [s.n for s in c.stats] == [3, 4] and c.n_seeds == "3-4" and c.verdict == PARTLY
    assert [s.verdict for s in c.stats] == ["pass", "fail"]


def test_c5_pairs_are_fig3s_sweeps():
    """C5's constant pairs are the models and LRs configs/experiment/fig3_ics_{vgg,dln}.yaml sweep."""
    c5 = studies.registry()["C5"]
    module = __import__(type(c5).__module__, fromlist=["ICS_RUNS"])
    for family, std, bn, lrs in module.ICS_RUNS:
        params = OmegaConf.load(CONFIGS / f"fig3_ics_{family}.yaml").hydra.sweeper.params
        assert str(params.model).split(",") == [std, bn]
        assert [float(x) for x in str(params["optim.lr"]).split(",")] == list(lrs)
        assert f"fig3_ics_{family}" in c5.sweeps
