"""Claim checks on hand-made records whose answer is known: each check passes and fails when it should."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bnopt import claims
from bnopt.report import write_report
from bnopt.results import Results

STEPS = np.arange(0, 1000)


class Maker:
    """Builds a Results object run by run, with histogram files under tmp_path."""

    def __init__(self, tmp_path):
        self.tmp, self.runs, self.metrics, self.probes = tmp_path, [], [], []

    def run(
        self,
        model,
        lr,
        *,
        acc_rate=0.01,
        final_acc=0.95,
        test_acc=0.8,
        loss_end=100.0,
        beta=10.0,
        grad_diff=20.0,
        loss_range=0.5,
        ics_l2=1.0,
        ics_cos=0.9,
        drift=0.01,
        status="done",
    ):
        rid = f"{model}-lr{lr:g}"
        path = self.tmp / "runs" / rid
        path.mkdir(parents=True)
        family = "dln" if model.startswith("dln") else "vgg"
        self.runs.append(
            dict(
                run_id=rid,
                path=str(path),
                model=model,
                family=family,
                lr=lr,
                scale="small",
                steps=len(STEPS),
                status=status,
                steps_done=len(STEPS),
                width=0.25,
                elapsed_s=60.0,
                test_acc=test_acc,
                images_per_s=1000.0,
            )
        )
        acc = 0.1 + (final_acc - 0.1) * (1 - np.exp(-acc_rate * STEPS))
        loss = loss_end * (1 + 10 * np.exp(-STEPS / 200))
        self.metrics.append(pd.DataFrame(dict(step=STEPS, kind="train", loss=loss, acc=acc, run_id=rid)))
        self.metrics.append(
            pd.DataFrame(
                dict(
                    step=[0, 1000],
                    kind="eval",
                    test_acc=[0.1, test_acc],
                    test_acc_exact=[0.1, test_acc],
                    train_eval_acc=[0.1, final_acc],
                    run_id=rid,
                )
            )
        )
        rows = []
        for s in range(0, 1000, 100):
            summary = {"loss_min": 1.0, "loss_max": 1 + loss_range, "grad_diff_max": grad_diff, "beta": beta}
            rows += [(s, "landscape", 0, np.nan, k, v) for k, v in summary.items()]
            for k in (5, 10, 9, 17):
                rows += [(s, "ics", k, np.nan, "l2", ics_l2), (s, "ics", k, np.nan, "cos", ics_cos)]
        self.probes.append(
            pd.DataFrame(rows, columns=["step", "probe", "layer", "eta", "metric", "value"]).assign(run_id=rid)
        )
        walk = np.cumsum(np.full((10, 8), drift), axis=0)
        np.savez(path / "activations.npz", **{f"layer{k}_unit_mean": walk for k in (2, 9, 13)})
        return self

    def results(self) -> Results:
        return Results(
            pd.DataFrame(self.runs),
            pd.concat(self.metrics, ignore_index=True),
            pd.concat(self.probes, ignore_index=True),
        )


def test_c1_bn_faster(tmp_path):
    good = Maker(tmp_path / "a").run("vgg16", 0.1, acc_rate=0.002).run("vgg16_bn", 0.1, acc_rate=0.02).results()
    assert claims.check_c1(good).verdict == claims.REPRODUCED
    bad = Maker(tmp_path / "b").run("vgg16", 0.1, acc_rate=0.02).run("vgg16_bn", 0.1, acc_rate=0.005).results()
    assert claims.check_c1(bad).verdict == claims.NOT_REPRODUCED


def test_c2_large_learning_rate(tmp_path):
    good = Maker(tmp_path / "a").run("vgg16", 0.5, final_acc=0.1).run("vgg16_bn", 0.5, final_acc=0.9).results()
    c = claims.check_c2(good)
    assert c.verdict == claims.REPRODUCED and c.numbers["acc_bn_lr0.5"] == pytest.approx(0.9)
    bad = Maker(tmp_path / "b").run("vgg16", 0.5, final_acc=0.9).run("vgg16_bn", 0.5, final_acc=0.9).results()
    assert claims.check_c2(bad).verdict == claims.NOT_REPRODUCED
    diverged = (
        Maker(tmp_path / "c")
        .run("vgg16", 0.5, final_acc=np.nan, status="diverged")
        .run("vgg16_bn", 0.5, final_acc=0.6)
        .results()
    )
    assert claims.check_c2(diverged).verdict == claims.PARTLY


def test_c3_test_accuracy(tmp_path):
    good = Maker(tmp_path / "a").run("vgg16", 0.1, test_acc=0.80).run("vgg16_bn", 0.1, test_acc=0.83).results()
    assert claims.check_c3(good).verdict == claims.REPRODUCED
    bad = Maker(tmp_path / "b").run("vgg16", 0.1, test_acc=0.83).run("vgg16_bn", 0.1, test_acc=0.80).results()
    assert claims.check_c3(bad).verdict == claims.NOT_REPRODUCED


def test_c4_noisy_bn(tmp_path):
    m = Maker(tmp_path / "a").run("vgg16", 0.1, drift=0.01).run("vgg16_bn", 0.1, final_acc=0.95, drift=0.01)
    good = m.run("vgg16_noisy_bn", 0.1, final_acc=0.93, drift=0.5).results()
    c = claims.check_c4(good)
    assert c.verdict == claims.REPRODUCED and c.numbers["drift_noisy"] == pytest.approx(0.5)
    m = Maker(tmp_path / "b").run("vgg16", 0.1).run("vgg16_bn", 0.1, final_acc=0.95, drift=0.01)
    bad = m.run("vgg16_noisy_bn", 0.1, final_acc=0.5, drift=0.01).results()
    assert claims.check_c4(bad).verdict == claims.NOT_REPRODUCED


def _pairs(maker, std, bn, lrs):
    for lr in lrs:
        maker.run(std[0], lr, ics_l2=std[1], ics_cos=std[2]).run(bn[0], lr, ics_l2=bn[1], ics_cos=bn[2])
    return maker


def test_c5_ics(tmp_path):
    m = _pairs(Maker(tmp_path / "a"), ("vgg16", 1.0, 0.9), ("vgg16_bn", 2.0, 0.5), (0.1, 0.01))
    m = _pairs(m, ("dln", 1.0, 0.9), ("dln_bn", 2.0, 0.5), (1e-6, 1e-7))
    assert claims.check_c5(m.results()).verdict == claims.REPRODUCED
    m = _pairs(Maker(tmp_path / "b"), ("vgg16", 2.0, 0.5), ("vgg16_bn", 1.0, 0.9), (0.1, 0.01))
    assert claims.check_c5(m.results()).verdict == claims.NOT_REPRODUCED


def test_c6_smoothness(tmp_path):
    good = (
        Maker(tmp_path / "a")
        .run("vgg16", 0.1, beta=40, grad_diff=250, loss_range=2)
        .run("vgg16_bn", 0.1, beta=20, grad_diff=30, loss_range=0.5)
        .results()
    )
    c = claims.check_c6(good)
    assert c.verdict == claims.REPRODUCED and c.numbers["vgg16_bn_beta"] == 20
    mixed = (
        Maker(tmp_path / "b")
        .run("vgg16", 0.1, beta=10, grad_diff=250, loss_range=2)
        .run("vgg16_bn", 0.1, beta=20, grad_diff=30, loss_range=0.5)
        .results()
    )
    assert claims.check_c6(mixed).verdict == claims.PARTLY
    bad = (
        Maker(tmp_path / "c")
        .run("vgg16", 0.1, beta=1, grad_diff=1, loss_range=0.1)
        .run("vgg16_bn", 0.1, beta=20, grad_diff=30, loss_range=0.5)
        .results()
    )
    assert claims.check_c6(bad).verdict == claims.NOT_REPRODUCED


def test_c7_lp_norms(tmp_path):
    m = Maker(tmp_path / "a").run("vgg16_bn", 0.1, final_acc=0.9).run("dln", 1e-6, loss_end=1600)
    for p in ("l1", "l2", "linf"):
        m.run(f"vgg16_{p}", 0.1, final_acc=0.9).run(f"dln_{p}", 1e-6, loss_end=100)
    assert claims.check_c7(m.results()).verdict == claims.REPRODUCED
    m = Maker(tmp_path / "b").run("vgg16_bn", 0.1, final_acc=0.9).run("dln", 1e-6, loss_end=100)
    for p in ("l1", "l2", "linf"):
        m.run(f"vgg16_{p}", 0.1, final_acc=0.3).run(f"dln_{p}", 1e-6, loss_end=1600)
    assert claims.check_c7(m.results()).verdict == claims.NOT_REPRODUCED


def test_c8_dln(tmp_path):
    good = (
        Maker(tmp_path / "a")
        .run("dln", 1e-6, loss_end=1600, beta=40, grad_diff=250)
        .run("dln_bn", 1e-6, loss_end=500, beta=20, grad_diff=30)
        .results()
    )
    assert claims.check_c8(good).verdict == claims.REPRODUCED
    bad = (
        Maker(tmp_path / "b")
        .run("dln", 1e-6, loss_end=100, beta=1, grad_diff=1, loss_range=0.1)
        .run("dln_bn", 1e-6, loss_end=500, beta=20, grad_diff=30)
        .results()
    )
    assert claims.check_c8(bad).verdict == claims.NOT_REPRODUCED


def test_c9_theorem_4_1_appendix_form_is_an_equality():
    c = claims.check_c9(trials=50)
    assert c.numbers["max_rel_err_appendix_equality"] < 1e-10
    assert c.numbers["bounded_by_gamma2_over_sigma2_g2"] == 50
    assert c.numbers["printed_inequality_holds"] == 0  # the printed 1/sqrt(m) form is violated
    assert c.verdict == claims.PARTLY  # Thm 4.2 is not checked


def test_missing_runs_are_not_run_and_the_report_says_so(tmp_path):
    res = Maker(tmp_path).run("vgg16", 0.1).results()
    checks = {c.claim: c for c in claims.run_checks(res)}
    assert checks["C1"].verdict == claims.NOT_RUN and "vgg16_bn" in checks["C1"].evidence[0]
    assert checks["C1"].evidence[1] == "train its runs with `bnopt-train experiment=fig1`"  # from the registry
    assert "`bnopt-train experiment=fig3_ics_vgg`" in checks["C5"].evidence[1]
    assert checks["C9"].verdict == claims.PARTLY
    path, checks_again = write_report(tmp_path, res=res)
    assert [c.verdict for c in checks_again] == [c.verdict for c in checks.values()]
    text = path.read_text()
    assert "| C1: BN speeds up training" in text and "not run" in text and "`vgg16-lr0.1`" in text
