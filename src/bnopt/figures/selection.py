"""The activation histograms a figure reads (from a `Results` object) and the errors of missing runs.

Which runs a figure draws is decided by the one selection function, `bnopt.run_selection.select_runs`
(`Results.select`), over the runs its experiment config declares (`figures.common.experiment_runs`); the
slices of their metrics and probe records are `bnopt.readers`'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..results import Results
from ..run_selection import MissingRecords, MissingRuns, same_lr, scale_of, select_runs, train_command

__all__ = [
    "MissingRecords",
    "MissingRuns",
    "same_lr",
    "scale_of",
    "select_runs",
    "train_command",
    "lr_text",
    "titled",
    "LayerHistogram",
    "layer_histogram",
    "histograms",
]

HIST_KEYS = ("edges", "counts", "steps", "unit_mean", "unit_var", "underflow", "overflow")


def lr_text(lr: float) -> str:
    return f"{float(lr):g}"


def titled(runs: dict, scale: str | None) -> dict:
    """The runs as a figure's title names them (`common.figure_title`): drawn for a `scale`, every row says
    that scale. A run has the numbers of every preset it was selected at, not only of the one it was trained
    under: the DLN's numbers are paper's and small's, so its runs trained with scale=small are Fig 10's at
    scale paper too, and that figure's title says "scale paper". Without `scale`, the rows as they are."""
    if not scale:
        return runs
    return {k: {**r, "scale": scale} for k, r in runs.items()}


@dataclass
class LayerHistogram:
    layer: int
    edges: np.ndarray  # [n, bins + 1] each measurement's edges (old records' one row broadcast to all)
    counts: np.ndarray  # [n, bins]
    steps: np.ndarray  # [n]
    unit_mean: np.ndarray  # [n, C]
    unit_var: np.ndarray  # [n, C]
    outside: np.ndarray  # [n] fraction of values outside the measurement's edges
    run_id: str = ""
    underflow: np.ndarray | None = None  # [n] counts below / above the measurement's edges
    overflow: np.ndarray | None = None


def histograms(res: Results, runs: dict, lr: float, layers, figure: str, experiment: str | None = None) -> dict:
    """{(model, layer): LayerHistogram} of a figure's runs at one learning rate."""
    models = list(dict.fromkeys(m for m, _ in runs))
    return {
        (m, k): layer_histogram(res, runs[(m, lr)]["run_id"], k, figure, experiment, scale_of(runs[(m, lr)]))
        for k in layers
        for m in models
    }


def layer_histogram(
    results: Results,
    run_id: str,
    layer: int,
    figure: str = "figure",
    experiment: str | None = None,
    scale: str | None = None,
) -> LayerHistogram:
    """One layer's histograms of a run; MissingRecords (whose command trains `experiment` at `scale`, the
    run's preset) when the run has none."""
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
            figure,
            f"run {run_id} has no histograms of layer #{layer} ({what}; train with probes=paper)",
            experiment,
            scale,
        )
    counts = np.asarray(arrays[f"{key}counts"], dtype=float)
    n = counts.shape[0]
    under = np.asarray(arrays.get(f"{key}underflow", np.zeros(n)), dtype=float)
    over = np.asarray(arrays.get(f"{key}overflow", np.zeros(n)), dtype=float)
    total = counts.sum(1) + under + over
    outside = np.divide(under + over, total, out=np.zeros(n), where=total > 0)
    edges = np.asarray(arrays[f"{key}edges"], dtype=float)
    if edges.ndim == 1:  # records written before per-measurement edges: one row for every measurement
        edges = np.broadcast_to(edges, (n, len(edges))).copy()
    return LayerHistogram(
        layer,
        edges,
        counts,
        np.asarray(arrays[f"{key}steps"]),
        np.asarray(arrays[f"{key}unit_mean"], dtype=float),
        np.asarray(arrays[f"{key}unit_var"], dtype=float),
        outside,
        str(run_id),
        under,
        over,
    )
