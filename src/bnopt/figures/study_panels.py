"""Panels the studies' own figures share (experiments/b*.py `draw`): per-seed values of a sweep's runs,
one curve per network with a min-max band over seeds, final accuracy against a swept value, accuracy curves.

A curve is the mean over every seed of its run with a min-max band and "(N seeds)" in the legend
(`curves.probe_line`), as in the paper's figures.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.ticker import FormatStrFormatter

from ..readers import CHANCE, TRAINS, Missing, eval_rows, final_accuracy
from ..results import Results
from .common import STEP_LABEL
from .curves import BAND_ALPHA, probe_line, seed_runs
from .panels import color, finite_positive, label, legend, record_runs, set_labels
from .selection import MissingRecords, scale_of


def seed_values(res: Results, runs: dict, ax, experiment: str, what: str, fn: Callable) -> dict:
    """{(model, lr): [fn(runs row) per seed]} over every seed of each run's curve (`curves.seed_runs`); a seed
    whose records lack what `fn` reads (`readers.Missing` or an empty result) is left out, the seeds drawn
    are noted on the figure. MissingRecords when a network has no seed with the records."""
    out = {}
    for (model, lr), run in runs.items():
        values, used = [], []
        for r in seed_runs(res, run):
            try:
                v = fn(r)
            except Missing:
                continue
            if v is not None and len(v):
                values.append(v)
                used.append(r)
        if not values:
            why = f"{label(model, lr)} (run {run['run_id']}) has no {what}"
            raise MissingRecords(experiment, why, experiment, scale_of(run))
        record_runs(ax, used)
        out[(model, lr)] = values
    return out


def line(ax, values: list, col: str, lbl: str, transform=finite_positive, **kw) -> None:
    """One curve from per-seed Series (index: x): mean over seeds with a min-max band, or the one seed's."""
    tables = [v.to_frame("value") if isinstance(v, pd.Series) else v for v in values]
    probe_line(ax, tables, "value", col, lbl, transform=transform, **kw)


def seeds_note(ax, values: dict, extra: list[tuple[str, str]] = (), center: str = "mean") -> None:
    """Legend entries saying what the line styles are and, with several seeds, what the band is."""
    for ls, text in extra:
        ax.plot([], [], color="0.5", ls=ls, lw=1.3, label=text)
    if any(len(v) > 1 for v in values.values()):
        ax.fill_between(
            [], [], [], color="0.5", alpha=BAND_ALPHA, lw=0, label=f"line: {center}, band: min-max over seeds"
        )


def layer_axis(ax, layers) -> None:
    layers = sorted(layers)
    step = 1 if len(layers) <= 14 else 2
    ax.set_xticks(layers[::step])


def final_points(res: Results, run: dict, ax) -> list[float]:
    """Final accuracy (`readers.final_accuracy`: diverged = chance) of every finished seed of a run's curve."""
    out = []
    for r in seed_runs(res, run, ax):
        try:
            out.append(final_accuracy(res, r["run_id"]))
        except Missing:
            continue
    return out


def sweep_panel(ax, points: dict, xlabel: str, title: str, trains_line: bool = True) -> None:
    """Final accuracy against the swept value (log x), per network: every seed a dot, the mean a line."""
    for model, by_x in points.items():
        xs = sorted(x for x, v in by_x.items() if v)
        if not xs:  # no finished seed yet (its runs are training): nothing to draw for this network
            continue
        n = max(len(by_x[x]) for x in xs)
        seeds = f" ({n} seeds)" if n > 1 else ""
        ax.plot(xs, [np.mean(by_x[x]) for x in xs], color=color(model), marker="o", lw=1.4, label=label(model) + seeds)
        for x in xs:
            ax.scatter([x] * len(by_x[x]), by_x[x], color=color(model), s=14, alpha=0.6, lw=0)
    if trains_line:
        ax.axhline(TRAINS, color="0.4", ls="--", lw=0.9, label=f"'trains' threshold ({TRAINS:.0%})")
    ax.axhline(CHANCE, color="0.6", ls=":", lw=0.9, label=f"chance ({CHANCE:.0%}; a diverged run counts as this)")
    ax.set_xscale("log")
    ax.set_xticks(sorted({x for by_x in points.values() for x in by_x}))
    ax.get_xaxis().set_major_formatter(FormatStrFormatter("%g"))
    ax.set_ylim(0, 1.02)
    set_labels(ax, title, xlabel, "final accuracy (eval mode, train subset)")
    legend(ax, loc="best")


def eval_curves(res: Results, curves: list[tuple[dict, str, str]], ax) -> None:
    """Eval-mode train-subset accuracy vs step, mean over seeds with a min-max band: (run, style, label)."""
    for run, ls, lbl in curves:
        tables = []
        for r in seed_runs(res, run, ax):
            e = eval_rows(res, r["run_id"])
            if "train_eval_acc" in e:
                tables.append(e[["train_eval_acc"]].dropna().rename(columns={"train_eval_acc": "value"}))
        tables = [t for t in tables if len(t)]
        if tables:  # probe_line says "(N seeds)"
            line(ax, tables, color(run["model"]), lbl, transform=None, ls=ls, marker="o", ms=2.5)
    ax.set_ylim(-0.02, 1.02)
    set_labels(ax, "(b) Accuracy during training", STEP_LABEL, "accuracy (eval mode, train subset)")
    legend(ax, loc="upper left", ncol=2)


LINE_STYLES = ("-", "--", ":", "-.")
