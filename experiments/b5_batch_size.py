"""B5: BN fails at small batch sizes (docs/PROTOCOL.md section 7).

Reads its own batch-study runs (configs/experiment/beyond_batch.yaml): VGG16 with and without BN at each batch
size, every batch seeing the same number of images, the LR linear in the batch. Per run: final test accuracy,
train-mode batch accuracy (batch statistics, last 50 steps) and eval-mode train-subset accuracy (running
statistics). Per seed: S1 = A(smallest) - A(largest), A = test acc BN - standard; S2 = D(smallest) - D(largest),
D = |batch - running statistics acc| of BN. Its figure (beyond_batch): test accuracy vs batch, and the two
training accuracies vs batch.

The batch sizes are those the sweep's file declares (`experiments.get(...).params`, read, not composed); the LR
at each batch is read from the runs table (the `lr` of its batch-study runs, `run_selection.rows_at_scale(...,
batch_study=True)`: steps x batch = the scale's batch-study images), since the sweep derives it.
"""

import numpy as np
import pandas as pd
from matplotlib.ticker import FormatStrFormatter

from bnopt import experiments
from bnopt.figures.common import figure_title
from bnopt.figures.curves import seed_runs
from bnopt.figures.panels import color, label, legend, new_figure, set_labels
from bnopt.figures.study_panels import sweep_panel
from bnopt.measures import grid_line
from bnopt.readers import CHANCE, WINDOW, Missing, diverged, final_eval, final_smoothed_acc, final_train_acc
from bnopt.run_selection import SCALE_ORDER, MissingRuns, Requires, rows_at_scale, same_lr
from bnopt.studies import Statistic, Study, run_id_of
from bnopt.verdicts import Test, Tests, above, below, fmt

NETS = (("std", "vgg16"), ("bn", "vgg16_bn"))


def batch_sizes(sweep: str) -> list[int]:
    """The `scale.batch_size` values the sweep declares, sorted."""
    return sorted(int(v) for v in dict(experiments.get(sweep).params)["scale.batch_size"].split(","))


def batch_points(res, scale, batches) -> list[tuple[float, int]]:
    """[(lr, batch)] of the batch study: each batch's LR from the runs table's batch-study runs of the two
    networks (at `scale`, else at any preset); Missing when a batch has none or several LRs."""
    runs = res.runs if res.runs is not None else pd.DataFrame()
    if not len(runs) or "batch_size" not in runs:
        raise Missing("no batch-study runs")
    rows = pd.concat([rows_at_scale(runs, s, batch_study=True) for s in ([scale] if scale else SCALE_ORDER)])
    rows = rows[rows["model"].isin([m for _, m in NETS])]
    out = []
    for b in batches:
        lrs = sorted(set(rows.loc[rows["batch_size"] == b, "lr"].astype(float)))
        if not lrs:
            raise Missing(f"no batch-study run at batch {b}")
        if not all(same_lr(lr, lrs[0]) for lr in lrs):
            raise Missing(f"batch-study runs at batch {b} at more than one LR: {', '.join(f'{lr:g}' for lr in lrs)}")
        out.append((lrs[0], b))
    return out


def batch_accuracies(res, rid: str, window: int = WINDOW) -> dict:
    """A run's final test accuracy, smoothed train-mode batch accuracy (batch statistics) and eval-mode
    train-subset accuracy (running statistics); CHANCE for each when it diverged."""
    if diverged(res, rid):
        return {"test": CHANCE, "batch": CHANCE, "running": CHANCE}
    nan_to_chance = lambda x: CHANCE if x != x else x  # noqa: E731
    return {
        "test": nan_to_chance(final_eval(res, rid, "test_acc")),
        "batch": nan_to_chance(final_smoothed_acc(res, rid, window)),
        "running": nan_to_chance(final_train_acc(res, rid)),
    }


class B5(Study):
    id = "B5"
    claim = "BN fails at small batch sizes"
    sweeps = ("beyond_batch",)
    figures = ("beyond_batch",)
    rule = Tests(
        (
            Test("s1", below(0.0), "BN's lead over the standard net does not shrink at the smallest batch"),
            Test("s2", above(0.0), "the gap between batch and running statistics does not grow as the batch shrinks"),
        )
    )

    @property
    def batches(self) -> list[int]:
        return batch_sizes(self.sweeps[0])

    @property
    def statistics(self) -> tuple[Statistic, ...]:
        small, large = min(self.batches), max(self.batches)
        a = f"S1 = A({small}) - A({large}), A = test acc BN - standard"
        d = f"S2 = D({small}) - D({large}), D = abs(batch - running statistics acc) of BN"
        return (Statistic("s1", a, pct=True), Statistic("s2", d, pct=True))

    def measure(self, res, scale, seed):
        points, row = batch_points(res, scale, self.batches), {}
        for key, model in NETS:
            for lr, batch in points:
                acc = batch_accuracies(res, run_id_of(res, model, lr, scale, seed, batch_size=batch))
                row |= {f"{name}_{key}_{batch}": v for name, v in acc.items()}
        for _, batch in points:
            row[f"a_{batch}"] = row[f"test_bn_{batch}"] - row[f"test_std_{batch}"]
            row[f"d_{batch}"] = abs(row[f"batch_bn_{batch}"] - row[f"running_bn_{batch}"])
        small, large = min(self.batches), max(self.batches)
        return row | {"s1": row[f"a_{small}"] - row[f"a_{large}"], "s2": row[f"d_{small}"] - row[f"d_{large}"]}

    def lines(self, table):
        batches, out = self.batches, []
        for s, r in table.items():
            gap = ", ".join(f"{fmt(r[f'batch_bn_{b}'], True)} vs {fmt(r[f'running_bn_{b}'], True)}" for b in batches)
            sizes = ", ".join(str(b) for b in batches)
            out.append(
                f"seed {s}: test acc at batch {sizes}: {grid_line(r, 'test', batches)}; BN batch- vs running-"
                f"statistics acc: {gap}"
            )
        return out

    def judge(self, res, scale=None):
        """The framework's judgement, with the note on the LRs (read from the runs) after the statistics."""
        j = super().judge(res, scale)
        if j.stats:
            lrs = ", ".join(f"{lr:g} at {b}" for lr, b in batch_points(res, scale, self.batches))
            note = (
                "every batch sees the same number of training images (scale.batch_study); LR scaled linearly with "
                f"the batch ({lrs}); batch side: train-mode accuracy of the last 50 steps' batches; running side: "
                f"eval-mode accuracy on the fixed training subset; a diverged run counts as {CHANCE:.0%}"
            )
            j.evidence.insert(j.evidence.index(j.stats[-1].summary()) + 1, note)
        return j

    def draw(self, res, scale):
        """VGG16 vs VGG16+BN at each batch (same images seen, LR linear in the batch): (a) final test accuracy
        vs batch, (b) each net's final accuracy with batch statistics (train mode) and with running
        statistics (eval mode) vs batch."""
        name = self.figures[0]
        try:
            points = batch_points(res, scale, self.batches)
        except Missing as e:
            raise MissingRuns(name, str(e), name, scale) from None
        fig = new_figure(14, 5.2)
        ax_a, ax_b = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        drawn, tests, stats = {}, {}, {}
        for _, model in NETS:
            for lr, batch in points:
                run = res.select([(model, lr)], scale, Requires(batch_size=batch), figure=name, experiment=name)
                drawn[(model, lr, batch)] = run[(model, lr)]
                accs = []
                for r in seed_runs(res, run[(model, lr)], ax_a):
                    try:
                        accs.append(batch_accuracies(res, r["run_id"]))
                    except Missing:
                        continue
                tests.setdefault(model, {})[batch] = [a["test"] for a in accs]
                for side in ("batch", "running"):
                    stats.setdefault((model, side), {})[batch] = [a[side] for a in accs]
        xlabel = "batch size (LR = 0.1 × batch / 128; log)"
        sweep_panel(ax_a, tests, xlabel, "(a) Final test accuracy", trains_line=False)
        ax_a.set_ylabel("final test accuracy (eval mode)")
        statistics_panel(ax_b, stats)
        figure_title(fig, "B5 — Small batches: VGG16 with and without BN, the same images seen at every batch", drawn)
        return fig


def statistics_panel(ax, stats: dict) -> None:
    """(b) each net's final training accuracy, batch statistics vs running statistics, vs batch (mean over seeds)."""
    for (model, side), by_b in stats.items():
        xs = sorted(b for b, v in by_b.items() if v)
        batch_side = side == "batch"
        ls, what = ("-", "batch statistics (train mode)") if batch_side else ("--", "running statistics (eval mode)")
        means = [np.mean(by_b[b]) for b in xs]
        ax.plot(xs, means, color=color(model), ls=ls, marker="o", lw=1.3, label=f"{label(model)}, {what}")
    ax.set_xscale("log")
    ax.set_xticks(sorted({b for v in stats.values() for b in v}))
    ax.get_xaxis().set_major_formatter(FormatStrFormatter("%g"))
    ax.set_ylim(0, 1.02)
    set_labels(
        ax,
        "(b) Training accuracy: batch statistics (last 50 steps' batches) vs running (train subset)",
        "batch size (log)",
        "final training accuracy",
    )
    legend(ax, loc="best")
