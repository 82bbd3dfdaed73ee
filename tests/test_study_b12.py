"""B12 (experiments/b12_dln_setup.py), the DLN set-up ablation, on hand-made records: each set-up's runs are found
by what its configs/dln_setup file sets (init, data seed, LR, the landscape probe's dtype and direction), BN
smoother under one set-up and rougher under the others is "partly", and a float64 probe's tiny loss ranges count
(a float32 one's are rounding, left out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bnopt import studies
from bnopt.verdicts import BEYOND, FAIL, NOT_RUN
from tests.run_rows import RecordsBuilder, run_row

STEPS = 1000


class SetupRuns(RecordsBuilder):
    """DLN runs with the runs-table columns of the ablation's set-ups, landscape rows every 100 steps, a
    falling training loss and (hessian=True) top-eigenvalue rows."""

    def run(self, model, lr, seed, *, beta, grad_diff, loss_range, loss=1e4, hessian=None, rising=False, **setup):
        cols = dict(init="glorot", init_scale=1.0, data_seed=seed, landscape_dtype="float32")
        cols |= dict(landscape_norm_params=True, loss_norm="half_sum", precision="fp32", probes="edge")
        cols |= setup
        rid = f"{model}-lr{lr:g}-s{seed}-" + "-".join(f"{k}{v}" for k, v in sorted(setup.items()))
        self.runs.append(run_row(model, lr, seed, run_id=rid, steps=STEPS, batch_size=1000, **cols))
        steps = np.arange(STEPS)
        curve = loss * (1 + np.exp(-steps / 100)) if not rising else loss * (1 + steps)  # rising: diverges
        self.metrics.append(pd.DataFrame(dict(step=steps, kind="train", loss=curve)))
        self.metrics[-1]["run_id"] = rid
        rows = []
        for s in range(0, STEPS, 100):
            summary = {"loss_min": loss, "loss_max": loss + loss_range, "grad_diff_max": grad_diff, "beta": beta}
            rows += [(s, "landscape", 0, np.nan, k, v) for k, v in summary.items()]
            if hessian is not None:
                rows.append((s, "hessian", 0, np.nan, "top_eig", hessian))
        frame = pd.DataFrame(rows, columns=["step", "probe", "layer", "eta", "metric", "value"])
        self.probes.append(frame.assign(run_id=rid))
        return self


def judge(res):
    return studies.registry()["B12"].judge(res, None)


def both(m, seed, lr=1e-6, bn=(1.0, 1.0, 1.0), **setup):
    """The standard net (loss range 1.0, predictiveness 10, beta 1e5) and BN at `bn` times those."""
    std = dict(loss_range=1.0, grad_diff=10.0, beta=1e5)
    m.run("dln", lr, seed, **std, **setup)
    m.run("dln_bn", lr, seed, **{k: v * f for (k, v), f in zip(std.items(), bn, strict=True)}, **setup)


def test_each_set_up_is_judged_on_its_own_runs_and_one_smoother_set_up_is_partly(tmp_path):
    m = SetupRuns(tmp_path)
    for seed in (0, 1, 2):
        both(m, seed, bn=(3.0, 2.0, 2.5 + 0.1 * seed))  # the protocol: BN rougher on all three
        both(m, seed, bn=(0.1, 0.2, 0.3 + 0.01 * seed), init="orthogonal")  # BN smoother
        both(m, seed, lr=1e-5, bn=(2.0, 0.5, 2.0 + 0.1 * seed))  # smoother on 1 of 3 only
    j = judge(m.results())
    assert j.verdict == BEYOND.partly
    stats = {s.name: s for s in j.stats}
    assert stats["protocol: log10(BN / standard) effective beta"].mean == pytest.approx(np.log10(2.6), abs=1e-3)
    assert stats["orthogonal: log10(BN / standard) loss range"].mean == pytest.approx(-1.0)
    assert stats["lr1e-5: log10(BN / standard) gradient predictiveness"].mean == pytest.approx(np.log10(0.5))
    assert not any(name.startswith("critical_gain") for name in stats)  # a set-up without runs is not judged
    assert j.evidence[0] == (
        "Answer: Fig 10's direction (BN smoother) passes where both nets train stably in: orthogonal; "
        "the stable set-ups that do not pass: protocol fail, lr1e-5 fail"
    )
    assert j.evidence[1] == (
        "set-ups whose seed means put BN smoother on at least 2 of 3 medians (Fig 10's direction): orthogonal; "
        "set-ups where a net diverged (final loss above its initial loss or not finite): none"
    )


def test_a_set_up_where_the_standard_net_diverges_says_so(tmp_path):
    """Past its stability limit the standard net's loss rises and its landscape medians grow: BN is then
    "smoother" because the other net diverges, and the evidence says which set-ups and seeds that was."""
    m = SetupRuns(tmp_path)
    for seed in (0, 1):
        m.run("dln", 5e-6, seed, beta=1e7, grad_diff=1e3, loss_range=1e3, rising=seed == 1)
        m.run("dln_bn", 5e-6, seed, beta=1e5, grad_diff=10.0, loss_range=1.0)
        both(m, seed, bn=(2.0, 2.0, 2.0))  # the protocol, stable: BN rougher
    j = judge(m.results())
    assert j.evidence[0] == (
        "Answer: no set-up in which both nets train stably gives Fig 10's direction (BN smoother) conclusively; "
        "the stable set-ups that do not pass: protocol fail; it passes where a net diverged: lr5e-6 (past that "
        "net's stability limit, where BN looks smoother because the other net diverges)"
    )
    assert j.evidence[1].endswith(
        "set-ups where a net diverged (final loss above its initial loss or not finite): "
        "lr5e-6 (standard in 1 of 2 seeds)"
    )
    assert any(e.startswith("seed 1, lr5e-6:") and "(diverged)" in e for e in j.evidence)
    assert not any(e.startswith("seed 0, lr5e-6:") and "(diverged)" in e for e in j.evidence)


def test_a_net_that_diverged_before_any_landscape_record_is_still_counted(tmp_path):
    """critical_gain's standard net diverged at step 5 in seed 4 (results/small): no landscape record, so no
    log-ratio for that seed, but the set-up is one where a net diverged, not a stable one."""
    m = SetupRuns(tmp_path)
    for seed in (0, 1, 2):
        both(m, seed, bn=(2.0, 2.0, 2.0), init_scale=1.047)  # BN rougher
        if seed == 2:
            m.runs.pop(-2), m.metrics.pop(-2), m.probes.pop(-2)
            m.run("dln", 1e-6, seed, beta=1e5, grad_diff=10.0, loss_range=1.0, rising=True, init_scale=1.047)
            m.probes[-1] = m.probes[-1].iloc[:0]  # diverged before its first landscape measurement
    j = judge(m.results())
    stats = {s.name: s for s in j.stats}
    assert stats["critical_gain: log10(BN / standard) effective beta"].n == 2
    assert (
        j.evidence[0]
        == "Answer: no set-up in which both nets train stably gives Fig 10's direction (BN smoother) conclusively"
    )
    assert j.evidence[1].endswith(
        "set-ups where a net diverged (final loss above its initial loss or not finite): "
        "critical_gain (standard in 1 of 3 seeds)"
    )


def test_a_fixed_data_seed_run_is_not_taken_for_the_protocol_and_the_reverse(tmp_path):
    m = SetupRuns(tmp_path)
    for seed in (0, 1, 2):
        both(m, seed, bn=(3.0, 3.0, 3.0))
        if seed:  # at seed 0 the fixed problem is the protocol's own run (data_seed 0 = seed)
            both(m, seed, bn=(0.1, 0.1, 0.1), data_seed=0)
    table = studies.registry()["B12"].table(m.results(), None)
    assert table[0]["fixed_data_log10_ratio_beta"] == pytest.approx(np.log10(3.0))  # seed 0: the shared run
    assert table[1]["fixed_data_log10_ratio_beta"] == pytest.approx(-1.0)
    assert table[1]["protocol_log10_ratio_beta"] == pytest.approx(np.log10(3.0))


def test_a_float64_probe_resolves_loss_ranges_a_float32_one_leaves_out(tmp_path):
    m = SetupRuns(tmp_path)
    for seed in (0, 1):
        # a loss range of 1e-4 at a loss of 1e4 is far below a float32 spacing (2^-10), far above a float64 one
        for dtype in ("float32", "float64"):
            extra = {} if dtype == "float32" else {"landscape_dtype": dtype}
            m.run("dln", 1e-6, seed, beta=1e5, grad_diff=10.0, loss_range=1e-4, **extra)
            m.run("dln_bn", 1e-6, seed, beta=1e5, grad_diff=10.0, loss_range=1e-2, **extra)
    row = studies.registry()["B12"].table(m.results(), None)[0]
    assert np.isnan(row["protocol_log10_ratio_loss_range"])  # the standard net's ranges are all rounding
    assert row["float64_log10_ratio_loss_range"] == pytest.approx(2.0)


def test_sharpness_and_the_edge_are_reported_beside_the_judged_ratios(tmp_path):
    m = SetupRuns(tmp_path)
    for seed in (0, 1, 2):
        m.run("dln", 1e-6, seed, beta=2e5, grad_diff=10.0, loss_range=1.0, hessian=1e5)
        m.run("dln_bn", 1e-6, seed, beta=2e6, grad_diff=10.0, loss_range=1.0, hessian=1.9e6)
    j = judge(m.results())
    stats = {s.name: s for s in j.stats}
    assert stats["protocol: beta x eta / 2 BN (not judged)"].mean == pytest.approx(1.0)
    assert stats["protocol: top eigenvalue x eta / 2 BN (not judged)"].mean == pytest.approx(0.95)
    assert stats["protocol: top eigenvalue x eta / 2 standard (not judged)"].mean == pytest.approx(0.05)
    assert [s.verdict for s in j.stats if "log10" in s.name] == [FAIL] * 3 and j.verdict == BEYOND.fails


def test_no_ablation_runs_is_not_run_with_the_command(tmp_path):
    m = SetupRuns(tmp_path)
    m.run("vgg16", 0.1, 0, beta=20.0, grad_diff=1.0, loss_range=1.0)
    j = judge(m.results())
    assert j.verdict == NOT_RUN and "bnopt-train experiment=beyond_dln_setup" in j.evidence[1]


def test_every_set_up_file_sets_only_what_the_study_can_find_runs_by():
    b12 = studies._load(studies.STUDY_DIR / "b12_dln_setup.py")
    assert {n: b12.setup_of(n) for n in ("protocol", "orthogonal", "lr5e-6", "float64")} == {
        "protocol": (1e-6, ()),
        "orthogonal": (1e-6, (("init", "orthogonal"),)),
        "lr5e-6": (5e-6, ()),
        "float64": (1e-6, (("landscape_dtype", "float64"),)),
    }
    assert all(b12.setup_of(n) for n in b12.setups())  # every declared set-up reads (none sets an unknown key)


def test_its_figure_draws_each_set_up_and_names_every_run_behind_it(tmp_path):
    from bnopt import figures

    m = SetupRuns(tmp_path)
    for seed in (0, 1):
        both(m, seed, bn=(3.0, 2.0, 2.5))
        both(m, seed, bn=(0.1, 0.2, 0.3), init="orthogonal")
    res = m.results()
    drawn = figures.draw_figure("beyond_dln_setup", res, None)
    assert set(drawn.runs) == set(res.runs["run_id"])  # 2 set-ups x 2 nets x 2 seeds
    ax = drawn.fig.axes[0]
    # fixed_data's seed 0 is the protocol's own run (data seed 0 = the seed): drawn from that one seed
    assert [t.get_text() for t in ax.get_xticklabels()] == ["protocol", "orthogonal", "fixed_data"]
    dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert sorted(round(float(y), 6) for line in dots for y in line.get_ydata()) == pytest.approx(
        sorted([np.log10(3.0)] * 3 + [-1.0] * 2)
    )


def test_the_exploratory_gap_analysis_counts_each_trained_pair_once():
    """The log-ratios against k(BN) - k(standard): probe-only set-ups (float64) and repeated numbers (fixed_data's
    seed 0 is the protocol's run) are left out; an unstable set-up is left out; the group means and Spearman's
    rho are the closed-form ones."""
    b12 = studies._load(studies.STUDY_DIR / "b12_dln_setup.py")

    def pair(name, k_std, k_bn, ratio, diverged=False):
        row = {f"{name}_k_dln": k_std, f"{name}_k_dln_bn": k_bn, f"{name}_diverged_dln": diverged}
        return row | {f"{name}_log10_ratio_{k}": ratio for k in ("loss_range", "grad_diff_max", "beta")}

    table = {
        s: pair("protocol", 4, 6, 2.0 + s)
        | pair("fixed_data", 4, 6, 2.0 + s)  # seed 0 repeats the protocol's numbers; seeds 1-2 too, here
        | pair("float64", 4, 6, 9.0)
        | pair("orthogonal", 10, 10, -1.0 - s)
        | pair("lr1e-5", 0, 4, -5.0, diverged=True)
        for s in (0, 1, 2)
    }
    names = ["protocol", "orthogonal", "fixed_data", "lr1e-5", "float64"]
    (line,) = b12.gap_lines(table, names)
    assert "BN learned more directions (3 pairs): mean log10(BN / standard) 3 / 3 / 3" in line
    assert "both learned as many (3 pairs): mean log10(BN / standard) -2 / -2 / -2" in line
    # the gap takes two values, the ratios split by it: Spearman's rho is the point-biserial rank correlation
    rho = np.corrcoef([2, 2, 2, 0, 0, 0], [4, 5, 6, 3, 2, 1])[0, 1]
    assert f"loss range {rho:.4g}" in line
