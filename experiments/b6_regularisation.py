"""B6: BN regularises: a smaller train-test gap at the same training loss (docs/PROTOCOL.md section 7).

Per seed: train-subset accuracy minus test accuracy at the first evaluation where each net's smoothed training
loss reaches the higher of the two final losses; G = BN's gap - the standard net's. Fig 1's runs at LR 0.1.
Its figure (beyond_regularisation): accuracy at each evaluation, and the gap against the smoothed training loss.
"""

import numpy as np
import pandas as pd

from bnopt.figures.common import STEP_LABEL, experiment_runs, figure_title
from bnopt.figures.panels import color, label, legend, new_figure, set_labels
from bnopt.figures.study_panels import line, seed_values, seeds_note
from bnopt.readers import VGG_LR, WINDOW, Missing, eval_rows, final_train_loss, smoothed_train
from bnopt.studies import Statistic, Study, run_id_of
from bnopt.verdicts import Test, Tests, below, fmt


def matched_gap(res, rid: str, level: float, window: int = WINDOW) -> dict:
    """Train-subset acc - test acc at the first evaluation where the smoothed training loss (of the last
    training step up to it: the evaluation after step t-1 is recorded at step t) is <= level."""
    loss = smoothed_train(res, rid, "loss", window)
    e = eval_rows(res, rid).dropna(subset=["train_eval_acc", "test_acc"])
    reached = [s for s in e.index if s > 0 and loss.asof(s) <= level * (1 + 1e-12)]
    if not reached:
        raise Missing(f"run {rid} never reaches the matched training loss {level:.4g} at an evaluation")
    step = int(reached[0])
    return {"step": step, "gap": float(e.loc[step, "train_eval_acc"] - e.loc[step, "test_acc"])}


def gap_vs_loss(res, rid: str) -> pd.DataFrame:
    """Per evaluation after step 0: the smoothed training loss at it and train-subset acc - test acc."""
    loss = smoothed_train(res, rid, "loss")
    e = eval_rows(res, rid).dropna(subset=["train_eval_acc", "test_acc"])
    e = e[e.index > 0]
    if not len(e) or not len(loss):
        return pd.DataFrame()
    return pd.DataFrame(
        {"loss": [float(loss.asof(s)) for s in e.index], "gap": (e["train_eval_acc"] - e["test_acc"]).to_numpy()},
        index=e.index,
    )


def accuracy_panel(res, runs: dict, ax, name: str) -> None:
    """(a) Train-subset and test accuracy at each evaluation, mean over seeds with a min-max band."""

    def accs(r):
        e = eval_rows(res, r["run_id"])
        return e[["train_eval_acc", "test_acc"]].dropna(how="all") if {"train_eval_acc", "test_acc"} <= set(e) else None

    acc = seed_values(res, runs, ax, name, "evaluation rows (train_eval_acc, test_acc)", accs)
    for (model, lr), tables in acc.items():
        for column, ls, what in (("train_eval_acc", "-", "train subset"), ("test_acc", "--", "test")):
            sub = [t[[column]].dropna().rename(columns={column: "value"}) for t in tables]
            line(ax, sub, color(model), label(model, lr, f", {what}"), transform=None, ls=ls, marker="o", ms=3)
    seeds_note(ax, acc, [("-", "solid: train subset (eval mode)"), ("--", "dashed: test set")])
    set_labels(ax, "(a) Accuracy at each evaluation", STEP_LABEL, "accuracy (eval mode)")
    ax.set_ylim(-0.02, 1.02)
    legend(ax, loc="upper left")


def gap_panel(res, runs: dict, ax, name: str) -> None:
    """(b) The train-test gap against the smoothed training loss at each evaluation, one line per seed."""
    what = "evaluations after step 0 with training loss"
    gaps = seed_values(res, runs, ax, name, what, lambda r: gap_vs_loss(res, r["run_id"]))
    for (model, lr), tables in gaps.items():
        for i, t in enumerate(tables):
            t = t[np.isfinite(t["loss"]) & (t["loss"] > 0)]
            n = f" ({len(tables)} seeds)" if len(tables) > 1 else ""
            lbl = label(model, lr, n) if i == 0 else None
            ax.plot(t["loss"], t["gap"], color=color(model), marker="o", ms=3, lw=1.1, alpha=0.85, label=lbl)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.invert_xaxis()
    set_labels(
        ax,
        "(b) Train-test gap at matched training loss (one line per seed)",
        f"smoothed training loss (rolling {WINDOW} steps; log, reversed: training proceeds →)",
        "train-subset acc. − test acc.",
    )
    legend(ax, loc="upper left")


class B6(Study):
    id = "B6"
    claim = "BN regularises: a smaller train-test gap at the same training loss"
    sweeps = ("beyond_regularisation",)
    figures = ("beyond_regularisation",)
    statistics = (Statistic("gap_diff", "G = gap BN - gap standard (train-subset acc - test acc)", pct=True),)
    rule = Tests(
        (
            Test(
                "gap_diff",
                below(0.0),
                "BN's train-test gap is not smaller than the standard net's at the same training loss",
            ),
        )
    )

    def measure(self, res, scale, seed):
        std, bn = run_id_of(res, "vgg16", VGG_LR, scale, seed), run_id_of(res, "vgg16_bn", VGG_LR, scale, seed)
        level = max(final_train_loss(res, std), final_train_loss(res, bn))
        a, b = matched_gap(res, std, level), matched_gap(res, bn, level)
        return {
            "level": level,
            "step_std": a["step"],
            "step_bn": b["step"],
            "gap_std": a["gap"],
            "gap_bn": b["gap"],
            "gap_diff": b["gap"] - a["gap"],
        }

    def lines(self, table):
        return [
            f"seed {s}: matched smoothed training loss {fmt(r['level'])}; standard reaches it at step {r['step_std']} "
            f"(gap {fmt(r['gap_std'], True)}), BN at step {r['step_bn']} (gap {fmt(r['gap_bn'], True)})"
            for s, r in table.items()
        ]

    def draw(self, res, scale):
        """VGG16 vs VGG16+BN at LR 0.1: (a) train-subset and test accuracy vs step, (b) the train-test gap
        against the smoothed training loss at each evaluation, one line per seed."""
        name = self.figures[0]
        runs = experiment_runs(res, name, scale)
        fig = new_figure(14, 5.2)
        accuracy_panel(res, runs, fig.add_subplot(1, 2, 1), name)
        gap_panel(res, runs, fig.add_subplot(1, 2, 2), name)
        figure_title(fig, "B6 — Does BN regularise? Train-test gap of VGG16 with and without BN, LR 0.1", runs)
        return fig
