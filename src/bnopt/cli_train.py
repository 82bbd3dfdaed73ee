"""`bnopt-train` (and `python -m bnopt.train`): the command line around the training loop (bnopt.train).

    bnopt-train model=vgg16_bn optim.lr=0.5 scale=small
    bnopt-train model=dln_bn
    bnopt-train -m model=vgg16,vgg16_bn optim.lr=0.1,0.5

The prechecks read the command line as Hydra will and refuse bad input as one line `bnopt: error: ...` and
exit 2 before anything is trained or written; then Hydra composes each run's config and `train` trains it.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import hydra
import yaml
from hydra._internal.utils import get_args_parser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from . import experiments
from .config import CONFIG_DIR, ConfigError, resolve, validate
from .records import RunLocked
from .resolvers import register_resolvers
from .train import BadInput, train

# Hydra resolves `${bnopt.*}` while it composes and sweeps, before any of our code sees the config: in this
# process and in a launcher's worker (which imports this module to unpickle hydra_main). The application's
# entry point registers them, as Hydra's documentation does for custom resolvers; the library does not.
register_resolvers()

# Our config groups; hydra/* groups also come from plugins (submitit_local, ...), so Hydra checks those.
GROUPS = ("model", "data", "optim", "probes", "logger", "scale", "paths", "experiment")


def parse_cli(argv: list[str]):
    """bnopt-train's command line read by Hydra's own parser (overrides, -m, --config-dir DIR / -cd DIR /
    --config-dir=DIR, --help, ...); a bad flag is one line and exit 2."""

    def error(message: str) -> None:  # argparse would print its usage block
        if message.startswith("unrecognized arguments"):  # Hydra's parser takes the overrides as one list
            message += " (flags such as -m go before the overrides: bnopt-train -m model=vgg16,vgg16_bn)"
        fail(message)

    parser = get_args_parser()
    parser.error = error
    return parser.parse_args(argv)


def precheck(argv: list[str]) -> None:
    """Everything a command gets wrong, as one line and exit 2 before anything is trained or written:
    the prechecks read configs as Hydra will, --config-dir's folder included."""
    args = parse_cli(argv)
    if args.help or args.hydra_help or args.shell_completion:
        return
    if args.config_dir is not None and not Path(args.config_dir).is_dir():
        fail(f"--config-dir {args.config_dir} is not a folder")
    with experiments.config_dir(args.config_dir):
        precheck_overrides(args.overrides)
        precheck_hydra(args.overrides)
        precheck_sweep(args.overrides, multirun=args.multirun)


def precheck_overrides(overrides: list[str]) -> None:
    """Unknown config-group choices (model=foo, model=_vgg) and launchers this machine cannot run, as one
    line and exit 2, before Hydra prints a traceback."""
    for arg in overrides:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.lstrip("+~").split("=", 1)
        if key == "hydra/launcher" and value in ("slurm", "submitit_slurm") and shutil.which("sbatch") is None:
            fail(f"hydra/launcher={value} needs SLURM, but `sbatch` is not on this machine's PATH")
        if key not in GROUPS or value in ("null", "") or "(" in value:
            continue
        options = experiments.group_options(key)
        for choice in value.split(","):
            if choice not in options:
                fail(f"unknown {key} {choice!r}; choose one of {', '.join(options)}")


def precheck_hydra(overrides: list[str]) -> None:
    """Hydra's own settings (hydra/launcher=foo, hydra.launcher.n_jobs=abc): composed once, as Hydra
    will, so that a bad one is one line here and not Hydra's error block at launch."""
    settings = [o for o in overrides if o.lstrip("+~").startswith("hydra")]
    if not settings:
        return
    try:
        experiments.compose_run(settings)
    except HydraException as e:
        fail(hydra_error_line(e))
    except yaml.YAMLError as e:
        fail(experiments.yaml_error_line(e))


def precheck_sweep(overrides: list[str], multirun: bool | None = None) -> None:
    """Resolve and validate every run of a sweep (-m, or an experiment, whose configs are sweeps) before
    the first one trains: a bad value in the fifth run is one line and exit 2, not a half-done sweep. Every
    run's keys are checked (an unknown key, a +key outside +extra.*), and a single run is composed too."""
    if multirun is None:  # a command line's words (flags among them), as older callers pass them
        multirun = bool({"-m", "--multirun"} & set(overrides))
    # the run's own overrides: Hydra's (launcher, sweep dir) do not change what a job trains
    overrides = [a for a in overrides if "=" in a and not a.startswith("-") and not a.lstrip("+~").startswith("hydra")]
    experiment = next((a.split("=", 1)[1] for a in overrides if a.split("=", 1)[0] == "experiment"), "null")
    try:
        if experiment != "null":
            rest = [o for o in overrides if o.split("=", 1)[0] != "experiment"]
            jobs = experiments.get(experiment).sweep(rest)
        else:
            jobs = experiments.expand(overrides) if multirun else [overrides]
        for job in jobs:
            experiments.check_keys(job)
            cfg = experiments.compose_run(job)
            if multirun or experiment != "null":  # one run: train() validates the values (the same line)
                validate(resolve(cfg))
    except ConfigError as e:
        fail(str(e))
    except HydraException as e:
        fail(hydra_error_line(e, known_keys(overrides)))
    except yaml.YAMLError as e:
        fail(experiments.yaml_error_line(e))


def known_keys(overrides: list[str]) -> set[str]:
    """The keys of the config the overrides' (first) group choices compose, for the nearest-key hint of an
    error Hydra raised; none if those do not compose either."""
    try:
        first = experiments.expand(overrides)[0]
        return experiments.config_keys(experiments.compose_run([o for o in first if experiments.is_group_override(o)]))
    except Exception:  # the hint is optional: Hydra's own error is the one reported
        return set()


def hydra_error_line(e: Exception, known: set[str] = frozenset()) -> str:
    """Hydra's composition error as one line: an unknown key with the nearest known one, an unknown group
    option with the options, a value Hydra's schema refuses with the reason."""
    lines = str(e).splitlines()
    missing = re.match(r"In '[^']+': Could not find '(.+)/([^/']+)'", lines[0])
    if missing and getattr(e, "options", None):
        options = [o for o in e.options if not o.startswith("_")]
        return f"unknown {missing[1]} {missing[2]!r}; choose one of {', '.join(options)}"
    unknown = re.match(r"Could not override '([^']+)'", lines[0])
    if unknown:
        key = unknown[1]
        if key.startswith("hydra."):
            return f"no config key {key} (Hydra's settings: bnopt-train --cfg hydra, with the same hydra/... choices)"
        value = next((ln.rsplit("=", 1)[1] for ln in lines[1:] if ln.startswith("To append to your config use")), "...")
        return experiments.unknown_key_line(key, value, set(known))
    merging = re.match(r"Error merging override (.+)", lines[0])
    if merging and e.__cause__ is not None:
        return f"{merging[1]}: {str(e.__cause__).splitlines()[0]}"
    return lines[0]


def fail(message: str) -> None:
    print(f"bnopt: error: {message}", file=sys.stderr)
    sys.exit(2)


class JobLogsNotice(Callback):
    """Hydra callback (configs/hydra/default.yaml): a sweep whose launcher runs each job in its own
    process (submitit: local_parallel, slurm) shows nothing of the jobs on this terminal, so say at the start
    where their progress bars and summaries go."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        target = str(config.hydra.launcher.get("_target_", ""))
        if "submitit" in target.lower():
            folder = config.hydra.launcher.get("submitit_folder", f"{config.hydra.sweep.dir}/.submitit")
            print(
                f"bnopt: each job runs in its own process ({target.rsplit('.', 1)[-1]}); its progress and summary "
                f"go to {folder}/<job id>/<job id>_0_log.out (errors: _log.err), not to this terminal",
                flush=True,
            )


EXIT_LOCKED = 3  # some run was not trained because another process holds it: scripts can tell
# Runs refused in this process. A SystemExit inside hydra_main would stop a sweep under the basic
# launcher, so refusals are collected and main() exits non-zero after the sweep. (Launchers that run jobs
# in other processes, submitit, keep their own list: there the refusal is the job's stderr line.)
REFUSED: list[str] = []


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    try:
        train(cfg, progress=True)
    except BadInput as e:
        fail(str(e))
    except RunLocked as e:  # not this run's error: say so, let a sweep go on, exit EXIT_LOCKED at the end
        print(f"bnopt: skipped run {e.run_id}: another process is training it ({e.path})", file=sys.stderr)
        REFUSED.append(e.run_id)


def main() -> None:
    precheck(sys.argv[1:])
    hydra_main()
    if REFUSED:
        sys.exit(EXIT_LOCKED)


if __name__ == "__main__":
    # Run the importable module's main, not this __main__ copy: launchers that pickle the task function
    # (submitit) then pickle it by reference instead of by value with all of this module's globals.
    from bnopt.cli_train import main as module_main

    module_main()
