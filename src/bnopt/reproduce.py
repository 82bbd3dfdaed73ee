"""`make reproduce` / `make plan` / `make figures`: train what the figures need, draw them, write the report.

    python -m bnopt.reproduce [--scale auto|paper|long|small|smoke] [--figs fig1 fig4] [--results results]
                              [--launcher basic|joblib|submitit_local|submitit_slurm]
                              [--no-train] [--dry-run] [--force] [--logger wandb|none]

1. Plan: the runs of every experiment the chosen figures name (configs/experiment/*.yaml, the one
   registry, expanded by Hydra's sweeper), each resolved and validated, with its run id and state;
   runs shared by figures appear once. Time estimates from finished runs like them on this machine,
   else from `make bench` (results/bench.json).
2. Train: each experiment's sweep through Hydra multirun with the chosen launcher, in a child process
   (`python -m bnopt.train experiment=<name> scale=<scale> hydra/launcher=<launcher>`). Finished runs
   are skipped, killed ones resume; a run that fails is recorded as failed and the others go on.
3. Draw the figures and write REPORT.md + manifest.json into results/<scale>/ from whatever is done.
   A committed report is only replaced by one drawn from at least the runs it was drawn from, and
   smoke-scale reports carry no verdicts. Exits non-zero at the end, naming any failed runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from . import experiments, publish, report
from .archive import restore_runs
from .config import SCALES as PRESETS
from .config import ConfigError, run_id, validate
from .data import DataError, load_cifar10
from .estimates import Measured, Speeds
from .records import FINAL_STATUSES, RECORDS_DIR
from .resolvers import preset_name
from .run_folder import RunFolder

SCALES = ("auto", *PRESETS)
LAUNCHERS = {  # name -> hydra/launcher choice
    "basic": "basic",
    "joblib": "joblib",
    "submitit_local": "submitit_local",
    "submitit_slurm": "submitit_slurm",
    "local_parallel": "local_parallel",
    "slurm": "slurm",
}
SLURM_LAUNCHERS = ("submitit_slurm", "slurm")


def run_label(cfg: DictConfig) -> str:
    """'vgg16 lr=0.1 seed=0' and what else sets a run apart: B3's runs differ from Fig 1's by the init scale,
    B5's by the batch, B1's and B10's by their probes (the same training)."""
    init, scale = float(cfg.model.get("init_scale", 1.0)), cfg.scale
    note = f" init_scale={init:g}" if init != 1.0 else ""
    if scale.batch_size != scale[cfg.model.family].batch_size:
        note += f" batch={scale.batch_size}"
    if cfg.probes.name not in ("paper", "none"):
        note += f" probes={cfg.probes.name}"
    return f"{cfg.model.name} lr={cfg.optim.lr:g}{note} seed={cfg.seed}"


@dataclass
class PlannedRun:
    run_id: str
    overrides: list[str]  # the run's point of its experiment's sweep: `bnopt-train <overrides>` trains it
    cfg: DictConfig
    experiments: list[str]
    # done | diverged | failed | corrupt | running (a live process trains it) | interrupted (it says running,
    # but no process holds its lock: killed; resumed like `resume`) | restore (committed under
    # results/<scale>/runs/: a real run copies it in) | resume | train
    state: str
    steps_done: int

    @property
    def label(self) -> str:
        return run_label(self.cfg)

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATUSES

    @property
    def to_train(self) -> bool:
        return not self.done and self.state != "restore"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the bad-input contract: one line `bnopt: error: ...` and exit 2 (not the usage block)."""

    def error(self, message: str):
        self.exit(2, f"bnopt: error: {message}\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def check_args(scale: str, figures: list[str] | None, launcher: str) -> None:
    """Every bad argument as one ConfigError line, before anything is composed, trained or written."""
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    known = experiments.figures()
    unknown = [f for f in figures or [] if f not in known]
    if unknown:
        raise ConfigError(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    if launcher not in LAUNCHERS:
        raise ConfigError(f"unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}")
    if launcher in SLURM_LAUNCHERS and shutil.which("sbatch") is None:
        raise ConfigError(f"launcher {launcher} needs SLURM, but `sbatch` is not on this machine's PATH")


def selected_experiments(figures: list[str] | None) -> list[experiments.Experiment]:
    return [e for e in experiments.registry().values() if not figures or e.figure in figures]


def run_overrides(scale: str, results: Path, extra: list[str] = ()) -> list[str]:
    return [f"scale={scale}", f"paths.results={results}", *extra]


def seed_overrides(seeds: int | None) -> list[str]:
    """`--seeds N`: every experiment sweeps exactly seeds 0..N-1 (a `seed=` override replaces the
    per-experiment default of the scale preset, scale.seeds.<seed_group>)."""
    return [] if seeds is None else [f"seed={experiments.seed_values(seeds)}"]


def run_state(results: Path, rid: str, scale: str) -> tuple[str, int]:
    """(state, steps done) of one planned run from its folder under results/runs/, else from the records
    committed under results/<scale>/runs/."""
    folder = RunFolder(results, rid)
    st = folder.status() or {}
    state, steps_done = st.get("status"), int(st.get("steps_done", 0))
    if state in FINAL_STATUSES and not folder.is_finished():
        return "corrupt", 0  # its records do not read: rebuilt from the final checkpoint, else trained again
    if state == "running" and not folder.is_trained_now():
        return "interrupted", steps_done
    if state in (*FINAL_STATUSES, "failed", "running"):
        return state, steps_done
    committed = RunFolder(output_dir(results, scale), rid)  # restore_runs copies it in when no folder is here
    if not folder.path.exists() and (committed.status() or {}).get("status") in FINAL_STATUSES:
        return "restore", 0
    return ("resume" if steps_done else "train"), steps_done


def preset_of(scale: str, extra: list[str] = ()) -> str:
    """The preset a plan composes: `auto` is planned as the preset it stands for on this machine (small on a
    CPU, paper with CUDA; a `device=` among the overrides decides, as in configs/scale/auto.yaml). Its runs are
    trained at that preset anyway, with the same run ids, and the two plans share their composed configs."""
    device = next((o.split("=", 1)[1] for o in extra if o.startswith("device=")), "auto")
    return preset_name(scale, device)


def plan(
    figures: list[str] | None, scale: str, results: Path, extra: list[str] = (), progress: bool = False
) -> list[PlannedRun]:
    runs: dict[str, PlannedRun] = {}
    scale = preset_of(scale, extra)
    # composing ~90 configs takes tens of seconds on 2 cores: a bar on a terminal says what it is doing (none
    # when stderr is not a terminal, so that a bad input stays one line there)
    exps = selected_experiments(figures)
    for exp in tqdm(
        exps, desc="planning", unit="experiment", disable=None if progress else True, file=sys.stderr, leave=False
    ):
        for overrides in exp.sweep(run_overrides(scale, results, extra)):
            # resolved without the results folder: it is not part of a run's identity (config.NOT_IDENTITY), so
            # plans of the same runs into other folders share the resolved configs (experiments.resolved caches)
            cfg = experiments.resolved(tuple(o for o in overrides if not o.startswith("paths.results=")))
            validate(cfg)
            rid = run_id(cfg)
            if rid in runs:
                runs[rid].experiments.append(exp.name)
                continue
            state, steps_done = run_state(results, rid, cfg.scale.name)
            runs[rid] = PlannedRun(rid, overrides, cfg, [exp.name], state, steps_done)
    return list(runs.values())


def refresh(runs: list[PlannedRun], results: Path) -> list[PlannedRun]:
    """The same runs with their states read again from disk (after restoring or training): run ids do not
    depend on a run's state, so nothing is composed again."""
    fresh = []
    for r in runs:
        state, steps_done = run_state(results, r.run_id, r.cfg.scale.name)
        fresh.append(replace(r, state=state, steps_done=steps_done))
    return fresh


STATE_LABELS = {"failed": "failed: retry", "corrupt": "corrupt: repair", "restore": "committed: restore"}


def print_plan(
    runs: list[PlannedRun],
    scale_note: str,
    results: Path,
    speeds: Speeds | None = None,
    committed: Path | None = None,
) -> float | None:
    """Print the runs and their states with time estimates: the measured time of finished runs like them on
    this machine (`estimates.Measured`: the runs under `results`), else `make bench`'s measurements
    (estimates.py); returns the estimated seconds of what is left to train (None without an estimate).
    `committed`: where the runs in state `restore` are committed (results/<scale>/runs/)."""
    todo = [r for r in runs if r.to_train]
    restored = sum(r.state == "restore" for r in runs)
    measured = Measured.of([(r.cfg, RunFolder(results, r.run_id).status() or {}) for r in runs if r.done])
    from_runs = {r.run_id: measured.run_seconds(r.cfg, r.steps_done) for r in todo}
    from_bench = {r.run_id: speeds.run_seconds(r.cfg, r.steps_done) if speeds else None for r in todo}
    estimates = {rid: s if s is not None else from_bench[rid] for rid, s in from_runs.items()}
    known = [e for e in estimates.values() if e is not None]
    total = f"estimated {sum(known) / 60:.0f} min" if known else "no time estimate: run `make bench` first"
    twins = sum(e is not None for e in from_runs.values())
    if twins:
        total += f"; {twins} of them timed by finished runs like them"
    if known and len(known) < len(todo):
        total += f" for {len(known)} of them; {len(todo) - len(known)} without a measured speed here"
    if todo:
        left = f"{len(todo)} to train ({total} on this machine)"
    else:  # "0 to train" beside a count of restored runs reads as the answer to "what will this cost?"
        left = "0 to train" if restored else "nothing to train"
    if restored:
        left += f", {restored} restored from {committed}"
    done = sum(r.done for r in runs)
    print(f"bnopt reproduce: scale {scale_note}: {len(runs)} runs, {done} already done, {left}")
    for r in runs:
        steps = f" at {r.steps_done}" if r.state in ("resume", "interrupted") else ""
        state = STATE_LABELS.get(r.state, r.state) + steps
        est = estimates.get(r.run_id)
        eta = "" if not r.to_train else ("?" if est is None else f"~{est / 60:.1f} min")
        print(f"  {state:>18s}  {r.run_id:34s} {r.label:30s} {eta:>10s}  [{', '.join(r.experiments)}]")
    interrupted = sum(r.state == "interrupted" for r in runs)
    if interrupted:
        print(
            f"  interrupted: the same command resumes it ({interrupted} run(s) say running, but no process "
            "holds their lock: the process that trained them was killed)"
        )
    slow = [r for r in todo if r.cfg.scale.name == "paper" and r.cfg.model.family == "vgg"]
    if slow and not _has_cuda():
        print(
            f"  note: no GPU here: each of the {len(slow)} paper-scale VGG runs takes hours on a CPU "
            "(results/bench.json: ~1.1 s per width-1 step on 2 cores); use a GPU or SCALE=small"
        )
    return sum(known) if known else None


def _has_cuda() -> bool:
    return torch.cuda.is_available()


def child_command(overrides: list[str], launcher: str, logger: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "bnopt.train", *overrides, f"hydra/launcher={LAUNCHERS[launcher]}"]
    return cmd + ([f"logger={logger}"] if logger else [])


def train_missing(runs: list[PlannedRun], exps, common: list[str], launcher: str, logger: str | None) -> None:
    """Train the runs not done through Hydra multirun. With the basic launcher (which runs a sweep's jobs
    inside its own process) every run is its own child process, one sweep point at a time, so a crash or
    an out-of-memory kill ends that run only; the parallel launchers (joblib, submitit) get each
    experiment's whole sweep and start a process per run themselves. `common`: the overrides of every run
    (scale, results root)."""
    todo = [r for r in runs if r.to_train]
    if launcher == "basic":
        jobs = [(f"{r.label} [{r.experiments[0]}]", r.overrides) for r in todo]
    else:
        names = {e for r in todo for e in r.experiments}
        jobs = [(e.name, [f"experiment={e.name}", *common]) for e in exps if e.name in names]
    for i, (what, overrides) in enumerate(jobs, 1):
        cmd = child_command(overrides, launcher, logger)
        print(f"\n--- reproduce [{i}/{len(jobs)}] {what}: {' '.join(cmd[2:])}", flush=True)
        code = subprocess.call(cmd, env={**os.environ, "HYDRA_FULL_ERROR": "0"})
        if code:
            print(f"--- {what}: exited with code {code}; finished runs are kept, the others go on", flush=True)


def output_dir(results: Path, scale: str) -> Path:
    return results / scale


def check_data(runs: list[PlannedRun]) -> None:
    """Every data source the runs to train read, loaded once each with bnopt.data's own validation (files
    present, readable, of the right shape and count) before anything is trained or written; a source that
    cannot work is one ConfigError line. With data.source auto or torchvision and no local copy, this is
    torchvision's download, which the runs would do anyway."""
    sources: dict[str, list[PlannedRun]] = {}
    for r in runs:
        if r.to_train and r.cfg.data.name == "cifar10":  # the DLN's data is drawn in memory from its seed
            sources.setdefault(OmegaConf.to_yaml(r.cfg.data), []).append(r)
    for needing in sources.values():
        try:
            load_cifar10(needing[0].cfg.data)
        except DataError as e:
            raise ConfigError(f"{e} (needed by {len(needing)} of the runs to train; nothing was trained)") from None


def parse_args(argv: list[str] | None):
    ap = ArgumentParser(
        prog="python -m bnopt.reproduce",
        description="Train every run the paper's figures need, draw them, write the report.",
    )
    ap.add_argument("--scale", default="auto", help="auto (paper on CUDA, small on CPU), paper, long, small or smoke")
    ap.add_argument("--figs", nargs="*", default=None, help="figures to reproduce (default: all), e.g. fig1 fig4")
    ap.add_argument("--results", default="results", help="results root: runs/ and <scale>/ (figures, report)")
    ap.add_argument("--launcher", default="basic", help=f"Hydra launcher: {', '.join(LAUNCHERS)}")
    ap.add_argument("--logger", default=None, choices=["wandb", "none"], help="override the logger")
    ap.add_argument("--no-train", action="store_true", help="only draw figures and write the report")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    ap.add_argument("--force", action="store_true", help="replace a report even if runs it was drawn from are gone")
    ap.add_argument(
        "--seeds",
        type=positive_int,
        default=None,
        help="seeds 0..N-1 for every experiment (default: each experiment's scale.seeds.<seed_group>)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = Path(args.results)
    figs = [f for arg in (args.figs or []) for f in arg.split()] or None
    train = not args.no_train and not args.dry_run
    try:
        check_args(args.scale, figs, args.launcher)
        extra = seed_overrides(args.seeds)
        runs = plan(figs, args.scale, results, extra, progress=True)
        if train:
            # not for --dry-run: a plan trains and writes nothing, and the check may download CIFAR-10
            check_data(runs)
    except ConfigError as e:
        print(f"bnopt: error: {e}", file=sys.stderr)
        return 2
    scale = runs[0].cfg.scale.name if runs else args.scale
    # the runs a committed report was drawn from: all of them come back, not only the selected figures' (a
    # report drawn from fewer runs than the committed one would drop the others' records); a dry run only
    # counts the planned ones (state `restore`)
    committed = output_dir(results, scale) / RECORDS_DIR
    held = sorted(p.name for p in committed.iterdir() if p.is_dir()) if committed.is_dir() else []
    if not args.dry_run and (restored := restore_runs(committed, results, held)):
        print(f"restored {len(restored)} finished run(s) from {committed} into {results}/runs")
        runs = refresh(runs, results)
    scale_note = scale + (" (auto)" if args.scale == "auto" else "")
    t0, planned = time.time(), None
    if args.dry_run:  # also with --no-train: a dry run writes nothing, not even the report
        print_plan(runs, scale_note, results, Speeds.load(results / "bench.json"), committed)
        return 0
    if not args.no_train:
        planned = print_plan(runs, scale_note, results, Speeds.load(results / "bench.json"), committed)
        common = run_overrides(scale, results, extra)
        train_missing(runs, selected_experiments(figs), common, args.launcher, args.logger)
        runs = refresh(runs, results)
    out = output_dir(results, scale)
    planned_ids = [r.run_id for r in runs]
    written = publish.publish(results, out, scale, figs=figs, force=args.force, planned=planned_ids)
    took = f"{(time.time() - t0) / 60:.1f} min" + (f" (planned {planned / 60:.0f} min)" if planned else "")
    print(f"\n=== reproduce ({scale_note}): {written.summary}, {took} ===")
    report.print_verdicts(written.checks)
    failed = [r for r in runs if r.state == "failed"]
    unfinished = [r for r in runs if not r.done and r.state != "failed"]
    if not args.no_train and (failed or unfinished):
        for r in failed:
            err = (RunFolder(results, r.run_id).status() or {}).get("error", "")
            print(f"  FAILED {r.run_id} ({r.label}): {err}", file=sys.stderr)
        for r in unfinished:
            print(f"  NOT FINISHED {r.run_id} ({r.label}): {r.state}", file=sys.stderr)
        print(
            f"bnopt: {len(failed)} run(s) failed, {len(unfinished)} not finished; rerun the same command to retry them",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
