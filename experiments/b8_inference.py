"""B8: at inference, running statistics stand in for the batch statistics the net trained with (docs/PROTOCOL.md
section 7).

Reads Fig 2's BN and noisy BN VGG16 runs at LR 0.1. Per seed, at the last evaluation (after the last training
step): the eval-mode accuracy on the fixed training subset (running statistics) minus the smoothed train-mode
batch accuracy as of that step (batch statistics; noisy BN's with its noise); D_BN and D_noisy. Its figure
(beyond_inference): both accuracies vs step, up to the last evaluation.
"""

import pandas as pd

from bnopt.figures.common import STEP_LABEL, experiment_runs, figure_title
from bnopt.figures.panels import color, label, legend, new_figure, set_labels
from bnopt.figures.study_panels import line, seed_values, seeds_note
from bnopt.readers import VGG_LR, WINDOW, Missing, eval_rows, smoothed_acc
from bnopt.studies import Statistic, Study, run_id_of
from bnopt.verdicts import Test, Tests, fmt, within


def statistics_gap(res, rid: str, window: int = WINDOW) -> pd.DataFrame:
    """Per evaluation after step 0: acc_batch (smoothed train-mode batch acc as of the evaluation's step: the
    evaluation at step t sees the weights of training step t; the final one, at step `steps`, follows the last
    training step, steps - 1) and acc_running (eval-mode train-subset acc)."""
    batch = smoothed_acc(res, rid, window)
    e = eval_rows(res, rid).dropna(subset=["train_eval_acc"])
    steps = [s for s in e.index if s > 0 and len(batch) and s >= batch.index[0]]
    out = pd.DataFrame(
        {"acc_batch": [float(batch.asof(s)) for s in steps], "acc_running": e.loc[steps, "train_eval_acc"].to_numpy()},
        index=steps,
    )
    if not len(out):
        raise Missing(f"run {rid} has no evaluation after step 0")
    return out


class B8(Study):
    id = "B8"
    claim = "At inference, running statistics stand in for the batch statistics the net trained with"
    sweeps = ("beyond_inference",)
    figures = ("beyond_inference",)
    statistics = (
        Statistic("d_bn", "D_BN = running - batch statistics acc, BN", pct=True),
        Statistic("d_noisy", "D_noisy = the same, noisy BN (batch side with its noise)", pct=True),
    )
    rule = Tests(
        (
            Test(
                "d_bn",
                within(-0.02, 0.02),
                "running statistics do not stand in for BN's batch statistics (more than 2 points)",
            ),
            Test(
                "d_noisy",
                within(-0.02, 0.02),
                "running statistics do not stand in for noisy BN's noisy batch statistics",
            ),
        )
    )
    notes = (
        "batch side: train-mode batch accuracy of the step's batch before its update (rolling 50 steps); running "
        "side: eval-mode accuracy on the fixed 5,000-image training subset; noisy BN without its noise but with "
        "batch statistics is not recorded",
    )

    def measure(self, res, scale, seed):
        row = {}
        for key, model in (("bn", "vgg16_bn"), ("noisy", "vgg16_noisy_bn")):
            last = statistics_gap(res, run_id_of(res, model, VGG_LR, scale, seed)).iloc[-1]
            row |= {f"batch_{key}": last.acc_batch, f"running_{key}": last.acc_running}
            row[f"d_{key}"] = last.acc_running - last.acc_batch
        return row

    def lines(self, table):
        return [
            f"seed {s}: last evaluation: BN batch-statistics acc {fmt(r['batch_bn'], True)}, running-statistics "
            f"acc {fmt(r['running_bn'], True)}; noisy BN {fmt(r['batch_noisy'], True)} (with its noise) vs "
            f"{fmt(r['running_noisy'], True)}"
            for s, r in table.items()
        ]

    def draw(self, res, scale):
        """VGG16+BN and noisy BN at LR 0.1: accuracy with batch statistics (train mode) and with running
        statistics (eval mode) on the training data, vs step."""
        name = self.figures[0]
        runs = experiment_runs(res, name, scale)
        fig = new_figure(9, 5.5)
        ax = fig.add_subplot(1, 1, 1)
        gaps = seed_values(res, runs, ax, name, "evaluations after step 0", lambda r: statistics_gap(res, r["run_id"]))
        for (model, lr), tables in gaps.items():
            for column, ls, what in (("acc_batch", "-", "batch stats"), ("acc_running", "--", "running stats")):
                sub = [t[[column]].rename(columns={column: "value"}) for t in tables]
                line(ax, sub, color(model), label(model, lr, f", {what}"), transform=None, ls=ls, marker="o", ms=3)
        extra = [
            ("-", f"solid: batch statistics (train-mode batch acc., rolling {WINDOW} steps)"),
            ("--", "dashed: running statistics (eval-mode acc., training subset)"),
        ]
        seeds_note(ax, gaps, extra)
        set_labels(ax, "Accuracy on training data, batch vs running statistics", STEP_LABEL, "training accuracy")
        ax.set_ylim(-0.02, 1.02)
        legend(ax, loc="lower right")
        figure_title(fig, "B8 — Batch vs running statistics: BN and noisy BN VGG16, LR 0.1", runs)
        return fig
