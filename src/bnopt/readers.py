"""Record slices: what the checks, the studies and the figures read of one run's records (from a `Results`).

One convention for every slice: indexed by training step (an index named "step", sorted), so that a
slice is read at a step with `.loc[step]` or `.asof(step)` and drawn against `.index`. An empty slice
has the same shape (no rows), never an error; the readers whose callers need the records raise `Missing`.

The protocol's numbers these readers share are declared here once: the learning rate a check or a panel
reads when a sweep has several (`VGG_LR`, `DLN_LR`), chance accuracy (`CHANCE`) and the smoothing window of
the training curves (`WINDOW`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .records import FINAL_STATUSES, METRICS_COLUMNS, PROBE_COLUMNS
from .results import Results

VGG_LR, DLN_LR = 0.1, 1e-6  # the paper's learning rates of Fig 1c, 3, 4, 11 (VGG) and 5b, 9, 10 (DLN)
TRAINS = 0.20  # B3, B4: a run "trains" when its final accuracy is at least twice chance
CHANCE = 0.10  # CIFAR-10's chance accuracy: a diverged run counts as this (C2, B3-B5)
LAST_EVALS = 3  # evaluations a "final" evaluation number averages (C3, C7, B3-B5; PROTOCOL rules of 2026-12-07)
WINDOW = 50  # training steps of the rolling mean of the training curves (Fig 1a, 2; C1, C2, C4; B5, B6, B8)
STEP = "step"


class Missing(Exception):
    """A run, or records, a check needs are absent; the check is reported as not run."""


# ------------------------------------------------------------------------------------------------ metrics


def _metric_rows(res: Results, rid: str, kind: str) -> pd.DataFrame:
    m = res.metrics
    if m is None or not len(m):
        return pd.DataFrame(columns=[c for c in METRICS_COLUMNS if c != STEP], index=pd.Index([], name=STEP))
    m = res.of_run("metrics", rid)
    rows = m[m["kind"] == kind]
    return rows.set_index(STEP).sort_index(kind="stable")


def train_rows(res: Results, rid: str) -> pd.DataFrame:
    """A run's training-step rows (loss, acc, lr, ...), by step."""
    return _metric_rows(res, rid, "train")


def eval_rows(res: Results, rid: str) -> pd.DataFrame:
    """A run's evaluation rows (test_acc, train_eval_acc, ...), by step."""
    return _metric_rows(res, rid, "eval")


def final_eval(res: Results, rid: str, column: str, last: int = LAST_EVALS) -> float:
    """`column` as the mean of the run's last `last` evaluations (one evaluation is one noisy draw: PROTOCOL
    section 2, rules of 2026-12-07); NaN without one, or when one of them is NaN (a diverged run)."""
    e = eval_rows(res, rid)
    if column not in e or not len(e):
        return float("nan")
    return float(e[column].iloc[-last:].mean(skipna=False))


def final_train_acc(res: Results, rid: str) -> float:
    """Eval-mode accuracy on the fixed training subset, mean of the last LAST_EVALS evaluations (NaN if it
    diverged)."""
    return final_eval(res, rid, "train_eval_acc")


def final_train_loss(res: Results, rid: str, window: int = WINDOW) -> float:
    """Mean training loss of the last `window` steps; NaN without train rows."""
    tr = train_rows(res, rid)
    return float(tr["loss"].iloc[-window:].mean()) if len(tr) else float("nan")


def smoothed_train(res: Results, rid: str, column: str, window: int = WINDOW) -> pd.Series:
    """A training-step column (loss, acc) as a rolling mean over `window` steps, by step."""
    return train_rows(res, rid)[column].rolling(window, min_periods=1).mean()


def smoothed_acc(res: Results, rid: str, window: int = WINDOW) -> pd.Series:
    """Train-mode batch accuracy (under the network's own noise), rolling mean over `window` steps."""
    return smoothed_train(res, rid, "acc", window)


def final_smoothed_acc(res: Results, rid: str, window: int = WINDOW) -> float:
    """`smoothed_acc` at the last step: the quantity Fig 1a and Fig 2 plot. NaN without train rows."""
    s = smoothed_acc(res, rid, window)
    return float(s.iloc[-1]) if len(s) else float("nan")


# ------------------------------------------------------------------------------------------------- status


def run_steps(res: Results, rid: str) -> int:
    """The steps the run was configured for (scale.steps)."""
    return int(res.runs.set_index("run_id").loc[rid, "steps"])


def run_status(res: Results, rid: str) -> str:
    """The run's status (done, diverged, running, ...)."""
    return str(res.runs.set_index("run_id").loc[rid, "status"])


def diverged(res: Results, rid: str) -> bool:
    """Whether a finished run diverged; Missing for a run that has not finished (its numbers are not final)."""
    status = run_status(res, rid)
    if status not in FINAL_STATUSES:
        raise Missing(f"run {rid} is {status}, not finished")
    return status == "diverged"


def final_accuracy(res: Results, rid: str) -> float:
    """Final eval-mode train-subset accuracy of a finished run; CHANCE for a diverged one (or none)."""
    if diverged(res, rid):
        return CHANCE
    acc = final_train_acc(res, rid)
    return CHANCE if acc != acc else acc


# -------------------------------------------------------------------------------------------------- probes


def _probe_rows(res: Results, rid: str, probe: str, eta: bool = False) -> pd.DataFrame:
    """A run's rows of one probe: those without eta (per-eta landscape rows with eta=True)."""
    p = res.probes
    if p is None or not len(p):
        return pd.DataFrame(columns=PROBE_COLUMNS).astype({"value": float})
    p = res.of_run("probes", rid)
    return p[(p["probe"] == probe) & (p["eta"].notna() if eta else p["eta"].isna())]


def probe_series(res: Results, rid: str, probe: str, metric: str, layer: int | None = None) -> pd.Series:
    """One probe metric (of one layer; without a layer, of every layer) by step; empty when not recorded."""
    rows = _probe_rows(res, rid, probe)
    rows = rows[rows["metric"] == metric]
    if layer is not None:
        rows = rows[rows["layer"] == layer]
    return rows.set_index(STEP)["value"].sort_index(kind="stable")


def required_series(res: Results, rid: str, probe: str, metric: str, layer: int) -> pd.Series:
    """`probe_series`, Missing when the run has no such records."""
    s = probe_series(res, rid, probe, metric, layer)
    if not len(s):
        raise Missing(f"run {rid} has no {probe} records of {metric} at layer #{layer}")
    return s


def _pivot(rows: pd.DataFrame, columns: str, metric: str | None = None, dropna: bool = False) -> pd.DataFrame:
    """Rows as a step x `columns` table of their values (of one metric); dropna: without all-NaN columns."""
    if metric is not None:
        rows = rows[rows["metric"] == metric]
    if not len(rows):
        return pd.DataFrame()
    return rows.pivot_table(index=STEP, columns=columns, values="value", aggfunc="last", dropna=dropna).sort_index()


def probe_table(res: Results, rid: str, probe: str, layer: int | None = None) -> pd.DataFrame:
    """One probe's metrics (of one layer) as a step x metric table."""
    rows = _probe_rows(res, rid, probe)
    return _pivot(rows if layer is None else rows[rows["layer"] == layer], "metric")


def layer_table(res: Results, rid: str, probe: str, metric: str, layers=None) -> pd.DataFrame:
    """A probe's per-layer metric as a step x layer table (int layer columns), infinities as NaN."""
    rows = _probe_rows(res, rid, probe)
    table = _pivot(rows if layers is None else rows[rows["layer"].isin(list(layers))], "layer", metric, dropna=True)
    table.columns = [int(k) for k in table.columns]
    return table.replace([np.inf, -np.inf], np.nan)


def landscape_by_eta(res: Results, rid: str, metric: str = "grad_diff") -> pd.DataFrame:
    """Per-eta landscape rows as a step x eta table of `metric`."""
    return _pivot(_probe_rows(res, rid, "landscape", eta=True), "eta", metric)


def trains(res: Results, rid: str) -> bool:
    """Ends `done` (not diverged) with a final accuracy of at least TRAINS (B3, B4)."""
    return not diverged(res, rid) and final_accuracy(res, rid) >= TRAINS
