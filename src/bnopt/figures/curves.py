"""Training-curve panels shared by several figures: training accuracy (Fig 1, 2, 3a, 5a, 12), test
accuracy (Fig 1) and the DLN's full-batch training loss (Fig 3b, 5b, 13).

`runs` is a figure's {(model, lr): runs row} from `select_runs`; `lrs` the figure's learning rates in the
order their line styles are assigned (first solid, second dashed, ...).

Seeds: a curve is the centre over every seed of its run that the results hold (runs with the same model,
LR and numbers, one per seed: `seed_runs`), with a min-max band and "(N seeds)" in the legend. With one
seed it is that run's curve, drawn as before. The centre is the arithmetic mean on a linear axis and the
geometric mean on a log axis (`over_seeds(..., center="geometric")`: the mean of log10 y, what a log axis
shows halfway; an arithmetic mean there is pulled up to the largest seed), said in the legend.

Smoothing: the batch-accuracy curves are the rolling mean over `readers.WINDOW` steps, the numbers the claims
read (`readers.smoothed_acc`), whatever the run's length.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..readers import WINDOW, eval_rows, smoothed_acc, train_rows
from ..results import FINAL_STATUSES
from .common import STEP_LABEL
from .panels import LR_STYLES, color, diverged_note, label, legend, record_runs, set_labels
from .selection import same_lr

# The columns of `runs` that must agree for two runs to be seeds of one curve (those present are compared).
SAME_NUMBERS = (
    "family",
    "norm",
    "momentum",
    "steps",
    "batch_size",
    "width",
    "precision",
    "loss_norm",
    "init_scale",
    "scale",
)
BAND_ALPHA = 0.18
# How a curve over seeds is centred: the arithmetic mean (linear axes), the geometric mean (log axes: the
# mean of log y, non-positive values left out) or the median; the legend's "(N seeds, ...)" names it.
CENTERS = {"mean": "", "geometric": "geometric mean", "median": "median"}


def _eval_dots(ax, steps, acc, model: str, style: str, lbl, z) -> None:
    """Eval-mode train-subset accuracy as dots (hollow for dashed, i.e. non-BN, styles)."""
    ax.plot(
        steps,
        acc,
        color=color(model),
        ls="none",
        marker="o",
        ms=3.5,
        mfc="white" if style != "-" else color(model),
        label=lbl,
        zorder=z,
    )


def seed_runs(res, run, ax=None) -> list:
    """The runs that are seeds of `run`'s curve: same model, LR and numbers, one per seed (the given run
    for its own seed, else the finished one with the most steps), in seed order. With `ax` (the Axes that
    draws them) they are noted on its figure for the figure manifest."""
    group = _seed_runs(res, run)
    if ax is not None:
        record_runs(ax, group)
    return group


def _seed_runs(res, run) -> list:
    runs = res.runs
    if runs is None or not len(runs) or "seed" not in runs:
        return [run]
    same = (runs["model"] == run["model"]) & runs["lr"].map(lambda v: same_lr(v, run["lr"]))
    for key in SAME_NUMBERS:
        if key in runs and key in run and run[key] is not None and run[key] == run[key]:  # None/NaN: not compared
            same &= runs[key] == run[key]
    out = {int(run["seed"]): run} if "seed" in run and run["seed"] == run["seed"] else {}
    rows = runs[same]
    if "status" in rows:
        rows = rows[rows["status"].isin(FINAL_STATUSES)]
    if "steps_done" in rows:
        rows = rows.sort_values("steps_done", ascending=False, kind="stable")
    if "probes" in rows and run.get("probes") is not None:
        # a seed trained twice with other probes (Fig 9's DLN and B10's rank runs): the figure's own probe
        # preset first, so the seed's run holds the records the figure reads
        rows = rows.sort_values("probes", key=lambda p: p != run["probes"], kind="stable")
    for _, row in rows.iterrows():
        out.setdefault(int(row["seed"]), row.to_dict())
    return [out[s] for s in sorted(out)] or [run]


def seeds_note(group: list, center: str = "mean") -> str:
    """ " (N seeds)" for a curve over several seeds (" (N seeds, geometric mean)" for another centre)."""
    if len(group) <= 1:
        return ""
    return f" ({len(group)} seeds{', ' + CENTERS[center] if CENTERS[center] else ''})"


def center_of(values: np.ndarray, center: str = "mean") -> np.ndarray:
    """The centre of each row of `values` [steps, seeds] over its finite entries (NaN where none): the mean,
    the geometric mean (exp of the mean log of the positive entries; non-positive ones cannot be drawn on a
    log axis and are left out) or the median."""
    if center not in CENTERS:
        raise ValueError(f"center must be one of {sorted(CENTERS)}, not {center!r}")
    values = np.asarray(values, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if center == "geometric":
            return np.exp(np.nanmean(np.log(np.where(values > 0, values, np.nan)), axis=1))
        if center == "median":
            return np.nanmedian(values, axis=1)
        return np.nanmean(values, axis=1)


def over_seeds(frames: list, column: str, transform=None, center: str = "mean"):
    """(steps, centre, min, max) of `column` over the runs' step-indexed frames (`readers`' slices), aligned on
    step (NaN-aware: a seed that diverged or stopped early leaves the others' centre). `center`: "mean"
    (linear axes), "geometric" (log axes; min and max then over the positive values) or "median"."""
    if center not in CENTERS:
        raise ValueError(f"center must be one of {sorted(CENTERS)}, not {center!r}")
    cols = []
    for i, f in enumerate(frames):
        if column not in f or not len(f):
            continue
        y = f[column].to_numpy(dtype=float)
        y = transform(y) if transform is not None else y
        cols.append(pd.Series(y, index=f.index.to_numpy(), name=i).groupby(level=0).last())
    if not cols:
        return None
    table = pd.concat(cols, axis=1).sort_index()
    values = table.to_numpy(dtype=float)
    if center == "geometric":
        values = np.where(values > 0, values, np.nan)
    keep = np.isfinite(values).any(axis=1)
    values = values[keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(values, 1), np.nanmax(values, 1)
    return table.index.to_numpy()[keep], center_of(values, center), lo, hi


def band(ax, steps, lo, hi, col, z) -> None:
    ax.fill_between(steps, lo, hi, color=col, alpha=BAND_ALPHA, lw=0, zorder=z - 0.5)


def probe_line(
    ax, tables: list, column: str, col: str, lbl: str, z: float = 3, transform=None, center: str = "mean", **kw
) -> None:
    """One probe metric (step-indexed `probe_table`s, one per seed) as a line: the run's own values for one
    seed, else the centre over seeds (`over_seeds`: pass center="geometric" for a log axis) with a min-max
    band and "(N seeds)" (", geometric mean" or ", median" for those centres) in the label."""
    tables = [t for t in tables if len(t) and column in t]
    if not tables:
        return
    if len(tables) == 1:
        y = tables[0][column].to_numpy(dtype=float)
        ax.plot(tables[0].index, transform(y) if transform else y, color=col, label=lbl, zorder=z, **kw)
        return
    steps, mid, lo, hi = over_seeds(tables, column, transform, center)
    ax.plot(steps, mid, color=col, label=lbl + seeds_note(tables, center), zorder=z, **kw)
    band(ax, steps, lo, hi, col, z)


def lr_style(lr, lrs) -> str:
    """Line style of a learning rate: its position in the figure's `lrs`; solid if not among them."""
    for i, x in enumerate(lrs):
        if same_lr(lr, x):
            return LR_STYLES[i % len(LR_STYLES)]
    return "-"


def _smoothed_acc_frame(res, rid: str) -> pd.DataFrame:
    """A run's batch accuracy as the claims read it: rolling mean over readers.WINDOW steps, by step."""
    tr = train_rows(res, rid)
    if "acc" not in tr or not tr["acc"].notna().any():
        return pd.DataFrame(columns=["acc"], index=tr.index[:0])
    return smoothed_acc(res, rid).to_frame("acc")


def acc_panel(ax, res, runs: dict, lrs: list[float], title: str = "Training accuracy") -> None:
    """Per-step batch accuracy (rolling mean over readers.WINDOW steps, as the claims read it) as lines,
    eval-mode accuracy on a training subset as dots."""
    drawn, dots = False, False
    for i, ((model, lr), run) in enumerate(runs.items()):
        group = seed_runs(res, run, ax)
        style = lr_style(lr, lrs)
        lbl, z = label(model, lr, diverged_note(run) + seeds_note(group)), 3 + len(runs) - i
        curve = over_seeds([_smoothed_acc_frame(res, r["run_id"]) for r in group], "acc")
        if curve is not None:
            drawn = True
            steps, mean, lo, hi = curve
            ax.plot(steps, mean, color=color(model), ls=style, lw=1.3, label=lbl, zorder=z)
            if len(group) > 1:
                band(ax, steps, lo, hi, color(model), z)
            lbl = None
        dot = over_seeds([eval_rows(res, r["run_id"]) for r in group], "train_eval_acc")
        if dot is not None:
            dots = True
            _eval_dots(ax, dot[0], dot[1], model, style, lbl, z)
    seeds = any(len(seed_runs(res, run)) > 1 for run in runs.values())
    if drawn:
        avg = f"batch accuracy, moving avg. over {WINDOW} steps"
        ax.plot([], [], color="0.5", lw=1.3, label=f"line: {avg}" + (", mean over seeds" if seeds else ""))
    if seeds:
        ax.fill_between([], [], [], color="0.5", alpha=BAND_ALPHA, lw=0, label="band: min-max over seeds")
    if dots:
        ax.plot([], [], color="0.5", ls="none", marker="o", ms=3.5, label="dots: eval-mode acc., training subset")
    set_labels(ax, title, STEP_LABEL, "training accuracy")
    ax.set_ylim(-0.02, 1.02)
    legend(ax, loc="best")


def eval_acc_panel(ax, res, runs: dict, lrs: list[float]) -> None:
    """Test-set accuracy (eval mode) at every evaluation."""
    for i, ((model, lr), run) in enumerate(runs.items()):
        group = seed_runs(res, run, ax)
        if len(group) > 1:
            curve = over_seeds([eval_rows(res, r["run_id"]) for r in group], "test_acc")
            if curve is None:
                continue
            steps, mean, lo, hi = curve
        else:
            ev = eval_rows(res, run["run_id"])
            if "test_acc" not in ev:
                continue
            steps, mean = ev.index, ev["test_acc"]
        z = 3 + len(runs) - i
        ax.plot(
            steps,
            mean,
            color=color(model),
            ls=lr_style(lr, lrs),
            marker="o",
            ms=3,
            lw=1.3,
            label=label(model, lr, diverged_note(run) + seeds_note(group)),
            zorder=z,
        )
        if len(group) > 1:
            band(ax, steps, lo, hi, color(model), z)
    set_labels(ax, "Test accuracy", STEP_LABEL, "test accuracy (eval mode)")
    ax.set_ylim(-0.02, 1.02)
    legend(ax, loc="upper left")


def loss_panel(ax, res, runs: dict, lrs: list[float], title: str = "Training loss") -> None:
    """DLN: the full-batch training loss at every step (log scale; over seeds their geometric mean)."""
    positive = lambda y: np.where(np.isfinite(y) & (y > 0), y, np.nan)
    for i, ((model, lr), run) in enumerate(runs.items()):
        group = seed_runs(res, run, ax)
        z = 3 + len(runs) - i
        lbl = label(model, lr, diverged_note(run) + seeds_note(group, "geometric"))
        curve = over_seeds([train_rows(res, r["run_id"]) for r in group], "loss", positive, "geometric")
        if curve is None:
            continue
        steps, mid, lo, hi = curve
        ax.plot(steps, mid, color=color(model), ls=lr_style(lr, lrs), lw=1.3, label=lbl, zorder=z)
        if len(group) > 1:
            band(ax, steps, lo, hi, color(model), z)
    ax.set_yscale("log", nonpositive="mask")
    set_labels(ax, title, STEP_LABEL, "training loss (squared error, full batch)")
    legend(ax)
