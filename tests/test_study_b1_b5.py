"""Studies B1-B5 (experiments/b1_sharpness.py .. b5_batch_size.py) on hand-made records whose answer is known in
closed form, and B2's theorem on random BN units: each judges as it should, on the numbers it should (ported
from tests/test_beyond.py)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import torch

from bnopt import bn_unit, studies
from bnopt.readers import CHANCE
from bnopt.verdicts import BEYOND, FAIL, FAILS, HOLDS, NOT_RUN, PARTLY, PASS
from tests.run_rows import RecordsBuilder, run_row

SUPPORTED, PARTLY_WORD, NOT_SUPPORTED = BEYOND.holds, BEYOND.partly, BEYOND.fails
STEPS = np.arange(0, 1000)
EVAL_STEPS = [0, 500, 800, 900, 1000]  # the last 3: what a final evaluation number averages (readers.LAST_EVALS)
SEEDS = (0, 1, 2)
JITTER = {0: -0.001, 1: 0.0, 2: 0.001}  # a little seed-to-seed spread, so the intervals have width


class Records(RecordsBuilder):
    """Results built run by run: train rows, eval rows and probe rows, per seed."""

    def run(
        self,
        model,
        lr,
        seed=0,
        *,
        acc=0.9,
        train_eval=(0.1, 0.9, 0.9),
        test=(0.1, 0.8, 0.8),
        rows=(),
        status="done",
        init_scale=1.0,
        batch_size=128,
        steps=1000,
    ):
        rid = f"{model}-lr{lr:g}-s{seed}-x{init_scale:g}-b{batch_size}-t{steps}"
        path = self.tmp / "runs" / rid
        path.mkdir(parents=True)
        self.runs.append(
            run_row(model, lr, seed, run_id=rid, steps=steps, path=str(path), status=status)
            | dict(elapsed_s=1.0, init_scale=init_scale, batch_size=batch_size)
        )
        train = pd.DataFrame(dict(step=STEPS, kind="train", loss=1.0, acc=acc, run_id=rid))
        evals = pd.DataFrame(
            dict(step=EVAL_STEPS, kind="eval", train_eval_acc=_evals(train_eval), test_acc=_evals(test), run_id=rid)
        )
        self.metrics += [train, evals]
        probes = pd.DataFrame(list(rows), columns=["step", "probe", "layer", "eta", "metric", "value"])
        self.probes.append(probes.assign(run_id=rid))
        return self


def _evals(values) -> list:
    """One value per EVAL_STEPS: (first, middle, final) holds the final value over the last 3 evaluations;
    a value per evaluation is taken as it is."""
    values = list(values)
    return values if len(values) == len(EVAL_STEPS) else values[:2] + values[2:] * 3


def study(study_id):
    return studies.registry()[study_id]


def module(study_id):
    """The study's file, as the registry loaded it (its helpers)."""
    return sys.modules[type(study(study_id)).__module__]


def judge(study_id, res, scale=None):
    return study(study_id).judge(res, scale)


def b2(trials: int = 20):
    """A B2 on fewer random units than the report's 200 (which take seconds)."""
    s = type(study("B2"))()
    s.trials = trials
    return s


def against(j) -> list[str]:
    return [line for line in j.evidence if line.startswith("against the claim")]


# ------------------------------------------------------------------------------------------------- B1


def hessian_rows(top: float, top_eval: float | None = None, ghg: float = 1.0, resid: float = 0.01) -> list[tuple]:
    """B1's records of one run at steps 0, 100, ..., 900: every point converged (residual `resid`) except a
    wild one at step 300 (residual 0.5) that the median must leave out; step 0 is not counted either."""
    rows = []
    for s in range(0, 1000, 100):
        wild = s in (0, 300)
        residual = 0.5 if s == 300 else resid
        metrics = {"top_eig": 1e6 if wild else top, "top_eig_residual": residual, "ghg": ghg}
        if top_eval is not None:  # negative: B1 takes magnitudes
            metrics |= {"top_eig_eval": -1e6 if wild else -top_eval, "top_eig_residual_eval": residual}
        rows += [(s, "hessian", 0, np.nan, m, v) for m, v in metrics.items()]
    return rows


def flatter_bn(path, seeds=SEEDS):
    """Standard 100, BN 10 (x 10**jitter), BN with running statistics |-50|: S1 = -1, S2 = log10 5; g^T H g /
    ||g||^2 -2 (standard) and 0.5 (BN)."""
    r = Records(path)
    for seed in seeds:
        r.run("vgg16", 0.1, seed, rows=hessian_rows(100.0, ghg=-2.0))
        r.run("vgg16_bn", 0.1, seed, rows=hessian_rows(10.0 ** (1 + JITTER[seed]), 50.0, ghg=0.5))
    return r.results()


@pytest.fixture(scope="module", autouse=True)
def registry():
    """The study files, loaded once (the first test would otherwise pay for importing them)."""
    return studies.registry()


def test_b1_sharpness_is_the_median_over_converged_points_after_step_0(tmp_path):
    j = judge("B1", flatter_bn(tmp_path))
    s1, s2 = j.stats
    assert s1.mean == pytest.approx(-1.0) and s2.mean == pytest.approx(np.log10(5.0)) and s1.n == 3
    assert (s1.verdict, s2.verdict, j.verdict) == (PASS, PASS, SUPPORTED)
    assert "converged points counted (standard, BN, BN eval): 8/9, 8/9, 8/9" in j.evidence[0]
    assert not against(j) and j.evidence[-1].startswith("rule: sub-tests, each over its whole interval: (1) S1 below 0")


def test_b2_descriptive_part_reads_b1s_runs(tmp_path):
    """Median g^T H g / ||g||^2 after step 0 from B1's runs, reported beside the theorem's verdict, not judged."""
    j = b2().judge(flatter_bn(tmp_path, seeds=(0, 1)))
    assert (
        "seed 1: median g^T H g / ||g||^2 along the step's gradient in VGG16 (LR 0.1, B1's runs): standard -2, BN 0.5"
        in j.evidence
    )
    assert j.verdict == SUPPORTED and j.stats == []  # judged on the theorem's trials alone


def test_b1_a_sharper_bn_net_is_said_against_the_claim(tmp_path):
    r = Records(tmp_path)
    for seed in SEEDS:  # BN 1000 vs standard 100: S1 = +1 fails; running statistics 5000: S2 = log10 5 passes
        r.run("vgg16", 0.1, seed, rows=hessian_rows(100.0))
        r.run("vgg16_bn", 0.1, seed, rows=hessian_rows(10.0 ** (3 + JITTER[seed]), 5000.0))
    j = judge("B1", r.results())
    assert (j.stats[0].verdict, j.stats[1].verdict, j.verdict) == (FAIL, PASS, PARTLY_WORD)
    assert against(j) == [j.evidence[0]] and "the BN net's loss is sharper than the standard net's" in j.evidence[0]
    assert "(S1 = 1, 3 seeds, 95% t-interval)" in j.evidence[0]


def test_b1_run_with_too_few_converged_points_is_not_run(tmp_path):
    r = Records(tmp_path)
    r.run("vgg16", 0.1, rows=hessian_rows(100.0, resid=0.2))  # no point converged
    r.run("vgg16_bn", 0.1, rows=hessian_rows(10.0, 50.0))
    j = judge("B1", r.results())
    assert j.verdict == NOT_RUN and "0 of 9 train-mode power iterations converged" in j.evidence[0]


def test_studies_without_runs_are_not_run_and_name_what_trains_them(tmp_path):
    res = Records(tmp_path).run("vgg16", 0.1).results()  # no BN run, no sweep's runs
    for study_id, sweep in (
        ("B1", "beyond_hessian"),
        ("B3", "beyond_init"),
        ("B4", "beyond_lr"),
        ("B5", "beyond_batch"),
    ):
        j = judge(study_id, res, "small")
        assert j.verdict == NOT_RUN and f"bnopt-train experiment={sweep} scale=small" in j.evidence[1], study_id
    c2 = b2().judge(res, "small")  # a theorem checked on random units: no runs needed
    assert c2.verdict == SUPPORTED
    assert any(
        line.startswith("descriptive part not run") and "experiment=beyond_hessian" in line for line in c2.evidence
    )


# ------------------------------------------------------------------------------------------------- B2


def test_b2_thm42_holds_with_equality_and_its_correction_term_matters():
    """Both sides of Thm 4.2 by autograd Hessian-vector products agree to float64 round-off, and the
    -gamma/(m sigma^2) <g_hat, y_hat> ||v||^2 term is far from negligible (dropping it breaks the equality)."""
    gen = torch.Generator().manual_seed(3)
    trials = [module("B2").thm42_trial(gen, m) for m in (4, 17, 64, 200)]
    for t in trials:
        assert abs(t["lhs"] - t["rhs"]) <= 1e-10 * t["size"]
    assert max(abs(t["correction"]) / t["size"] for t in trials) > 0.05
    j = b2().judge(None)
    assert j.verdict == SUPPORTED and j.numbers["bound_holds"] == 20 and j.numbers["trials"] == 20
    assert j.numbers["max_rel_gap_to_equality"] < 1e-10
    assert j.cell.startswith("holds in 20/20 random BN units; largest gap below 1e-12")
    assert j.stats == [] and j.seeds == [] and j.figure == "(theory)"  # the report shows the cell, no table
    assert j.evidence[-1].startswith(
        "rule: H over its whole interval: at or above 100.0% = supported; at or above 95.0%"
    )


@pytest.mark.parametrize("holds,want", [(200, SUPPORTED), (190, PARTLY_WORD), (189, NOT_SUPPORTED)])
def test_b2_verdict_is_the_fraction_of_units_where_the_bound_holds(monkeypatch, holds, want):
    monkeypatch.setattr(module("B2"), "thm42_trials", lambda trials, seed: (holds, 0, 0.0))
    j = b2(200).judge(None)
    assert j.verdict == want and f"holds in {holds}/200 trials" in j.evidence[1]


def test_thm_4_2_draws_its_random_bn_units_from_the_shared_generator():
    """B2 draws its units with bn_unit.random_bn_unit (m, y, gamma, beta, w; then its Hessian's B): the
    same seed gives the same unit as Thm 4.1's, m drawn first."""
    g = torch.Generator().manual_seed(0)
    m = int(torch.randint(4, 256, (1,), generator=g))
    y = torch.randn(m, generator=g, dtype=torch.float64) * 3 + 1
    unit = bn_unit.random_bn_unit(torch.Generator().manual_seed(0))
    assert unit.m == m and torch.equal(unit.y.detach(), y)
    after_m = torch.Generator().manual_seed(0)
    assert int(torch.randint(4, 256, (1,), generator=after_m)) == m
    thm42_trial = module("B2").thm42_trial
    assert thm42_trial(torch.Generator().manual_seed(0)) == thm42_trial(after_m, m)
    assert module("B2").random_bn_unit is module("C9").random_bn_unit is bn_unit.random_bn_unit  # Thm 4.1's too


# --------------------------------------------------------------------------------------------- B3, B4


def _final(acc: float) -> dict:
    """Eval rows ending at `acc` (train subset)."""
    return dict(train_eval=(0.1, acc / 2, acc), test=(0.1, acc / 2, acc - 0.05))


def test_b3_lowest_accuracy_and_range_over_the_init_scales(tmp_path):
    """BN ends at 90 / 88 / 86% (+ seed jitter) over init scales 0.1, 1, 10: M_BN 86%, W_BN 4 points: both
    sub-tests pass. The standard net (not judged) does not train at 0.1 and diverges at 10 (counted as 10%)."""
    r = Records(tmp_path)
    for seed in SEEDS:
        for g, bn_acc, std_acc, std_status in (
            (0.1, 0.90, 0.15, "done"),
            (1, 0.88, 0.8, "done"),
            (10, 0.86, 0, "diverged"),
        ):
            r.run("vgg16_bn", 0.1, seed, init_scale=g, **_final(bn_acc + JITTER[seed]))
            final = _final(std_acc) if std_status == "done" else dict(train_eval=(0.1, np.nan, np.nan))
            r.run("vgg16", 0.1, seed, init_scale=g, status=std_status, **final)
    j = judge("B3", r.results())
    m_bn, w_bn = j.stats
    assert m_bn.mean == pytest.approx(0.86) and w_bn.mean == pytest.approx(0.04) and m_bn.n == 3
    assert j.per_seed[0]["m_std"] == pytest.approx(0.10) and j.per_seed[0]["acc_std_0.1"] == pytest.approx(0.15)
    assert j.verdict == SUPPORTED and not against(j)
    assert "at init scale 0.1, 1, 10: BN 89.9% / 87.9% / 85.9%; standard 15.0% / 80.0% / 10.0%" in j.evidence[0]


def test_b3_final_accuracy_is_the_mean_of_the_last_3_evaluations(tmp_path):
    """BN's last three evaluations at each init scale are acc - 6, acc, acc + 6 points (the last alone would
    read 6 points higher); the standard net's at scale 10 end NaN (diverged): 10%."""
    r = Records(tmp_path)
    for g, acc in ((0.1, 0.90), (1, 0.88), (10, 0.86)):
        r.run("vgg16_bn", 0.1, init_scale=g, train_eval=(0.1, 0.5, acc - 0.06, acc, acc + 0.06))
        if g == 10:  # diverged after its second-to-last evaluation: its last three are not a number
            r.run("vgg16", 0.1, init_scale=g, status="diverged", train_eval=(0.1, 0.5, 0.5, 0.5, np.nan))
        else:
            r.run("vgg16", 0.1, init_scale=g, train_eval=(0.1, 0.5, 0.7))
    row = judge("B3", r.results()).per_seed[0]
    assert [row[f"acc_bn_{g}"] for g in ("0.1", "1", "10")] == pytest.approx([0.90, 0.88, 0.86])
    assert row["m_bn"] == pytest.approx(0.86) and row["w_bn"] == pytest.approx(0.04)
    assert row["acc_std_10"] == pytest.approx(CHANCE) and row["acc_std_1"] == pytest.approx(0.7)


def test_b3_an_accuracy_that_depends_on_the_scale_is_partly(tmp_path):
    """BN trains at every scale but ends 40 points lower at scale 10: partly, the failed sub-test said first."""
    r = Records(tmp_path)
    for seed in SEEDS:
        for g, acc in ((0.1, 0.9), (1, 0.9), (10, 0.5 + JITTER[seed])):
            r.run("vgg16_bn", 0.1, seed, init_scale=g, **_final(acc))
            r.run("vgg16", 0.1, seed, init_scale=g, **_final(acc))
    j = judge("B3", r.results())
    assert j.stats[1].mean == pytest.approx(0.4) and j.verdict == PARTLY_WORD
    assert j.evidence[0].startswith("against the claim: BN's final accuracy still depends strongly")


def test_b3_and_b4_judge_their_sweeps_grid_not_fig1s_runs_alone(tmp_path):
    """Fig 1's runs (LR 0.1 and 0.5, init scale 1) are points of both sweeps: alone they judge neither (B3 would
    see one scale, a range of 0; B4 a grid that stops at 0.5)."""
    r = Records(tmp_path)
    for model in ("vgg16", "vgg16_bn"):
        for lr in (0.1, 0.5):
            r.run(model, lr)
    b3, b4 = judge("B3", r.results()), judge("B4", r.results())
    assert b3.verdict == NOT_RUN and "init scale 0.1" in b3.evidence[0]
    assert b4.verdict == NOT_RUN and "at LR 1" in b4.evidence[0]


def b4_records(path, std_max: float, bn_max: float = 1.0, grid=(0.1, 0.5, 1, 2)):
    """BN trains up to `bn_max` (above, it ends at 15%, under the 20% bar); the standard net up to `std_max`
    (above, it diverges)."""
    r = Records(path)
    for lr in grid:
        r.run("vgg16_bn", lr, **_final(0.85 if lr <= bn_max else 0.15))
        if lr <= std_max:
            r.run("vgg16", lr, **_final(0.8))
        else:
            r.run("vgg16", lr, status="diverged", train_eval=(0.1, np.nan, np.nan))
    return r.results()


@pytest.mark.parametrize(
    "std_max,want_ratio,want", [(0.1, 10.0, SUPPORTED), (0.5, 2.0, PARTLY_WORD), (1, 1.0, NOT_SUPPORTED)]
)
def test_b4_largest_lr_that_trains_and_their_ratio(tmp_path, std_max, want_ratio, want):
    """BN trains up to LR 1, the standard net only at 0.1: ratio 10, supported. With a standard net that also
    trains at 0.5, ratio 2: partly. Trained as far as BN: ratio 1, not supported, said first."""
    j = judge("B4", b4_records(tmp_path, std_max))
    assert j.per_seed[0]["lmax_bn"] == 1 and j.per_seed[0]["lmax_std"] == std_max
    assert j.stats[0].mean == pytest.approx(want_ratio) and j.verdict == want
    assert j.per_seed[0]["acc_std_2"] == pytest.approx(CHANCE)
    assert "a ratio of 20 is the most the grid can show" in " ".join(j.evidence)
    assert j.evidence[-1].startswith("rule: ratio over its whole interval: at or above 4 = supported; above 1 = partly")
    if want == NOT_SUPPORTED:
        assert against(j) == [j.evidence[0]] and j.evidence[0] == (
            "against the claim: BN does not allow a larger learning rate than the standard net on this grid "
            "(ratio = 1, 1 seed, no interval)"
        )
    else:
        assert not against(j)


def test_b4_ratio_is_infinite_when_only_bn_trains(tmp_path):
    b4 = module("B4")
    assert b4.lr_ratio(2.0, 0.0) == float("inf") and b4.lr_ratio(0.0, 0.0) != b4.lr_ratio(0.0, 0.0)
    rule = study("B4").rule
    outcomes = [rule.outcome({"ratio": x}) for x in (float("inf"), 4.0, 3.99, 1.0)]
    assert outcomes == [HOLDS, HOLDS, PARTLY, FAILS]
    j = judge("B4", b4_records(tmp_path, std_max=0.0))  # the standard net diverges everywhere
    assert j.per_seed[0]["ratio"] == float("inf") and j.verdict == SUPPORTED


# ------------------------------------------------------------------------------------------------- B5


def b5_records(path, batches=(8, 32, 128), seeds=SEEDS):
    """BN's test-accuracy lead is 20 points at batch 128 and 5 at batch 8 (S1 = -15 points); its train-mode
    (batch statistics) accuracy sits 1 point from the running-statistics one at 128 and 11 at 8 (S2 = +10)."""
    r = Records(path)
    lr = {8: 0.00625, 32: 0.025, 128: 0.1}
    for seed in seeds:
        j = JITTER[seed]
        for batch, bn_test, std_test, batch_acc, running in (
            (8, 0.60 + j, 0.55, 0.81, 0.70),
            (32, 0.70, 0.55, 0.80, 0.75),
            (128, 0.75, 0.55, 0.80, 0.79),
        ):
            if batch not in batches:
                continue
            sweep = dict(batch_size=batch, steps=51200 // batch)  # small's batch study: 51,200 images each
            bn = dict(acc=batch_acc, train_eval=(0.1, 0.5, running), test=(0.1, 0.5, bn_test))
            r.run("vgg16_bn", lr[batch], seed, **sweep, **bn)
            r.run("vgg16", lr[batch], seed, **sweep, train_eval=(0.1, 0.5, 0.6), test=(0.1, 0.5, std_test))
    return r


def test_b5_advantage_and_statistics_gap_from_batch_8_to_128(tmp_path):
    """Both sub-tests pass; the LRs come from the runs table and are noted after the statistics."""
    j = judge("B5", b5_records(tmp_path).results(), "small")
    s1, s2 = j.stats
    assert s1.mean == pytest.approx(0.05 - 0.20) and s2.mean == pytest.approx(0.11 - 0.01) and s1.n == 3
    assert s1.name == "S1 = A(8) - A(128), A = test acc BN - standard"
    assert j.per_seed[1]["test_bn_8"] == pytest.approx(0.60) and j.verdict == SUPPORTED
    note = j.evidence[j.evidence.index(s2.summary()) + 1]
    assert "LR scaled linearly with the batch (0.00625 at 8, 0.025 at 32, 0.1 at 128)" in note
    assert (
        "seed 1: test acc at batch 8, 32, 128: BN 60.0% / 70.0% / 75.0%; standard 55.0% / 55.0% / 55.0%"
        in (j.evidence[1])
    )


def test_b5_reads_its_batch_study_runs_never_fig1s(tmp_path):
    """The batch-128 run is B5's (400 steps), never Fig 1's at LR 0.1 (batch 128 too, the preset's 2,000 steps)."""
    r = b5_records(tmp_path, seeds=(0,))
    r.run("vgg16_bn", 0.1, 0, steps=2000, train_eval=(0.1, 0.5, 0.1), test=(0.1, 0.5, 0.1))
    assert judge("B5", r.results(), "small").per_seed[0]["test_bn_128"] == pytest.approx(0.75)


def test_b5_without_the_smallest_batchs_runs_is_not_run(tmp_path):
    j = judge("B5", b5_records(tmp_path, batches=(32, 128)).results(), "small")
    assert j.verdict == NOT_RUN and "no batch-study run at batch 8" in j.evidence[0]
