"""The one selection function: by resolved numbers (never a preset's name), exact learning rates."""

from __future__ import annotations

import pandas as pd
import pytest

from bnopt.resolvers import auto_scale
from bnopt.results import Results
from bnopt.run_selection import (
    MissingRecords,
    MissingRuns,
    Requires,
    scale_numbers,
    scale_of,
    select_runs,
    train_command,
)


def table(*rows) -> Results:
    runs = pd.DataFrame([{"status": "done", "steps_done": r.get("steps"), **r} for r in rows])
    empty = pd.DataFrame(columns=["run_id", "step", "kind", "loss"])
    probes = pd.DataFrame(columns=["run_id", "step", "probe", "layer", "eta", "metric", "value"])
    return Results(runs, empty, probes)


def vgg(rid, model="vgg16_bn", lr=0.1, steps=2000, width=0.25, batch=128, scale="small", **kw):
    return {
        "run_id": rid,
        "model": model,
        "family": "vgg",
        "lr": lr,
        "steps": steps,
        "width": width,
        "batch_size": batch,
        "scale": scale,
        "seed": kw.pop("seed", 0),
        **kw,
    }


def dln(rid, model="dln_bn", lr=1e-6, scale="small", **kw):
    return {
        "run_id": rid,
        "model": model,
        "family": "dln",
        "lr": lr,
        "steps": 10_000,
        "width": 1.0,
        "batch_size": 1000,
        "scale": scale,
        "seed": 0,
        **kw,
    }


def test_scale_numbers_come_from_the_presets():
    assert scale_numbers("small", "vgg") == {"steps": 2000, "batch_size": 128, "width": 0.25}
    assert scale_numbers("paper", "vgg") == {"steps": 15_000, "batch_size": 128, "width": 1.0}
    assert scale_numbers("paper", "dln") == scale_numbers("small", "dln")


def test_learning_rates_match_exactly():
    res = table(dln("a", lr=1e-8), dln("b", lr=1e-9))
    assert select_runs(res, [("dln_bn", 1e-9)])[("dln_bn", 1e-9)]["run_id"] == "b"
    assert select_runs(res, [("dln_bn", 1e-8)])[("dln_bn", 1e-8)]["run_id"] == "a"
    with pytest.raises(MissingRuns, match="no runs of dln_bn LR 1e-07"):
        select_runs(res, [("dln_bn", 1e-7)])


def test_runs_are_chosen_by_numbers_not_by_the_preset_name():
    # a DLN run trained under scale=small serves the paper-scale report: same numbers, same run
    res = table(dln("shared", scale="small"), vgg("small-vgg"))
    assert select_runs(res, [("dln_bn", 1e-6)], scale="paper")[("dln_bn", 1e-6)]["run_id"] == "shared"
    with pytest.raises(MissingRuns, match="at scale paper"):
        select_runs(res, [("vgg16_bn", 0.1)], scale="paper")
    # a run named "paper" with the small preset's numbers is a small run
    relabelled = table(vgg("x", scale="paper"))
    assert select_runs(relabelled, [("vgg16_bn", 0.1)], scale="small")[("vgg16_bn", 0.1)]["run_id"] == "x"
    assert len(relabelled.at_scale("small")) == 1 and len(relabelled.at_scale("paper")) == 0


def test_without_a_scale_the_preset_covering_most_pairs_wins_then_the_larger():
    res = table(vgg("s1"), vgg("s2", model="vgg16"), vgg("p1", steps=15_000, width=1.0, scale="paper"))
    chosen = select_runs(res, [("vgg16_bn", 0.1), ("vgg16", 0.1)])
    assert {r["run_id"] for r in chosen.values()} == {"s1", "s2"}
    both = table(vgg("s1"), vgg("p1", steps=15_000, width=1.0))
    assert select_runs(both, [("vgg16_bn", 0.1)])[("vgg16_bn", 0.1)]["run_id"] == "p1"


def test_finished_runs_first_and_seed_filter():
    res = table(vgg("run", status="running"), vgg("done"), vgg("seed1", seed=1))
    assert select_runs(res, [("vgg16_bn", 0.1)], requires=Requires(seed=0))[("vgg16_bn", 0.1)]["run_id"] == "done"
    assert select_runs(res, [("vgg16_bn", 0.1)], requires=Requires(seed=1))[("vgg16_bn", 0.1)]["run_id"] == "seed1"


def test_a_run_without_the_needed_probe_is_missing_records():
    res = table(vgg("a", probes="none"))
    with pytest.raises(MissingRecords, match="no 'landscape' probe records"):
        select_runs(res, [("vgg16_bn", 0.1)], experiment="fig4", requires=Requires(probes=("landscape",)))


@pytest.mark.integration
def test_load_runs_filters_match_learning_rates_exactly(tmp_path):
    from bnopt.results import load_runs
    from bnopt.train import train

    from .conftest import smoke_cfg

    for lr in (1e-8, 1e-9):
        train(smoke_cfg(tmp_path, f"optim.lr={lr}", "scale.steps=2", model="dln"), progress=False)
    assert list(load_runs(tmp_path, lr=1e-9).runs.lr) == [1e-9]
    assert len(load_runs(tmp_path, lr=[1e-8, 1e-9])) == 2


def test_a_bf16_run_never_stands_in_for_the_protocols_fp32_run():
    res = table(vgg("bf16", precision="bf16"), vgg("fp32", precision="fp32", status="running"))
    assert select_runs(res, [("vgg16_bn", 0.1)])[("vgg16_bn", 0.1)]["run_id"] == "fp32"
    only_bf16 = table(vgg("bf16", precision="bf16"))
    with pytest.raises(MissingRuns):
        select_runs(only_bf16, [("vgg16_bn", 0.1)])
    assert (
        select_runs(only_bf16, [("vgg16_bn", 0.1)], requires=Requires(precision="bf16"))[("vgg16_bn", 0.1)]["run_id"]
        == "bf16"
    )


def test_among_equal_runs_the_lowest_seed_is_shown():
    res = table(vgg("s2", seed=2), vgg("s0", seed=0), vgg("s1", seed=1))
    assert select_runs(res, [("vgg16_bn", 0.1)])[("vgg16_bn", 0.1)]["run_id"] == "s0"


def test_a_beyond_study_run_of_the_same_seed_stands_in_only_for_its_own_records():
    """B1's `probes=hessian` run trains as Fig 1's run of the seed does; a check that asks for no probe reads
    Fig 1's (whatever the run ids' order), one that asks for hessian records reads B1's."""
    for fig1, b1 in (("a-fig1", "z-b1"), ("z-fig1", "a-b1")):
        res = table(vgg(b1, probes="hessian"), vgg(fig1, probes="paper"))
        res.probes = pd.DataFrame([dict(run_id=b1, step=0, probe="hessian", layer=0, eta=None, metric="ghg", value=1)])
        assert select_runs(res, [("vgg16_bn", 0.1)])[("vgg16_bn", 0.1)]["run_id"] == fig1
        assert (
            select_runs(res, [("vgg16_bn", 0.1)], requires=Requires(probes=("hessian",)))[("vgg16_bn", 0.1)]["run_id"]
            == b1
        )


def test_dln_runs_of_another_loss_normalisation_are_not_selected():
    res = table(dln("old", loss_norm="sum"), dln("new", loss_norm="half_sum"), vgg("v", loss_norm=None))
    assert select_runs(res, [("dln_bn", 1e-6)])[("dln_bn", 1e-6)]["run_id"] == "new"  # the configs' default
    assert select_runs(res, [("dln_bn", 1e-6)], requires=Requires(loss_norm="sum"))[("dln_bn", 1e-6)]["run_id"] == "old"
    assert select_runs(res, [("vgg16_bn", 0.1)])[("vgg16_bn", 0.1)]["run_id"] == "v"  # VGG has no loss_norm


# ------------------------------------------------------------ the command of missing runs (issue 22 item 9)


def landscape_rows(*run_ids) -> pd.DataFrame:
    return pd.DataFrame(
        [dict(run_id=r, step=0, probe="landscape", layer=0, eta=None, metric="beta", value=1.0) for r in run_ids]
    )


def test_the_train_command_always_names_its_scale():
    assert train_command("fig1", "smoke") == "bnopt-train experiment=fig1 scale=smoke"
    # no preset known (or auto): the one a bare `bnopt-train experiment=fig1` trains at here, said explicitly
    for scale in (None, "auto"):
        assert train_command("fig1", scale) == f"bnopt-train experiment=fig1 scale={auto_scale('auto')}"


def test_the_scale_of_a_run_is_the_preset_of_its_numbers():
    assert scale_of(vgg("s")) == "small"
    assert scale_of(vgg("p", scale="paper")) == "small"  # a preset's name over other numbers does not count
    assert scale_of(vgg("t", **scale_numbers("smoke", "vgg"))) == "smoke"
    assert scale_of(vgg("odd", steps=20)) is None
    # the DLN's numbers are paper's and small's: its own preset's name says which
    assert scale_of(dln("d", scale="small")) == "small" and scale_of(dln("d", scale="paper")) == "paper"


def test_runs_lacking_the_records_still_say_at_which_scale_to_train():
    """Ad-hoc `probes=none` runs at the smoke preset's numbers: the figure's records are missing at smoke, and
    the command trains them at smoke (not at the preset a bare command picks)."""
    res = table(vgg("adhoc", probes="none", **scale_numbers("smoke", "vgg")))
    with pytest.raises(MissingRecords) as e:
        select_runs(res, [("vgg16_bn", 0.1)], experiment="fig4", requires=Requires(probes=("landscape",)))
    assert e.value.scale == "smoke" and e.value.command == "bnopt-train experiment=fig4 scale=smoke"
    # a preset whose runs hold the records still wins over one whose runs (of more pairs) lack them
    res = table(
        vgg("small-a", probes="paper"),
        vgg("paper-a", probes="none", steps=15_000, width=1.0),
        vgg("paper-b", model="vgg16", probes="none", steps=15_000, width=1.0),
    )
    res.probes = landscape_rows("small-a")
    chosen = select_runs(res, [("vgg16_bn", 0.1)], requires=Requires(probes=("landscape",)))
    assert chosen[("vgg16_bn", 0.1)]["run_id"] == "small-a"


def test_what_a_run_must_be_is_one_requires_argument():
    """Issue 23 item 3: a study that needs another kind of run adds a field to Requires, not a parameter."""
    import inspect

    assert list(inspect.signature(select_runs).parameters) == [
        "res",
        "pairs",
        "scale",
        "requires",
        "figure",
        "experiment",
    ]
    res = table(vgg("s0"), vgg("s1", seed=1), vgg("big", seed=1, init_scale=10.0))
    wanted = Requires(seed=1, init_scale=10.0)
    assert select_runs(res, [("vgg16_bn", 0.1)], "small", wanted)[("vgg16_bn", 0.1)]["run_id"] == "big"
    assert select_runs(res, [("vgg16_bn", 0.1)], "small", Requires(seed=1))[("vgg16_bn", 0.1)]["run_id"] == "s1"
    assert Requires(seed=1, init_scale=10.0, batch_size=8).describe() == " seed 1 init scale 10 batch 8"


class WandbRun:
    """A W&B API run: its config as W&B returns it (numbers exact: JSON round-trips a float64)."""

    def __init__(self, name: str, lr: float):
        self.name, self.id, self.state, self.summary = name, name, "finished", {"status": "done"}
        self.config = {"model": {"name": "dln_bn", "family": "dln"}, "optim": {"lr": lr}}

    def scan_history(self):
        return iter([{"_step": 0, "train/loss": 1.0}])


def test_wandb_and_local_filters_match_numbers_alike():
    """Issue 23 item 3: the W&B reader filters its runs with the local reader's test (relative 1e-9, as
    select_runs matches learning rates), not 1e-6, which took a run of LR 1.0000005e-3 for LR 1e-3."""
    from bnopt.results import row_matches
    from bnopt.wandb_source import load_wandb

    runs = [WandbRun("exact", 1e-3), WandbRun("near", 1.0000005e-3)]
    api = type("Api", (), {"runs": lambda self, project: runs})()
    assert list(load_wandb("me/p", api=api, lr=1e-3).runs["run_id"]) == ["exact"]
    assert row_matches({"lr": 1e-8, "model": "dln"}, {"lr": [1e-8, 1e-6], "model": "dln"})
    assert not row_matches({"lr": 1.0000005e-3}, {"lr": 1e-3}) and not row_matches({"model": "dln"}, {"model": "x"})
