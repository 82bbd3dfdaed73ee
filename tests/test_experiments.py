"""The experiment registry, the reproduce planner, run sharing, launchers, failures, and kept outputs."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from bnopt import experiments, reproduce, studies
from bnopt.config import run_id
from bnopt.figures import figure_list
from bnopt.records import FINAL_STATUSES, read_run

from .conftest import REPO, run_cli
from .test_bench import fake_bench

SMOKE_FAST = ["data=synthetic", "logger=none", "scale.steps=4", "scale.eval_every=2", "scale.ckpt_every=2"]


def test_every_experiment_config_is_a_multirun_sweep_with_a_figure():
    reg = experiments.registry()
    assert reg, "configs/experiment is empty"
    for name, exp in reg.items():
        text = (experiments.EXPERIMENT_DIR / f"{name}.yaml").read_text()
        assert text.startswith("# @package _global_"), name
        d = yaml.safe_load(text)
        assert d["hydra"]["mode"] == "MULTIRUN" and d["experiment_name"] == name
        assert exp.params
        assert "claims" not in d, f"{name}: which sweeps a study reads is declared in its file (Study.sweeps)"
        if name.startswith("beyond_"):  # a beyond-the-paper study (issue 12): its figure is its name
            assert exp.figure == name, name
        else:
            assert exp.figure.startswith("fig"), name


def _served_by(name: str, exp) -> set[str]:
    """The studies a sweep serves: those that read its runs (Study.sweeps) or rest on its figure (Study.figures)."""
    return {s.id for s in studies.registry().values() if name in s.sweeps or exp.figure in s.figures}


def test_every_sweep_serves_a_study_and_every_study_reads_existing_sweeps():
    """The study files (experiments/*.py) are the one declaration of which sweeps a claim reads: every sweep
    of configs/experiment is read by a study, or draws a paper figure a study rests on; no study reads a
    sweep that does not exist."""
    reg, figures = experiments.registry(), experiments.figures()
    readers = {name: {s.id for s in studies.registry().values() if name in s.sweeps} for name in reg}
    for name, exp in reg.items():
        drawn = exp.figure.startswith("fig") and exp.figure in figures
        assert readers[name] or (drawn and _served_by(name, exp)), f"{name}: no study reads it or rests on its figure"
        if name.startswith("beyond_"):  # a study's own sweep: judged, not only drawn
            assert readers[name], name
    for study in studies.registry().values():
        missing = [n for n in study.sweeps if n not in reg]
        assert not missing, f"{study.id} reads sweeps that configs/experiment does not declare: {missing}"


def test_every_drawn_figure_has_experiments_and_every_experiment_a_figure():
    assert set(experiments.figures()) == set(figure_list())


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(experiments.registry()))
def test_sweep_expands_with_hydra_to_runs_of_one_family(name):
    sweep = experiments.get(name).sweep(["scale=smoke"])
    cfgs = experiments.runs(name, ("scale=smoke",))
    # B12's fixed_data set-up at seed 0 is the protocol's run (data seed 0 = the seed): one run id for both nets
    shared = 2 if name == "beyond_dln_setup" else 0
    assert len(cfgs) == len(sweep) == len({run_id(c) for c in cfgs}) + shared >= 2
    assert len({c.model.family for c in cfgs}) == 1
    for c in cfgs:
        probes = {"beyond_rank": "rank", "beyond_batch": "none", "beyond_hessian": "hessian"}.get(name, "paper")
        probes = "edge" if name == "beyond_dln_setup" else probes
        assert c.probes.name == probes and c.experiment_name == name  # B5 reads accuracies only
        if name == "beyond_hessian":  # B1 measures at every evaluation (PROTOCOL section 7)
            assert c.probes.hessian.every == c.scale.eval_every == 10 and c.probes.hessian.mode == ["train", "eval"]
        assert c.figure == experiments.get(name).figure
    # (model, lr) pairs in sweep order, once each (B3 sweeps the init scale at one pair)
    assert experiments.pairs(name) == list(dict.fromkeys((c.model.name, float(c.optim.lr)) for c in cfgs))


def _combinations(exp) -> int:
    """Runs per seed of an experiment's sweep."""
    return len(experiments.expand([f"{k}={v}" for k, v in exp.params]))


def _in_the_claims_group(name: str, exp) -> bool:
    """A paper sweep of VGG runs that C1-C6 rest on, or fig12 (C7's l_p nets over the claims' seeds; fig5_lp_vgg
    is the same runs at seed 0)."""
    return bool({"C1", "C2", "C3", "C4", "C5", "C6"} & _served_by(name, exp)) or name == "fig12"


@pytest.mark.integration
def test_every_experiment_declares_its_seed_group():
    for name, exp in experiments.registry().items():
        family = experiments.runs(name, ("scale=smoke",))[0].model.family
        want = "dln" if family == "dln" else "claims" if _in_the_claims_group(name, exp) else "single"
        if name.startswith("beyond_"):  # B6-B11: the claims group; B1, B3-B5: 1 (PROTOCOL section 7)
            want = "single" if name in ("beyond_hessian", "beyond_init", "beyond_lr", "beyond_batch") else "claims"
            want = "dln" if name == "beyond_dln_setup" else want  # B12: the DLN's 5 seeds, as Fig 10 (section 8)
        assert exp.seed_group == want, name
        assert "seed" not in dict(exp.params)  # the seed comes from the scale preset


@pytest.mark.integration
@pytest.mark.parametrize("scale, counts", [("small", (5, 5, 1)), ("paper", (3, 5, 1)), ("smoke", (1, 1, 1))])
def test_sweeps_have_the_seeds_of_their_group_at_each_scale(scale, counts):
    per_group = dict(zip(("claims", "dln", "single"), counts, strict=True))
    for name, exp in experiments.registry().items():
        sweep = exp.sweep([f"scale={scale}"])
        seeds = [int(o.split("=")[1]) for job in sweep for o in job if o.startswith("seed=")]
        n = per_group[exp.seed_group]
        assert sorted(set(seeds)) == list(range(n)), name
        assert len(sweep) == _combinations(exp) * n, name


def test_small_sweeps_of_fig1_fig3_dln_and_a_single_seed_experiment():
    assert len(experiments.get("fig1").sweep(["scale=small"])) == 4 * 5  # small: 5 seeds for the claims (issue 24)
    assert len(experiments.get("fig3_ics_dln").sweep(["scale=small"])) == 4 * 5
    fig6 = experiments.get("fig6").sweep(["scale=small"])
    assert len(fig6) == 5 and all("seed=0" in job for job in fig6)


@pytest.mark.integration
def test_seeds_n_sets_every_experiment_to_exactly_n(tmp_path, capsys):
    extra = reproduce.seed_overrides(2)
    assert extra == ["seed=0,1"] and reproduce.seed_overrides(None) == []
    for name, exp in experiments.registry().items():
        assert len(exp.sweep(["scale=small", *extra])) == 2 * _combinations(exp), name
    assert (
        reproduce.main(["--scale", "smoke", "--figs", "fig4", "--results", str(tmp_path), "--dry-run", "--seeds", "2"])
        == 0
    )
    out = capsys.readouterr().out
    assert "4 runs, 0 already done, 4 to train" in out and "seed=1" in out


@pytest.mark.integration
def test_the_committed_small_results_come_from_the_current_code(tmp_path):
    """results/small/manifest.json names the runs the committed report was drawn from: runs the current
    registry and defaults plan (a changed default, e.g. model.loss_norm, changes their ids: it must come with
    new results), every seed-0 run of the paper's figures among them. A study beyond the paper may be added
    before its new runs are trained (B11's LR 0.05 and 0.2, issue 25): runs planned but not in the manifest
    are listed in it and the report says it is partial."""
    manifest = json.loads((REPO / "results" / "small" / "manifest.json").read_text())
    committed = set(manifest["runs"])
    runs = reproduce.plan(None, "small", tmp_path)
    planned = {r.run_id for r in runs}
    paper = {r.run_id for r in runs if int(r.cfg.seed) == 0 and any(e.startswith("fig") for e in r.experiments)}
    assert paper <= committed <= planned
    assert set(manifest["planned_not_trained"]) == planned - committed
    partial = "**Partial:**" in (REPO / "results" / "small" / "REPORT.md").read_text()
    assert partial == bool(planned - committed)
    # the records committed beside the report are runs of this plan, whole, each the run its folder names
    records = sorted((REPO / "results" / "small" / "runs").glob("*/"))
    assert {p.name for p in records} <= planned
    for path in records:
        rec = read_run(path)
        assert rec.status["status"] in FINAL_STATUSES and run_id(rec.config) == path.name
    # model.loss_norm=sum (the value before the key existed) is left out of the hash, half_sum is in it
    dln = [r for r in runs if r.cfg.model.family == "dln"]
    assert dln and all(run_id(experiments.resolved((*r.overrides, "model.loss_norm=sum"))) != r.run_id for r in dln)


@pytest.mark.integration
def test_the_committed_paper_results_come_from_the_current_code(tmp_path):
    """results/paper/manifest.json names runs the current registry and defaults plan at the paper scale
    (seed 0): the paper-scale report is only partly trained (a GPU is needed), but what it was drawn from
    is what `make reproduce SCALE=paper` would train now."""
    committed = set(json.loads((REPO / "results" / "paper" / "manifest.json").read_text())["runs"])
    planned = {r.run_id for r in reproduce.plan(None, "paper", tmp_path, ["seed=0"])}
    assert committed and committed <= planned


def test_bnopt_train_sweeps_the_seeds_through_hydra():
    """The experiment files sweep `seed: ${bnopt.seeds:${scale.seeds.${seed_group}}}`: Hydra resolves it
    when it builds the sweeper, so `bnopt-train experiment=fig1 scale=small` runs the same 20 runs."""
    from hydra import compose, initialize_config_dir
    from hydra.core.plugins import Plugins

    for name, scale, want in (
        ("fig1", "small", "seed=0,1,2,3,4"),
        ("fig9", "small", "seed=0,1,2,3,4"),
        ("fig1", "smoke", "seed=0"),
    ):
        with initialize_config_dir(str(experiments.CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment={name}", f"scale={scale}"], return_hydra_config=True)
        sweeper = Plugins.instance()._instantiate(cfg.hydra.sweeper)
        assert sweeper._parse_config()[-1] == want


def test_each_seed_draws_its_own_dln_data_unless_data_seed_is_set():
    from bnopt.data import gaussian_linear

    def data(*overrides):
        cfg = experiments.resolved(("model=dln", "scale=smoke", *overrides))
        return gaussian_linear(int(cfg.data.n_samples), int(cfg.data.dim), int(cfg.data.data_seed))

    x0, y0, _ = data("seed=0")
    x1, y1, _ = data("seed=1")
    x0b, y0b, _ = data("seed=0")
    assert not torch.equal(x0, x1) and not torch.equal(y0, y1)
    assert torch.equal(x0, x0b) and torch.equal(y0, y0b)
    fixed, _, _ = data("seed=1", "data.data_seed=0")
    assert torch.equal(fixed, x0)


@pytest.mark.integration
def test_the_paper_figures_use_the_paper_learning_rates():
    lrs = {lr for e in experiments.registry() if e.startswith("fig") for _, lr in experiments.pairs(e)}
    assert {0.1, 0.5, 0.01, 1e-6, 1e-7} == lrs
    assert ("vgg16", 0.5) in experiments.pairs("fig1")  # C2: the standard net at LR 0.5


@pytest.mark.integration
def test_plan_shares_runs_between_figures(tmp_path):
    paper_figures = [f for f in experiments.figures() if f.startswith("fig")]
    assert len(reproduce.plan(paper_figures, "smoke", tmp_path)) == 17  # 10 VGG + 7 DLN runs serve all figures
    runs = reproduce.plan(None, "smoke", tmp_path)
    # the studies beyond the paper add B10's 2 DLN runs with probes=rank, B1's 2 VGG runs with probes=hessian,
    # B3's 4 (init scales 0.1 and 10), B4's 4 (LR 1 and 2), B5's 6 (batch 8, 32, 128), B11's 4 (LR 0.05 and
    # 0.2) and B12's 16 (9 DLN set-ups x 2 nets with probes=edge, less fixed_data's seed 0: the protocol's run);
    # B6-B9's runs are Fig 1's and Fig 2's
    assert len(runs) == 17 + 2 + 2 + 4 + 4 + 6 + 4 + 16
    shared = {r.label: r.experiments for r in runs}
    assert set(shared["vgg16_bn lr=0.1 seed=0"]) >= {"fig1", "fig2", "fig4", "fig6", "fig8", "beyond_init"}
    assert shared["vgg16_bn lr=0.1 init_scale=10 seed=0"] == ["beyond_init"]  # labels tell B3's runs apart
    assert shared["vgg16_bn lr=0.1 probes=hessian seed=0"] == ["beyond_hessian"]  # and B1's


@pytest.mark.integration
def test_dln_runs_are_shared_by_the_small_and_paper_scales(tmp_path):
    small = {r.run_id for r in reproduce.plan(["fig10"], "small", tmp_path)}
    paper = {r.run_id for r in reproduce.plan(["fig10"], "paper", tmp_path)}
    assert small == paper and len(small) == 2 * 5  # 2 models x 5 seeds
    vgg_small = {r.run_id for r in reproduce.plan(["fig4"], "small", tmp_path)}
    assert vgg_small.isdisjoint(r.run_id for r in reproduce.plan(["fig4"], "paper", tmp_path))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--figs", "fig99"], "unknown figure(s) fig99; choose from fig1, fig2"),
        (["--scale", "huge"], "unknown scale 'huge'; choose one of auto, paper, long, small, smoke"),
        (["--launcher", "rocket"], "unknown launcher 'rocket'; choose one of basic, joblib"),
    ],
)
def test_bad_reproduce_arguments_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    (tmp_path / "keep.txt").write_text("x")
    assert reproduce.main([*args, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bnopt: error: ") and message in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


@pytest.mark.e2e
def test_make_with_a_bad_scale_is_one_line(tmp_path):
    import subprocess

    proc = subprocess.run(["make", "-s", "plan", "SCALE=huge"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0 and "bnopt: error: unknown scale 'huge'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.integration
def test_reproduce_dry_run_prints_the_plan(tmp_path, capsys):
    (tmp_path / "bench.json").write_text(json.dumps(fake_bench()))  # estimates come from `make bench`
    assert reproduce.main(["--scale", "smoke", "--figs", "fig4", "--results", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 runs, 0 already done, 2 to train" in out and "vgg16_bn lr=0.1" in out and "estimated" in out
    assert "~? min" not in out
    assert not (tmp_path / "runs").exists()
    runs = reproduce.plan(["fig4"], "smoke", tmp_path)
    for r in runs:
        r.state = "done"
    reproduce.print_plan(runs, "smoke", tmp_path)  # nothing left: no estimate is needed, so none is asked for
    out = capsys.readouterr().out
    assert "2 runs, 2 already done, nothing to train" in out and "make bench" not in out


@pytest.mark.integration
def test_paper_plan_on_a_cpu_warns_and_totals(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(reproduce, "_has_cuda", lambda: False)
    assert reproduce.main(["--scale", "paper", "--figs", "fig4", "--results", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "takes hours on a CPU" in out and "no time estimate" in out and "~? min" not in out


@pytest.mark.e2e
def test_an_experiment_is_a_sweep_and_two_experiments_train_a_shared_run_once(tmp_path):
    common = ["scale=smoke", *SMOKE_FAST, f"paths.results={tmp_path}"]
    first = run_cli("experiment=fig4", *common)  # no -m: the experiment config sets hydra.mode=MULTIRUN
    assert first.returncode == 0, first.stderr
    assert len(list(tmp_path.glob("runs/*"))) == 2
    second = run_cli("experiment=fig11_vgg", *common)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("already done") == 2 and len(list(tmp_path.glob("runs/*"))) == 2
    plan = reproduce.plan(["fig4"], "smoke", tmp_path, SMOKE_FAST)
    assert all(r.done for r in plan)


@pytest.mark.e2e
def test_a_bad_value_in_a_sweep_stops_it_before_any_run(tmp_path):
    proc = run_cli("-m", "model=vgg16", "optim.lr=0.1,-1", "scale=smoke", *SMOKE_FAST, f"paths.results={tmp_path}")
    assert proc.returncode == 2 and "bnopt: error: optim.lr must be a positive" in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("launcher, children", [("basic", 2), ("joblib", 1)])
def test_reproduce_goes_on_after_a_failed_run_and_exits_non_zero(tmp_path, capsys, monkeypatch, launcher, children):
    """A run whose records cannot be written fails; the other run of the sweep still trains. The basic
    launcher gets one child process per run, a parallel launcher one per experiment."""
    monkeypatch.setattr(
        reproduce,
        "run_overrides",
        lambda scale, results, extra=(): [f"scale={scale}", f"paths.results={results}", *SMOKE_FAST],
    )
    runs = reproduce.plan(["fig4"], "smoke", tmp_path)
    broken = next(r for r in runs if r.cfg.model.name == "vgg16")
    (tmp_path / "runs" / broken.run_id / "metrics.parquet").mkdir(parents=True)  # a folder: writing fails
    code = reproduce.main(["--scale", "smoke", "--figs", "fig4", "--results", str(tmp_path), "--launcher", launcher])
    captured = capsys.readouterr()
    assert code == 1 and f"FAILED {broken.run_id}" in captured.err
    assert captured.out.count("--- reproduce [") == children and f"hydra/launcher={launcher}" in captured.out
    states = {r.run_id: r.state for r in reproduce.plan(["fig4"], "smoke", tmp_path)}
    assert states[broken.run_id] == "failed" and sorted(states.values()) == ["done", "failed"]
    assert (tmp_path / "smoke" / "REPORT.md").exists()
    # a finished run whose metrics.parquet is cut short is planned for training again
    done = next(rid for rid, state in states.items() if state == "done")
    metrics = tmp_path / "runs" / done / "metrics.parquet"
    metrics.write_bytes(metrics.read_bytes()[: metrics.stat().st_size // 2])
    assert {r.run_id: r.state for r in reproduce.plan(["fig4"], "smoke", tmp_path)}[done] == "corrupt"


@pytest.mark.integration
def test_a_fresh_clone_restores_the_committed_records_instead_of_training(tmp_path, capsys):
    """results/<scale>/runs/ holds the finished runs a committed report was drawn from: `make reproduce`
    and `make figures` restore all of them that have no run folder (also those of figures not selected, whose
    records a redraw would otherwise drop), and train only the rest."""
    from bnopt.archive import archive_run
    from bnopt.run_folder import RunFolder

    runs = reproduce.plan(["fig4"], "smoke", tmp_path / "elsewhere")
    other = next(r for r in reproduce.plan(["fig1"], "smoke", tmp_path) if r.run_id not in {x.run_id for x in runs})
    clone = tmp_path / "clone"
    for r in (runs[0], other):
        folder = RunFolder(tmp_path / "elsewhere", r.run_id)
        folder.open(r.cfg)
        folder.close()
        folder.write_frame("metrics.parquet", [{"step": 0, "kind": "train", "loss": 2.3}])
        folder.write_status("done", steps_done=1)
        archive_run(folder.path, clone / "smoke" / "runs")
    assert reproduce.main(["--scale", "smoke", "--figs", "fig4", "--results", str(clone), "--dry-run"]) == 0
    out = capsys.readouterr().out  # the dry run counts the committed run as restored and copies nothing
    assert "2 runs, 0 already done, 1 to train" in out and f"1 restored from {clone / 'smoke' / 'runs'}" in out
    assert not (clone / "runs").exists()
    assert reproduce.main(["--no-train", "--scale", "smoke", "--figs", "fig4", "--results", str(clone)]) == 0
    assert f"restored 2 finished run(s) from {clone / 'smoke' / 'runs'}" in capsys.readouterr().out
    states = {r.run_id: r.state for r in reproduce.plan(["fig4"], "smoke", clone)}
    assert states == {r.run_id: "done" if r is runs[0] else "train" for r in runs}
    assert RunFolder(clone, other.run_id).is_finished()


@pytest.mark.integration
@pytest.mark.parametrize("manifest", [True, False])
def test_figures_keep_outputs_drawn_from_runs_that_are_not_here(tmp_path, capsys, manifest):
    """`make figures` on a fresh clone (no run folders) must not overwrite the committed report."""
    out = tmp_path / "small"
    (out / "figures").mkdir(parents=True)
    (out / "REPORT.md").write_text("committed report\n")
    (out / "figures" / "fig1.png").write_bytes(b"png")
    if manifest:
        (out / "manifest.json").write_text(json.dumps({"scale": "small", "runs": {"vgg16-lr0.1-abc": {}}}))
    assert reproduce.main(["--no-train", "--scale", "small", "--results", str(tmp_path)]) == 0
    assert (out / "REPORT.md").read_text() == "committed report\n"
    assert (out / "figures" / "fig1.png").read_bytes() == b"png"
    assert "keeping" in capsys.readouterr().err
    assert reproduce.main(["--no-train", "--scale", "small", "--results", str(tmp_path), "--force"]) == 0
    assert "not run" in (out / "REPORT.md").read_text()


@pytest.mark.integration
def test_smoke_reports_have_no_verdicts(tmp_path):
    from bnopt.report import NOT_JUDGED, write_report
    from tests.run_rows import Maker

    res = Maker(tmp_path).run("vgg16", 0.1).run("vgg16_bn", 0.1, acc_rate=0.05).results()
    res.runs["steps"], res.runs["batch_size"], res.runs["width"] = 30, 32, 0.0625  # the smoke preset's numbers
    path, checks = write_report(tmp_path, "smoke", res)
    text = path.read_text()
    assert checks[0].verdict == NOT_JUDGED and f"Verdict: **{NOT_JUDGED}**" in text
    assert "Verdict: **reproduced**" not in text and "| reproduced |" not in text


def test_a_report_names_every_machine_its_runs_came_from():
    """Paper-scale VGG runs come from a GPU and the DLN runs they share with the small scale from a CPU:
    the report's header lists both, with their runs; one machine keeps the two-line header."""
    import types

    import pandas as pd

    from bnopt.report import hardware_lines

    gpu = {"platform": "Linux-gpu", "cpu_count": 16, "gpu": "NVIDIA H200", "python": "3.12.3", "torch": "2.11.0"}
    cpu = {"platform": "Linux-cpu", "cpu_count": 2, "python": "3.11.7", "torch": "2.14.1"}
    runs = pd.DataFrame({"environment": [gpu, gpu, cpu], "family": ["vgg", "vgg", "dln"]})
    lines = hardware_lines(types.SimpleNamespace(runs=runs))
    assert lines[0].startswith("- Hardware: 2 run(s) (vgg): Linux-gpu, 16 CPU cores, GPU NVIDIA H200")
    assert lines[2].startswith("- Hardware: 1 run(s) (dln): Linux-cpu, 2 CPU cores, no GPU")
    assert "torch 2.14.1" in lines[3] and len(lines) == 4
    one = hardware_lines(types.SimpleNamespace(runs=runs.iloc[2:]))
    assert one[0] == "- Hardware: Linux-cpu, 2 CPU cores, no GPU" and len(one) == 2
