"""The runs-table row (bnopt.results' `runs` columns) that the claims, beyond-the-paper and figure tests
build their hand-made Results from: a finished small-scale run unless the caller says otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd


def run_row(model: str, lr: float, seed: int = 0, *, run_id: str, steps: int, **columns) -> dict:
    """A finished run of `model` at `lr` and `seed` (family from the model's name, width 0.25, all `steps`
    done); `columns` add or replace columns (path, status, elapsed_s, init_scale, probes, ...)."""
    family = "dln" if model.startswith("dln") else "vgg"
    row = dict(run_id=run_id, model=model, family=family, lr=lr, seed=seed, scale="small", width=0.25)
    return row | dict(steps=steps, steps_done=steps, status="done") | columns


class RecordsBuilder:
    """Hand-made records, run by run: subclasses append a run_row to `runs` and its metric and probe frames
    to `metrics` and `probes`; `results()` is the Results that bnopt.results would load from them."""

    def __init__(self, tmp_path):
        self.tmp, self.runs, self.metrics, self.probes = tmp_path, [], [], []

    def results(self):
        import pandas as pd

        from bnopt.results import Results

        return Results(
            pd.DataFrame(self.runs),
            pd.concat(self.metrics, ignore_index=True),
            pd.concat(self.probes, ignore_index=True),
        )


STEPS = np.arange(0, 1000)  # the training steps of a Maker run


class Maker(RecordsBuilder):
    """Builds a Results object run by run, with histogram files under tmp_path: the records of the paper's
    claims, for the study tests (tests/test_study_c*.py), the report's and the figures'."""

    def run(
        self,
        model,
        lr,
        *,
        acc_rate=0.01,
        final_acc=0.95,
        test_acc=0.8,
        loss_end=100.0,
        beta=10.0,
        grad_diff=20.0,
        loss_range=0.5,
        ics_l2=1.0,
        ics_cos=0.9,
        ics_g_norm=1.0,
        drift=0.01,
        status="done",
        seed=0,
        eval_acc=None,
    ):
        rid = f"{model}-lr{lr:g}" + (f"-s{seed}" if seed else "")
        path = self.tmp / "runs" / rid
        path.mkdir(parents=True)
        self.runs.append(
            run_row(model, lr, seed, run_id=rid, steps=len(STEPS), path=str(path), status=status)
            | dict(elapsed_s=60.0, test_acc=test_acc, images_per_s=1000.0)
        )
        acc = 0.1 + (final_acc - 0.1) * (1 - np.exp(-acc_rate * STEPS))
        loss = loss_end * (1 + 10 * np.exp(-STEPS / 200))
        self.metrics.append(pd.DataFrame(dict(step=STEPS, kind="train", loss=loss, acc=acc, run_id=rid)))
        self.metrics.append(
            pd.DataFrame(
                dict(  # the last 3 evaluations (what a final evaluation number averages) at the final values
                    step=[0, 800, 900, 1000],
                    kind="eval",
                    test_acc=[0.1] + [test_acc] * 3,
                    test_acc_exact=[0.1] + [test_acc] * 3,
                    train_eval_acc=[0.1] + [final_acc if eval_acc is None else eval_acc] * 3,
                    run_id=rid,
                )
            )
        )
        rows = []
        for s in range(0, 1000, 100):
            summary = {"loss_min": 1.0, "loss_max": 1 + loss_range, "grad_diff_max": grad_diff, "beta": beta}
            rows += [(s, "landscape", 0, np.nan, k, v) for k, v in summary.items()]
            for k in (5, 10, 9, 17):
                rows += [(s, "ics", k, np.nan, "l2", ics_l2), (s, "ics", k, np.nan, "cos", ics_cos)]
                rows += [(s, "ics", k, np.nan, "g_norm", ics_g_norm)]
        self.probes.append(
            pd.DataFrame(rows, columns=["step", "probe", "layer", "eta", "metric", "value"]).assign(run_id=rid)
        )
        walk = np.cumsum(np.full((10, 8), drift), axis=0)
        np.savez(path / "activations.npz", **{f"layer{k}_unit_mean": walk for k in (2, 9, 13)})
        return self
