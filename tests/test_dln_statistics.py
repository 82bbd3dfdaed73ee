"""The DLN statistics of issue 24, item 6 (PROTOCOL section 2, rules of 2026-12-07, "DLN (C7, C8)"): loss ranges
float32 does not resolve are left out of the landscape's loss-range median (C6, C8), and every DLN run of C7
and C8 is reported with its final loss and k, with C7's sentence on the paper's ordering."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from bnopt import dln_rank, studies
from bnopt.measures import RESOLVED_SPACINGS, fit_text, resolved_ranges, smoothness
from tests.run_rows import STEPS, Maker

ULP = float(np.spacing(np.float32(1e4)))  # 2^-10: the float32 spacing at a loss of 1e4


def _series(values, steps=None):
    return pd.Series(values, index=pd.Index(steps or range(len(values)), name="step"), dtype=float)


def test_a_range_of_one_spacing_is_left_out_and_one_of_a_thousand_kept():
    lo = _series([1e4, 1e4, 1e4, 1e4])
    hi = _series([1e4 + ULP, 1e4 + 1e3 * ULP, 1e4 + RESOLVED_SPACINGS * ULP, 1e4 + (RESOLVED_SPACINGS - 1) * ULP])
    kept, left_out = resolved_ranges(lo, hi)
    assert list(kept.index) == [1, 2] and kept.iloc[0] == pytest.approx(1e3 * ULP)
    assert left_out == 0.5
    kept, left_out = resolved_ranges(_series([1.0]), _series([1.5]))  # at a loss of 1 a range of 0.5 is resolved
    assert len(kept) == 1 and left_out == 0.0
    kept, left_out = resolved_ranges(_series([]), _series([]))
    assert len(kept) == 0 and left_out != left_out  # nothing measured: NaN


def _set_ranges(m: Maker, run: int, ranges_in_ulps) -> None:
    """Run `run`'s landscape loss_min / loss_max at a loss of 1e4, step by step, `ranges_in_ulps` apart."""
    p = m.probes[run]
    steps = sorted(p.loc[p.metric == "loss_min", "step"])
    for step, ulps in zip(steps, ranges_in_ulps, strict=True):
        p.loc[(p.step == step) & (p.metric == "loss_min"), "value"] = 1e4
        p.loc[(p.step == step) & (p.metric == "loss_max"), "value"] = 1e4 + ulps * ULP


def _dln_pair(tmp_path, seeds=(0, 1)) -> Maker:
    m = Maker(tmp_path)
    for seed in seeds:
        m.run("dln", 1e-6, seed=seed, loss_end=1600, beta=40, grad_diff=250)
        m.run("dln_bn", 1e-6, seed=seed, loss_end=500, beta=20, grad_diff=30)
    return m


def test_smoothness_median_leaves_out_unresolved_ranges(tmp_path):
    m = _dln_pair(tmp_path, seeds=(0,))
    _set_ranges(m, 0, [1, 2, 3, 1e3, 2e3, 1, 1, 3e3, 1, 1])  # 3 of 10 steps resolved
    s = smoothness(m.results(), "dln-lr1e-06")
    assert s["loss_range"] == pytest.approx(2e3 * ULP) and s["loss_range_unresolved"] == pytest.approx(0.7)


def test_c8_a_seed_without_a_resolved_range_has_no_loss_range_ratio(tmp_path):
    """Seed 1's standard net has only 1-3 spacing ranges: its loss-range ratio is not measured (NaN, left out
    of the statistic), not 0, and its other medians are judged as before."""
    m = _dln_pair(tmp_path)
    _set_ranges(m, 0, [1e3] * 10)  # seed 0 standard: resolved
    _set_ranges(m, 2, [1, 2, 3, 1, 2, 3, 1, 2, 3, 1])  # seed 1 standard: unresolved
    c = studies.registry()["C8"].judge(m.results(), None)
    ranges = c.stats[1]
    assert ranges.name == "(b) log10(BN / standard) loss_range" and ranges.n == 1
    assert np.isnan(ranges.values[1]) and ranges.values[0] == pytest.approx(np.log10(0.5 / (1e3 * ULP)))
    assert [s.n for s in c.stats] == [2, 1, 2, 2]
    assert c.per_seed[1]["dln_loss_range_unresolved"] == 1.0
    line = next(e for e in c.evidence if e.startswith("seed 1: dln LR 1e-06"))
    assert "loss range 0.5 vs n/a (below 4 float32 spacings, left out: 0.0% vs 100.0% of steps)" in line


def test_c6_reports_the_fraction_left_out(tmp_path):
    m = Maker(tmp_path)
    m.run("vgg16", 0.1, beta=40, grad_diff=250, loss_range=2).run("vgg16_bn", 0.1, beta=20, grad_diff=30)
    _set_ranges(m, 0, [1e3, 1, 1e3, 1e3, 1e3, 1e3, 1e3, 1e3, 1e3, 1e3])  # early phase: steps 100, 200
    c = studies.registry()["C6"].judge(m.results(), None)
    assert "loss_range 0.5 vs 0.9766 (below 4 float32 spacings, left out: 0.0% vs 50.0% of steps)" in c.evidence[0]
    assert c.stats[0].values[0] == pytest.approx(np.log10(0.5 / (1e3 * ULP)))
    assert "loss range 0.5 vs 0.9766 (below 4 float32 spacings, left out: 0.0% vs 10.0% of steps)" in c.evidence[1]


# ------------------------------------------------------------------------------- k of every DLN run

N, DIM = 200, 5  # the hand-made runs' regression problem: gaussian_linear(N, DIM, seed)
FINAL = float(np.mean(1 + 10 * np.exp(-STEPS[-50:] / 200)))  # a Maker run's final loss / its loss_end


def _dln_runs(tmp_path, ks: dict, seeds=(0,)) -> Maker:
    """A Maker run of each DLN model at LR 1e-6 whose final loss is its problem's rank-k residual (ks: model
    -> k), with a run folder config that rebuilds the problem."""
    m = Maker(tmp_path)
    for seed in seeds:
        for model, k in ks.items():
            affine = model != "dln"
            residual = dln_rank.residuals(N, DIM, seed, "half_sum", affine)[k]
            m.run(model, 1e-6, seed=seed, loss_end=residual / FINAL)
            cfg = {
                "model": {"family": "dln", "norm": "batch" if affine else "none", "loss_norm": "half_sum"},
                "data": {"n_samples": N, "dim": DIM, "data_seed": seed},
            }
            OmegaConf.save(OmegaConf.create(cfg), f"{m.runs[-1]['path']}/config.yaml")
    return m


def test_fit_text():
    assert fit_text(2439.0, 6, 2438.2) == "2439 (k = 6, at the rank-6 residual 2438)"
    assert fit_text(3810.0, 6, 3647.0) == "3810 (k = 6, 4.5% above the rank-6 residual 3647)"
    assert fit_text(3810.0, float("nan"), float("nan")) == "3810"
    # a residual far below the loss (the last one is 0 up to rounding) gets no percentage
    assert fit_text(9.181e-06, 10, 1.628e-10) == "9.181e-06 (k = 10, the rank-10 residual 1.628e-10)"
    assert fit_text(1.0, 10, 0.0) == "1 (k = 10, the rank-10 residual 0)"


def test_c8_reports_k_of_each_run(tmp_path):
    c = studies.registry()["C8"].judge(_dln_runs(tmp_path, {"dln": 2, "dln_bn": 4}).results(), None)
    e_std = dln_rank.residuals(N, DIM, 0, "half_sum")[2]
    assert c.per_seed[0]["k_std"] == 2 and c.per_seed[0]["k_bn"] == 4
    assert c.per_seed[0]["residual_std"] == pytest.approx(e_std)
    line = c.evidence[0]
    assert line.startswith("seed 0: final DLN loss at LR 1e-06") and "(k = 4, at the rank-4 residual" in line
    assert f"standard {e_std:.4g} (k = 2, at the rank-2 residual {e_std:.4g})" in line


def _ordering_of(tmp_path, ks):
    c = studies.registry()["C7"].judge(_dln_runs(tmp_path, ks, seeds=(0, 1)).results(), None)
    return c, [e for e in c.evidence if e.startswith("DLN: the paper's ordering")]


def test_c7_reports_k_and_says_the_ordering_is_not_reproduced_when_the_norms_learn_as_many(tmp_path):
    c, order = _ordering_of(tmp_path, {"dln": 2, "dln_bn": 4, "dln_l1": 4, "dln_l2": 4})
    assert all(v < 0 for v in c.stats[0].values.values())  # log10(loss l1 / standard): l1 learns more
    fits = [e for e in c.evidence if e.startswith("seed 0: DLN at LR 1e-06, final loss")]
    assert len(fits) == 1 and "standard " in fits[0] and "BN " in fits[0] and "(k = 4, at the rank-4" in fits[0]
    assert order == [
        "DLN: the paper's ordering l1 << BN << standard (Fig 5b: l1 ~1e2, BN 5e2, standard 1.6e3) is not "
        "reproduced (k of l1 / l2 / BN / standard: seed 0: 4 / 4 / 4 / 2; seed 1: 4 / 4 / 4 / 2): l1, l2 and BN "
        "learn the same number of singular directions of the target on every seed and end within 0.1% of each "
        "other on every seed"
    ]


def test_c7_says_the_ordering_holds_only_when_the_numbers_say_so(tmp_path):
    _, order = _ordering_of(tmp_path / "a", {"dln": 1, "dln_bn": 3, "dln_l1": 4})
    assert len(order) == 1 and " holds on every seed, in learned directions (k of l1 / BN / standard: " in order[0]
    c7 = sys.modules[type(studies.registry()["C7"]).__module__]
    mixed = {s: {"fit_dln_k": 2, "fit_dln_bn_k": 3, "fit_dln_l1_k": 4 if s else 3} for s in (0, 1)}
    assert " holds on seeds 1 only, in learned directions" in c7.ordering(mixed)
    assert c7.ordering({0: {"fit_dln_k": 2, "fit_dln_bn_k": float("nan"), "fit_dln_l1_k": 3}}) is None
