"""Every command the README shows runs here, in a dry-run or smoke form (issue 22: the README's first
commands, `make plan` / `make reproduce` at the default SCALE=auto, failed and no test noticed).

The commands are read from the README's ```bash blocks, so a command added there without a way to run it
here fails `test_every_readme_command_has_a_dry_run_form`. Forms:
- `make <target> VAR=...`: `make -n` gives the command the target runs; `reproduce` and `plan` run it with
  `--dry-run` (plan, no training) and `figures` runs it on an empty results root, in this process; the
  others (install, test, lint, ...) must exist as targets (`make -n` exits 0), and `make help` runs.
- `bnopt-train ...`: `bnopt.cli_train.main` with `--cfg job` added: the prechecks compose and validate every run
  of the sweep (the bad-input checks), Hydra prints the job's config, nothing trains.
- `bnopt ...`: `bnopt.cli.main` on the committed small results (read-only commands).
- the ```python block of the Records section runs as written, from the repository root.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bnopt import cli_train, experiments, reproduce

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
MAKE_RUNS = ("reproduce", "plan", "figures")  # targets whose command this test runs (dry-run / empty root)
MAKE_EXISTS = ("install", "test", "test-fast", "lint", "help", "bench", "notebooks", "train-example", "clean")


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def readme_commands() -> list[str]:
    """Each command line of the README's bash blocks, without its trailing comment."""
    lines = (ln.strip() for block in readme_blocks("bash") for ln in block.splitlines())
    return [re.split(r"\s+#\s", ln)[0].strip() for ln in lines if ln and not ln.startswith("#")]


COMMANDS = readme_commands()


def test_the_readme_shows_the_commands_this_test_runs():
    # the parser is not vacuous: the README's first commands are among those read
    assert "make reproduce" in COMMANDS and "make plan" in COMMANDS and "make figures" in COMMANDS
    assert any(c.startswith("bnopt-train experiment=") for c in COMMANDS)


def test_every_readme_command_has_a_dry_run_form():
    known = ("make", "bnopt-train", "bnopt", "export")
    unknown = [c for c in COMMANDS if shlex.split(c)[0] not in known]
    assert not unknown, f"README commands this test cannot run: {unknown}"
    targets = {shlex.split(c)[1] for c in COMMANDS if c.startswith("make ")}
    assert targets <= set(MAKE_RUNS + MAKE_EXISTS), targets - set(MAKE_RUNS + MAKE_EXISTS)


def make_dry_run(command: str) -> list[str]:
    """The shell lines `make` would run for the README's command (the install stamp taken as fresh)."""
    args = shlex.split(command)[1:]
    out = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return [ln for ln in out.splitlines() if ln.strip()]


def reproduce_argv(command: str) -> list[str]:
    line = next(ln for ln in make_dry_run(command) if "-m bnopt.reproduce" in ln)
    return shlex.split(line.split("-m bnopt.reproduce", 1)[1])


@pytest.mark.e2e
@pytest.mark.parametrize("command", [c for c in COMMANDS if c.split()[:2][-1] in MAKE_EXISTS])
def test_readme_make_targets_exist(command):
    lines = make_dry_run(command)
    assert lines, f"`{command}` runs nothing"
    if command == "make help":
        out = subprocess.run(["make", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
        assert "make reproduce" in out and "make plan" in out


@pytest.mark.e2e
@pytest.mark.parametrize("command", [c for c in COMMANDS if c.split()[:2][-1] in MAKE_RUNS])
def test_readme_reproduce_commands_plan(command, tmp_path, capsys):
    argv = reproduce_argv(command) + ["--results", str(tmp_path)]
    needs_slurm = any(a in ("submitit_slurm", "slurm") for a in argv)
    if "--no-train" not in argv:
        argv.append("--dry-run")
    code = reproduce.main(argv)
    out, err = capsys.readouterr()
    if needs_slurm and shutil.which("sbatch") is None:  # the documented refusal: one line, exit 2
        assert code == 2 and err.strip().splitlines() == [err.strip()] and "needs SLURM" in err
        return
    assert code == 0, err
    if "--no-train" in argv:  # `make figures` on an empty root: every figure drawn or named as missing
        assert "=== reproduce" in out
    else:
        assert re.search(r"bnopt reproduce: scale \w+.*: \d+ runs", out), out


def bnopt_train_commands() -> list[str]:
    return [c for c in COMMANDS if c.startswith("bnopt-train ")]


@pytest.mark.integration
@pytest.mark.parametrize("command", bnopt_train_commands())
def test_readme_bnopt_train_commands_resolve(command, tmp_path, monkeypatch, capsys):
    words = shlex.split(command)[1:]
    overrides = [w for w in words if "=" in w and not w.startswith("-")]
    flags = [w for w in words if w not in overrides]
    if {"-m", "--multirun"} & set(flags):  # Hydra refuses --cfg with -m: the prechecks validate every job
        cli_train.precheck_overrides(words)
        cli_train.precheck_sweep(words)
        assert len(experiments.expand(overrides)) > 1
        return
    if "--cfg" not in flags:
        flags += ["--cfg", "job"]
    # Hydra's argparse takes the flags first and the overrides together after them
    argv = [*flags, f"paths.results={tmp_path}", *overrides]
    monkeypatch.setattr(sys, "argv", ["bnopt-train", *argv])
    needs_slurm = any(a.endswith(("=slurm", "=submitit_slurm")) for a in argv)
    try:
        cli_train.main()
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    if needs_slurm and shutil.which("sbatch") is None:
        assert code == 2 and "needs SLURM" in err
        return
    assert code in (0, None), err
    assert "model:" in out and "optim:" in out  # Hydra printed the job's config
    assert not (tmp_path / "runs").exists()  # nothing trained


@pytest.mark.e2e
def test_readme_python_block_runs_on_the_committed_records():
    (block,) = [b for b in readme_blocks("python") if "load_runs" in b]
    subprocess.run([sys.executable, "-c", block], cwd=REPO, check=True, capture_output=True, text=True)


@pytest.mark.integration
@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("bnopt ")])
def test_readme_bnopt_commands_run(command, tmp_path, capsys):
    from bnopt import cli

    argv = shlex.split(command)[1:]
    if argv[0] == "plot":  # write the picture into tmp, not into the repository's results/plots
        argv += ["--out", str(tmp_path / "curves.png")]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip()
    if argv[0] == "plot":
        assert (tmp_path / "curves.png").stat().st_size > 0
