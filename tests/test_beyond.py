"""Beyond-the-paper studies (bnopt.beyond) on hand-made records whose answer is known in closed form."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bnopt import beyond, claims
from bnopt.report import write_report
from tests.run_rows import RecordsBuilder, run_row

STEPS = np.arange(0, 1000)
EVAL_STEPS = [0, 500, 1000]


class Records(RecordsBuilder):
    """Results built run by run: train rows, eval rows and probe rows, per seed."""

    def run(
        self,
        model,
        lr,
        seed=0,
        *,
        loss=1.0,
        acc=0.9,
        train_eval=(0.1, 0.9, 0.9),
        test=(0.1, 0.8, 0.8),
        rows=(),
        status="done",
        init_scale=1.0,
    ):
        rid = f"{model}-lr{lr:g}-s{seed}-x{init_scale:g}"
        path = self.tmp / "runs" / rid
        path.mkdir(parents=True)
        self.runs.append(
            run_row(model, lr, seed, run_id=rid, steps=len(STEPS), path=str(path), status=status)
            | dict(elapsed_s=1.0, init_scale=init_scale)
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


SEEDS = (0, 1, 2)
JITTER = {0: -0.001, 1: 0.0, 2: 0.001}  # a little seed-to-seed spread, so the intervals have width


def test_b9_weight_growth_is_the_median_log_ratio_of_the_conv_weight_norms(tmp_path):
    r = Records(tmp_path)
    for seed in SEEDS:
        for model, growth in (("vgg16", 0.02), ("vgg16_bn", 0.1 + JITTER[seed])):
            norms = {0: [1.0 + k for k in range(14)], 500: [1.0] * 14}
            norms[990] = [(1.0 + k) * 10**growth for k in range(13)] + [123.0]  # the classifier is left out
            r.run(model, 0.1, seed, rows=layer_rows("gradnorms", "weight_norm", norms))
    c = beyond.check_b9(r.results())
    e_bn, e_diff = c.stats
    assert e_bn.mean == pytest.approx(0.1) and e_diff.mean == pytest.approx(0.08)
    assert c.verdict == beyond.SUPPORTED and e_bn.n == 3

    r = Records(tmp_path / "shrink")
    for seed in SEEDS:
        for model, growth in (("vgg16", 0.02), ("vgg16_bn", -0.1 + JITTER[seed])):
            norms = {0: [1.0] * 14, 990: [10**growth] * 14}
            r.run(model, 0.1, seed, rows=layer_rows("gradnorms", "weight_norm", norms))
    assert beyond.check_b9(r.results()).verdict == beyond.NOT_SUPPORTED


def test_b7_spread_of_a_geometric_depth_profile(tmp_path):
    """Gradient norms r^k over the 13 conv layers have spread log10(r^12) = 12 log10 r; flat = 0."""

    def records(path, r_std, r_bn):
        r = Records(path)
        for seed in SEEDS:
            for model, ratio in (("vgg16", r_std), ("vgg16_bn", r_bn)):
                ratio = ratio * (1 + JITTER[seed])
                profile = [ratio**k for k in range(13)] + [1e-9]  # the classifier (#14) is left out
                rows = layer_rows("gradnorms", "grad_norm", {0: profile, 10: profile, 20: profile})
                r.run(model, 0.1, seed, rows=rows)
        return r.results()

    c = beyond.check_b7(records(tmp_path / "a", 1.5, 1.0))
    v0, v1 = c.stats
    assert v0.mean == pytest.approx(-12 * np.log10(1.5), rel=1e-2) and c.verdict == beyond.SUPPORTED
    bn_spreads = [12 * abs(np.log10(1 + JITTER[s])) for s in SEEDS]  # the jitter alone (BN's profile is flat)
    assert c.numbers["spread0_bn"] == pytest.approx(np.mean(bn_spreads))
    assert beyond.check_b7(records(tmp_path / "b", 1.0, 1.5)).verdict == beyond.NOT_SUPPORTED


def test_b6_gap_at_the_matched_training_loss(tmp_path):
    """Standard: loss 1.0 throughout, gap 5 points; BN: loss 0.5, gap 1 point: matched at the first evaluation
    after step 0 for both, G = -4 points."""
    r = Records(tmp_path)
    for seed in SEEDS:
        d = JITTER[seed]
        r.run("vgg16", 0.1, seed, loss=1.0, train_eval=(0.1, 0.85, 0.9), test=(0.1, 0.8 + d, 0.8))
        r.run("vgg16_bn", 0.1, seed, loss=0.5, train_eval=(0.1, 0.81, 0.95), test=(0.1, 0.8 + d, 0.8))
    c = beyond.check_b6(r.results())
    assert c.numbers["step_std"] == 500 and c.numbers["step_bn"] == 500
    assert c.stats[0].mean == pytest.approx(-0.04) and c.verdict == beyond.SUPPORTED

    r = Records(tmp_path / "worse")
    for seed in SEEDS:
        r.run("vgg16", 0.1, seed, loss=1.0, train_eval=(0.1, 0.81, 0.9), test=(0.1, 0.8 + JITTER[seed], 0.8))
        r.run("vgg16_bn", 0.1, seed, loss=0.5, train_eval=(0.1, 0.9, 0.95), test=(0.1, 0.8, 0.8))
    assert beyond.check_b6(r.results()).verdict == beyond.NOT_SUPPORTED


def test_b8_running_vs_batch_statistics(tmp_path):
    """BN: batch acc 80%, running 79% (within 2 points); noisy BN: 70% with its noise vs 40%: partly."""
    r = Records(tmp_path)
    for seed in SEEDS:
        d = JITTER[seed]
        r.run("vgg16_bn", 0.1, seed, acc=0.8, train_eval=(0.1, 0.79, 0.79 + d))
        r.run("vgg16_noisy_bn", 0.1, seed, acc=0.7, train_eval=(0.1, 0.4, 0.4 + d))
    c = beyond.check_b8(r.results())
    d_bn, d_noisy = c.stats
    assert d_bn.mean == pytest.approx(-0.01) and d_noisy.mean == pytest.approx(-0.3)
    assert (d_bn.verdict, d_noisy.verdict, c.verdict) == (claims.PASS, claims.FAIL, beyond.PARTLY)


def test_b10_stable_rank_of_layer_24(tmp_path):
    r = Records(tmp_path)
    for seed in SEEDS:
        for model, (first, last) in (("dln", (2.0, 1.0)), ("dln_bn", (5.0 + JITTER[seed], 4.0))):
            ranks = {0: [first] * 25, 100: [first] * 25, 9900: [last] * 25}
            r.run(model, 1e-6, seed, rows=layer_rows("rank", "stable_rank", ranks))
    c = beyond.check_b10(r.results())
    r0, r1 = c.stats
    assert r0.mean == pytest.approx(np.log10(2.5), rel=1e-3) and r1.mean == pytest.approx(np.log10(4.0))
    assert c.verdict == beyond.SUPPORTED


def test_studies_without_runs_are_not_run_and_name_what_trains_them(tmp_path):
    res = Records(tmp_path).run("vgg16", 0.1).results()  # no BN run, no DLN runs
    studies = {s.claim: s for s in beyond.run_studies(res, "small")}
    assert list(studies) == [f"B{i}" for i in range(1, 11)]
    assert all(s.verdict == claims.NOT_RUN for s in studies.values())
    assert "not built yet" in studies["B1"].evidence[0] and "not built yet" not in studies["B6"].evidence[0]
    assert "bnopt-train experiment=beyond_rank scale=small" in studies["B10"].evidence[1]


def test_report_has_the_beyond_section_with_one_row_per_study(tmp_path):
    r = Records(tmp_path)
    for seed in SEEDS:
        for model, growth in (("vgg16", 0.0), ("vgg16_bn", 0.1 + JITTER[seed])):
            norms = {0: [1.0] * 14, 990: [10**growth] * 14}
            r.run(model, 0.1, seed, rows=layer_rows("gradnorms", "weight_norm", norms))
    path, checks = write_report(tmp_path, None, r.results(), tmp_path / "out")
    text = path.read_text()
    section = text[text.index("## Beyond the paper") : text.index("## Runs")]
    rows = [ln for ln in section.splitlines() if ln.startswith("| B")]
    assert [ln.split(" | ")[0] for ln in rows] == [f"| B{i}" for i in range(1, 11)]
    b9 = next(ln for ln in rows if ln.startswith("| B9 |"))
    assert "E_BN 0.1 [" in b9 and "(3 seeds)" in b9 and "| supported |" in b9
    assert "### B9:" in section and {c.claim for c in checks} >= {"C1", "B1", "B10"}
