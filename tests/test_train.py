"""The train loop end to end: learning, determinism, resume after SIGKILL, skip, divergence, W&B (also
after a resume), the end-of-run summary, CLI errors."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pandas as pd
import pytest

from bnopt import train as train_module
from bnopt.records import METRICS_FILE
from bnopt.results import load_runs
from bnopt.run_folder import RunFolder
from bnopt.train import BadInput, train
from bnopt.wandb_mirror import WandbMirror

from .conftest import REPO, SMOKE, run_cli, smoke_cfg
from .wandb_reader import logged_by_step, logged_in


def metrics(result) -> pd.DataFrame:
    return pd.read_parquet(result.path / METRICS_FILE)


@pytest.mark.integration
def test_smoke_training_lowers_the_loss_and_writes_records(tmp_path):
    res = train(smoke_cfg(tmp_path), progress=False)
    assert res.status == "done" and res.steps_done == 30
    m = metrics(res)
    tr = m[m.kind == "train"]
    assert list(tr.step) == list(range(30))
    assert tr.loss.iloc[-5:].mean() < 0.5 * tr.loss.iloc[:5].mean()
    ev = m[m.kind == "eval"]
    assert list(ev.step) == [0, 10, 20, 30]
    assert ev.test_acc.iloc[-1] > 0.5  # chance is 0.1
    status = json.loads((res.path / "status.json").read_text())
    assert status["status"] == "done" and status["environment"]["torch"]
    assert (res.path / "config.yaml").exists() and (res.path / "checkpoint.pt").exists()
    runs = load_runs(tmp_path)
    assert runs.runs.loc[0, "model"] == "vgg16_bn" and len(runs.metrics) == len(m)


@pytest.mark.integration
def test_dln_trains_with_summed_squared_error(tmp_path, capsys):
    res = train(smoke_cfg(tmp_path, model="dln"), progress=False)
    tr = metrics(res).query("kind == 'train'")
    assert tr.loss.iloc[0] > 1e4  # summed over 1000 samples of a 10-d regression
    assert tr.loss.iloc[-1] < tr.loss.iloc[0]
    out = capsys.readouterr().out
    assert "  model dln, SGD lr 1e-06," in out and "width" not in out  # a DLN has no width


@pytest.mark.integration
def test_same_config_gives_bit_identical_records(tmp_path):
    a = metrics(train(smoke_cfg(tmp_path / "a", model="vgg16_noisy_bn"), progress=False))
    b = metrics(train(smoke_cfg(tmp_path / "b", model="vgg16_noisy_bn"), progress=False))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    c = metrics(train(smoke_cfg(tmp_path / "c", "seed=1", model="vgg16_noisy_bn"), progress=False))
    assert not a.loss.equals(c.loss)


@pytest.mark.integration
def test_finished_run_is_skipped(tmp_path, capsys):
    first = train(smoke_cfg(tmp_path), progress=False)
    before = (first.path / METRICS_FILE).stat().st_mtime_ns
    again = train(smoke_cfg(tmp_path), progress=False)
    assert again.run_id == first.run_id and again.status == "done"
    assert "already done" in capsys.readouterr().out
    assert (first.path / METRICS_FILE).stat().st_mtime_ns == before


@pytest.mark.integration
def test_divergence_is_recorded_not_raised(tmp_path):
    res = train(smoke_cfg(tmp_path, "optim.lr=1e6", "scale.steps=50", model="vgg16"), progress=False)
    assert res.status == "diverged" and res.steps_done < 50
    status = json.loads((res.path / "status.json").read_text())
    assert status["status"] == "diverged"
    tr = metrics(res).query("kind == 'train'")
    assert not pd.Series(tr.loss).iloc[-1] < float("inf")  # the last recorded loss is the non-finite one
    assert len(load_runs(tmp_path, status="diverged")) == 1


@pytest.mark.e2e
def test_kill_and_resume_is_bit_identical(tmp_path):
    args = ["model=vgg16_noisy_bn", *SMOKE, "scale.steps=120", "scale.ckpt_every=10", "scale.eval_every=40"]
    reference = run_cli(*args, f"paths.results={tmp_path / 'ref'}")
    assert reference.returncode == 0, reference.stderr
    killed_root = tmp_path / "killed"
    env = {**os.environ, "WANDB_SILENT": "true"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bnopt.train", *args, f"paths.results={killed_root}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    status_files = lambda: list(killed_root.glob("runs/*/status.json"))
    while time.time() < deadline:
        files = status_files()
        if files and json.loads(files[0].read_text()).get("steps_done", 0) >= 30:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    st = json.loads(status_files()[0].read_text())
    assert st["status"] == "running" and 30 <= st["steps_done"] < 120, st
    resumed = run_cli(*args, f"paths.results={killed_root}")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    ref_m = pd.read_parquet(next((tmp_path / "ref").glob("runs/*/metrics.parquet")))
    got_m = pd.read_parquet(next(killed_root.glob("runs/*/metrics.parquet")))
    pd.testing.assert_frame_equal(ref_m, got_m, check_exact=True)


@pytest.mark.e2e
def test_wandb_offline_logs_the_records(tmp_path):
    res = train(smoke_cfg(tmp_path, "logger=wandb", "logger.mode=offline", "probes=paper"), progress=False)
    logged = logged_by_step(res.path)
    m = metrics(res)
    train_rows = m[m.kind == "train"].set_index("step")
    assert all("train/loss" in logged.get(step, {}) for step in range(30))  # no row lost to probe logging
    for step in (0, 17, 29):
        assert logged[step]["train/loss"] == pytest.approx(train_rows.loc[step, "loss"], rel=1e-6)
        assert logged[step]["train/acc"] == pytest.approx(train_rows.loc[step, "acc"])
    probes = load_runs(tmp_path).probes
    beta = probes[(probes.probe == "landscape") & (probes.metric == "beta")].set_index("step")["value"]
    assert len(beta) >= 2
    for step, value in beta.items():
        assert logged[step]["landscape/beta"] == pytest.approx(value, rel=1e-6)
    final_eval = m[m.kind == "eval"].iloc[-1]
    assert logged[30]["eval/test_acc"] == pytest.approx(final_eval.test_acc)


class Killed(KeyboardInterrupt):
    """Stands for a kill: raised by the training step, it leaves the run as a kill would (status running)."""


@contextlib.contextmanager
def killed_at(step: int):
    """Training raises Killed when it reaches `step` (its last checkpoint is the one before)."""
    real = train_module.forward_backward

    def step_or_die(model, task, opt, at, **kwargs):
        if at == step:
            raise Killed
        return real(model, task, opt, at, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_module, "forward_backward", step_or_die)
        yield


@pytest.fixture(scope="module")
def resumed_wandb_run(tmp_path_factory):
    """A smoke run with W&B (offline) and probes, killed at step 27 (checkpoint 20; W&B had steps up to
    24), then resumed: (result, its stdout)."""
    root = tmp_path_factory.mktemp("resumed")
    cfg = lambda: smoke_cfg(root, "logger=wandb", "logger.mode=offline", "probes=activations")  # noqa: E731
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(io.StringIO()):
        mp.setenv("WANDB_SILENT", "true")
        with killed_at(27), pytest.raises(Killed):
            train(cfg(), progress=False)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            res = train(cfg(), progress=False)
    return res, out.getvalue()


@pytest.mark.e2e
def test_wandb_resume_sends_the_rows_the_killed_attempt_lacks(resumed_wandb_run):
    """Issue 22 item 4: the resumed W&B run started at the checkpoint, so steps the killed attempt's W&B
    service had not written were in neither; and `wandb sync` of the later offline run replaces the earlier.
    The newest offline run must hold the whole history."""
    res, out = resumed_wandb_run
    assert "resuming" in out and res.status == "done"
    newest = sorted(res.path.glob("wandb/offline-run-*"))[-1]
    logged = logged_in(newest)
    m = metrics(res)
    train_rows, evals = m[m.kind == "train"].set_index("step"), m[m.kind == "eval"].set_index("step")
    assert [s for s in range(30) if "train/loss" not in logged.get(s, {})] == []
    for step in range(30):
        assert logged[step]["train/loss"] == pytest.approx(train_rows.loc[step, "loss"], rel=1e-6)
    assert [s for s in evals.index if "eval/test_acc" not in logged.get(s, {})] == []
    assert logged[10]["eval/test_acc"] == pytest.approx(evals.loc[10, "test_acc"])
    probes = load_runs(res.path.parent.parent).probes
    grad = probes[(probes.probe == "gradnorms") & (probes.layer == 1) & (probes.metric == "grad_norm")]
    for step, value in grad.set_index("step")["value"].items():  # probe scalars of replayed steps too
        assert logged[step]["gradnorms/layer1"] == pytest.approx(value, rel=1e-6)


@pytest.mark.e2e
def test_resumes_are_counted_in_status_and_said_in_the_summary(resumed_wandb_run):
    res, out = resumed_wandb_run
    assert json.loads((res.path / "status.json").read_text())["resumes"] == 1
    assert f"=== {res.run_id}: DONE after 30/30 steps in " in out
    assert "min, resumed 1 time from a checkpoint ===" in out


@pytest.mark.e2e
def test_summary_lists_the_files_written_and_the_wandb_folder(resumed_wandb_run):
    """Issue 22 item 16: the records line listed {metrics.parquet,status.json,config.yaml} whatever was
    written; with logger=wandb the summary names the offline W&B run and the command that uploads it."""
    res, out = resumed_wandb_run
    names = "activations.npz,checkpoint.pt,config.yaml,metrics.parquet,probes.parquet,status.json,wandb/,wandb_id"
    assert f"  records: {res.path}/{{{names}}}" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("  W&B (offline): "))
    m = re.fullmatch(r"  W&B \(offline\): (\S+); upload it with: wandb sync (\S+)", line)
    assert m and m[1] == m[2] == str(sorted(res.path.glob("wandb/offline-run-*"))[-1])
    assert "  model vgg16_bn (width 0.0625), SGD lr 0.1," in out


def test_wandb_resume_online_sends_only_the_steps_the_server_lacks(tmp_path):
    """Online, a resumed W&B run starts at the server's next step: only the rows from there are sent."""
    logged = []
    fake_run = SimpleNamespace(starting_step=15, log=lambda data, step: logged.append(step))
    wb = WandbMirror(smoke_cfg(tmp_path), RunFolder(tmp_path, "r"), resume=True)  # logger=none: no run
    assert wb.catch_up([(0, {})]) == 0
    wb.run = fake_run
    history = [(s, {"train/loss": 1.0}) for s in range(20)] + [(20, {"eval/loss": 1.0})]
    assert wb.catch_up(history) == 6 and logged == [15, 16, 17, 18, 19, 20]


@pytest.mark.integration
def test_wandb_failure_is_a_warning_not_a_crash(tmp_path, monkeypatch, capsys):
    import wandb

    def broken_init(*a, **k):
        raise RuntimeError("no disk")

    monkeypatch.setattr(wandb, "init", broken_init)
    res = train(smoke_cfg(tmp_path, "logger=wandb"), progress=False)
    assert res.status == "done"
    assert "warning: W&B init failed (RuntimeError: no disk)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["optim.lr=0"], "optim.lr must be a positive"),
        (["scale.steps=-3"], "scale.steps must be a positive integer"),
        (["scale.batch_size=0"], "scale.batch_size must be a positive integer"),
        (["scale.batch_size=100000"], "larger than the training set"),
        (["model.width=-1"], "model.width must be a positive"),
        (["model.norm=batchy"], "unknown model.norm"),
    ],
)
def test_bad_input_stops_before_anything_is_written(tmp_path, extra, message):
    with pytest.raises(BadInput, match=message):
        train(smoke_cfg(tmp_path, *extra), progress=False)
    assert not (tmp_path / "runs").exists()


def test_unwritable_results_dir_is_bad_input(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    with pytest.raises(BadInput, match="is not writable"):
        train(smoke_cfg(blocker / "results"), progress=False)
    assert blocker.read_text() == "keep me"


@pytest.mark.e2e
def test_bad_data_file_is_bad_input(tmp_path, cifar_dir, monkeypatch):
    import numpy as np

    d = tmp_path / "cifar"
    d.mkdir()
    for f in cifar_dir.glob("*.npz"):
        (d / f.name).symlink_to(f)
    (d / "train_2.npz").unlink()
    np.savez(d / "train_2.npz", x=np.zeros((5, 32, 32, 3), np.int16), y=np.zeros(5, np.uint8))
    monkeypatch.setenv("BNOPT_DATA", str(d))
    cfg = smoke_cfg(tmp_path / "res", "data=cifar10", "data.source=npz")
    with pytest.raises(BadInput, match="train_2.npz: expected x uint8"):
        train(cfg, progress=False)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args, message",
    [
        (["model=vgg19"], "unknown model 'vgg19'; choose one of"),
        (["scale=huge"], "unknown scale 'huge'"),
        (["optim.lr=-1"], "optim.lr must be a positive"),
        (["data=cifar10", "data.source=npz", "data.root=/nope"], "data path /nope does not exist"),
        (["seed=abc"], "seed must be an integer >= 0, got 'abc'"),
        (["data=cifar10", "data.source=synthetic"], "for the tiny test data use data=synthetic"),
        (["data=cifar10", "data.source=auto", "data.download=false", "data.root=DATA"], "Point BNOPT_DATA at"),
        (["hydra/launcher=slurm", "-m"], "needs SLURM, but `sbatch` is not on this machine's PATH"),
        (["paths.results_dir=/x"], "no config key paths.results_dir; did you mean paths.results?"),
        (["experiment=fig1", "seed=0,1", "optim.lrr=0.1"], "no config key optim.lrr; did you mean optim.lr?"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    base = SMOKE[1:] if any(a.startswith("data=") for a in args) else SMOKE
    args = [a.replace("DATA", str(tmp_path / "data" / "cifar10")) for a in args]
    proc = run_cli(*base, f"paths.results={tmp_path / 'res'}", *args, env={"BNOPT_DATA": ""})
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("bnopt: error: ") and message in lines[0], proc.stderr
    assert not (tmp_path / "res").exists() and not (tmp_path / "data").exists()  # nothing left behind


@pytest.mark.e2e
def test_cli_multirun_sweeps_and_goes_on_after_divergence(tmp_path):
    proc = run_cli("-m", "model=vgg16", *SMOKE, "optim.lr=0.05,1e6", f"paths.results={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    runs = load_runs(tmp_path).runs.sort_values("lr")
    assert list(runs.status) == ["done", "diverged"]
    assert "DONE" in proc.stdout and "DIVERGED" in proc.stdout


@pytest.mark.integration
def test_a_run_being_trained_elsewhere_is_refused_without_touching_it(tmp_path):
    from bnopt.config import resolve, run_id
    from bnopt.records import RunLocked
    from bnopt.run_folder import RunFolder

    cfg = resolve(smoke_cfg(tmp_path))
    holder = RunFolder(tmp_path, run_id(cfg))
    holder.open(cfg)  # another process holds the lock
    try:
        with pytest.raises(RunLocked, match="being trained by another process"):
            train(smoke_cfg(tmp_path), progress=False)
        assert not (holder.path / METRICS_FILE).exists()
    finally:
        holder.close()
    assert train(smoke_cfg(tmp_path), progress=False).status == "done"


def test_a_sweep_whose_jobs_run_elsewhere_says_where_their_output_goes(capsys):
    """hydra/launcher=local_parallel (submitit) runs each job in its own process and showed nothing here
    for minutes: the sweep now starts with one line naming the jobs' log files."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from bnopt.config import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        parallel = compose("train", overrides=["hydra/launcher=local_parallel"], return_hydra_config=True)
        basic = compose("train", return_hydra_config=True)
    notice = instantiate(parallel.hydra.callbacks.job_logs)  # what Hydra builds from the config
    notice.on_multirun_start(basic)
    assert capsys.readouterr().out == ""  # the basic launcher shows its jobs itself
    notice.on_multirun_start(parallel)
    out = capsys.readouterr().out
    assert out.startswith("bnopt: each job runs in its own process") and "/sweeps/" in out
    assert ".submitit/<job id>/<job id>_0_log.out" in out
