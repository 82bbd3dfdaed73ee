"""Studies C6-C9 (experiments/c6_smoothness.py .. c9_theorem41.py) on hand-made records whose answer is known:
each judges as it should, on the numbers it should (ported from tests/test_claims.py)."""

from __future__ import annotations

import sys

import pytest

from bnopt import studies
from bnopt.verdicts import FAIL, INCONCLUSIVE, NOT_RUN, PAPER, PASS
from tests.run_rows import Maker

REPRODUCED, PARTLY, NOT_REPRODUCED = PAPER.holds, PAPER.partly, PAPER.fails


def judge(cid, res, **kw):
    return studies.registry()[cid].judge(res, None, **kw)


def _pair(tmp, std, bn, seeds=(0,), lr=0.1, **common):
    """Maker with the standard and BN net (std, bn: (model, {run kwargs})) at each seed."""
    m = Maker(tmp)
    for seed in seeds:
        m.run(std[0], lr, seed=seed, **common, **std[1]).run(bn[0], lr, seed=seed, **common, **bn[1])
    return m


# ------------------------------------------------------------------------------------------------- C6

BN_SMOOTH = ("vgg16_bn", dict(beta=20, grad_diff=30, loss_range=0.5))


def test_c6_smoothness(tmp_path):
    good = _pair(tmp_path / "a", ("vgg16", dict(beta=40, grad_diff=250, loss_range=2)), BN_SMOOTH).results()
    c = judge("C6", good)
    assert c.verdict == REPRODUCED and c.numbers["vgg16_bn_beta"] == 20 and c.numbers["vgg16_grad_diff_peak"] == 250
    assert [s.verdict for s in c.stats] == [PASS, PASS, PASS]
    assert c.stats[2].name == "log10(BN / standard) beta, early phase"
    assert c.stats[2].mean == pytest.approx(-0.30103, abs=1e-5)
    assert (
        "loss_range 0.5 vs 2 (below 4 float32 spacings, left out: 0.0% vs 0.0% of steps); grad_diff_max 30 vs 250; "
        "beta 20 vs 40" in c.evidence[0]
    )
    assert "beta x eta / 2 early 1 vs 2, last half 1 vs 2" in c.evidence[0]
    assert (
        "loss range 0.5 vs 2 (below 4 float32 spacings, left out: 0.0% vs 0.0% of steps); gradient predictiveness "
        "(max ||grad diff||) 30 vs 250" in c.evidence[1]
    )
    assert c.evidence[-1].startswith("rule: sub-tests, each over its whole interval: (1) log10(BN / standard) ")
    mixed = _pair(tmp_path / "b", ("vgg16", dict(beta=10, grad_diff=250, loss_range=2)), BN_SMOOTH).results()
    c = judge("C6", mixed)
    assert c.verdict == PARTLY and [s.verdict for s in c.stats] == [PASS, PASS, FAIL]
    bad = _pair(tmp_path / "c", ("vgg16", dict(beta=1, grad_diff=1, loss_range=0.1)), BN_SMOOTH).results()
    assert judge("C6", bad).verdict == NOT_REPRODUCED


def test_c6_inconclusive_when_a_median_straddles(tmp_path):
    m = Maker(tmp_path)
    for seed, beta_std in enumerate((40, 15, 30)):  # BN's beta 20: lower in seeds 0, 2, higher in seed 1
        m.run("vgg16", 0.1, beta=beta_std, grad_diff=250, loss_range=2, seed=seed)
        m.run("vgg16_bn", 0.1, beta=20, grad_diff=30, loss_range=0.5, seed=seed)
    c = judge("C6", m.results())
    assert [s.verdict for s in c.stats] == [PASS, PASS, INCONCLUSIVE]
    assert c.verdict == INCONCLUSIVE  # reproduced if beta passes, partly if not
    assert c.numbers["vgg16_beta"] == pytest.approx(85 / 3) and c.n_seeds == "3"


def test_c6_bn_lower_within_the_margin_is_no_difference(tmp_path):
    """A log10 ratio of -0.04 (BN's beta 10% lower) is inside the 0.05 margin: not evidence that BN is lower."""
    near = _pair(tmp_path, ("vgg16", dict(beta=22, grad_diff=250, loss_range=2)), BN_SMOOTH).results()
    c = judge("C6", near)
    assert c.stats[2].mean == pytest.approx(-0.0414, abs=1e-3) and c.stats[2].verdict == FAIL
    assert c.verdict == PARTLY and "below -0.05" in c.evidence[-1]


def test_c6_says_when_both_nets_sit_at_the_edge_of_stability(tmp_path):
    """beta = 2 / eta = 20 at LR 0.1 for both nets late in training: beta x eta / 2 = 1, set by the step size."""
    pinned = _pair(tmp_path / "a", ("vgg16", dict(beta=21, grad_diff=250, loss_range=2)), BN_SMOOTH).results()
    assert any("pinned at 2 / eta = 20" in e for e in judge("C6", pinned).evidence)
    apart = _pair(tmp_path / "b", ("vgg16", dict(beta=40, grad_diff=250, loss_range=2)), BN_SMOOTH).results()
    evidence = judge("C6", apart).evidence
    assert not any("pinned" in e for e in evidence)
    fig4c = next(e for e in evidence if e.startswith("Fig 4c:"))  # said whether or not the nets are pinned
    assert "2 / eta = 20 at its LR 0.1" in fig4c
    assert fig4c.endswith("training and 1 seed(s), beta x eta / 2 is 1-1 for BN and 2-2 for the standard net")


def test_c6_without_landscape_records_is_not_run(tmp_path):
    m = Maker(tmp_path).run("vgg16", 0.1).run("vgg16_bn", 0.1)
    m.probes = [p[p.probe != "landscape"] for p in m.probes]
    c = judge("C6", m.results())
    assert c.verdict == NOT_RUN and c.evidence[0] == "not run: no run of vgg16 at LR 0.1 seed 0"  # with them
    assert c.evidence[1] == "train its runs with `bnopt-train experiment=fig4`"


# ------------------------------------------------------------------------------------------------- C7


def _lp(tmp, bn_acc, lp_acc, std_loss, lp_loss, vgg=True, dln=True):
    m = Maker(tmp)
    for p in ("", "l1", "l2", "linf"):  # "": the reference net
        if dln:
            m.run(f"dln_{p}" if p else "dln", 1e-6, loss_end=lp_loss if p else std_loss)
        if vgg:
            m.run(f"vgg16_{p}" if p else "vgg16_bn", 0.1, final_acc=lp_acc if p else bn_acc)
    return m.results()


def test_c7_lp_norms(tmp_path):
    c = judge("C7", _lp(tmp_path / "a", 0.9, 0.9, 1600, 100))
    assert c.verdict == REPRODUCED and c.numbers["passed"] == c.numbers["total"] == 6
    names = [s.name for s in c.stats]
    assert names[0] == "VGG l1: acc l1 - BN" and names[-1] == "DLN linf: log10(loss linf / standard)"
    assert c.stats[-1].mean == pytest.approx(-1.20412, abs=1e-4)  # log10(100 / 1600)
    assert c.numbers["dln_l2_loss_std"] / c.numbers["dln_l2_loss"] == pytest.approx(16)
    assert "(1) VGG l1: acc l1 - BN at or above -5.0%;" in c.evidence[-1]
    assert "(6) DLN linf: log10(loss linf / standard) below 0;" in c.evidence[-1]


def test_c7_lp_norms_worse_than_the_references(tmp_path):
    c = judge("C7", _lp(tmp_path, 0.9, 0.3, 100, 1600))
    assert c.verdict == NOT_REPRODUCED and c.numbers["passed"] == 0


def test_c7_vgg_passes_within_5_points_of_bn(tmp_path):
    c = judge("C7", _lp(tmp_path / "a", 0.9, 0.86, 1600, 100, dln=False))
    assert c.verdict == REPRODUCED and c.stats[0].mean == pytest.approx(-0.04, abs=2e-3)
    c = judge("C7", _lp(tmp_path / "b", 0.9, 0.84, 1600, 100, dln=False))
    assert c.verdict == NOT_REPRODUCED and [s.verdict for s in c.stats] == [FAIL] * 3
    assert "(3) VGG linf: acc linf - BN at or above -5.0%; all pass" in c.evidence[-1]  # no DLN sub-test


def test_c7_judges_the_families_that_have_runs(tmp_path):
    c = judge("C7", _lp(tmp_path / "a", 0.9, 0.9, 1600, 100, vgg=False))
    assert c.verdict == REPRODUCED and c.n_seeds == "1"
    assert [s.name.split(":")[0] for s in c.stats] == ["DLN l1", "DLN l2", "DLN linf"]
    assert c.evidence[0] == "VGG l1: not run (no vgg16_bn and vgg16_l1 at LR 0.1 of one seed)"
    assert "(1) DLN l1" in c.evidence[-1] and "VGG" not in c.evidence[-1]
    c = judge("C7", Maker(tmp_path / "b").run("dln", 1e-6).results())
    assert c.verdict == NOT_RUN and c.evidence[0] == "not run: no l_p runs"


# ------------------------------------------------------------------------------------------------- C8


def test_c8_dln(tmp_path):
    std = ("dln", dict(loss_end=1600, beta=40, grad_diff=250))
    good = _pair(tmp_path / "a", std, ("dln_bn", dict(loss_end=500, beta=20, grad_diff=30)), lr=1e-6).results()
    c = judge("C8", good)
    assert c.verdict == REPRODUCED and [s.verdict for s in c.stats] == [PASS, FAIL, PASS, PASS]  # equal ranges
    assert c.stats[0].mean == pytest.approx(-0.50515, abs=1e-4)  # log10(500 / 1600)
    assert "sub-test (b) BN smoother on at least 2 of 3 of:" in c.evidence[-2] and c.evidence[-2].endswith(": pass")
    std = ("dln", dict(loss_end=100, beta=1, grad_diff=1, loss_range=0.1))
    bad = _pair(tmp_path / "b", std, ("dln_bn", dict(loss_end=500, beta=20, grad_diff=30)), lr=1e-6).results()
    assert judge("C8", bad).verdict == NOT_REPRODUCED
    std = ("dln", dict(loss_end=1600, beta=1, grad_diff=1))
    half = _pair(tmp_path / "c", std, ("dln_bn", dict(loss_end=500, beta=20, grad_diff=30)), lr=1e-6).results()
    c = judge("C8", half)
    assert c.verdict == PARTLY and c.evidence[-2].endswith(": fail")


def test_c8_loss_and_smoothness_rest_on_their_own_seeds(tmp_path):
    std, bn = ("dln", dict(loss_end=1600, beta=40, grad_diff=250)), ("dln_bn", dict(loss_end=500, beta=20))
    m = _pair(tmp_path, std, bn, seeds=(0, 1, 2), lr=1e-6)
    m.probes[4:] = [p[p.probe != "landscape"] for p in m.probes[4:]]  # seed 2 has no landscape records
    c = judge("C8", m.results())
    assert c.seeds == [0, 1, 2] and c.n_seeds == "2-3" and [s.n for s in c.stats] == [3, 2, 2, 2]
    assert c.per_seed[2].keys() == {f"{q}_{n}" for q in ("loss", "k", "residual") for n in ("std", "bn")} | {
        "log10_ratio_loss"
    }
    assert c.per_seed[2]["k_std"] != c.per_seed[2]["k_std"]  # no run folder config: k not known (NaN)
    assert sum(e.startswith("seed 2: ") for e in c.evidence) == 1  # its loss line, no smoothness line
    assert c.verdict == REPRODUCED


# ------------------------------------------------------------------------------------------------- C9


def test_c9_theorem_4_1_appendix_form_is_an_equality():
    c = judge("C9", None, trials=50)
    assert c.numbers["max_rel_err_appendix_equality"] < 1e-10
    assert c.numbers["bounded_by_gamma2_over_sigma2_g2"] == 50
    assert c.numbers["printed_inequality_holds"] == 0  # the printed 1/sqrt(m) form is violated
    assert c.verdict == PARTLY  # Thm 4.2 is not checked
    assert c.seeds == [] and c.stats == [] and c.n_seeds == "-" and "50/50 random BN units" in c.cell
    assert c.evidence[-1] == (
        "rule: partly if E below 1e-08 and B at or above 100.0% (each over its whole interval); otherwise not "
        "reproduced; inconclusive when the intervals allow more than one verdict"
    )


def test_c9_is_not_reproduced_when_a_form_is_off(monkeypatch):
    c9 = sys.modules[type(studies.registry()["C9"]).__module__]
    real = c9.thm41_trial
    off = {
        "appendix": lambda lhs, appendix, printed, bound: (lhs, appendix * 1.01, printed, bound),
        "bound": lambda lhs, appendix, printed, bound: (lhs, appendix, printed, lhs * 0.99),
    }
    for what, change in off.items():
        monkeypatch.setattr(c9, "thm41_trial", lambda gen, change=change: change(*real(gen)))
        c = judge("C9", None, trials=5)
        assert c.verdict == NOT_REPRODUCED, what
    assert c.numbers["bounded_by_gamma2_over_sigma2_g2"] == 0 and c.numbers["max_rel_err_appendix_equality"] < 1e-10
