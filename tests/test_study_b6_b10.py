"""Studies B6-B10 (experiments/b6_regularisation.py .. b10_rank.py) on hand-made records whose answer is known
in closed form: each judges as it should, on the numbers it should (ported from tests/test_beyond.py)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from bnopt import studies
from bnopt.verdicts import BEYOND, FAIL, NOT_RUN, PASS
from tests.run_rows import RecordsBuilder, run_row

SUPPORTED, PARTLY, NOT_SUPPORTED = BEYOND.holds, BEYOND.partly, BEYOND.fails
STEPS = np.arange(0, 1000)
EVAL_STEPS = [0, 500, 1000]
SEEDS = (0, 1, 2)
JITTER = {0: -0.001, 1: 0.0, 2: 0.001}  # a little seed-to-seed spread, so the intervals have width


class Records(RecordsBuilder):
    """Results built run by run: train rows, eval rows and probe rows, per seed."""

    def run(self, model, lr, seed=0, *, loss=1.0, acc=0.9, train_eval=(0.1, 0.9, 0.9), test=(0.1, 0.8, 0.8), rows=()):
        rid = f"{model}-lr{lr:g}-s{seed}"
        path = self.tmp / "runs" / rid
        path.mkdir(parents=True)
        self.runs.append(
            run_row(model, lr, seed, run_id=rid, steps=len(STEPS), path=str(path))
            | dict(elapsed_s=1.0, init_scale=1.0, batch_size=128)
        )
        train = pd.DataFrame(dict(step=STEPS, kind="train", loss=loss, acc=acc, run_id=rid))
        evals = pd.DataFrame(
            dict(step=EVAL_STEPS, kind="eval", train_eval_acc=list(train_eval), test_acc=list(test), run_id=rid)
        )
        self.metrics += [train, evals]
        probes = pd.DataFrame(list(rows), columns=["step", "probe", "layer", "eta", "metric", "value"])
        self.probes.append(probes.assign(run_id=rid))
        return self


def layer_rows(probe: str, metric: str, values_at: dict[int, list[float]]) -> list[tuple]:
    """Probe rows {step: [value of layer 1, 2, ...]}."""
    return [(s, probe, k, np.nan, metric, v) for s, vals in values_at.items() for k, v in enumerate(vals, start=1)]


def judge(study_id, res, scale=None):
    return studies.registry()[study_id].judge(res, scale)


def against(j) -> list[str]:
    return [line for line in j.evidence if line.startswith("against the claim")]


# ------------------------------------------------------------------------------------------------- B6


def test_b6_gap_at_the_matched_training_loss(tmp_path):
    """Standard: loss 1.0 throughout, gap 5 points; BN: loss 0.5, gap 1 point: matched at the first evaluation
    after step 0 for both, G = -4 points."""
    r = Records(tmp_path)
    for seed in SEEDS:
        d = JITTER[seed]
        r.run("vgg16", 0.1, seed, loss=1.0, train_eval=(0.1, 0.85, 0.9), test=(0.1, 0.8 + d, 0.8))
        r.run("vgg16_bn", 0.1, seed, loss=0.5, train_eval=(0.1, 0.81, 0.95), test=(0.1, 0.8 + d, 0.8))
    c = judge("B6", r.results())
    assert c.numbers["step_std"] == 500 and c.numbers["step_bn"] == 500
    assert c.stats[0].mean == pytest.approx(-0.04) and c.verdict == SUPPORTED and c.stats[0].n == 3
    assert not against(c)  # the supported case says nothing against the claim
    assert "matched smoothed training loss 1; standard reaches it at step 500 (gap 5.1%)" in c.evidence[0]

    r = Records(tmp_path / "worse")
    for seed in SEEDS:
        r.run("vgg16", 0.1, seed, loss=1.0, train_eval=(0.1, 0.81, 0.9), test=(0.1, 0.8 + JITTER[seed], 0.8))
        r.run("vgg16_bn", 0.1, seed, loss=0.5, train_eval=(0.1, 0.9, 0.95), test=(0.1, 0.8, 0.8))
    worse = judge("B6", r.results())
    assert worse.verdict == NOT_SUPPORTED and worse.evidence[0].startswith("against the claim: BN's train-test")
    assert worse.evidence[-1].startswith("rule: supported when the whole interval of G is below 0.0%, not supported")


# ------------------------------------------------------------------------------------------------- B7


def gradient_records(path, r_std: float, r_bn: float):
    """Gradient norms r^k over the 13 conv layers at steps 0, 10, 20; the classifier (#14) tiny."""
    r = Records(path)
    for seed in SEEDS:
        for model, ratio in (("vgg16", r_std), ("vgg16_bn", r_bn)):
            ratio = ratio * (1 + JITTER[seed])
            profile = [ratio**k for k in range(13)] + [1e-9]  # the classifier (#14) is left out
            r.run(model, 0.1, seed, rows=layer_rows("gradnorms", "grad_norm", {0: profile, 10: profile, 20: profile}))
    return r.results()


def test_b7_spread_of_a_geometric_depth_profile(tmp_path):
    """Gradient norms r^k over the 13 conv layers have spread log10(r^12) = 12 log10 r; flat = 0."""
    c = judge("B7", gradient_records(tmp_path / "a", 1.5, 1.0))
    v0, v1 = c.stats
    assert v0.mean == pytest.approx(-12 * np.log10(1.5), rel=1e-2) and c.verdict == SUPPORTED
    assert (v0.verdict, v1.verdict) == (PASS, PASS)
    bn_spreads = [12 * abs(np.log10(1 + JITTER[s])) for s in SEEDS]  # the jitter alone (BN's profile is flat)
    assert c.numbers["spread0_bn"] == pytest.approx(np.mean(bn_spreads))
    worse = judge("B7", gradient_records(tmp_path / "b", 1.0, 1.5))
    assert worse.verdict == NOT_SUPPORTED and len(against(worse)) == 2
    assert against(worse)[0].startswith("against the claim: at initialisation BN's gradient norms spread")


# ------------------------------------------------------------------------------------------------- B8


def test_b8_running_vs_batch_statistics(tmp_path):
    """BN: batch acc 80%, running 79% (within 2 points); noisy BN: 70% with its noise vs 40%: partly."""
    r = Records(tmp_path)
    for seed in SEEDS:
        d = JITTER[seed]
        r.run("vgg16_bn", 0.1, seed, acc=0.8, train_eval=(0.1, 0.79, 0.79 + d))
        r.run("vgg16_noisy_bn", 0.1, seed, acc=0.7, train_eval=(0.1, 0.4, 0.4 + d))
    c = judge("B8", r.results())
    d_bn, d_noisy = c.stats
    assert d_bn.mean == pytest.approx(-0.01) and d_noisy.mean == pytest.approx(-0.3)
    assert (d_bn.verdict, d_noisy.verdict, c.verdict) == (PASS, FAIL, PARTLY)
    # the failed sub-test is said plainly, first, with its number; the passed one is not
    assert c.evidence[0].startswith("against the claim: running statistics do not stand in for noisy BN's")
    assert "(D_noisy = -30.0%, 3 seeds, 95% t-interval)" in c.evidence[0]
    assert len(against(c)) == 1
    assert "(1) D_BN within [-2.0%, 2.0%]; (2) D_noisy within [-2.0%, 2.0%]" in c.evidence[-1]


def test_b8_reads_the_last_evaluation_after_the_last_training_step(tmp_path):
    """The final evaluation (step 1000) follows the last training step (999): B8 reads it, with the batch
    accuracy as of step 999 (the evaluation at step t sees training step t's weights). The batch accuracy steps
    from 50% to 80% at step 900; the running one is 70% at step 500 (20 points above: D would fail there) and
    79% at the end (1 point below: D passes). A reader of evaluations at training steps only stops at 500."""
    acc = np.where(STEPS < 900, 0.5, 0.8)
    r = Records(tmp_path)
    for seed in SEEDS:
        for model in ("vgg16_bn", "vgg16_noisy_bn"):
            r.run(model, 0.1, seed, acc=acc, train_eval=(0.1, 0.7, 0.79 + JITTER[seed]))
    res = r.results()
    gap = sys.modules[type(studies.registry()["B8"]).__module__].statistics_gap(res, "vgg16_bn-lr0.1-s0")
    assert list(gap.index) == [500, 1000]
    assert gap["acc_batch"].tolist() == pytest.approx([0.5, 0.8]) and gap["acc_running"].tolist() == [0.7, 0.789]
    c = judge("B8", res)
    assert c.per_seed[0]["batch_bn"] == pytest.approx(0.8) and c.per_seed[0]["running_bn"] == pytest.approx(0.789)
    d_bn, d_noisy = c.stats
    assert d_bn.mean == pytest.approx(-0.01) and d_noisy.mean == pytest.approx(-0.01) and c.verdict == SUPPORTED


# ------------------------------------------------------------------------------------------------- B9


def test_b9_weight_growth_is_the_median_log_ratio_of_the_conv_weight_norms(tmp_path):
    r = Records(tmp_path)
    for seed in SEEDS:
        for model, growth in (("vgg16", 0.02), ("vgg16_bn", 0.1 + JITTER[seed])):
            norms = {0: [1.0 + k for k in range(14)], 500: [1.0] * 14}
            norms[990] = [(1.0 + k) * 10**growth for k in range(13)] + [123.0]  # the classifier is left out
            r.run(model, 0.1, seed, rows=layer_rows("gradnorms", "weight_norm", norms))
    c = judge("B9", r.results())
    e_bn, e_diff = c.stats
    assert e_bn.mean == pytest.approx(0.1) and e_diff.mean == pytest.approx(0.08)
    assert c.verdict == SUPPORTED and e_bn.n == 3
    assert "BN 0.099 (effective LR x0.6339), standard 0.02 (x0.912)" in c.evidence[0]

    r = Records(tmp_path / "shrink")
    for seed in SEEDS:
        for model, growth in (("vgg16", 0.02), ("vgg16_bn", -0.1 + JITTER[seed])):
            norms = {0: [1.0] * 14, 990: [10**growth] * 14}
            r.run(model, 0.1, seed, rows=layer_rows("gradnorms", "weight_norm", norms))
    assert judge("B9", r.results()).verdict == NOT_SUPPORTED


# ------------------------------------------------------------------------------------------------ B10


def test_b10_stable_rank_of_layer_24(tmp_path):
    r = Records(tmp_path)
    for seed in SEEDS:
        for model, (first, last) in (("dln", (2.0, 1.0)), ("dln_bn", (5.0 + JITTER[seed], 4.0))):
            ranks = {0: [first] * 25, 100: [first] * 25, 9900: [last] * 25}
            r.run(model, 1e-6, seed, rows=layer_rows("rank", "stable_rank", ranks))
    c = judge("B10", r.results())
    r0, r1 = c.stats
    assert r0.mean == pytest.approx(np.log10(2.5), rel=1e-3) and r1.mean == pytest.approx(np.log10(4.0))
    assert c.verdict == SUPPORTED


def test_b10_reads_only_the_runs_with_rank_records(tmp_path):
    """Fig 9's DLN runs (probes=paper) have the same model, LR and seed but no stable ranks: not run."""
    r = Records(tmp_path)
    for model in ("dln", "dln_bn"):
        r.run(model, 1e-6, rows=layer_rows("rank", "stable_rank", {0: [2.0] * 25, 100: [1.0] * 25}))
    assert judge("B10", r.results()).verdict == NOT_SUPPORTED  # read while the runs have no probes column
    r.runs = [row | {"probes": "paper"} for row in r.runs]
    c = judge("B10", r.results(), "small")
    assert c.verdict == NOT_RUN and "bnopt-train experiment=beyond_rank scale=small" in c.evidence[1]


# ----------------------------------------------------------------------------------------------- B6-B10


def test_studies_without_runs_are_not_run_and_name_what_trains_them(tmp_path):
    res = Records(tmp_path).run("vgg16", 0.1).results()  # no BN run, no DLN runs
    for study, sweep in (
        ("B6", "beyond_regularisation"),
        ("B7", "beyond_gradients"),
        ("B8", "beyond_inference"),
        ("B9", "beyond_effective_lr"),
        ("B10", "beyond_rank"),
    ):
        c = judge(study, res, "small")
        assert c.verdict == NOT_RUN and c.evidence[0].startswith("not run: "), study
        assert f"bnopt-train experiment={sweep} scale=small" in c.evidence[1], study
        assert c.figure == sweep and studies.registry()[study].draws


def test_b7_and_b9_without_gradnorms_records_are_not_run(tmp_path):
    r = Records(tmp_path)
    for model in ("vgg16", "vgg16_bn"):
        r.run(model, 0.1)
    res = r.results()
    assert judge("B7", res).verdict == NOT_RUN and judge("B9", res).verdict == NOT_RUN
