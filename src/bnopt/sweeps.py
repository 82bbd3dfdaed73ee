"""The end of a sweep (`bnopt-train -m ...`, `bnopt-train experiment=...`): one line per run and the counts,
as `make reproduce` ends, and the sweep folder tidied. A Hydra callback, registered in configs/hydra/default.yaml.

Which runs: with the basic launcher the jobs run in this process, and each job's config comes to
`on_job_end`; launchers that run jobs in other processes (joblib, submitit) call it there, so their runs
are recomputed from the sweep's overrides (Hydra's sweeper, its compose). Their states are read from the
run folders (status.json, and the lock for a `running` one), whichever process trained them.

The sweep folder (hydra.sweep.dir, results/sweeps/<time>/) holds Hydra's multirun.yaml, an empty folder per
job and, for submitit, the jobs' logs (.submitit/). Our records are the run folders, so a sweep folder
with nothing else in it is removed at the end (also when the sweep stops early); one with logs is kept.
"""

from __future__ import annotations

import atexit
from collections import Counter
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from . import experiments
from .cli import NOT_TRAINED, final_metric, run_row, run_state
from .config import ConfigError, resolve, run_id
from .records import CorruptRun
from .reproduce import run_label
from .run_folder import RunFolder

IN_PROCESS_LAUNCHERS = ("hydra._internal.core_plugins.basic_launcher.BasicLauncher",)
HYDRA_FILES = ("multirun.yaml",)  # what Hydra itself writes into a sweep folder
# the counts the summary always shows (others, e.g. interrupted, when there are any)
COUNTED = ("done", "diverged", "failed", "refused")


class SweepSummary(Callback):
    def __init__(self) -> None:
        self.sweep: DictConfig | None = None  # the sweep's config while one runs
        self.jobs: list[list[str]] = []  # each job's overrides, in launch order
        self.ran: dict[int, DictConfig] = {}  # job number -> resolved config, for jobs run in this process
        self.new_dirs: list[Path] = []  # folders this sweep creates, deepest first

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.sweep, self.ran = config, {}
        self.jobs = sweep_overrides(config)
        # the folders the sweep is about to create (its own, and results/sweeps or the results root where
        # they do not exist yet): the tidying removes those it leaves empty, never one that was there before
        sweep_dir = Path(config.hydra.sweep.dir)
        self.new_dirs = [p for p in (sweep_dir, *sweep_dir.parents) if not p.exists()]
        # a job that raises stops the sweep before on_multirun_end: the summary and the tidying then
        # come when the process exits
        atexit.register(self.finish)

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        if self.sweep is None or job_return.cfg is None:
            return  # a single run: its own summary says it all
        try:
            self.ran[int(config.hydra.job.num)] = resolve(job_return.cfg)
        except ConfigError:
            pass  # refused before it trained (one line said why)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        self.finish(complete=True)

    def finish(self, complete: bool = False) -> None:
        """Print the summary and tidy the sweep folder, once. `complete`: every job was launched (Hydra
        reached on_multirun_end), so runs not seen in this process ran in others and are recomputed."""
        if self.sweep is None:
            return
        sweep, self.sweep = self.sweep, None
        atexit.unregister(self.finish)
        in_process = str(sweep.hydra.launcher.get("_target_", "")) in IN_PROCESS_LAUNCHERS
        if in_process or not complete:
            cfgs = self.ran
        else:
            cfgs = {**job_configs(self.jobs, sweep.hydra.job.config_name), **self.ran}
        # a sweep stopped before any job ended (a bad input, one line and exit 2) has nothing to sum up; a
        # sweep of one run (`make reproduce` trains each run as one) has the run's own summary
        if (complete or self.ran) and len(self.jobs) > 1:
            print(summary(sweep_rows(cfgs, self.jobs)), flush=True)
        kept = tidy_sweep_dir(Path(sweep.hydra.sweep.dir), self.new_dirs)
        if kept:
            print(f"  the launcher's logs: {sweep.hydra.sweep.dir}", flush=True)


def sweep_overrides(config: DictConfig) -> list[list[str]]:
    """Each job's overrides, as Hydra's basic sweeper expands the sweep: the sweeper's params (an experiment
    file's sweep), then the command line's (later ones win). Hydra's own settings (launcher, sweep folder)
    are left out: they do not change what a job trains."""
    params = config.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=True) if params is not None else {}
    given = [o for o in config.hydra.overrides.task if not o.lstrip("+~").startswith("hydra")]
    return experiments.expand([f"{k}={v}" for k, v in params.items()] + given)


def job_configs(jobs: list[list[str]], config_name: str) -> dict[int, DictConfig]:
    """The resolved config of each job, composed as Hydra composed it for the launcher (Hydra's compose:
    this runs inside the sweep, where Hydra is initialised with the command's config path)."""
    from hydra import compose

    cfgs = {}
    for num, job in enumerate(jobs):
        try:
            cfgs[num] = resolve(compose(config_name=config_name, overrides=job))
        except ConfigError:
            continue
    return cfgs


def sweep_rows(cfgs: dict[int, DictConfig], jobs: list[list[str]]) -> list[dict]:
    """One row per run of the sweep (a run two jobs share once): id, label, state, final metric, error."""
    rows, seen = [], set()
    for num, job in enumerate(jobs):
        cfg = cfgs.get(num)
        if cfg is None:
            rows.append({"run_id": "-", "label": " ".join(job), "state": "not run", "final": "", "error": ""})
            continue
        folder = RunFolder(Path(cfg.paths.results), run_id(cfg))
        if folder.run_id not in seen:
            seen.add(folder.run_id)
            rows.append(run_line(folder, cfg))
    return rows


def run_line(folder: RunFolder, cfg: DictConfig) -> dict:
    """A run's row of the summary. A run still `running` at the end of the sweep is another process's
    (this sweep's jobs are over): this sweep was refused it."""
    row = {"run_id": folder.run_id, "label": run_label(cfg), "final": "", "error": ""}
    status = folder.status() or {}
    state = run_state(folder.path, status.get("status"))
    row["state"] = "refused" if state == "running" else state
    if state == NOT_TRAINED:
        return row
    try:
        row["final"] = final_metric(run_row(folder.path))
    except CorruptRun as e:
        row["state"], row["error"] = "corrupt", e.reason
    if state == "failed":
        row["error"] = status.get("error", "")
    return row


def summary(rows: list[dict]) -> str:
    """The lines: one per run (state, id, label, final metric or error), then the counts (last: what a
    glance at the end of a long sweep's output sees)."""
    counts = Counter(r["state"] for r in rows)
    shown = [f"{counts[s]} {s}" for s in COUNTED] + [f"{n} {s}" for s, n in counts.items() if s not in COUNTED]
    lines = [""]
    for r in rows:
        detail = r["error"] or r["final"]
        lines.append(f"  {r['state']:>11s}  {r['run_id']:34s} {r['label']:30s} {detail}".rstrip())
    lines.append(f"=== sweep: {len(rows)} run(s): {', '.join(shown)} ===")
    return "\n".join(lines)


def tidy_sweep_dir(sweep_dir: Path, new_dirs: list[Path] = ()) -> bool:
    """Remove a sweep folder that holds only what Hydra writes (multirun.yaml, empty job folders), then those
    of `new_dirs` (the folders the sweep created above it, deepest first) it left empty. Returns whether the
    sweep folder is kept (it holds a launcher's logs)."""
    if not sweep_dir.is_dir():
        return False
    for entry in sweep_dir.iterdir():
        if entry.is_dir():
            try:
                entry.rmdir()  # only an empty one: a job folder with logs stays
            except OSError:
                pass
    if any(entry.name not in HYDRA_FILES for entry in sweep_dir.iterdir()):
        return True
    for name in HYDRA_FILES:
        (sweep_dir / name).unlink(missing_ok=True)
    for folder in [sweep_dir, *(p for p in new_dirs if p != sweep_dir)]:
        try:
            folder.rmdir()
        except OSError:  # not empty: another sweep of the same second writes there, or runs were recorded
            break
    return False
