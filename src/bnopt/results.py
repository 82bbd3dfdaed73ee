"""Reading run records: the one way figures, the report and notebooks see results.

    from bnopt.results import load_runs
    res = load_runs("results", model="vgg16_bn", lr=0.1)
    res.runs      # one row per run: run_id, model, norm, family, lr, scale, steps, width, seed, status, ...
    res.metrics   # metrics.parquet of every run, with a run_id column
    res.probes    # probes.parquet of every run, with a run_id column (empty frame when none)
    res.histograms(run_id)   # dict of arrays from activations.npz
    res.select([("vgg16_bn", 0.1)], "small")  # one run per (model, lr): bnopt.run_selection

Filters (keyword = value or list of values) apply to columns of `runs`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

# PROBE_COLUMNS and FINAL_STATUSES are declared in records (the schema) and re-exported here: the figures
# read runs only through results
from .records import (
    CONFIG_FILE,
    HISTOGRAM_FILE,
    METRICS_COLUMNS,
    PROBE_COLUMNS,
    CorruptRun,
    RunRecords,
    read_frames,
    read_run,
)
from .records import (
    FINAL_STATUSES as FINAL_STATUSES,
)
from .run_selection import Requires, rows_at_scale, same_lr, select_runs

CORRUPT_COLUMNS = ["run_id", "path", "reason"]


@dataclass
class Results:
    runs: pd.DataFrame
    metrics: pd.DataFrame
    probes: pd.DataFrame
    # run folders load_runs skipped as unreadable (run_id, path, reason); keyword-only so that subclasses'
    # positional fields (figures.wandb_source.WandbResults) keep their places
    corrupt: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CORRUPT_COLUMNS), kw_only=True)
    # what readers derive from these frames, remembered per Results (see memo); the frames never change
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def memo(self, name: str) -> dict:
        """The cache `name` of values derived from these results (run_selection's selections, of_run's groups):
        a report asks for the same runs and rows hundreds of times."""
        return self._memo.setdefault(name, {})

    def of_run(self, table: str, run_id: str) -> pd.DataFrame:
        """The rows of one run in `table` ("metrics" or "probes"). The table is grouped by run once: the readers
        ask for one run's rows hundreds of times per report, and filtering the whole table each time was most
        of a study's judging time. The frames are not to be changed after loading."""
        by_run = self.memo("by_run")
        if table not in by_run:
            df = getattr(self, table)
            groups = dict(tuple(df.groupby("run_id", sort=False))) if df is not None and len(df) else {}
            by_run[table] = (groups, df.iloc[0:0] if df is not None else None)
        groups, empty = by_run[table]
        return groups.get(run_id, empty)

    def __len__(self) -> int:
        return len(self.runs)

    def path(self, run_id: str) -> Path:
        return Path(self.runs.set_index("run_id").loc[run_id, "path"])

    def histograms(self, run_id: str) -> dict[str, np.ndarray]:
        f = self.path(run_id) / HISTOGRAM_FILE
        if not f.exists():
            return {}
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def select(
        self,
        pairs,
        scale: str | None = None,
        requires: Requires | None = None,
        figure: str = "runs",
        experiment: str | None = None,
    ) -> dict:
        """One run per (model, lr) pair: see `select_runs`."""
        return select_runs(self, pairs, scale, requires, figure, experiment)

    def at_scale(self, scale: str) -> Results:
        """The runs whose resolved numbers are those of a scale preset (see `scale_numbers`), and B5's batch
        study at that scale (`rows_at_scale(..., batch_study=True)`)."""
        if not len(self.runs):
            return self
        both = pd.concat([rows_at_scale(self.runs, scale), rows_at_scale(self.runs, scale, batch_study=True)])
        ids = set(both.run_id)
        keep = self.runs[self.runs["run_id"].isin(ids)]
        sub = lambda df: df[df["run_id"].isin(ids)].reset_index(drop=True) if len(df) else df
        return Results(keep.reset_index(drop=True), sub(self.metrics), sub(self.probes))

    def run(self, run_id: str) -> Results:
        keep = lambda df: df[df["run_id"] == run_id].reset_index(drop=True) if len(df) else df
        return Results(keep(self.runs), keep(self.metrics), keep(self.probes))


def run_summary(folder: Path, records: RunRecords | None = None) -> dict | None:
    """One row of `runs` from a run folder, or None if the folder holds no config (not a run yet).
    Raises records.CorruptRun when the folder's config or status cannot be read."""
    folder = Path(folder)
    if records is None:
        if not (folder / CONFIG_FILE).exists():
            return None
        records = read_run(folder, frames=False)
    cfg, status = records.config, records.status
    summary = status.get("summary", {})
    return {
        "run_id": folder.name,
        "path": str(folder),
        "model": cfg.model.name,
        "family": cfg.model.family,
        "norm": cfg.model.norm,
        "lr": float(cfg.optim.lr),
        "momentum": float(cfg.optim.momentum),
        "scale": cfg.scale.name,
        "steps": int(cfg.scale.steps),
        "batch_size": int(cfg.scale.batch_size),
        "width": float(cfg.model.width),
        "seed": int(cfg.seed),
        "data": cfg.data.name,
        "augment": bool(cfg.data.get("augment", False)),
        "precision": (cfg.get("train") or {}).get("precision", "fp32"),
        # DLN runs from before model.loss_norm existed were trained with the plain sum
        "loss_norm": cfg.model.get("loss_norm", "sum") if cfg.model.family == "dln" else None,
        # runs from before model.init_scale / model.init existed used plain Glorot (1.0)
        "init_scale": float(cfg.model.get("init_scale", 1.0)),
        "init": cfg.model.get("init", "glorot"),
        # the DLN's regression problem: its own seed's unless data.data_seed fixes it (issue 25's ablation)
        "data_seed": int(cfg.data.data_seed) if cfg.data.get("data_seed") is not None else None,
        **landscape_setup(cfg),
        "probes": cfg.probes.name,
        "experiment": cfg.get("experiment_name", ""),
        "status": status.get("status", "unknown"),
        "steps_done": status.get("steps_done", 0),
        "elapsed_s": status.get("elapsed_s"),
        "test_acc": summary.get("test_acc"),
        "test_acc_exact": summary.get("test_acc_exact"),
        "images_per_s": summary.get("images_per_s"),
        "device": "cuda" if status.get("environment", {}).get("cuda") else "cpu",
        "environment": status.get("environment", {}),
    }


def landscape_setup(cfg) -> dict:
    """The run's landscape probe settings beyond the paper's (issue 25): landscape_dtype, landscape_norm_params;
    None for a run without the probe."""
    sub = (cfg.get("probes") or {}).get("landscape")
    on = sub is not None and sub.get("enabled", True)
    return {
        "landscape_dtype": sub.get("dtype", "float32") if on else None,
        "landscape_norm_params": bool(sub.get("norm_params", True)) if on else None,
    }


def row_matches(row: dict, filters: dict) -> bool:
    """Whether a `runs` row (local or W&B) meets load_runs-style filters (key = value or list of values);
    numbers compare with `same_lr`'s relative 1e-9, as `select_runs` then matches them: a looser filter let
    through runs the selection takes for another learning rate."""
    for key, want in filters.items():
        wants = want if isinstance(want, (list, tuple, set)) else [want]
        value = row.get(key)
        if isinstance(value, float):
            if not any(same_lr(value, w) for w in wants):  # relative 1e-9: lr=1e-8 is not lr=1e-9
                return False
        elif value not in wants:
            return False
    return True


def runs_folder(root: str | Path) -> Path:
    """root/runs, the run folders of a results root (root itself if it is a `runs` folder)."""
    root = Path(root)
    return root if root.name == "runs" else root / "runs"


def run_folders(root: str | Path) -> list[Path]:
    """The run folders under root/runs, sorted; a folder without config.yaml (a run still being set up) is
    not a run yet."""
    runs_dir = runs_folder(root)
    return sorted(f for f in runs_dir.glob("*/") if (f / CONFIG_FILE).exists()) if runs_dir.is_dir() else []


def run_rows(root: str | Path) -> list[dict]:
    """The `runs` rows of the run folders under root/runs from their config and status alone (no metrics or
    probes are read: fast); unreadable folders are left out."""
    rows = []
    for folder in run_folders(root):
        try:
            rows.append(run_summary(folder))
        except CorruptRun:
            continue
    return rows


def load_runs(root: str | Path = "results", with_probes: bool = True, progress: bool = False, **filters) -> Results:
    """All runs under root/runs (or root itself if it is a `runs` folder) matching the filters.

    Every folder is read through records.read_run. A corrupt one is left out, listed in
    `Results.corrupt` and reported in one line on stderr; a folder without config.yaml (a run still
    being set up) is not a run yet and is passed over silently. `progress`: a bar on stderr (83 small
    runs take seconds)."""
    runs_dir = runs_folder(root)
    rows, metrics, probes, corrupt = [], [], [], []
    folders = run_folders(root)
    for folder in tqdm(folders, desc=f"records of {runs_dir}", unit="run", file=sys.stderr, disable=not progress):
        try:
            head = read_run(folder, frames=False)
            row = run_summary(folder, head)
            if not row_matches(row, filters):
                continue  # filter on config and status first: frames are read only for the runs asked for
            rec = read_frames(head, probes=with_probes)
        except CorruptRun as e:
            print(f"bnopt: skipping corrupt run {folder.name}: {e.reason}", file=sys.stderr)
            corrupt.append({"run_id": folder.name, "path": str(folder), "reason": e.reason})
            continue
        rows.append(row)
        if rec.metrics is not None:
            metrics.append(rec.metrics.assign(run_id=row["run_id"]))
        if rec.probes is not None:
            probes.append(rec.probes.assign(run_id=row["run_id"]))
    runs = pd.DataFrame(rows, columns=None if rows else ["run_id", "path", "model", "norm", "lr", "status"])
    metric_frame = (
        pd.concat(metrics, ignore_index=True) if metrics else pd.DataFrame(columns=[*METRICS_COLUMNS, "run_id"])
    )
    probe_frame = pd.concat(probes, ignore_index=True) if probes else pd.DataFrame(columns=[*PROBE_COLUMNS, "run_id"])
    return Results(runs, metric_frame, probe_frame, corrupt=pd.DataFrame(corrupt, columns=CORRUPT_COLUMNS))
