"""Run records: the schema check (read_run), corrupt runs skipped and retrained (or rebuilt from their final
checkpoint), unreadable checkpoints set aside, the W&B run id kept across a resume, the W&B online init
timeout, and the exit code of a locked run."""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import fields

import pandas as pd
import pytest
import torch

from bnopt import train as train_module
from bnopt.archive import archive_run, restore_runs
from bnopt.config import resolve, run_id
from bnopt.records import (
    CKPT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    PROBES_FILE,
    SCHEMA_VERSION,
    STATUS_FILE,
    Checkpoint,
    CorruptRun,
    read_run,
)
from bnopt.results import Results, load_runs
from bnopt.run_folder import RunFolder
from bnopt.train import train
from bnopt.wandb_mirror import WANDB_INIT_TIMEOUT_S, WandbMirror

from .conftest import SMOKE, run_cli, smoke_cfg

METRIC_ROWS = [
    {"step": 0, "kind": "eval", "loss": float("nan"), "test_acc": 0.1},
    {"step": 0, "kind": "train", "loss": 2.3, "acc": 0.1},
]
PROBE_ROWS = [{"step": 0, "probe": "landscape", "layer": 0, "eta": 0.1, "metric": "loss", "value": 2.0}]


def truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def finished_folder(tmp_path) -> RunFolder:
    """A hand-made finished run folder with valid records (no training)."""
    cfg = resolve(smoke_cfg(tmp_path))
    folder = RunFolder(tmp_path, run_id(cfg))
    folder.open(cfg)
    folder.close()
    folder.write_frame(METRICS_FILE, METRIC_ROWS)
    folder.write_frame(PROBES_FILE, PROBE_ROWS)
    folder.write_status("done", steps_done=1)
    return folder


# ---------------------------------------------------------------------------- committed records


def test_committed_records_restore_a_finished_run_and_never_touch_one_on_disk(tmp_path):
    folder = finished_folder(tmp_path / "here")
    torch.save({"step": 1}, folder.file(CKPT_FILE))  # a checkpoint is never committed
    archive = tmp_path / "committed" / "records"
    assert archive_run(folder.path, archive)
    kept = archive / folder.run_id
    assert sorted(p.name for p in kept.iterdir()) == sorted([CONFIG_FILE, STATUS_FILE, METRICS_FILE, PROBES_FILE])
    assert not archive_run(folder.path, archive)  # same bytes: nothing written, nothing for git to see
    # a fresh clone: the run is restored whole and reads as the same finished run
    fresh = tmp_path / "clone"
    assert restore_runs(archive, fresh, [folder.run_id, "not-committed"]) == [folder.run_id]
    again = RunFolder(fresh, folder.run_id)
    assert again.is_finished() and not again.file(CKPT_FILE).exists()
    pd.testing.assert_frame_equal(read_run(again.path).metrics, read_run(folder.path).metrics)
    # a folder already on disk (here half-trained) is left as it is
    again.write_status("running", steps_done=0)
    assert restore_runs(archive, fresh, [folder.run_id]) == []
    assert again.status()["status"] == "running"
    # a damaged run is never committed
    folder.file(METRICS_FILE).write_bytes(b"")
    with pytest.raises(CorruptRun):
        archive_run(folder.path, archive)


# --------------------------------------------------------------------------------------- schema


def test_read_run_accepts_valid_records_and_status_carries_the_schema_version(tmp_path):
    folder = finished_folder(tmp_path)
    assert json.loads(folder.file(STATUS_FILE).read_text())["schema_version"] == SCHEMA_VERSION
    rec = read_run(folder.path)
    assert rec.status["status"] == "done" and rec.config.model.name == "vgg16_bn"
    assert list(rec.metrics.step) == [0, 0] and list(rec.probes.metric) == ["loss"]
    # records from before versioning (no schema_version) read as version 1
    st = json.loads(folder.file(STATUS_FILE).read_text())
    del st["schema_version"]
    folder.file(STATUS_FILE).write_text(json.dumps(st))
    assert read_run(folder.path).status["status"] == "done"
    assert folder.is_finished()


def _bad_yaml(f):
    f.file(CONFIG_FILE).write_text("model: [unclosed\n")


def _no_model_name(f):
    f.file(CONFIG_FILE).write_text(f.file(CONFIG_FILE).read_text().replace("name: vgg16_bn", "name: null"))


def _bad_status(f):
    f.file(STATUS_FILE).write_text('{"status": "do')


def _newer_schema(f):
    st = json.loads(f.file(STATUS_FILE).read_text())
    f.file(STATUS_FILE).write_text(json.dumps({**st, "schema_version": SCHEMA_VERSION + 1}))


@pytest.mark.parametrize(
    "damage, reason",
    [
        (_bad_yaml, "config.yaml unreadable"),
        (_no_model_name, "config.yaml lacks model.name"),
        (_bad_status, "status.json unreadable"),
        (_newer_schema, f"schema {SCHEMA_VERSION + 1} > {SCHEMA_VERSION}"),
        (lambda f: f.file(METRICS_FILE).unlink(), "done but no metrics.parquet"),
        (lambda f: truncate(f.file(METRICS_FILE)), "metrics.parquet unreadable"),
        (lambda f: f.file(METRICS_FILE).write_bytes(b""), "metrics.parquet unreadable"),
        (lambda f: f.write_frame(METRICS_FILE, [{"step": 0, "kind": "train"}]), "metrics.parquet lacks column(s) loss"),
        (lambda f: truncate(f.file(PROBES_FILE)), "probes.parquet unreadable"),
    ],
)
def test_read_run_names_the_damage_in_one_line(tmp_path, damage, reason):
    folder = finished_folder(tmp_path)
    damage(folder)
    with pytest.raises(CorruptRun) as info:
        read_run(folder.path)
    assert reason in info.value.reason and "\n" not in str(info.value)
    assert info.value.path == folder.path
    assert not folder.is_finished()


def test_running_run_without_metrics_yet_is_not_corrupt(tmp_path):
    folder = finished_folder(tmp_path)
    folder.file(METRICS_FILE).unlink()
    folder.write_status("running", steps_done=0)
    assert read_run(folder.path).metrics is None


def test_results_default_to_no_corrupt_runs():
    empty = pd.DataFrame()
    assert list(Results(empty, empty, empty).corrupt.columns) == ["run_id", "path", "reason"]


# ------------------------------------------------------------------ corrupt finished run, end to end


@pytest.mark.integration
def test_corrupt_finished_run_is_skipped_in_one_line_and_retrained(tmp_path, capsys):
    """A finished run whose metrics and checkpoint are both damaged: nothing can rebuild it, so it is
    set aside whole and trained again."""
    first = train(smoke_cfg(tmp_path), progress=False)
    assert first.status == "done"
    copy = first.path.parent / "copy-of-a-good-run"
    shutil.copytree(first.path, copy)
    truncate(first.path / METRICS_FILE)
    truncate(first.path / CKPT_FILE)
    capsys.readouterr()

    res = load_runs(tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"bnopt: skipping corrupt run {first.run_id}: metrics.parquet unreadable (")
    assert list(res.runs.run_id) == ["copy-of-a-good-run"] and set(res.metrics.run_id) == {"copy-of-a-good-run"}
    assert list(res.corrupt.run_id) == [first.run_id]
    assert not RunFolder(tmp_path, first.run_id).is_finished()

    again = train(smoke_cfg(tmp_path), progress=False)
    out = capsys.readouterr()
    assert again.status == "done" and "already done" not in out.out and "resuming" not in out.out
    assert f"bnopt: run {first.run_id} has corrupt records (metrics.parquet unreadable" in out.err
    assert "rebuilt" not in out.err and "checkpoint" not in out.err  # set aside with the records, not read
    aside = list(first.path.glob("corrupt-*"))
    assert len(aside) == 1 and (aside[0] / METRICS_FILE).stat().st_size > 0  # the damaged copy is kept
    assert (aside[0] / CKPT_FILE).exists()
    res = load_runs(tmp_path)
    assert capsys.readouterr().err == "" and not len(res.corrupt) and len(res) == 2
    pd.testing.assert_frame_equal(pd.read_parquet(first.path / METRICS_FILE), pd.read_parquet(copy / METRICS_FILE))


@pytest.mark.integration
def test_finished_run_with_damaged_frames_is_rebuilt_from_its_final_checkpoint(tmp_path, capsys, monkeypatch):
    """Issue 22 item 19: a finished run with a truncated parquet was retrained from step 0 although its
    final checkpoint holds every row. It is rebuilt from the checkpoint, without loading data or training."""
    first = train(smoke_cfg(tmp_path, "probes=activations"), progress=False)
    good = {name: pd.read_parquet(first.path / name) for name in (METRICS_FILE, PROBES_FILE)}
    truncate(first.path / METRICS_FILE)
    (first.path / PROBES_FILE).write_bytes(b"")
    capsys.readouterr()

    def no_training(*args):
        raise AssertionError("a run rebuilt from its checkpoint must not load data or train")

    monkeypatch.setattr(train_module, "load_task", no_training)
    again = train(smoke_cfg(tmp_path, "probes=activations"), progress=False)
    out = capsys.readouterr()
    assert again.status == "done" and again.steps_done == 30
    err = out.err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"bnopt: run {first.run_id} had damaged records (metrics.parquet unreadable (")
    assert err[0].endswith(
        f"moved {METRICS_FILE}, {PROBES_FILE} to {first.path}/{aside_name(first.path)} and "
        "rebuilt them from the final checkpoint (not retrained)"
    )
    assert f"run {first.run_id} is already done" in out.out
    aside = first.path / aside_name(first.path)
    assert sorted(p.name for p in aside.iterdir()) == [METRICS_FILE, PROBES_FILE]  # the damaged files, kept
    for name, frame in good.items():
        pd.testing.assert_frame_equal(pd.read_parquet(first.path / name), frame, check_exact=True)
    assert RunFolder(tmp_path, first.run_id).is_finished() and not len(load_runs(tmp_path).corrupt)


def aside_name(folder) -> str:
    (aside,) = folder.glob("corrupt-*")
    return aside.name


@pytest.mark.integration
def test_killed_run_with_an_unreadable_checkpoint_sets_it_aside_and_trains_from_the_start(tmp_path, capsys):
    """Issue 22 item 19: the unreadable checkpoint of a killed run was overwritten by the next one."""
    real = train_module.forward_backward

    def killed_at_15(model, task, opt, step, **kwargs):
        if step == 15:
            raise KeyboardInterrupt
        return real(model, task, opt, step, **kwargs)

    with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):
        mp.setattr(train_module, "forward_backward", killed_at_15)
        train(smoke_cfg(tmp_path), progress=False)
    folder = RunFolder(tmp_path, run_id(resolve(smoke_cfg(tmp_path))))
    truncate(folder.file(CKPT_FILE))
    damaged = folder.file(CKPT_FILE).read_bytes()
    capsys.readouterr()

    res = train(smoke_cfg(tmp_path), progress=False)
    out = capsys.readouterr()
    assert res.status == "done" and "resuming" not in out.out
    aside = folder.path / aside_name(folder.path)
    err = out.err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"bnopt: warning: checkpoint {folder.file(CKPT_FILE)} unreadable (")
    assert err[0].endswith(f"); moved it to {aside} and training from the start")
    assert (aside / CKPT_FILE).read_bytes() == damaged
    assert list(pd.read_parquet(res.path / METRICS_FILE).query("kind == 'train'").step) == list(range(30))
    assert folder.status()["resumes"] == 0


# ---------------------------------------------------------------------------------------- checkpoint


@pytest.mark.parametrize("content", [b"not a checkpoint", "half"])
def test_unreadable_checkpoint_is_one_line_not_a_python_warning(tmp_path, capsys, content):
    folder = RunFolder(tmp_path, "some-run")
    folder.path.mkdir(parents=True)
    ckpt = folder.file("checkpoint.pt")
    if content == "half":
        torch.save({"step": 3, "model": {"w": torch.zeros(1000)}}, ckpt)
        truncate(ckpt)
    else:
        ckpt.write_bytes(content)
    damaged = ckpt.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert folder.load_checkpoint() is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"bnopt: warning: checkpoint {ckpt} unreadable (")
    aside = folder.path / aside_name(folder.path)
    assert err[0].endswith(f"); moved it to {aside} and training from the start")
    assert not ckpt.exists() and (aside / "checkpoint.pt").read_bytes() == damaged  # set aside, not overwritten


def a_checkpoint(**changes) -> Checkpoint:
    state = {"w": torch.arange(3.0)}
    rows = [{"step": 0, "kind": "train", "loss": 2.5}]
    return Checkpoint(7, state, {"state": {}}, torch.zeros(2), torch.ones(2), rows, [], 1.5, **changes)


def test_checkpoint_keys_are_one_declaration_for_writer_and_reader(tmp_path):
    """Issue 23 item 4: checkpoint.pt's keys were listed in train.py (the dict it saved) and in records.py
    (CKPT_KEYS, what a load required). Now records.Checkpoint is the one list: the file holds its fields,
    in order, and reads back as the same checkpoint."""
    folder = RunFolder(tmp_path, "some-run")
    folder.path.mkdir(parents=True)
    folder.save_checkpoint(a_checkpoint(probes=[{"seen": 4}]))
    saved = torch.load(folder.file(CKPT_FILE), weights_only=False)
    assert list(saved) == [f.name for f in fields(Checkpoint)]
    back = folder.load_checkpoint()
    assert back.step == 7 and back.rows == a_checkpoint().rows and back.probes == [{"seen": 4}]
    assert torch.equal(back.model["w"], torch.arange(3.0)) and torch.equal(back.torch_rng, torch.ones(2))


def test_checkpoint_from_before_probe_states_still_resumes(tmp_path):
    folder = RunFolder(tmp_path, "some-run")
    folder.path.mkdir(parents=True)
    older = a_checkpoint().to_dict()
    del older["probes"]
    torch.save(older, folder.file(CKPT_FILE))
    assert folder.load_checkpoint().probes == []


def test_checkpoint_without_its_keys_is_unreadable(tmp_path, capsys):
    folder = RunFolder(tmp_path, "some-run")
    folder.path.mkdir(parents=True)
    torch.save({"step": 3}, folder.file("checkpoint.pt"))
    assert folder.load_checkpoint() is None
    assert "unreadable (KeyError" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- W&B


@pytest.mark.e2e
def test_wandb_offline_resume_appends_to_the_same_run_id(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = resolve(smoke_cfg(tmp_path, "logger=wandb", "logger.mode=offline"))
    folder = RunFolder(tmp_path, run_id(cfg))
    ids = []
    for resume in (False, True, True, False):  # start, resume twice, then a start from step 0
        wb = WandbMirror(cfg, folder, resume=resume)
        assert wb.run is not None
        ids.append(wb.run.id)
        wb.log({"x": 1.0}, step=len(ids))
        wb.finish()
    assert ids[0] == ids[1] == ids[2] and ids[3] != ids[0]
    dirs = sorted(p.name for p in folder.path.glob("wandb/offline-run-*"))
    # offline-run-<time>-<id>, with -1, -2 ... appended by W&B when two start in the same second
    assert len(dirs) == 4 and sum(f"-{ids[0]}" in d for d in dirs) == 3
    assert folder.file("wandb_id").read_text().strip() == ids[3]


def test_wandb_online_says_so_and_gives_up_quickly(tmp_path, monkeypatch, capsys):
    import wandb

    seen = {}

    def unreachable(**kwargs):
        seen.update(kwargs)
        raise wandb.errors.CommError("Run initialization has timed out")

    monkeypatch.setattr(wandb, "init", unreachable)
    cfg = resolve(smoke_cfg(tmp_path, "logger=wandb", "logger.mode=online"))
    wb = WandbMirror(cfg, RunFolder(tmp_path, run_id(cfg)), resume=False)
    assert wb.run is None
    assert seen["settings"].init_timeout == WANDB_INIT_TIMEOUT_S < 90
    assert seen["resume"] == "allow" and seen["id"]
    out = capsys.readouterr()
    assert out.out.count("bnopt: connecting to W&B (online) ...") == 1
    assert "warning: W&B init failed (CommError" in out.err


# ------------------------------------------------------------------------------------------ locking


@pytest.mark.e2e
def test_cli_run_locked_elsewhere_exits_3_after_the_sweep(tmp_path):
    cfg = resolve(smoke_cfg(tmp_path, "optim.lr=0.05"))
    holder = RunFolder(tmp_path, run_id(cfg))
    holder.open(cfg)  # another process holds the lock
    try:
        proc = run_cli("-m", "model=vgg16_bn", *SMOKE, "optim.lr=0.05,0.1", f"paths.results={tmp_path}")
    finally:
        holder.close()
    assert proc.returncode == 3, proc.stderr
    assert f"bnopt: skipped run {holder.run_id}: another process is training it" in proc.stderr
    assert not holder.file(METRICS_FILE).exists()
    runs = load_runs(tmp_path).runs
    assert list(runs[runs.status == "done"].lr) == [0.1]  # the sweep went on past the refused run
