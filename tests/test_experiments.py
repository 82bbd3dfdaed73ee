"""Experiment configs, the reproduce planner, run sharing, `make figures` not training, submitit sweeps."""

from __future__ import annotations

import pytest

from bnopt import reproduce
from bnopt.config import CONFIG_DIR, resolve

from .conftest import REPO, run_cli

EXPECTED = {  # experiment -> (models, LRs) of its sweep
    "fig1": ({"vgg16", "vgg16_bn"}, {0.1, 0.5}),
    "fig2": ({"vgg16", "vgg16_bn", "vgg16_noisy_bn"}, {0.1}),
    "fig3_ics_vgg": ({"vgg16", "vgg16_bn"}, {0.1, 0.01}),
    "fig3_ics_dln": ({"dln", "dln_bn"}, {1e-6, 1e-7}),
    "fig4": ({"vgg16", "vgg16_bn"}, {0.1}),
    "fig5_lp_vgg": ({"vgg16", "vgg16_bn", "vgg16_l1", "vgg16_l2", "vgg16_linf"}, {0.1}),
    "fig5_lp_dln": ({"dln", "dln_bn", "dln_l1", "dln_l2", "dln_linf"}, {1e-6}),
    "fig6": ({"vgg16", "vgg16_bn", "vgg16_l1", "vgg16_l2", "vgg16_linf"}, {0.1}),
    "fig8": ({"vgg16", "vgg16_bn", "vgg16_noisy_bn"}, {0.1}),
    "fig9": ({"dln", "dln_bn"}, {1e-6}),
    "fig10": ({"dln", "dln_bn"}, {1e-6}),
    "fig11": ({"vgg16", "vgg16_bn"}, {0.1}),
    "fig12": ({"vgg16", "vgg16_bn", "vgg16_l1", "vgg16_l2", "vgg16_linf"}, {0.1}),
    "fig13": ({"dln", "dln_bn", "dln_l1", "dln_l2", "dln_linf"}, {1e-6}),
}


def test_every_experiment_config_is_listed_here():
    assert {p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("experiment", sorted(EXPECTED))
def test_experiment_sweep_expands_to_the_figure_runs(experiment):
    models, lrs = EXPECTED[experiment]
    sweep = reproduce.sweep_overrides(experiment, ["scale=smoke"])
    assert len(sweep) == len(models) * len(lrs)
    cfgs = [resolve(reproduce.compose_run(o)) for o in sweep]
    assert {(c.model.name, c.optim.lr) for c in cfgs} == {(m, lr) for m in models for lr in lrs}
    for c in cfgs:
        assert c.probes.name == "paper" and c.experiment_name == experiment
        assert c.model.family == ("dln" if c.model.name.startswith("dln") else "vgg")


def test_every_figure_names_existing_experiments_and_claims():
    specs = reproduce.figure_specs()
    assert [s.figure for s in specs] == ["fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "fig8", "fig9",
                                         "fig10", "fig11", "fig12", "fig13"]
    for s in specs:
        assert s.experiments and all(e in EXPECTED for e in s.experiments)
        assert all(c in {f"C{i}" for i in range(1, 10)} for c in s.claims)


def test_plan_shares_runs_between_figures(tmp_path):
    runs = reproduce.plan(None, "smoke", tmp_path)
    assert len(runs) == 17  # 10 VGG + 7 DLN runs serve all figures
    shared = {r.label: r.experiments for r in runs}
    assert set(shared["vgg16_bn lr=0.1"]) >= {"fig1", "fig2", "fig4", "fig6", "fig8"}
    assert len({r.run_id for r in runs}) == len(runs)


def test_two_experiments_asking_for_one_run_train_it_once(tmp_path):
    common = ["scale=smoke", "data=synthetic", "logger=none", f"paths.results={tmp_path}", "scale.steps=10"]
    first = run_cli("-m", "experiment=fig4", *common)
    assert first.returncode == 0, first.stderr
    assert len(list(tmp_path.glob("runs/*"))) == 2
    second = run_cli("-m", "experiment=fig11", *common)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("already done") == 2
    assert len(list(tmp_path.glob("runs/*"))) == 2
    plan = reproduce.plan(["fig4"], "smoke", tmp_path, ["data=synthetic", "scale.steps=10"])
    assert all(r.done for r in plan)


def test_reproduce_dry_run_prints_the_plan(tmp_path, capsys):
    assert reproduce.main(["--scale", "smoke", "--figs", "fig4", "--results", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 runs, 0 already done, 2 to train" in out and "vgg16_bn lr=0.1" in out and "estimated" in out


def test_reproduce_unknown_figure_is_one_line_exit_2(tmp_path, capsys):
    assert reproduce.main(["--figs", "fig7", "--results", str(tmp_path), "--dry-run"]) == 2
    assert "unknown figure(s) fig7" in capsys.readouterr().err


def test_make_figures_does_not_train(tmp_path, monkeypatch):
    import bnopt.train

    def no_training(*a, **k):
        raise AssertionError("make figures must not train")

    monkeypatch.setattr(bnopt.train, "train", no_training)
    assert reproduce.main(["--no-train", "--scale", "smoke", "--figs", "fig4", "--results", str(tmp_path)]) == 0
    assert (tmp_path / "REPORT.md").exists()
    assert "figures:" in (REPO / "Makefile").read_text() and "--no-train" in (REPO / "Makefile").read_text()


def test_submitit_local_launcher_runs_a_two_run_sweep(tmp_path):
    proc = run_cli("-m", "hydra/launcher=local_parallel", "model=vgg16,vgg16_bn", "data=synthetic", "scale=smoke",
                   "logger=none", f"paths.results={tmp_path}", "scale.steps=10")
    assert proc.returncode == 0, proc.stderr
    from bnopt.results import load_runs

    runs = load_runs(tmp_path).runs
    assert sorted(runs.model) == ["vgg16", "vgg16_bn"] and set(runs.status) == {"done"}
