"""`bnopt-train`'s input checks (issue 22): a bad key, a broken config file, a private base, a bad launcher
setting or an experiment of one's own under --config-dir. A bad input is one line `bnopt: error: ...` on
stderr and exit code 2, before anything is trained or written. In-process calls of bnopt.cli_train.main."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from bnopt import cli_train
from bnopt.config import CONFIG_DIR

SMOKE = ["data=synthetic", "scale=smoke", "logger=none"]


def run_main(monkeypatch, capsys, *args: str) -> tuple[int | str | None, str, str]:
    """`bnopt-train args...` in this process: (exit code, stdout, stderr); code 0 when main returns."""
    monkeypatch.setattr(sys, "argv", ["bnopt-train", *args])
    code = 0
    try:
        cli_train.main()
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code, err: str, message: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("bnopt: error: "), err
    assert message in lines[0], err


def refused(monkeypatch, capsys, tmp_path: Path, *args: str, base=SMOKE) -> str:
    """stderr of a command that must be refused (smoke scale, results in tmp_path: should a check miss,
    the command trains a few seconds there instead of failing elsewhere). Flags (-m, --config-dir DIR)
    go first: Hydra's parser takes the overrides as one list."""
    results = tmp_path / "res"
    flags = [a for i, a in enumerate(args) if a.startswith("-") or (i and args[i - 1] == "--config-dir")]
    overrides = [a for a in args if a not in flags]
    code, _, err = run_main(monkeypatch, capsys, *flags, *base, f"paths.results={results}", *overrides)
    assert code == 2, err
    assert not results.exists()  # nothing trained or written
    return err


# ------------------------------------------------------------------------------------ item 3: keys


@pytest.mark.parametrize(
    "args, message",
    [
        (["optim.lrr=0.1"], "no config key optim.lrr; did you mean optim.lr?"),
        (["+optim.lrr=0.1"], "no config key optim.lrr; did you mean optim.lr?"),
        (["++optim.lrr=0.1"], "no config key optim.lrr; did you mean optim.lr?"),
        (["paths.results_dir=/x"], "no config key paths.results_dir; did you mean paths.results?"),
        (["model=dln", "data=gaussian_linear", "model.loss_nrom=sum"], "did you mean model.loss_norm?"),
        (["+foo=1"], "no config key foo (a key of your own goes under extra: +extra.foo=1)"),
        (["+foo.bar=1"], "no config key foo.bar (a key of your own goes under extra: +extra.foo.bar=1)"),
        (["extra.note=1"], "no config key extra.note (a key of your own goes under extra: +extra.note=1)"),
        (["-m", "seed=0,1", "+optim.lrr=0.1"], "no config key optim.lrr; did you mean optim.lr?"),
        (["-m", "seed=0,1", "+foo=1"], "no config key foo"),
        (["experiment=fig1", "+foo=1"], "no config key foo"),
        (["experiment=fig1", "optim.lrr=0.1"], "no config key optim.lrr; did you mean optim.lr?"),
    ],
)
def test_an_unknown_key_is_refused_with_the_nearest_known_one(monkeypatch, capsys, tmp_path, args, message):
    err = refused(monkeypatch, capsys, tmp_path, *args)
    assert_one_line_error(2, err, message)


@pytest.mark.integration
@pytest.mark.parametrize(
    "args",
    [
        ["experiment=fig3_ics_dln", "model.loss_norm=sum"],  # a key of the sweep's models (DLN), not the default's
        ["-m", "model=dln,dln_bn", "model.loss_norm=sum", "+extra.note=x"],
        ["scale.vgg.probe_every=5"],  # below a preset block (smoke: a mapping)
        ["++optim.lr=0.2"],  # ++ of a known key sets it
    ],
)
def test_known_keys_pass_the_checks(args):
    flags = [a for a in args if a.startswith("-")]
    cli_train.precheck([*flags, "scale=smoke", "logger=none", *[a for a in args if a not in flags]])  # no SystemExit


def test_a_flag_after_the_overrides_is_one_line(monkeypatch, capsys, tmp_path):
    """Hydra's parser reads the overrides as one list: `-m` after some of them leaves the rest unread."""
    code, _, err = run_main(monkeypatch, capsys, *SMOKE, "-m", "seed=0,1")
    assert_one_line_error(code, err, "unrecognized arguments: seed=0,1 (flags such as -m go before the overrides")


def test_a_key_of_your_own_under_extra_is_accepted(monkeypatch, capsys, tmp_path):
    code, out, err = run_main(monkeypatch, capsys, *SMOKE, "+extra.note=hello", "--cfg", "job")
    assert code == 0, err
    assert "extra:\n  note: hello" in out


# ------------------------------------------------------------------------- item 6: broken YAML


def broken_config_dir(tmp_path: Path, group: str, name: str) -> Path:
    folder = tmp_path / "conf"
    (folder / group).mkdir(parents=True)
    (folder / group / f"{name}.yaml").write_text("name: sgd\nlr: [0.1\nmomentum: 0\n")
    return folder


def test_a_yaml_syntax_error_in_a_config_file_is_one_line_naming_file_and_line(monkeypatch, capsys, tmp_path):
    conf = broken_config_dir(tmp_path, "optim", "broken")
    err = refused(monkeypatch, capsys, tmp_path, "--config-dir", str(conf), "optim=broken")
    assert_one_line_error(2, err, f"{conf / 'optim' / 'broken.yaml'} line 3: YAML syntax error: expected ',' or ']'")


def test_a_yaml_syntax_error_in_an_experiment_file_is_one_line(monkeypatch, capsys, tmp_path):
    conf = broken_config_dir(tmp_path, "experiment", "mine")
    err = refused(monkeypatch, capsys, tmp_path, "--config-dir", str(conf), "experiment=mine")
    assert_one_line_error(2, err, f"{conf / 'experiment' / 'mine.yaml'} line 3: YAML syntax error")


# ----------------------------------------------------------------------- item 7: private bases


@pytest.mark.parametrize(
    "args, message",
    [
        (["scale=smoke", "model=_vgg"], "unknown model '_vgg'; choose one of dln, dln_bn,"),
        (["scale=smoke", "model=_dln"], "unknown model '_dln'"),
        (["scale=_preset"], "unknown scale '_preset'; choose one of auto, long, paper, small, smoke"),
    ],
)
def test_a_private_base_is_refused_in_one_line(monkeypatch, capsys, tmp_path, args, message):
    err = refused(monkeypatch, capsys, tmp_path, *args, base=["data=synthetic", "logger=none"])
    assert_one_line_error(2, err, message)


def test_help_lists_no_private_base(monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "--help")
    assert code == 0, err
    groups = [ln.split(": ", 1) for ln in out.split("== Config ==")[0].splitlines() if ": " in ln]
    options = {group: choices.split(", ") for group, choices in groups}
    assert "vgg16_bn" in options["model"] and "smoke" in options["scale"]
    assert [o for choices in options.values() for o in choices if o.startswith("_")] == []


# -------------------------------------------------------------------- item 10: Hydra's settings


@pytest.mark.parametrize(
    "args, message",
    [
        (["hydra/launcher=foo"], "unknown hydra/launcher 'foo'; choose one of basic, joblib, local_parallel,"),
        (
            ["hydra/launcher=joblib", "hydra.launcher.n_jobs=abc"],
            "hydra.launcher.n_jobs=abc: Value 'abc' of type 'str' could not be converted to Integer",
        ),
        (["hydra.launcher.n_jobs=abc"], "no config key hydra.launcher.n_jobs"),
    ],
)
def test_a_bad_hydra_setting_is_one_line(monkeypatch, capsys, tmp_path, args, message):
    err = refused(monkeypatch, capsys, tmp_path, "-m", *args)
    assert_one_line_error(2, err, message)


# ----------------------------------------------------------------------------- item 15: --config-dir


MINE = """\
# @package _global_
# Mine: an experiment of my own.
experiment_name: mine
figure: mine
seed_group: single
optim:
  lr: LR
hydra:
  mode: MULTIRUN
  sweeper:
    params:
      model: vgg16,my_vgg
      seed: ${bnopt.seeds:${scale.seeds.${seed_group}}}
"""


def config_dir_of_mine(tmp_path: Path, lr: str) -> Path:
    folder = tmp_path / "conf"
    (folder / "experiment").mkdir(parents=True)
    (folder / "model").mkdir()
    (folder / "experiment" / "mine.yaml").write_text(MINE.replace("LR", lr))
    (folder / "model" / "my_vgg.yaml").write_text("defaults:\n  - vgg16_bn\n  - _self_\nname: my_vgg\n")
    return folder


@pytest.mark.integration
@pytest.mark.parametrize("form", ["--config-dir DIR", "--config-dir=DIR", "-cd DIR"])
def test_config_dir_experiments_and_options_are_found(monkeypatch, capsys, tmp_path, form):
    conf = config_dir_of_mine(tmp_path, "0.05")
    flag = form.replace("DIR", str(conf)).split()
    code, out, err = run_main(monkeypatch, capsys, *flag, *SMOKE, "experiment=mine", "model=my_vgg", "--cfg", "job")
    assert code == 0, err
    assert "experiment_name: mine" in out and "name: my_vgg" in out


def test_config_dir_experiments_are_checked_before_they_train(monkeypatch, capsys, tmp_path):
    conf = config_dir_of_mine(tmp_path, "-1")
    err = refused(monkeypatch, capsys, tmp_path, "--config-dir", str(conf), "experiment=mine")
    assert_one_line_error(2, err, "optim.lr must be a positive finite number, got -1")


def test_every_entry_point_is_the_command_line_module(monkeypatch, capsys):
    """Issue 23 item 4: the command line moved out of the loop's module (bnopt.train) into bnopt.cli_train;
    `bnopt-train`, `python -m bnopt` and the Hydra callbacks point at it, and Hydra still calls the app
    `train` (its --help header, SLURM's job names)."""
    (script,) = entry_points(group="console_scripts", name="bnopt-train")
    assert script.load() is cli_train.main
    assert "from .cli_train import main" in (Path(cli_train.__file__).parent / "__main__.py").read_text()
    hydra_settings = OmegaConf.load(CONFIG_DIR / "hydra" / "default.yaml")
    assert get_class(hydra_settings.callbacks.job_logs._target_) is cli_train.JobLogsNotice
    code, out, _ = run_main(monkeypatch, capsys, "--help")
    assert code == 0 and out.startswith("train is powered by Hydra.")
