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
    assert c.numbers["drift_ratio"] == pytest.approx(50.0) and [s.verdict for s in c.stats] == ["pass", "pass"]
    m = Maker(tmp_path / "b").run("vgg16", 0.1).run("vgg16_bn", 0.1, final_acc=0.95, drift=0.01)
    bad = m.run("vgg16_noisy_bn", 0.1, final_acc=0.5, drift=0.01).results()
    assert judge("C4", bad).verdict == NOT_REPRODUCED


def test_c4_uses_train_mode_smoothed_accuracy(tmp_path):
    # noisy BN trains under its noise to 93% (train mode), but its eval-mode net reaches only 40%
    m = Maker(tmp_path / "a").run("vgg16", 0.1, drift=0.01).run("vgg16_bn", 0.1, final_acc=0.95, drift=0.01)
    res = m.run("vgg16_noisy_bn", 0.1, final_acc=0.93, eval_acc=0.40, drift=0.5).results()
    c = judge("C4", res)
    assert c.verdict == REPRODUCED
    assert c.numbers["acc_noisy"] == pytest.approx(0.93, abs=1e-3)
    assert c.numbers["eval_acc_noisy"] == pytest.approx(0.40)
    assert "running statistics and no noise" in " ".join(c.evidence)
    # and the reverse: high eval-mode accuracy does not rescue a net that does not train under its noise
    m = Maker(tmp_path / "b").run("vgg16", 0.1, drift=0.01).run("vgg16_bn", 0.1, final_acc=0.95, drift=0.01)
    res = m.run("vgg16_noisy_bn", 0.1, final_acc=0.50, eval_acc=0.95, drift=0.5).results()
    c = judge("C4", res)
    assert c.verdict == PARTLY and [s.verdict for s in c.stats] == ["fail", "pass"]


def test_c4_without_activation_moments_is_not_run(tmp_path):
    m = Maker(tmp_path).run("vgg16", 0.1).run("vgg16_bn", 0.1).run("vgg16_noisy_bn", 0.1)
    for rid in ("vgg16-lr0.1", "vgg16_bn-lr0.1", "vgg16_noisy_bn-lr0.1"):
        (tmp_path / "runs" / rid / "activations.npz").unlink()
    c = judge("C4", m.results())
    assert c.verdict == "not run" and "no per-unit activation moments" in c.evidence[0]
    assert "experiment=fig2" in c.evidence[1] and "experiment=fig8" in c.evidence[1]


# ------------------------------------------------------------------------------------------------- C5


def _pairs(maker, std, bn, lrs, seed=0):
    for lr in lrs:
        maker.run(std[0], lr, ics_l2=std[1], ics_cos=std[2], seed=seed)
        maker.run(bn[0], lr, ics_l2=bn[1], ics_cos=bn[2], seed=seed)
    return maker


def test_c5_ics(tmp_path):
    m = _pairs(Maker(tmp_path / "a"), ("vgg16", 1.0, 0.9), ("vgg16_bn", 2.0, 0.5), (0.1, 0.01))
    m = _pairs(m, ("dln", 1.0, 0.9), ("dln_bn", 2.0, 0.5), (1e-6, 1e-7))
    c = judge("C5", m.results())
    assert c.verdict == REPRODUCED and c.numbers == {
        "pairs": 8,
        "pairs_not_reduced": 8,
        "fraction_not_reduced": 1.0,
        "n_seeds": 1,
    }
    assert c.evidence[0] == (
        "seed 0 vgg layer #5 LR 0.1: median l2 BN 2 vs std 1; median cos BN 0.5 vs std 0.9 -> BN does not reduce ICS"
    )


def test_c5_bn_reducing_ics_everywhere_is_not_reproduced(tmp_path):
    m = _pairs(Maker(tmp_path), ("vgg16", 2.0, 0.5), ("vgg16_bn", 1.0, 0.9), (0.1, 0.01))
    c = judge("C5", m.results())
    assert c.verdict == NOT_REPRODUCED and c.numbers["pairs"] == 4


def test_c5_half_the_pairs_is_partly_and_other_runs_do_not_count(tmp_path):
    m = _pairs(Maker(tmp_path), ("vgg16", 1.0, 0.9), ("vgg16_bn", 2.0, 0.5), (0.1, 0.01))  # not reduced
    m = _pairs(m, ("dln", 2.0, 0.5), ("dln_bn", 1.0, 0.9), (1e-6, 1e-7))  # reduced
    # ICS records of runs outside Fig 3 (LR 0.5; every run with probes=paper has them) are not C5's pairs
    m = _pairs(m, ("vgg16", 2.0, 0.5), ("vgg16_bn", 1.0, 0.9), (0.5,))
    c = judge("C5", m.results())
    assert c.verdict == PARTLY and c.numbers["pairs"] == 8 and c.numbers["fraction_not_reduced"] == 0.5


def test_c5_leaves_out_seeds_that_lack_pairs(tmp_path):
    """Seeds 0, 1 have VGG and DLN pairs, seed 2 only DLN ones (as the DLN runs have more seeds): the fraction
    is compared on the same pairs, so seed 2 drops out. (Fig 3's other LRs are absent: those pairs are not
    counted in any seed.)"""
    m = Maker(tmp_path)
    for seed in range(2):
        _pairs(m, ("vgg16", 1.0, 0.9), ("vgg16_bn", 2.0, 0.5), (0.1,), seed)
    for seed in range(3):
        _pairs(m, ("dln", 1.0, 0.9), ("dln_bn", 0.5, 0.95), (1e-6,), seed)  # BN reduces the DLN's ICS
    c = judge("C5", m.results())
    assert c.seeds == [0, 1] and c.stats[0].method == "bootstrap" and c.stats[0].values == {0: 0.5, 1: 0.5}
    assert c.verdict == PARTLY and c.numbers["pairs"] == 4
    assert "seeds 2 left out: they lack pairs the other seeds have (4 pairs in all)" in c.evidence
    assert set(c.numbers) == {"pairs", "pairs_not_reduced", "fraction_not_reduced", "n_seeds"}


def test_c5_pairs_are_fig3s_sweeps():
    """C5's constant pairs are the models and LRs configs/experiment/fig3_ics_{vgg,dln}.yaml sweep."""
    c5 = studies.registry()["C5"]
    module = __import__(type(c5).__module__, fromlist=["ICS_RUNS"])
    for family, std, bn, lrs in module.ICS_RUNS:
        params = OmegaConf.load(CONFIGS / f"fig3_ics_{family}.yaml").hydra.sweeper.params
        assert str(params.model).split(",") == [std, bn]
        assert [float(x) for x in str(params["optim.lr"]).split(",")] == list(lrs)
        assert f"fig3_ics_{family}" in c5.sweeps
