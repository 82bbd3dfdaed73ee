"""`make reproduce` / `make plan` (python -m bnopt.reproduce): bad arguments, the data check before anything
is trained or written, killed runs, and the committed records a dry run counts as restorable (issue 22)."""

from __future__ import annotations

import fcntl
import shutil

import pytest

from bnopt import reproduce
from bnopt.run_folder import RunFolder

from .conftest import REPO


def files_under(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bnopt: error: "), err
    return err[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "abc"], "argument --seeds: must be a positive integer, got 'abc'"),
        (["--seeds", "1.5"], "argument --seeds: must be a positive integer, got '1.5'"),
        (["--seeds", "0"], "argument --seeds: must be a positive integer, got '0'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--logger", "tensorboard"], "argument --logger: invalid choice: 'tensorboard'"),
    ],
)
def test_every_argparse_error_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    """`make plan SEEDS=abc` printed argparse's usage block (item 11)."""
    with pytest.raises(SystemExit) as stop:
        reproduce.main(["--dry-run", "--results", str(tmp_path), *args])
    assert stop.value.code == 2
    assert message in one_error_line(capsys)
    assert files_under(tmp_path) == []


def write_shards(folder, content: bytes) -> None:
    """CIFAR-10 .npz shards that are all there but hold `content` (a truncated download)."""
    folder.mkdir()
    for name in (*(f"train_{i}.npz" for i in range(1, 6)), "test.npz"):
        (folder / name).write_bytes(content)


@pytest.mark.integration
@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_reproduce_checks_the_data_before_training_or_writing_anything(tmp_path, capsys, monkeypatch, damage):
    """Item 5: with missing or truncated shards every run used to start a Hydra job and fail, and then the
    report, manifests and sweep folders were written. Now: one line, exit 2, the results folder untouched."""
    data = tmp_path / "data"
    if damage == "missing":
        data.mkdir()
        (data / "test.npz").write_bytes(b"PK")  # `auto` picks the shards when test.npz is there
        want = f"{data}: missing train_1.npz, train_2.npz, train_3.npz, train_4.npz, train_5.npz"
    else:
        write_shards(data, b"PK\x03\x04 cut short")
        want = f"{data / 'train_1.npz'}: not a readable .npz file"
    monkeypatch.setenv("BNOPT_DATA", str(data))
    monkeypatch.setattr(reproduce, "train_missing", lambda *a, **k: pytest.fail("trained without data"))
    results = tmp_path / "results"
    results.mkdir()
    (results / "keep.txt").write_text("x")
    assert reproduce.main(["--scale", "smoke", "--figs", "fig4", "--results", str(results)]) == 2
    line = one_error_line(capsys)
    assert want in line and "needed by 2 of the runs to train; nothing was trained" in line
    assert files_under(results) == ["keep.txt"]
    # neither a plan nor a redraw needs the data: both go on (a plan never downloads it)
    assert reproduce.main(["--scale", "smoke", "--figs", "fig4", "--results", str(results), "--dry-run"]) == 0
    assert files_under(results) == ["keep.txt"]
    assert reproduce.main(["--scale", "smoke", "--figs", "fig4", "--results", str(results), "--no-train"]) == 0


@pytest.mark.integration
def test_the_data_check_leaves_runs_without_cifar_and_finished_runs_alone(tmp_path, monkeypatch):
    """The DLN draws its data from its seed, and a finished run trains nothing: neither needs the shards."""
    monkeypatch.setenv("BNOPT_DATA", str(tmp_path / "nowhere"))
    runs = reproduce.plan(["fig10"], "smoke", tmp_path)
    assert {r.cfg.model.family for r in runs} == {"dln"}
    reproduce.check_data(runs)  # no error
    vgg = reproduce.plan(["fig4"], "smoke", tmp_path)
    for r in vgg:
        r.state = "done"
    reproduce.check_data(vgg)
    vgg[0].state = "train"
    with pytest.raises(reproduce.ConfigError, match="needed by 1 of the runs to train"):
        reproduce.check_data(vgg)


@pytest.mark.integration
def test_a_killed_run_is_interrupted_and_a_live_one_running(tmp_path, capsys):
    """Item 8: status.json says running, but nothing trains it once its process is dead (the kernel drops
    the flock that RunFolder.open took): the plan says interrupted and resumes it."""
    rid = reproduce.plan(["fig4"], "smoke", tmp_path)[0].run_id
    folder = RunFolder(tmp_path, rid)
    folder.path.mkdir(parents=True)
    folder.write_status("running", steps_done=20)
    (folder.file(".lock")).touch()

    def state() -> str:
        return {r.run_id: r for r in reproduce.plan(["fig4"], "smoke", tmp_path)}[rid]

    killed = state()
    assert (killed.state, killed.steps_done, killed.done, killed.to_train) == ("interrupted", 20, False, True)
    reproduce.print_plan(reproduce.plan(["fig4"], "smoke", tmp_path), "smoke", tmp_path)
    out = capsys.readouterr().out
    assert f"interrupted at 20  {rid}" in out and "interrupted: the same command resumes it" in out
    with open(folder.file(".lock"), "w") as held:  # a live trainer's lock
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert state().state == "running"
    assert state().state == "interrupted"
    folder.file(".lock").unlink()  # a run killed before it took its lock
    assert state().state == "interrupted"


@pytest.mark.integration
def test_a_dry_run_counts_committed_records_as_restored_and_copies_nothing(tmp_path, capsys):
    """Item 13: `make plan SCALE=small` on a fresh clone said 83 to train although all 83 are committed."""
    results = tmp_path / "results"
    planned = reproduce.plan(["fig4"], "small", results, ["seed=0"])
    committed = results / "small" / "runs"
    for r in planned:
        shutil.copytree(REPO / "results" / "small" / "runs" / r.run_id, committed / r.run_id)
    before = files_under(results)
    args = ["--scale", "small", "--figs", "fig4", "--seeds", "1", "--results", str(results), "--dry-run"]
    assert reproduce.main(args) == 0
    out = capsys.readouterr().out
    assert f"2 runs, 0 already done, 0 to train, 2 restored from {committed}" in out
    assert out.count("committed: restore") == 2 and "make bench" not in out
    assert files_under(results) == before
    # one of them trained here already: it is done, not restored, and the other still comes from the commit
    shutil.copytree(committed / planned[0].run_id, results / "runs" / planned[0].run_id)
    assert reproduce.main(args) == 0
    assert f"2 runs, 1 already done, 0 to train, 1 restored from {committed}" in capsys.readouterr().out


@pytest.mark.integration
def test_plans_into_two_results_folders_resolve_each_run_once(tmp_path):
    """The results folder is not part of a run's identity: a second plan into another folder resolves nothing
    again and finds the same runs, while each run's training overrides still name its own folder."""
    from bnopt import experiments

    first = reproduce.plan(["fig4"], "smoke", tmp_path / "a")
    misses = experiments._resolved.cache_info().misses
    second = reproduce.plan(["fig4"], "smoke", tmp_path / "b")
    assert experiments._resolved.cache_info().misses == misses
    assert [r.run_id for r in first] == [r.run_id for r in second]
    assert all(f"paths.results={tmp_path / 'b'}" in r.overrides for r in second)
