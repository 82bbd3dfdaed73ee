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

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from .records import CONFIG_FILE, METRICS_FILE, PROBES_FILE, STATUS_FILE

HISTOGRAM_FILE = "activations.npz"
PROBE_COLUMNS = ["step", "probe", "layer", "eta", "metric", "value"]


@dataclass
class Results:
    runs: pd.DataFrame
    metrics: pd.DataFrame
    probes: pd.DataFrame

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


def run_summary(folder: Path) -> dict | None:
    """One row of `runs` from a run folder, or None if the folder holds no config."""
    try:
        cfg = OmegaConf.load(folder / CONFIG_FILE)
    except FileNotFoundError:
        return None
    try:
        status = json.loads((folder / STATUS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        status = {}
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
    """All runs under root/runs (or root itself if it is a `runs` folder) matching the filters."""
    root = Path(root)
    runs_dir = root if root.name == "runs" else root / "runs"
    rows, metrics, probes = [], [], []
    for folder in sorted(runs_dir.glob("*/")) if runs_dir.is_dir() else []:
        row = run_summary(folder)
        if row is None or not _matches(row, filters):
            continue
        rows.append(row)
        if (folder / METRICS_FILE).exists():
            metrics.append(pd.read_parquet(folder / METRICS_FILE).assign(run_id=row["run_id"]))
        if with_probes and (folder / PROBES_FILE).exists():
            probes.append(pd.read_parquet(folder / PROBES_FILE).assign(run_id=row["run_id"]))
    runs = pd.DataFrame(rows, columns=None if rows else ["run_id", "path", "model", "norm", "lr", "status"])
    metric_frame = pd.concat(metrics, ignore_index=True) if metrics else pd.DataFrame(
        columns=["step", "kind", "loss", "run_id"])
    probe_frame = pd.concat(probes, ignore_index=True) if probes else pd.DataFrame(
        columns=[*PROBE_COLUMNS, "run_id"])
    return Results(runs, metric_frame, probe_frame)
