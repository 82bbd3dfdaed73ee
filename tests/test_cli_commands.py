"""`bnopt runs | compare | plot | id` and the end-of-sweep summary (issue 22: items 17 and 18, and "what users
of such suites expect"). In-process calls of bnopt.cli.main on hand-made run folders (nothing trains), and of
bnopt.cli_train.main for a sweep whose runs are already finished."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra.core.utils import JobReturn
from omegaconf import OmegaConf

from bnopt import cli, cli_train, sweeps
from bnopt.config import CONFIG_DIR, resolve, run_id
from bnopt.records import METRICS_FILE
from bnopt.run_folder import RunFolder

from .conftest import SMOKE, smoke_cfg

BASIC_LAUNCHER = sweeps.IN_PROCESS_LAUNCHERS[0]
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def make_run(root: Path, *overrides: str, model: str = "vgg16_bn", status: str = "done", **summary) -> RunFolder:
    """A hand-made run folder at smoke scale under root (no training): config, status with `summary`, and
    metrics rows of a few steps (a `running` one without its lock held: as a killed run leaves it)."""
    cfg = resolve(smoke_cfg(root, *overrides, model=model))
    folder = RunFolder(root, run_id(cfg))
    folder.open(cfg)
    folder.close()
    steps = int(cfg.scale.steps)
    done = steps if status in ("done", "diverged") else steps // 2
    rows = [{"step": s, "kind": "train", "loss": 2.0 - s / steps, "acc": 0.1 + s / steps / 2} for s in range(done)]
    rows += [{"step": 0, "kind": "eval", "loss": float("nan"), "test_acc": 0.1, "train_eval_acc": 0.1}]
    folder.write_frame(METRICS_FILE, rows)
    folder.write_status(status, steps=steps, steps_done=done, summary=summary)
    return folder


def bnopt(capsys, *args: str) -> tuple[int, str, str]:
    """`bnopt args...` in this process: (exit code, stdout, stderr)."""
    try:
        code = cli.main(list(args))
    except SystemExit as e:  # the overrides' checks shared with bnopt-train exit themselves
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("bnopt: error: "), err
    return lines[0]


def table_line(out: str, rid: str) -> list[str]:
    (line,) = [ln for ln in out.splitlines() if rid in ln]
    return line.split()


@pytest.fixture
def runs(tmp_path):
    """Four runs: a finished VGG, a DLN, a killed one (`running`, nobody holds it) and one that trains now."""
    made = {
        "vgg": make_run(tmp_path, test_acc=0.5123, final_loss=1.5),
        "dln": make_run(tmp_path, model="dln_bn", final_loss=12.5),
        "killed": make_run(tmp_path, "optim.lr=0.5", model="vgg16", status="running"),
        "live": make_run(tmp_path, "seed=1", model="vgg16", status="running"),
    }
    live = made["live"]
    live.open(OmegaConf.load(live.file("config.yaml")))  # this process trains it: it holds the lock
    yield made
    live.close()


# ------------------------------------------------------------------------------------------- bnopt runs


def test_runs_lists_each_run_with_steps_status_and_final_metric(runs, tmp_path, capsys):
    code, out, err = bnopt(capsys, "runs", "--results", str(tmp_path))
    assert code == 0 and err == ""
    assert out.split("\n")[0].split() == [
        "run",
        "model",
        "lr",
        "seed",
        "scale",
        "steps",
        "status",
        "final",
        "experiment",
    ]
    vgg, dln, killed, live = (runs[k].run_id for k in ("vgg", "dln", "killed", "live"))
    assert table_line(out, vgg) == [
        vgg,
        "vgg16_bn",
        "0.1",
        "0",
        "smoke",
        "30/30",
        "done",
        "test",
        "acc",
        "0.5123",
        "adhoc",
    ]
    assert table_line(out, dln) == [dln, "dln_bn", "1e-06", "0", "smoke", "50/50", "done", "loss", "12.5", "adhoc"]
    # `running` in status.json, but no process holds it: killed; the same command resumes it
    assert table_line(out, killed)[5:7] == ["15/30", "interrupted"]
    assert table_line(out, live)[5:7] == ["15/30", "running"]
    assert f"4 of 4 runs under {tmp_path}/runs" in out


def test_runs_filters_by_value_and_refuses_unknown_values(runs, tmp_path, capsys):
    root = ["--results", str(tmp_path)]
    code, out, _ = bnopt(capsys, "runs", *root, "--model", "vgg16", "--status", "interrupted")
    assert code == 0 and runs["killed"].run_id in out and "1 of 4 runs" in out
    code, out, _ = bnopt(capsys, "runs", *root, "--lr", "1e-6", "0.5")
    assert code == 0 and {runs["dln"].run_id, runs["killed"].run_id} == {ln.split()[0] for ln in out.splitlines()[1:-1]}
    code, out, _ = bnopt(capsys, "runs", *root, "--seed", "1", "--scale", "smoke")
    assert code == 0 and runs["live"].run_id in out and "1 of 4 runs" in out
    code, out, _ = bnopt(capsys, "runs", *root, "--model", "vgg16_l1")  # a model, but no run of it here
    assert code == 0 and out == f"no run under {tmp_path}/runs matches the filters (4 runs in all)\n"
    code, _, err = bnopt(capsys, "runs", *root, "--model", "vgg16_nb")
    assert "unknown --model 'vgg16_nb'; did you mean vgg16_bn?" in one_line_error(code, err)
    code, _, err = bnopt(capsys, "runs", *root, "--status", "finished")
    assert "unknown --status 'finished'" in one_line_error(code, err)
    code, _, err = bnopt(capsys, "runs", *root, "--seed", "-1")
    assert "argument --seed: invalid nonnegative_int value: '-1'" in one_line_error(code, err)
    code, _, err = bnopt(capsys, "runs", *root, "--bogus")
    assert "unrecognized arguments: --bogus" in one_line_error(code, err)
    code, _, err = bnopt(capsys, "runs", *root, "--experiment", "mine")
    assert "unknown --experiment 'mine'" in one_line_error(code, err)
    mine = make_run(tmp_path, "experiment_name=mine", "seed=2")  # an experiment of one's own: a value here
    code, out, _ = bnopt(capsys, "runs", *root, "--experiment", "mine")
    assert code == 0 and mine.run_id in out and "1 of 5 runs" in out


def test_runs_without_runs_points_at_the_committed_ones(tmp_path, capsys):
    make_run(tmp_path / "small")  # a results root of its own, as results/small holds the committed runs
    code, out, _ = bnopt(capsys, "runs", "--results", str(tmp_path))
    expected = f"no runs under {tmp_path}/runs; to read the committed ones: bnopt runs --results {tmp_path}/small\n"
    assert code == 0 and out == expected


# ---------------------------------------------------------------------------------------- run by prefix


def test_a_run_is_named_by_a_unique_prefix_and_a_bad_name_is_one_line(runs, tmp_path, capsys):
    assert cli.find_run(tmp_path, runs["dln"].run_id[:8]) == runs["dln"].path
    assert cli.find_run(tmp_path, runs["vgg"].run_id) == runs["vgg"].path
    code, _, err = bnopt(capsys, "compare", "vgg16-lr", runs["vgg"].run_id, "--results", str(tmp_path))
    assert "run id prefix 'vgg16-lr' is ambiguous: 2 runs under" in one_line_error(code, err)
    code, _, err = bnopt(capsys, "plot", "resnet", "--results", str(tmp_path))
    assert f"no run 'resnet' under {tmp_path}/runs; 4 runs there" in one_line_error(code, err)


# ---------------------------------------------------------------------------------------- bnopt compare


def test_compare_shows_final_metrics_and_only_the_differing_config_keys(runs, tmp_path, capsys):
    other = make_run(tmp_path, "optim.lr=0.5", "experiment_name=mine", final_loss=2.25, test_acc=0.25)
    code, out, err = bnopt(capsys, "compare", runs["vgg"].run_id[:16], other.run_id[:16], "--results", str(tmp_path))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[1].split() == ["run", runs["vgg"].run_id, other.run_id]
    assert ["final", "test", "acc", "0.5123", "test", "acc", "0.2500"] in [ln.split() for ln in lines]
    assert ["final", "training", "loss", "1.5", "2.25"] in [ln.split() for ln in lines]
    start = lines.index("config keys that differ (2; 'in run id': changes what is trained or recorded):")
    diff = [ln.split() for ln in lines[start + 3 :]]  # after the header and the index name
    assert diff == [["experiment_name", "adhoc", "mine", "no"], ["optim.lr", "0.1", "0.5", "yes"]]


# ------------------------------------------------------------------------------------------- bnopt plot


@pytest.mark.integration
def test_plot_writes_one_runs_curves_and_says_where(runs, tmp_path, capsys):
    rid = runs["vgg"].run_id
    code, out, _ = bnopt(capsys, "plot", rid[:12], "--results", str(tmp_path))
    png = tmp_path / "plots" / f"{rid}.png"
    assert code == 0 and out == f"wrote {png}\n"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = bnopt(
        capsys, "plot", runs["dln"].run_id, "--results", str(tmp_path), "--out", str(tmp_path / "d.svg")
    )
    assert code == 0 and (tmp_path / "d.svg").read_text().lstrip().startswith("<?xml")
    code, _, err = bnopt(capsys, "plot", rid, "--results", str(tmp_path), "--out", str(tmp_path / "x.jpgx"))
    assert "write a png, pdf, svg file" in one_line_error(code, err)
    # committed records (results/small) are never written beside: their plots go to results/plots
    assert cli.default_plot_path(Path("results/small"), "r") == Path("results/plots/r.png")


# --------------------------------------------------------------------------------------------- bnopt id


def test_id_prints_the_run_id_bnopt_train_would_use_without_training(tmp_path, capsys):
    code, out, _ = bnopt(capsys, "id", "model=vgg16", *SMOKE, "optim.lr=0.5", f"paths.results={tmp_path}")
    assert code == 0 and out == run_id(resolve(smoke_cfg(tmp_path, "optim.lr=0.5", model="vgg16"))) + "\n"
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing written


def test_id_of_a_sweep_is_one_line_per_run_with_status_and_folder(tmp_path, capsys):
    done = make_run(tmp_path, model="vgg16")
    code, out, _ = bnopt(capsys, "id", "-m", "model=vgg16,vgg16_bn", *SMOKE, f"paths.results={tmp_path}")
    other = run_id(resolve(smoke_cfg(tmp_path, model="vgg16_bn")))
    assert code == 0
    assert table_line(out, done.run_id) == [done.run_id, "done", "vgg16", "lr=0.1", "seed=0", str(done.path)]
    assert table_line(out, other) == [
        other,
        "not",
        "trained",
        "vgg16_bn",
        "lr=0.1",
        "seed=0",
        f"{tmp_path}/runs/{other}",
    ]
    code, out, _ = bnopt(capsys, "id", "experiment=fig1", "scale=smoke", f"paths.results={tmp_path}")
    assert code == 0 and len(out.splitlines()) == 1 + 4  # VGG16 with and without BN at two LRs, one seed


@pytest.mark.parametrize(
    "args, message",
    [
        (["model=foo"], "unknown model 'foo'"),
        (["optim.lr=-1"], "optim.lr must be a positive finite number, got -1"),
        (["optim.lrr=1"], "optim.lrr"),
        (["vgg16"], "'vgg16' is not an override (key=value, as bnopt-train takes them)"),
    ],
)
def test_id_of_a_bad_override_is_one_line(args, message, capsys):
    code, _, err = bnopt(capsys, "id", *args)
    assert message in one_line_error(code, err)


# ---------------------------------------------------------------------------------------- end of a sweep


def sweep_config(tmp_path: Path, overrides: list[str], launcher: str = BASIC_LAUNCHER):
    """The keys of a multirun's config the callback reads (Hydra passes the whole composed config)."""
    hydra = {
        "sweeper": {"params": None},
        "overrides": {"task": overrides},
        "launcher": {"_target_": launcher},
        "sweep": {"dir": str(tmp_path / "sweeps" / "2026-12-06_12-00-00")},
        "job": {"config_name": "train"},
    }
    return OmegaConf.create({"hydra": hydra, "paths": {"results": str(tmp_path)}})


def end_job(callback, num: int, folder: RunFolder) -> None:
    """What Hydra's run_job tells the callbacks after a job that ran in this process."""
    ret = JobReturn()
    ret.cfg = OmegaConf.load(folder.file("config.yaml"))
    callback.on_job_end(OmegaConf.create({"hydra": {"job": {"num": num}}}), job_return=ret)


def hydra_sweep_folder(config) -> Path:
    """What Hydra's basic sweeper and launcher leave in the sweep folder: multirun.yaml, an empty folder a job."""
    sweep_dir = Path(config.hydra.sweep.dir)
    for job in ("0", "1", "2", "3"):
        (sweep_dir / job).mkdir(parents=True)
    (sweep_dir / "multirun.yaml").write_text("hydra: {}\n")
    return sweep_dir


def test_sweep_summary_has_a_line_per_run_and_the_counts(tmp_path, capsys):
    overrides = ["model=vgg16_bn,vgg16", "optim.lr=0.1,0.5", *SMOKE, f"paths.results={tmp_path}"]
    config = sweep_config(tmp_path, overrides)
    callback = sweeps.SweepSummary()
    callback.on_multirun_start(config)
    sweep_dir = hydra_sweep_folder(config)
    folders = [
        make_run(tmp_path, test_acc=0.75),
        make_run(tmp_path, "optim.lr=0.5", status="diverged", final_loss=float("inf")),
        make_run(tmp_path, model="vgg16", status="failed"),
        make_run(tmp_path, "optim.lr=0.5", model="vgg16", status="running"),
    ]
    folders[2].write_status("failed", error="RuntimeError: out of memory")
    held = RunFolder(tmp_path, folders[3].run_id)
    held.open(OmegaConf.load(held.file("config.yaml")))  # another process trains it: this sweep was refused it
    for num, folder in enumerate(folders):
        end_job(callback, num, folder)
    callback.on_multirun_end(config)
    held.close()
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[:2] for ln in lines[:4]] == [
        ["done", folders[0].run_id],
        ["diverged", folders[1].run_id],
        ["failed", folders[2].run_id],
        ["refused", folders[3].run_id],
    ]
    assert lines[0].split()[2:] == ["vgg16_bn", "lr=0.1", "seed=0", "test", "acc", "0.7500"]
    assert lines[1].split()[-2:] == ["loss", "inf"]
    assert lines[2].endswith("RuntimeError: out of memory")
    assert lines[4] == "=== sweep: 4 run(s): 1 done, 1 diverged, 1 failed, 1 refused ==="
    assert not sweep_dir.exists() and not (tmp_path / "sweeps").exists()  # it held nothing but Hydra's files


def test_sweep_stopped_by_a_failing_job_still_sums_up_and_tidies(tmp_path, capsys):
    overrides = ["model=vgg16_bn,vgg16", *SMOKE, f"paths.results={tmp_path}"]
    config = sweep_config(tmp_path, overrides)
    callback = sweeps.SweepSummary()
    callback.on_multirun_start(config)
    sweep_dir = hydra_sweep_folder(config)
    end_job(callback, 0, make_run(tmp_path, model="vgg16_bn", status="failed"))
    callback.finish()  # what the exit handler does: Hydra never reaches on_multirun_end after a job raised
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].split()[:3] == ["not", "run", "-"] and "model=vgg16" in lines[1]
    assert lines[2] == "=== sweep: 2 run(s): 0 done, 0 diverged, 1 failed, 0 refused, 1 not run ==="
    assert not sweep_dir.exists()
    callback.finish()  # once only (on_multirun_end, then the exit handler)
    assert capsys.readouterr().out == ""


def test_sweep_of_another_launcher_recomputes_its_runs_and_keeps_its_logs(tmp_path, capsys):
    overrides = ["model=vgg16_bn,vgg16", *SMOKE, f"paths.results={tmp_path}", "hydra/launcher=joblib"]
    config = sweep_config(tmp_path, overrides, launcher=JOBLIB_LAUNCHER)
    callback = sweeps.SweepSummary()
    callback.on_multirun_start(config)
    sweep_dir = hydra_sweep_folder(config)
    logs = sweep_dir / ".submitit" / "123" / "123_0_log.out"
    logs.parent.mkdir(parents=True)
    logs.write_text("progress\n")
    a, b = make_run(tmp_path, test_acc=0.5), make_run(tmp_path, model="vgg16", test_acc=0.25)
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):  # as inside a sweep: Hydra is set up
        callback.on_multirun_end(config)  # the jobs ran in other processes: on_job_end never came here
    out = capsys.readouterr().out
    assert [table_line(out, r.run_id)[0] for r in (a, b)] == ["done", "done"]
    assert "=== sweep: 2 run(s): 2 done, 0 diverged, 0 failed, 0 refused ===" in out
    assert f"the launcher's logs: {sweep_dir}" in out
    assert sorted(p.name for p in sweep_dir.iterdir()) == [".submitit", "multirun.yaml"]  # empty job folders went


@pytest.mark.integration  # runs a sweep through Hydra's launcher
def test_bnopt_train_sweep_ends_with_the_summary_and_leaves_no_sweep_folder(tmp_path, monkeypatch, capsys):
    """The callback as configs/hydra/default.yaml registers it, in a real in-process sweep (basic launcher)
    whose runs are finished already (nothing trains)."""
    done = make_run(tmp_path, test_acc=0.75)
    diverged = make_run(tmp_path, model="vgg16", status="diverged", final_loss=float("inf"))
    monkeypatch.setattr(cli_train, "REFUSED", [])
    argv = ["bnopt-train", "-m", "model=vgg16_bn,vgg16", *SMOKE, f"paths.results={tmp_path}"]
    monkeypatch.setattr(sys, "argv", argv)
    cli_train.main()
    out = capsys.readouterr().out
    assert table_line(out, f"  done  {done.run_id}")[-3:] == ["test", "acc", "0.7500"]
    assert table_line(out, f"  diverged  {diverged.run_id}")[-2:] == ["loss", "inf"]
    assert "=== sweep: 2 run(s): 1 done, 1 diverged, 0 failed, 0 refused ===" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # no results/sweeps/<time>/ left behind
