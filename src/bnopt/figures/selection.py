"""Which runs a figure draws, and the record slices it reads (all from a `Results` object).

A figure asks for a list of (model, lr) pairs. Runs are matched on the `runs` table; among several
matches the figure prefers one scale preset for all its runs (the one covering every pair, with the most
training steps), then runs that finished (done or diverged) and the most steps. A pair nobody trained
raises `MissingRuns`, naming the pairs and the `bnopt-train -m experiment=<name>` command that makes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..results import Results

FINAL = ("done", "diverged")
HIST_KEYS = ("edges", "counts", "steps", "unit_mean", "unit_var", "underflow", "overflow")


class MissingRuns(LookupError):
    """A figure's runs (or their records) are not in the results. `command` produces them."""

    def __init__(
        self,
        figure: str,
        message: str,
        experiment: str | None = None,
        scale: str | None = None,
        command: str | None = None,
    ):
        self.figure, self.experiment, self.scale = figure, experiment, scale
        self.command = command or (train_command(experiment, scale) if experiment else None)
        self.detail = message
        text = f"{figure}: {message}"
        if self.command:
            text += f"; produce them with: {self.command}"
        super().__init__(text)


class MissingRecords(MissingRuns):
    """The runs exist but lack records the figure needs (probes off, histograms not in W&B, ...)."""


def train_command(experiment: str, scale: str | None = None) -> str:
    extra = f" scale={scale}" if scale and scale != "auto" else ""
    return f"bnopt-train -m experiment={experiment}{extra}"


def same_lr(a, b) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=0.0)


def _scale_rank(frame: pd.DataFrame) -> tuple:
    """Preference of a scale group: more training steps first, then finished runs."""
    steps = pd.to_numeric(frame.get("steps", pd.Series(dtype=float)), errors="coerce")
    return (
        float(steps.max()) if len(steps) and steps.notna().any() else 0.0,
        int(frame.get("status", pd.Series(dtype=str)).isin(FINAL).sum()),
    )


def _best_run(frame: pd.DataFrame, probed: set[str]) -> pd.Series:
    key = pd.DataFrame(
        {
            "probed": frame["run_id"].isin(probed).astype(int),
            "final": frame["status"].isin(FINAL).astype(int) if "status" in frame else 0,
            "done": (frame["status"] == "done").astype(int) if "status" in frame else 0,
            "steps": pd.to_numeric(frame["steps"], errors="coerce").fillna(0) if "steps" in frame else 0,
            "steps_done": pd.to_numeric(frame["steps_done"], errors="coerce").fillna(0) if "steps_done" in frame else 0,
            "run_id": frame["run_id"],
        },
        index=frame.index,
    )
    order = key.sort_values(["final", "done", "steps", "probed", "steps_done", "run_id"], ascending=False).index
    return frame.loc[order[0]]


def runs_with_probe(results: Results, probe: str) -> set[str]:
    p = results.probes
    if p is None or not len(p):
        return set()
    return set(p.loc[p["probe"] == probe, "run_id"].unique())


def lr_text(lr: float) -> str:
    return f"{float(lr):g}"


def select_runs(
    results: Results,
    figure: str,
    experiment: str,
    pairs: list[tuple[str, float]],
    probes: tuple[str, ...] = (),
    scale: str | None = None,
) -> dict[tuple[str, float], pd.Series]:
    """One `runs` row per (model, lr) pair, all from one scale preset; raises MissingRuns / MissingRecords."""
    runs = results.runs
    if runs is None or not len(runs) or "model" not in runs:
        raise MissingRuns(figure, "no runs in the results", experiment, scale)
    if scale is not None and "scale" in runs:
        runs = runs[runs["scale"] == scale]
    with_probes = [runs_with_probe(results, p) for p in probes]
    candidates: dict[tuple[str, float], pd.DataFrame] = {}
    lacking: dict[tuple[str, float], str] = {}  # pairs trained, but without a probe the figure needs
    for model, lr in pairs:
        ok = runs[(runs["model"] == model) & runs["lr"].map(lambda v, lr=lr: same_lr(v, lr))]
        for probe, ids in zip(probes, with_probes, strict=True):
            good = ok[ok["run_id"].isin(ids)]
            if len(ok) and not len(good):
                used = ok["probes"].iloc[0] if "probes" in ok else "?"
                lacking[(model, lr)] = (
                    f"{model} LR {lr_text(lr)} has no '{probe}' probe records "
                    f"(run {ok['run_id'].iloc[0]} trained with probes={used})"
                )
            ok = good
        candidates[(model, lr)] = ok
    scales = sorted({s for c in candidates.values() for s in c.get("scale", pd.Series(dtype=str)).dropna()})
    best_scale, best_cover, best_rank = None, -1, None
    for s in scales or [None]:
        group = {k: (c if s is None else c[c["scale"] == s]) for k, c in candidates.items()}
        cover = sum(1 for c in group.values() if len(c))
        rank = _scale_rank(pd.concat([c for c in group.values() if len(c)]) if cover else pd.DataFrame())
        if cover > best_cover or (cover == best_cover and (best_rank is None or rank > best_rank)):
            best_scale, best_cover, best_rank = s, cover, rank
    chosen = {k: (c if best_scale is None else c[c["scale"] == best_scale]) for k, c in candidates.items()}
    missing = [k for k, c in chosen.items() if not len(c)]
    if missing:
        suggest = scale or (best_scale if best_cover > 0 else None)
        where = f" at scale {suggest}" if suggest else ""
        absent = [k for k in missing if k not in lacking]
        parts = []
        if absent:
            parts.append("no runs of " + ", ".join(f"{m} LR {lr_text(lr)}" for m, lr in absent) + where)
        parts += [lacking[k] for k in missing if k in lacking]
        if not absent:
            parts[-1] += " (train with probes=paper)"
        cls = MissingRuns if absent else MissingRecords
        raise cls(figure, "; ".join(parts), experiment, suggest)
    probed = set(results.probes["run_id"].unique()) if results.probes is not None and len(results.probes) else set()
    return {k: _best_run(c, probed) for k, c in chosen.items()}


# ------------------------------------------------------------------------------------ record slices


def train_rows(results: Results, run_id: str) -> pd.DataFrame:
    m = results.metrics
    if m is None or not len(m):
        return pd.DataFrame(columns=["step", "loss"])
    rows = m[(m["run_id"] == run_id) & (m["kind"] == "train")]
    return rows.sort_values("step").reset_index(drop=True)


def eval_rows(results: Results, run_id: str) -> pd.DataFrame:
    m = results.metrics
    if m is None or not len(m):
        return pd.DataFrame(columns=["step"])
    rows = m[(m["run_id"] == run_id) & (m["kind"] == "eval")]
    return rows.sort_values("step").reset_index(drop=True)


def probe_table(results: Results, run_id: str, probe: str, layer: int | None = None) -> pd.DataFrame:
    """Rows without eta of one probe (and layer) as a step x metric table, sorted by step."""
    p = results.probes
    if p is None or not len(p):
        return pd.DataFrame()
    sel = (p["run_id"] == run_id) & (p["probe"] == probe) & p["eta"].isna()
    if layer is not None:
        sel &= p["layer"] == layer
    rows = p[sel]
    if not len(rows):
        return pd.DataFrame()
    return rows.pivot_table(index="step", columns="metric", values="value", aggfunc="last", dropna=False).sort_index()


def landscape_by_eta(results: Results, run_id: str, metric: str = "grad_diff") -> pd.DataFrame:
    """Per-eta landscape rows as a step x eta table of `metric`."""
    p = results.probes
    if p is None or not len(p):
        return pd.DataFrame()
    rows = p[(p["run_id"] == run_id) & (p["probe"] == "landscape") & p["eta"].notna() & (p["metric"] == metric)]
    if not len(rows):
        return pd.DataFrame()
    return rows.pivot_table(index="step", columns="eta", values="value", aggfunc="last", dropna=False).sort_index()


@dataclass
class LayerHistogram:
    layer: int
    edges: np.ndarray  # [bins + 1]
    counts: np.ndarray  # [n, bins]
    steps: np.ndarray  # [n]
    unit_mean: np.ndarray  # [n, C]
    unit_var: np.ndarray  # [n, C]
    outside: np.ndarray  # [n] fraction of values outside the edges


def layer_histogram(
    results: Results, run_id: str, layer: int, figure: str = "figure", experiment: str | None = None
) -> LayerHistogram:
    if getattr(results, "source", "local") == "wandb":
        raise MissingRecords(
            figure,
            "histograms and per-unit moments live in the run folders' activations.npz, "
            "which W&B does not mirror; draw this figure from local records "
            "(python -m bnopt.figures --results <dir>)",
        )
    arrays = results.histograms(run_id)
    key = f"layer{layer}_"
    if not arrays or f"{key}counts" not in arrays:
        have = sorted({int(k[5:].split("_")[0]) for k in arrays if k.endswith("_counts")}) if arrays else []
        what = f"only layers {have}" if have else "no activations.npz"
        raise MissingRecords(
            figure, f"run {run_id} has no histograms of layer #{layer} ({what}; train with probes=paper)", experiment
        )
    counts = np.asarray(arrays[f"{key}counts"], dtype=float)
    n = counts.shape[0]
    under = np.asarray(arrays.get(f"{key}underflow", np.zeros(n)), dtype=float)
    over = np.asarray(arrays.get(f"{key}overflow", np.zeros(n)), dtype=float)
    total = counts.sum(1) + under + over
    outside = np.divide(under + over, total, out=np.zeros(n), where=total > 0)
    return LayerHistogram(
        layer,
        np.asarray(arrays[f"{key}edges"], dtype=float),
        counts,
        np.asarray(arrays[f"{key}steps"]),
        np.asarray(arrays[f"{key}unit_mean"], dtype=float),
        np.asarray(arrays[f"{key}unit_var"], dtype=float),
        outside,
    )
