"""bnopt.regime (issue 24, item 7): where a report's runs sit against the paper's, the comparability rule at
its thresholds, the report's Regime section, its "magnitude comparable" column and verdict note, and the
post hoc mark of C2 and C4 (item 8); the `long` preset (the paper's steps at width 0.25)."""

from __future__ import annotations

import pytest

from bnopt import regime, report, studies
from bnopt.config import SCALES, resolve, run_id
from bnopt.studies import Judgement
from tests.run_rows import Maker

from .conftest import make_cfg

VGG_NETS = ("vgg16", "vgg16_bn")


def vgg(tmp_path, std: float, bn: float, seeds=(0, 1), **kw) -> Maker:
    """Fig 1's VGG runs at LR 0.1 whose final train-subset accuracy is `std` and `bn` in every seed."""
    m = Maker(tmp_path)
    for seed in seeds:
        m.run("vgg16", 0.1, final_acc=std, test_acc=std - 0.05, seed=seed, **kw)
        m.run("vgg16_bn", 0.1, final_acc=bn, test_acc=bn - 0.02, seed=seed, **kw)
    return m


FINAL_OVER_END = 1.0767  # Maker's loss: the mean of its last 50 steps is about this times loss_end


def dln(m: Maker, std: float, bn: float, seeds=(0, 1)) -> Maker:
    """The DLN runs at LR 1e-6 whose final loss is about `std` and `bn` in every seed."""
    for seed in seeds:
        m.run("dln", 1e-6, loss_end=std / FINAL_OVER_END, seed=seed)
        m.run("dln_bn", 1e-6, loss_end=bn / FINAL_OVER_END, seed=seed)
    return m


# ------------------------------------------------------------------------------------ the rule itself


def test_the_rule_at_its_thresholds():
    std_vgg, std_dln = regime.NETS[0], regime.NETS[2]
    assert regime.RULE.net_ok(std_vgg, 0.90) and not regime.RULE.net_ok(std_vgg, 0.8999)
    assert not regime.RULE.net_ok(std_vgg, float("nan"))
    paper = std_dln.paper["loss"]  # 1.6e3: comparable from 533 to 4,800
    assert regime.RULE.net_ok(std_dln, paper * 3) and regime.RULE.net_ok(std_dln, paper / 3)
    assert not regime.RULE.net_ok(std_dln, paper * 3.01) and not regime.RULE.net_ok(std_dln, paper / 3.01)
    sentence = regime.RULE.sentence()  # the thresholds the report and PROTOCOL print come from the rule
    assert "at least 90%" in sentence and "within a factor 3" in sentence and "theory claims always" in sentence


# --------------------------------------------------------------------------------- measured from runs


def test_vgg_comparable_only_when_both_nets_reach_90_percent(tmp_path):
    r = regime.measure(vgg(tmp_path / "a", 0.92, 0.99).results())
    assert r.of("vgg") == (True, "")
    std = r.nets[0]
    assert std.seeds == [0, 1] and std.mean("train_acc") == pytest.approx(0.92)
    assert std.mean("test_acc") == pytest.approx(0.87)

    r = regime.measure(vgg(tmp_path / "b", 0.48, 0.99).results())
    ok, why = r.of("vgg")
    assert ok is False and why == "the standard VGG ends at 48% train accuracy at LR 0.1, the paper's at about 100%"
    ok, why = regime.measure(vgg(tmp_path / "c", 0.44, 0.77).results()).of("vgg")
    assert ok is False and why.startswith("the standard VGG ends at 44% and the BN VGG at 77% train accuracy")
    assert regime.measure(vgg(tmp_path / "d", 0.99, 0.88).results()).of("vgg")[0] is False


def test_the_mean_over_seeds_decides(tmp_path):
    m = Maker(tmp_path)
    for seed, acc in enumerate((0.86, 0.92, 0.95)):  # mean 0.91: comparable although seed 0 is below 90%
        m.run("vgg16", 0.1, final_acc=acc, seed=seed).run("vgg16_bn", 0.1, final_acc=0.99, seed=seed)
    r = regime.measure(m.results())
    assert r.of("vgg")[0] is True
    assert r.nets[0].cell() == "train-subset acc 91% (86%-95%); test acc 80% (80%-80%)"


def test_dln_comparable_only_within_a_factor_3_of_the_paper(tmp_path):
    m = dln(vgg(tmp_path / "a", 0.95, 0.99), 1.6e3, 5e2)
    r = regime.measure(m.results())
    loss = r.nets[2].mean("loss")
    assert loss == pytest.approx(1.6e3, rel=0.01) and r.of("dln") == (True, "")
    ok, why = regime.measure(dln(Maker(tmp_path / "b"), 9.1e3, 5e2).results()).of("dln")
    assert ok is False and why.startswith("the standard DLN ends at loss 9.1e3, 5.7x the paper's 1.6e3")
    assert regime.measure(dln(Maker(tmp_path / "c"), 1.6e3, 2e3).results()).of("dln")[0] is False  # 4x


def test_a_study_resting_on_two_regimes_needs_both(tmp_path):
    r = regime.measure(dln(vgg(tmp_path, 0.48, 0.99), 1.6e3, 5e2).results())
    assert r.comparable(("dln",)) == (True, "")
    ok, why = r.comparable(("vgg", "dln"))
    assert ok is False and "standard VGG ends at 48%" in why and "DLN" not in why
    assert r.comparable(("theory",)) == (True, "")  # theory claims always
    with pytest.raises(ValueError, match="unknown regime"):
        r.of("resnet")


def test_without_finished_runs_comparability_is_unknown(tmp_path):
    r = regime.measure(vgg(tmp_path / "a", 0.95, 0.99).results())  # no DLN runs
    ok, why = r.of("dln")
    assert ok is None and "no finished runs of standard DLN" in why
    assert r.comparable(("vgg", "dln"))[0] is None
    assert r.comparable(("theory",)) == (True, "")
    # a run still training is not final: its seeds are left out
    r = regime.measure(vgg(tmp_path / "b", 0.95, 0.99, status="running").results())
    assert r.of("vgg")[0] is None and r.nets[0].seeds == []
    assert regime.measure(None).of("vgg")[0] is None


def test_the_dln_cell_gives_k_per_seed(tmp_path, monkeypatch):
    monkeypatch.setattr(regime, "learned_directions", lambda res, rid: (4, 9.0e3))
    r = regime.measure(dln(Maker(tmp_path), 9.1e3, 3.6e3, seeds=(0, 1)).results())
    cell = r.nets[2].cell()
    assert cell.startswith("loss 9.1e3") and "k = 4, 4 learned directions (per seed)" in cell
    assert r.nets[2].values("k") == [4.0, 4.0]


def test_without_a_run_folder_config_there_is_no_k(tmp_path):
    r = regime.measure(dln(Maker(tmp_path), 9.1e3, 3.6e3, seeds=(0,)).results())
    assert "k =" not in r.nets[2].cell() and r.nets[2].values("loss")  # the loss is still there


# ------------------------------------------------------------------------------------------ the report


def test_the_regime_section_has_the_table_the_rule_and_the_studies(tmp_path):
    r = regime.measure(vgg(tmp_path, 0.48, 0.80).results())
    lines = regime.section(r, "small", {"vgg": ["C1", "C3"], "dln": ["C8"], "theory": ["C9"]})
    text = "\n".join(lines)
    assert lines[0] == "## Regime: where these runs sit against the paper's"
    assert "| standard VGG | 0.1 | 0, 1 | train-subset acc 48%" in text
    assert regime.RULE.sentence() in lines
    assert "- VGG (C1, C3): comparable: **no** (the standard VGG ends at 48% and the BN VGG at 80%" in text
    assert "- DLN (C8): comparable: **-**" in text and "- Theory (C9): comparable: **yes**" in text


def _judged(study_id: str, verdict: str = "reproduced") -> Judgement:
    return studies.registry()[study_id].judgement(verdict)


def test_a_verdict_whose_magnitude_is_not_comparable_says_so(tmp_path):
    r = regime.measure(vgg(tmp_path, 0.48, 0.99).results())
    lines = report._section(_judged("C3"), "##", tmp_path, r)
    assert lines[2] == (
        "Verdict: **reproduced** (magnitude not comparable to the paper's: the standard VGG ends at 48% train "
        "accuracy at LR 0.1, the paper's at about 100%)"
    )
    assert report._section(_judged("C9", "partly"), "##", tmp_path, r)[2] == "Verdict: **partly**"
    assert report._section(_judged("C3", "not run"), "##", tmp_path, r)[2] == "Verdict: **not run**"
    assert report.comparable(_judged("C3"), r)[0] is False and report.comparable(_judged("C9"), r)[0] is True


def test_c2_and_c4_say_their_rule_was_changed_post_hoc(tmp_path):
    posthoc = [s.id for s in studies.registry().values() if s.post_hoc]
    assert posthoc == ["C2", "C4"]
    for cid in posthoc:
        lines = report._section(_judged(cid), "##", tmp_path)
        mark = next(x for x in lines if x.startswith("Rule changed after seeing results (post hoc), see"))
        assert "docs/PROTOCOL.md" in mark and "2026-11-30" in mark
    assert not any("post hoc" in x for x in report._section(_judged("C3"), "##", tmp_path))


def test_each_study_names_a_known_regime():
    regimes = {s.id: s.regime for s in studies.registry().values()}
    assert all(r and set(r) <= set(regime.REGIMES) for r in regimes.values())
    assert regimes["C1"] == ("vgg",) and regimes["C8"] == regimes["B10"] == ("dln",)
    assert regimes["C5"] == regimes["C7"] == ("vgg", "dln") and regimes["C9"] == regimes["B2"] == ("theory",)


@pytest.mark.integration
def test_the_report_opens_with_the_regime_and_has_the_column(tmp_path):
    res = vgg(tmp_path, 0.48, 0.99).results()
    path, _ = report.write_report(tmp_path, res=res)
    text = path.read_text()
    regime_at, claims_at = text.index("## Regime: where these runs sit"), text.index("| claim | verdict |")
    assert text.index("- Wall time of the runs") < regime_at < claims_at
    assert f"| claim | verdict | N seeds | {report.COMPARABLE} | figure |" in text
    assert f"| numbers (mean [95% interval]) | verdict | {report.COMPARABLE} | figure |" in text
    assert "| C9: Theory" in text and "| partly | - | yes | (theory) |" in text
    c2 = next(x for x in text.splitlines() if x.startswith("| C2: "))  # no LR 0.5 runs
    assert c2.endswith("| not run | - | - | fig1 |")
    assert "Verdict: **reproduced** (magnitude not comparable to the paper's: the standard VGG ends at 48%" in text


# ------------------------------------------------------------------------------------ the long preset


def test_the_long_preset_is_the_papers_steps_at_small_width():
    assert "long" in SCALES
    vgg_cfg = resolve(make_cfg(["scale=long", "probes=paper"]))
    s = vgg_cfg.scale
    assert (s.name, s.steps, s.batch_size, s.eval_every, s.ckpt_every) == ("long", 15_000, 128, 500, 500)
    assert vgg_cfg.model.width == 0.25 and vgg_cfg.probes.gradnorms.every == 10
    assert vgg_cfg.probes.landscape.every == 100 and dict(s.seeds) == {"claims": 3, "dln": 5, "single": 1}
    small = resolve(make_cfg(["scale=small"])).scale
    assert dict(s.batch_study) == dict(small.batch_study)
    dln_long, dln_small = (resolve(make_cfg(["model=dln_bn", f"scale={x}"])) for x in ("long", "small"))
    assert run_id(dln_long) == run_id(dln_small)  # the DLN runs are small's (and the paper's)
    assert run_id(vgg_cfg) != run_id(resolve(make_cfg(["scale=small"])))
