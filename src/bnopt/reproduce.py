"""`make reproduce`: walk experiments/, train the runs every figure needs, draw the figures, write the report.

    python -m bnopt.reproduce [--scale auto|paper|small|smoke] [--figs fig1 fig4] [--results results]
                              [--no-train] [--dry-run] [--logger wandb|none]

1. Plan: expand the sweep of every experiment the selected figures name (configs/experiment/*.yaml,
   `hydra.sweeper.params`), resolve each run's config and run id; runs shared by figures appear once.
   Print the runs to train, the runs already done, and the time estimate from the scale preset's
   measured seconds per step on this machine.
2. Train the missing runs one after the other (an overall progress bar across runs; each run has its
   own); a killed `make reproduce` resumes where it stopped.
3. Draw every figure (`bnopt.figures`) and write results/REPORT.md (`bnopt.report`).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from tqdm.auto import tqdm

from .config import CONFIG_DIR, ConfigError, resolve, run_id, validate
from .records import RunFolder

REPO = CONFIG_DIR.parent
EXPERIMENTS_DIR = REPO / "experiments"


@dataclass
class FigureSpec:
    figure: str
    title: str
    experiments: list[str]
    claims: list[str]


@dataclass
class PlannedRun:
    run_id: str
    overrides: list[str]
    cfg: DictConfig
    experiments: list[str]
    done: bool
    steps_done: int

    @property
    def label(self) -> str:
        return f"{self.cfg.model.name} lr={self.cfg.optim.lr:g}"


def figure_specs(directory: Path = EXPERIMENTS_DIR) -> list[FigureSpec]:
    specs = []
    for f in sorted(directory.glob("fig*.yaml"), key=lambda p: int(p.stem[3:])):
        d = yaml.safe_load(f.read_text())
        title = f.read_text().splitlines()[0].lstrip("# ").strip()
        specs.append(FigureSpec(d["figure"], title, list(d["experiments"]), list(d.get("claims", []))))
    return specs


def sweep_overrides(experiment: str, extra: list[str] = ()) -> list[list[str]]:
    """The override lists of an experiment's sweep (cartesian product of `hydra.sweeper.params`)."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}", *extra], return_hydra_config=True)
    params = cfg.hydra.sweeper.params or {}
    keys = list(params)
    choices = [str(params[k]).split(",") for k in keys]
    return [[f"experiment={experiment}", *extra, *(f"{k}={v.strip()}" for k, v in zip(keys, combo, strict=True))]
            for combo in itertools.product(*choices)]


def compose_run(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def plan(figures: list[str] | None, scale: str, results: Path, extra: list[str] = ()) -> list[PlannedRun]:
    specs = [s for s in figure_specs() if not figures or s.figure in figures]
    if figures:
        unknown = sorted(set(figures) - {s.figure for s in specs})
        if unknown:
            raise ConfigError(f"unknown figure(s) {', '.join(unknown)}; choose from "
                              f"{', '.join(s.figure for s in figure_specs())}")
    runs: dict[str, PlannedRun] = {}
    for exp in dict.fromkeys(e for s in specs for e in s.experiments):
        for overrides in sweep_overrides(exp, [f"scale={scale}", f"paths.results={results}", *extra]):
            cfg = resolve(compose_run(overrides))
            validate(cfg)
            rid = run_id(cfg)
            if rid in runs:
                runs[rid].experiments.append(exp)
                continue
            folder = RunFolder(results, rid)
            st = folder.status() or {}
            runs[rid] = PlannedRun(rid, overrides, cfg, [exp], folder.is_finished(), int(st.get("steps_done", 0)))
    return list(runs.values())


def estimate_seconds(run: PlannedRun) -> float | None:
    """Remaining time from the preset's measured seconds per step (configs/scale/*.yaml), scaled by the
    norm's measured relative cost; None when the preset has no measurement for this machine."""
    family = run.cfg.scale.get(run.cfg.model.family) or {}
    per_step = family.get("measured_s_per_step")
    if not per_step:
        return None
    per_step *= (family.get("norm_cost") or {}).get(run.cfg.model.norm, 1.0)
    if run.cfg.model.family == "vgg":  # measured at the preset's width; conv cost grows ~ width^2
        per_step *= (run.cfg.model.width / (family.get("width") or run.cfg.model.width)) ** 2
    return max(run.cfg.scale.steps - run.steps_done, 0) * per_step


def print_plan(runs: list[PlannedRun], scale_note: str) -> float | None:
    todo = [r for r in runs if not r.done]
    estimates = [estimate_seconds(r) for r in todo]
    total = None if any(e is None for e in estimates) else sum(estimates)
    total_note = "no measured speed for this preset here" if total is None else f"estimated {total / 60:.0f} min"
    print(f"bnopt reproduce: scale {scale_note}: {len(runs)} runs, {len(runs) - len(todo)} already done, "
          f"{len(todo)} to train ({total_note} on this machine)")
    for r in runs:
        state = "done" if r.done else (f"resume at {r.steps_done}" if r.steps_done else "train")
        est = None if r.done else estimate_seconds(r)
        eta = "" if r.done else ("~? min" if est is None else f"~{est / 60:.1f} min")
        print(f"  {state:>16s}  {r.run_id:34s} {r.label:24s} {eta:>10s}  [{', '.join(r.experiments)}]")
    return total


def train_runs(runs: list[PlannedRun], logger: str | None) -> dict[str, str]:
    from .records import RunLocked
    from .train import BadInput, train

    statuses = {}
    todo = [r for r in runs if not r.done]
    with tqdm(total=len(todo), desc="runs", unit="run", position=0, dynamic_ncols=True) as bar:
        for r in todo:
            bar.set_postfix_str(r.label)
            cfg = compose_run(r.overrides + ([f"logger={logger}"] if logger else []))
            try:
                statuses[r.run_id] = train(cfg).status
            except BadInput as e:  # planned configs were validated; data can still be missing
                print(f"bnopt: error: {e}", file=sys.stderr)
                sys.exit(2)
            except RunLocked as e:  # e.g. a parallel sweep is on it: leave it to that process
                print(f"skipping: {e}", file=sys.stderr)
                statuses[r.run_id] = "locked"
            bar.update(1)
    return statuses


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train every run the paper's figures need, draw them, write the report.")
    ap.add_argument("--scale", default="auto", help="auto (paper on CUDA, small on CPU), paper, small or smoke")
    ap.add_argument("--figs", nargs="*", default=None, help="figures to reproduce (default: all), e.g. fig1 fig4")
    ap.add_argument("--results", default="results", help="results root (run folders, figures, report)")
    ap.add_argument("--logger", default=None, choices=["wandb", "none"], help="override the logger")
    ap.add_argument("--no-train", action="store_true", help="only draw figures and write the report")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    args = ap.parse_args(argv)
    results = Path(args.results)
    figs = [f for arg in (args.figs or []) for f in arg.split()] or None
    try:
        runs = plan(figs, args.scale, results)
    except ConfigError as e:
        print(f"bnopt: error: {e}", file=sys.stderr)
        return 2
    scale_note = runs[0].cfg.scale.name + (" (auto)" if args.scale == "auto" else "") if runs else args.scale
    t0 = time.time()
    if not args.no_train:
        print_plan(runs, scale_note)
        if args.dry_run:
            return 0
        train_runs(runs, args.logger)
    from . import figures, report

    drawn = figures.draw_all(results, results / "figures", figs=figs)
    report_path, checks = report.write_report(results, scale=runs[0].cfg.scale.name if runs else None)
    made = [k for k, v in drawn.items() if not isinstance(v, str)]
    print(f"\n=== reproduce: {len(made)} figure(s) in {results / 'figures'}, report {report_path}, "
          f"{(time.time() - t0) / 60:.1f} min ===")
    report.print_verdicts(checks)
    for name, v in drawn.items():
        if isinstance(v, str):
            print(f"  {name}: not drawn: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
