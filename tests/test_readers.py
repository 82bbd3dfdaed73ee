"""Issue 23 item 3: the record slices are read in one module (bnopt.readers), indexed by step, and the
constants the readers, checks and figures share are declared once in the package."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bnopt import readers
from bnopt.readers import CHANCE, Missing
from bnopt.results import Results

SRC = Path(__file__).resolve().parents[1] / "src" / "bnopt"
NAN = float("nan")


def results() -> Results:
    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "status": ["done", "diverged", "running"]})
    metrics = pd.DataFrame(
        [
            {"run_id": "a", "kind": "train", "step": 2, "loss": 1.0, "acc": 0.5},
            {"run_id": "a", "kind": "train", "step": 1, "loss": 3.0, "acc": 0.3},
            {"run_id": "a", "kind": "eval", "step": 2, "train_eval_acc": 0.6, "test_acc": 0.55},
            {"run_id": "a", "kind": "eval", "step": 0, "train_eval_acc": 0.1, "test_acc": 0.1},
            {"run_id": "b", "kind": "train", "step": 1, "loss": NAN, "acc": NAN},
        ]
    )
    probes = pd.DataFrame(
        [
            {"run_id": "a", "step": 5, "probe": "ics", "layer": 2, "eta": NAN, "metric": "l2", "value": 2.0},
            {"run_id": "a", "step": 0, "probe": "ics", "layer": 2, "eta": NAN, "metric": "l2", "value": 1.0},
            {"run_id": "a", "step": 0, "probe": "ics", "layer": 3, "eta": NAN, "metric": "l2", "value": np.inf},
            {
                "run_id": "a",
                "step": 0,
                "probe": "landscape",
                "layer": 0,
                "eta": 0.5,
                "metric": "grad_diff",
                "value": 4.0,
            },
            {"run_id": "a", "step": 0, "probe": "landscape", "layer": 0, "eta": NAN, "metric": "beta", "value": 7.0},
        ]
    )
    return Results(runs, metrics, probes)


def test_metric_slices_are_indexed_by_step_in_step_order():
    res = results()
    train, evals = readers.train_rows(res, "a"), readers.eval_rows(res, "a")
    assert train.index.name == evals.index.name == "step"
    assert list(train.index) == [1, 2] and list(train["loss"]) == [3.0, 1.0]
    assert list(evals.index) == [0, 2] and evals.loc[2, "test_acc"] == 0.55
    assert readers.final_eval(res, "a", "test_acc", last=1) == 0.55  # the last evaluation in step order
    # a final evaluation number is the mean of the last LAST_EVALS (3) evaluations, here the 2 there are
    assert readers.final_eval(res, "a", "test_acc") == pytest.approx((0.1 + 0.55) / 2)
    assert readers.final_train_acc(res, "a") == pytest.approx((0.1 + 0.6) / 2)
    assert readers.final_train_loss(res, "a", window=1) == 1.0 and readers.final_train_loss(res, "a") == 2.0
    assert list(readers.smoothed_acc(res, "a", window=2)) == pytest.approx([0.3, 0.4])
    assert readers.final_smoothed_acc(res, "a", window=2) == pytest.approx(0.4)


def test_an_empty_results_gives_empty_step_indexed_slices():
    res = Results(pd.DataFrame(columns=["run_id", "status"]), pd.DataFrame(), pd.DataFrame())
    train = readers.train_rows(res, "a")
    assert train.index.name == "step" and not len(train) and "loss" in train
    assert readers.final_eval(res, "a", "test_acc") != readers.final_eval(res, "a", "test_acc")  # NaN
    assert not len(readers.probe_series(res, "a", "ics", "l2", 2)) and readers.probe_table(res, "a", "ics").empty


def test_probe_slices_are_indexed_by_step():
    res = results()
    assert readers.probe_series(res, "a", "ics", "l2", 2).to_dict() == {0: 1.0, 5: 2.0}
    assert readers.probe_series(res, "a", "landscape", "beta").to_dict() == {0: 7.0}  # the eta rows left out
    assert readers.probe_table(res, "a", "ics", 2)["l2"].to_dict() == {0: 1.0, 5: 2.0}
    table = readers.layer_table(res, "a", "ics", "l2")
    assert list(table.columns) == [2, 3] and np.isnan(table.loc[0, 3])  # infinities as NaN
    assert readers.landscape_by_eta(res, "a").loc[0, 0.5] == 4.0
    with pytest.raises(Missing, match="run a has no ics records of cos at layer #2"):
        readers.required_series(res, "a", "ics", "cos", 2)


def test_a_diverged_run_counts_as_chance_and_an_unfinished_one_is_missing():
    res = results()
    assert readers.final_accuracy(res, "a") == pytest.approx(0.35) and readers.final_accuracy(res, "b") == CHANCE
    with pytest.raises(Missing, match="run c is running, not finished"):
        readers.final_accuracy(res, "c")


def definitions(names: set[str]) -> dict[str, list[str]]:
    """{name: [module file that defines it at module level, ...]} for the package's source."""
    out: dict[str, list[str]] = {n: [] for n in names}
    for f in sorted(SRC.rglob("*.py")):
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
                out[node.name].append(f.name)
            targets = node.targets if isinstance(node, ast.Assign) else []
            for t in targets:
                for n in t.elts if isinstance(t, ast.Tuple) else [t]:
                    if isinstance(n, ast.Name) and n.id in names:
                        out[n.id].append(f.name)
    return out


def test_readers_and_shared_constants_are_defined_once():
    readers_names = {"train_rows", "eval_rows", "evals", "probe_series", "probe_table", "landscape_by_eta"}
    readers_names |= {"final_eval", "final_train_acc", "final_accuracy", "diverged", "Missing", "CHANCE"}
    found = definitions(readers_names | {"VGG_LR", "DLN_LR", "FINAL_STATUSES"})
    assert found.pop("FINAL_STATUSES") == ["records.py"]
    assert found.pop("evals") == []  # the checks' old name of eval_rows
    assert found == {name: ["readers.py"] for name in found}
