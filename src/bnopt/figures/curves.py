"""Training-curve panels shared by several figures: training accuracy (Fig 1, 2, 3a, 5a, 12), test
accuracy (Fig 1) and the DLN's full-batch training loss (Fig 3b, 5b, 13).

`runs` is a figure's {(model, lr): runs row} from `select_runs`; `lrs` the figure's learning rates in the
order their line styles are assigned (first solid, second dashed, ...).

Seeds: a curve is the mean over every seed of its run that the results hold (runs with the same model,
LR and numbers, one per seed: `seed_runs`), with a min-max band and "(N seeds)" in the legend. With one
seed it is that run's curve, drawn as before.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..readers import eval_rows, train_rows
from ..results import FINAL_STATUSES
from .common import STEP_LABEL
from .panels import LR_STYLES, color, diverged_note, label, legend, record_runs, set_labels, smooth_window, smoothed
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


def seeds_note(group: list) -> str:
    return f" ({len(group)} seeds)" if len(group) > 1 else ""


def over_seeds(frames: list, column: str, transform=None):
    """(steps, mean, min, max) of `column` over the runs' step-indexed frames (`readers`' slices), aligned on
    step (NaN-aware: a seed that diverged or stopped early leaves the others' mean)."""
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
    values = table.to_numpy()
    keep = np.isfinite(values).any(axis=1)
    values = values[keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return table.index.to_numpy()[keep], np.nanmean(values, 1), np.nanmin(values, 1), np.nanmax(values, 1)


def band(ax, steps, lo, hi, col, z) -> None:
    ax.fill_between(steps, lo, hi, color=col, alpha=BAND_ALPHA, lw=0, zorder=z - 0.5)


def probe_line(ax, tables: list, column: str, col: str, lbl: str, z: float = 3, transform=None, **kw) -> None:
    """One probe metric (step-indexed `probe_table`s, one per seed) as a line: the run's own values for one
    seed, else the mean over seeds with a min-max band and "(N seeds)" in the label."""
    tables = [t for t in tables if len(t) and column in t]
    if not tables:
        return
    if len(tables) == 1:
        y = tables[0][column].to_numpy(dtype=float)
        ax.plot(tables[0].index, transform(y) if transform else y, color=col, label=lbl, zorder=z, **kw)
        return
    steps, mean, lo, hi = over_seeds(tables, column, transform)
    ax.plot(steps, mean, color=col, label=f"{lbl} ({len(tables)} seeds)", zorder=z, **kw)
    band(ax, steps, lo, hi, col, z)


def lr_style(lr, lrs) -> str:
    """Line style of a learning rate: its position in the figure's `lrs`; solid if not among them."""
    for i, x in enumerate(lrs):
        if same_lr(lr, x):
            return LR_STYLES[i % len(LR_STYLES)]
    return "-"


def acc_panel(ax, res, runs: dict, lrs: list[float], title: str = "Training accuracy") -> None:
    """Per-step batch accuracy (moving average) as lines, eval-mode accuracy on a training subset as dots."""
    window, dots = 1, False
    for i, ((model, lr), run) in enumerate(runs.items()):
        group = seed_runs(res, run, ax)
        style = lr_style(lr, lrs)
        lbl, z = label(model, lr, diverged_note(run) + seeds_note(group)), 3 + len(runs) - i
        if len(group) > 1:
            trs = [train_rows(res, r["run_id"]) for r in group]
            w = smooth_window(max(len(tr) for tr in trs))
            curve = over_seeds(trs, "acc", lambda y, w=w: smoothed(pd.Series(y), w).to_numpy())
            if curve is not None:
                window = max(window, w)
                steps, mean, lo, hi = curve
                ax.plot(steps, mean, color=color(model), ls=style, lw=1.3, label=lbl, zorder=z)
                band(ax, steps, lo, hi, color(model), z)
                lbl = None
            dot = over_seeds([eval_rows(res, r["run_id"]) for r in group], "train_eval_acc")
            if dot is not None:
                dots = True
                _eval_dots(ax, dot[0], dot[1], model, style, lbl, z)
            continue
        tr = train_rows(res, run["run_id"])
        if "acc" in tr and tr["acc"].notna().any():
            w = smooth_window(len(tr))
            window = max(window, w)
            ax.plot(tr.index, smoothed(tr["acc"], w), color=color(model), ls=style, lw=1.3, label=lbl, zorder=z)
            lbl = None
        ev = eval_rows(res, run["run_id"])
        if "train_eval_acc" in ev and ev["train_eval_acc"].notna().any():
            dots = True
            _eval_dots(ax, ev.index, ev["train_eval_acc"], model, style, lbl, z)
    avg = f"moving avg. over {window} steps" if window > 1 else "per step"
    seeds = any(len(seed_runs(res, run)) > 1 for run in runs.values())
    ax.plot([], [], color="0.5", lw=1.3, label=f"line: batch accuracy, {avg}" + (", mean over seeds" if seeds else ""))
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
    """DLN: the full-batch training loss at every step (log scale)."""
    for i, ((model, lr), run) in enumerate(runs.items()):
        group = seed_runs(res, run, ax)
        positive = lambda y: np.where(np.isfinite(y) & (y > 0), y, np.nan)
        z = 3 + len(runs) - i
        lbl = label(model, lr, diverged_note(run) + seeds_note(group))
        if len(group) > 1:
            curve = over_seeds([train_rows(res, r["run_id"]) for r in group], "loss", positive)
            if curve is not None:
                steps, mean, lo, hi = curve
                ax.plot(steps, mean, color=color(model), ls=lr_style(lr, lrs), lw=1.3, label=lbl, zorder=z)
                band(ax, steps, lo, hi, color(model), z)
            continue
        tr = train_rows(res, run["run_id"])
        y = positive(tr["loss"].to_numpy(dtype=float))
        ax.plot(tr.index, y, color=color(model), ls=lr_style(lr, lrs), lw=1.3, label=lbl, zorder=z)
    ax.set_yscale("log", nonpositive="mask")
    set_labels(ax, title, STEP_LABEL, "training loss (squared error, full batch)")
    legend(ax)
