"""B6: BN regularises: a smaller train-test gap at the same training loss (docs/PROTOCOL.md section 7).

Per seed: train-subset accuracy minus test accuracy at the first evaluation where each net's smoothed training
loss reaches the higher of the two final losses; G = BN's gap - the standard net's. Fig 1's runs at LR 0.1.
"""

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
