"""The same `runs` / `metrics` / `probes` frames as `load_runs`, built from a W&B project instead of run folders.

    from bnopt.wandb_source import load_wandb
    res = load_wandb("my-entity/bnopt", model=["vgg16", "vgg16_bn"])    # filters as in load_runs

What the W&B mirror (wandb_mirror.WandbMirror) holds and therefore what comes back:
- runs: from run.config (the resolved config: model.name, optim.lr, scale.name, ...) and run.summary;
- metrics: history keys train/<col> (kind=train) and eval/<col> (kind=eval) at their logged step;
- probes: landscape/<summary metric> (loss_min, loss_max, grad_diff_min/max, beta, grad_norm, loss0),
  ics/layer<k>/<metric>, activations/layer<k>/<metric>, rank/layer<k>/<metric>, gradnorms/layer<k>[/weight],
  hessian/<metric> (top_eig, top_eig_residual, ghg and their eval-mode twins: B1).
Not mirrored: the per-eta landscape rows (Fig 11) and activations.npz (histograms and per-unit moments of
Fig 1c, 2, 6, 8, 9); `histograms()` returns {} and those figures say so.

Beside `bnopt.results` (the run-folder loader) because it is the other way to get a `Results`: figures draw
whatever Results they are given and import neither reader's source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .probes.hessian import EVAL_METRICS, TRAIN_METRICS
from .results import PROBE_COLUMNS, Results, row_matches

LANDSCAPE_METRICS = ("loss_min", "loss_max", "grad_diff_min", "grad_diff_max", "beta", "grad_norm", "loss0")
# probes logged as <probe>/<metric>, one value per step (layer 0)
LAYER_0_METRICS = {"landscape": LANDSCAPE_METRICS, "hessian": (*TRAIN_METRICS, *EVAL_METRICS)}
LAYER_KEY = re.compile(r"^(ics|activations|rank)/layer(\d+)/([A-Za-z0-9_]+)$")
GRADNORM_KEY = re.compile(r"^gradnorms/layer(\d+)(/weight)?$")
STATE_STATUS = {"finished": "done", "running": "running", "crashed": "failed", "failed": "failed", "killed": "failed"}
EVAL_FIRST = {"eval": 0, "train": 1}


@dataclass
class WandbResults(Results):
    """Results read from W&B: no run folders, so no histograms."""

    source: str = "wandb"
    project: str = ""

    def histograms(self, run_id: str) -> dict[str, np.ndarray]:
        return {}

    def run(self, run_id: str) -> WandbResults:
        keep = lambda df: df[df["run_id"] == run_id].reset_index(drop=True) if len(df) else df
        return WandbResults(keep(self.runs), keep(self.metrics), keep(self.probes), self.source, self.project)


def _unwrap(node):
    while isinstance(node, dict) and "value" in node and set(node) <= {"value", "desc"}:
        node = node["value"]
    return node


def config_get(cfg, dotted: str, default=None):
    """cfg['a']['b'] for 'a.b', also when W&B stored the key flat ('a.b') or wrapped ({'value': ...})."""
    cfg = _unwrap(cfg)
    if isinstance(cfg, dict) and dotted in cfg:
        return _unwrap(cfg[dotted])
    node = cfg
    for part in dotted.split("."):
        node = _unwrap(node)
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    node = _unwrap(node)
    return default if node is None else node


def _number(v) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    if isinstance(v, str) and v.lower() in ("nan", "infinity", "-infinity", "inf", "-inf"):
        return float(v.lower().replace("infinity", "inf"))
    return None


def run_row(run, project: str) -> dict:
    cfg = run.config or {}
    summary = dict(getattr(run, "summary", None) or {})
    get = lambda key, default=None: config_get(cfg, key, default)
    status = summary.get("status") or STATE_STATUS.get(str(getattr(run, "state", "")), "unknown")
    return {
        "run_id": getattr(run, "name", None) or run.id,
        "path": f"wandb:{project}/{run.id}",
        "model": get("model.name"),
        "family": get("model.family"),
        "norm": get("model.norm"),
        "lr": float(get("optim.lr", float("nan"))),
        "momentum": float(get("optim.momentum", 0.0)),
        "scale": get("scale.name"),
        "steps": int(get("scale.steps", 0) or 0),
        "batch_size": int(get("scale.batch_size", 0) or 0),
        "width": float(get("model.width", 1.0)),
        "seed": int(get("seed", 0)),
        "data": get("data.name"),
        "augment": bool(get("data.augment", False)),
        "probes": get("probes.name", "none"),
        "experiment": get("experiment_name", ""),
        "status": status,
        "steps_done": summary.get("steps_done", 0),
        "elapsed_s": None,
        "test_acc": summary.get("test_acc"),
        "test_acc_exact": summary.get("test_acc_exact"),
        "images_per_s": summary.get("images_per_s"),
        "device": "wandb",
        "wandb_id": run.id,
    }


def history_frames(rows, run_id: str) -> tuple[list[dict], list[dict]]:
    """metrics rows and probe rows from W&B history rows ({key: value, '_step': n})."""
    metrics, probes = [], []
    for row in rows:
        step = row.get("_step")
        if step is None:
            continue
        step = int(step)
        parts: dict[str, dict] = {"train": {}, "eval": {}}
        for key, value in row.items():
            if key.startswith("_"):
                continue
            kind, _, name = key.partition("/")
            if kind in parts and name and "/" not in name:
                v = _number(value)
                if v is not None:
                    parts[kind][name] = v
                continue
            v = _number(value)
            if v is None:
                continue
            if name in LAYER_0_METRICS.get(kind, ()):
                probes.append((step, kind, 0, name, v))
            elif m := LAYER_KEY.match(key):
                probes.append((step, m.group(1), int(m.group(2)), m.group(3), v))
            elif m := GRADNORM_KEY.match(key):
                probes.append((step, "gradnorms", int(m.group(1)), "weight_norm" if m.group(2) else "grad_norm", v))
        for kind, values in parts.items():
            if values:
                metrics.append({"step": step, "kind": kind, **values, "run_id": run_id})
    probe_rows = [
        {"step": s, "probe": p, "layer": k, "eta": float("nan"), "metric": m, "value": v, "run_id": run_id}
        for s, p, k, m, v in probes
    ]
    return metrics, probe_rows


def load_wandb(project: str, api=None, **filters) -> WandbResults:
    """Runs of a W&B project ("entity/project") as a Results object; filters apply to the runs table."""
    if api is None:
        import wandb

        api = wandb.Api()
    rows, metrics, probes = [], [], []
    for run in api.runs(project):
        row = run_row(run, project)
        if row["model"] is None or not row_matches(row, filters):
            continue
        rows.append(row)
        m, p = history_frames(run.scan_history(), row["run_id"])
        metrics += m
        probes += p
    runs = pd.DataFrame(rows, columns=None if rows else ["run_id", "path", "model", "norm", "lr", "status"])
    metric_frame = pd.DataFrame(metrics) if metrics else pd.DataFrame(columns=["step", "kind", "loss", "run_id"])
    if len(metric_frame):
        order = metric_frame["kind"].map(EVAL_FIRST).fillna(2)
        metric_frame = (
            metric_frame.assign(_o=order)
            .sort_values(["run_id", "step", "_o"], kind="stable")
            .drop(columns="_o")
            .reset_index(drop=True)
        )
    probe_frame = pd.DataFrame(probes, columns=[*PROBE_COLUMNS, "run_id"])
    return WandbResults(runs, metric_frame, probe_frame, project=project)
