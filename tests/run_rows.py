"""The runs-table row (bnopt.results' `runs` columns) that the claims, beyond-the-paper and figure tests
build their hand-made Results from: a finished small-scale run unless the caller says otherwise."""

from __future__ import annotations


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
