"""Training-curve panels shared by several figures: training accuracy (Fig 1, 2, 3a, 5a, 12), test
accuracy (Fig 1) and the DLN's full-batch training loss (Fig 3b, 5b, 13).

`runs` is a figure's {(model, lr): runs row} from `select_runs`; `lrs` the figure's learning rates in the
order their line styles are assigned (first solid, second dashed, ...).
"""

from __future__ import annotations

import numpy as np

from .common import STEP_LABEL
from .panels import LR_STYLES, color, diverged_note, label, legend, set_labels, smooth_window, smoothed
from .selection import eval_rows, same_lr, train_rows


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
        tr = train_rows(res, run["run_id"])
        style = lr_style(lr, lrs)
        lbl, z = label(model, lr, diverged_note(run)), 3 + len(runs) - i
        if "acc" in tr and tr["acc"].notna().any():
            w = smooth_window(len(tr))
            window = max(window, w)
            ax.plot(tr["step"], smoothed(tr["acc"], w), color=color(model), ls=style, lw=1.3, label=lbl, zorder=z)
            lbl = None
        ev = eval_rows(res, run["run_id"])
        if "train_eval_acc" in ev and ev["train_eval_acc"].notna().any():
            dots = True
            ax.plot(
                ev["step"],
                ev["train_eval_acc"],
                color=color(model),
                ls="none",
                marker="o",
                ms=3.5,
                mfc="white" if style != "-" else color(model),
                label=lbl,
                zorder=z,
            )
    avg = f"moving avg. over {window} steps" if window > 1 else "per step"
    ax.plot([], [], color="0.5", lw=1.3, label=f"line: batch accuracy, {avg}")
    if dots:
        ax.plot([], [], color="0.5", ls="none", marker="o", ms=3.5, label="dots: eval-mode acc., training subset")
    set_labels(ax, title, STEP_LABEL, "training accuracy")
    ax.set_ylim(-0.02, 1.02)
    legend(ax, loc="best")


def eval_acc_panel(ax, res, runs: dict, lrs: list[float]) -> None:
    """Test-set accuracy (eval mode) at every evaluation."""
    for i, ((model, lr), run) in enumerate(runs.items()):
        ev = eval_rows(res, run["run_id"])
        if "test_acc" not in ev:
            continue
        ax.plot(
            ev["step"],
            ev["test_acc"],
            color=color(model),
            ls=lr_style(lr, lrs),
            marker="o",
            ms=3,
            lw=1.3,
            label=label(model, lr, diverged_note(run)),
            zorder=3 + len(runs) - i,
        )
    set_labels(ax, "Test accuracy", STEP_LABEL, "test accuracy (eval mode)")
    ax.set_ylim(-0.02, 1.02)
    legend(ax, loc="upper left")


def loss_panel(ax, res, runs: dict, lrs: list[float], title: str = "Training loss") -> None:
    """DLN: the full-batch training loss at every step (log scale)."""
    for i, ((model, lr), run) in enumerate(runs.items()):
        tr = train_rows(res, run["run_id"])
        y = np.where(np.isfinite(tr["loss"]) & (tr["loss"] > 0), tr["loss"], np.nan)
        ax.plot(
            tr["step"],
            y,
            color=color(model),
            ls=lr_style(lr, lrs),
            lw=1.3,
            label=label(model, lr, diverged_note(run)),
            zorder=3 + len(runs) - i,
        )
    ax.set_yscale("log", nonpositive="mask")
    set_labels(ax, title, STEP_LABEL, "training loss (squared error, full batch)")
    legend(ax)
