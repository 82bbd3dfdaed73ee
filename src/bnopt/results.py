"""Reading run records: the one way figures, the report and notebooks see results.

    from bnopt.results import load_runs
    res = load_runs("results", model="vgg16_bn", lr=0.1)
    res.runs      # one row per run: run_id, model, norm, family, lr, scale, steps, width, seed, status, ...
    res.metrics   # metrics.parquet of every run, with a run_id column
    res.probes    # probes.parquet of every run, with a run_id column (empty frame when none)
    res.histograms(run_id)   # dict of arrays from activations.npz

Filters (keyword = value or list of values) apply to columns of `runs`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

# PROBE_COLUMNS is declared in records (the schema) and re-exported here for existing imports
from .records import CONFIG_FILE, METRICS_COLUMNS, PROBE_COLUMNS, CorruptRun, RunRecords, read_run

HISTOGRAM_FILE = "activations.npz"
CORRUPT_COLUMNS = ["run_id", "path", "reason"]


@dataclass
class Results:
    runs: pd.DataFrame
    metrics: pd.DataFrame
    probes: pd.DataFrame
    # run folders load_runs skipped as unreadable (run_id, path, reason); keyword-only so that subclasses'
    # positional fields (figures.wandb_source.WandbResults) keep their places
    corrupt: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CORRUPT_COLUMNS), kw_only=True)

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

    def pick(self, model: str, lr: float, scale: str | None = None) -> str | None:
        """run_id of the run of `model` at `lr` (optionally at `scale`): finished runs first, then the
        longest; None when there is none."""
        if not len(self.runs):
            return None
        r = self.runs[(self.runs.model == model) & np.isclose(self.runs.lr.astype(float), float(lr))]
        if scale is not None:
            r = r[r.scale == scale]
        if not len(r):
            return None
        r = r.assign(_final=r.status.isin(["done", "diverged"])).sort_values(["_final", "steps"], ascending=False)
        return str(r.run_id.iloc[0])

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
        "run_id": folder.name, "path": str(folder), "model": cfg.model.name, "family": cfg.model.family,
        "norm": cfg.model.norm, "lr": float(cfg.optim.lr), "momentum": float(cfg.optim.momentum),
        "scale": cfg.scale.name, "steps": int(cfg.scale.steps), "batch_size": int(cfg.scale.batch_size),
        "width": float(cfg.model.width), "seed": int(cfg.seed), "data": cfg.data.name,
        "augment": bool(cfg.data.get("augment", False)), "probes": cfg.probes.name,
        "experiment": cfg.get("experiment_name", ""), "status": status.get("status", "unknown"),
        "steps_done": status.get("steps_done", 0), "elapsed_s": status.get("elapsed_s"),
        "test_acc": summary.get("test_acc"), "test_acc_exact": summary.get("test_acc_exact"),
        "images_per_s": summary.get("images_per_s"), "device": "cuda" if status.get("environment", {}).get("cuda")
        else "cpu",
    }


def _matches(row: dict, filters: dict) -> bool:
    for key, want in filters.items():
        wants = want if isinstance(want, (list, tuple, set)) else [want]
        value = row.get(key)
        if isinstance(value, float):
            if not any(np.isclose(value, float(w)) for w in wants):
                return False
        elif value not in wants:
            return False
    return True


def load_runs(root: str | Path = "results", with_probes: bool = True, **filters) -> Results:
    """All runs under root/runs (or root itself if it is a `runs` folder) matching the filters.

    Every folder is read through records.read_run. A corrupt one is left out, listed in
    `Results.corrupt` and reported in one line on stderr; a folder without config.yaml (a run still
    being set up) is not a run yet and is passed over silently."""
    root = Path(root)
    runs_dir = root if root.name == "runs" else root / "runs"
    rows, metrics, probes, corrupt = [], [], [], []
    for folder in sorted(runs_dir.glob("*/")) if runs_dir.is_dir() else []:
        if not (folder / CONFIG_FILE).exists():
            continue
        try:
            row = run_summary(folder, read_run(folder, frames=False))
            if not _matches(row, filters):
                continue  # filter on config and status first: frames are read only for the runs asked for
            rec = read_run(folder, probes=with_probes)
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
    metric_frame = pd.concat(metrics, ignore_index=True) if metrics else pd.DataFrame(
        columns=[*METRICS_COLUMNS, "run_id"])
    probe_frame = pd.concat(probes, ignore_index=True) if probes else pd.DataFrame(
        columns=[*PROBE_COLUMNS, "run_id"])
    return Results(runs, metric_frame, probe_frame, corrupt=pd.DataFrame(corrupt, columns=CORRUPT_COLUMNS))
