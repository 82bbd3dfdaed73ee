"""Probes inside real (smoke) training runs: training is bit-identical with and without them, records,
resume, W&B, failure. docs/PROTOCOL.md, Known pitfalls: a probe must leave the training trajectory exactly as it was."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bnopt.probes import GradNormsProbe
from bnopt.probes.landscape import DLN_ETAS, VGG_ETAS
from bnopt.records import METRICS_FILE, PROBES_FILE
from bnopt.results import PROBE_COLUMNS, load_runs
from bnopt.train import train

from .conftest import smoke_cfg
from .wandb_reader import logged_by_step

EXPECTED = {  # model -> ics layers, activation layers, gradnorm layers, etas
    "vgg16_noisy_bn": ([5, 10], [2, 3, 9, 11, 13], list(range(1, 15)), VGG_ETAS),
    "vgg16_bn": ([5, 10], [2, 3, 9, 11, 13], list(range(1, 15)), VGG_ETAS),
    "dln_bn": ([9, 17], [1, 11, 24], list(range(1, 26)), DLN_ETAS),
}


def records(res) -> tuple[pd.DataFrame, pd.DataFrame]:
    m = pd.read_parquet(res.path / METRICS_FILE)
    p = pd.read_parquet(res.path / PROBES_FILE) if (res.path / PROBES_FILE).exists() else None
    return m, p


@pytest.mark.integration
@pytest.mark.parametrize("model", list(EXPECTED))
def test_paper_probes_leave_training_bit_identical(tmp_path, model):
    ref = train(smoke_cfg(tmp_path / "none", "probes=none", model=model), progress=False)
    res = train(smoke_cfg(tmp_path / "paper", "probes=paper", model=model), progress=False)
    assert ref.status == res.status == "done"
    m_ref, p_ref = records(ref)
    m, p = records(res)
    assert p_ref is None
    # every training and evaluation number, bit for bit
    pd.testing.assert_frame_equal(m, m_ref, check_exact=True)
    assert set(m.kind) == {"train", "eval"}

    # the probe records: schema, steps, layers, etas
    assert list(p.columns) == PROBE_COLUMNS
    assert np.isfinite(p.value).all()
    ics_layers, act_layers, grad_layers, etas = EXPECTED[model]
    steps = res.steps_done
    every = 5  # scale=smoke: probe_every 5
    cadence = {"landscape": every, "ics": every, "activations": every, "gradnorms": 1}
    for name, k in cadence.items():
        assert sorted(p[p.probe == name].step.unique()) == list(range(0, steps, k)), name
    land = p[p.probe == "landscape"]
    assert set(land.layer) == {0}
    per_eta = land[land.eta.notna()]
    assert sorted(per_eta.eta.unique()) == pytest.approx(sorted(etas))
    assert set(per_eta.metric) == {"loss", "grad_diff", "beta_eta"}
    assert set(land[land.eta.isna()].metric) == {
        "loss_min",
        "loss_max",
        "grad_diff_min",
        "grad_diff_max",
        "beta",
        "grad_norm",
        "loss0",
    }
    # loss0 is the step's training loss, exactly as metrics.parquet has it (float32 -> float64)
    tr = m[m.kind == "train"].set_index("step").loss
    loss0 = land[land.metric == "loss0"].set_index("step").value
    for step, value in loss0.items():
        assert value == pytest.approx(tr[step], rel=1e-6)
    ics = p[p.probe == "ics"]
    assert sorted(ics.layer.unique()) == ics_layers and set(ics.metric) == {"l2", "cos", "g_norm"}
    assert ics[ics.metric == "cos"].value.between(-1, 1).all()
    act = p[p.probe == "activations"]
    assert sorted(act.layer.unique()) == act_layers
    assert set(act.metric) == {"q01", "q05", "q25", "q50", "q75", "q95", "q99", "mean", "var"}
    gn = p[p.probe == "gradnorms"]
    assert sorted(gn.layer.unique()) == grad_layers and set(gn.metric) == {"grad_norm", "weight_norm"}
    assert p.eta[p.probe != "landscape"].isna().all()

    # load_runs returns them, with the histograms
    runs = load_runs(tmp_path / "paper")
    assert len(runs.probes) == len(p) and set(runs.probes.run_id) == {res.run_id}
    h = runs.histograms(res.run_id)
    k = act_layers[0]
    n_meas = len(range(0, steps, every))
    assert h[f"layer{k}_counts"].shape == (n_meas, 64) and h[f"layer{k}_edges"].shape == (n_meas, 65)
    assert list(h[f"layer{k}_steps"]) == list(range(0, steps, every))
    assert h[f"layer{k}_unit_mean"].shape[0] == n_meas == h[f"layer{k}_unit_var"].shape[0]


def train_cut_and_resumed(tmp_path, monkeypatch, model: str, overrides, cut_at: int):
    """(uninterrupted run, the same run stopped by a KeyboardInterrupt at step `cut_at` and resumed) in
    tmp_path/ref and tmp_path/cut; cut_at should lie after a checkpoint (every 10 steps at smoke scale)."""
    ref = train(smoke_cfg(tmp_path / "ref", *overrides, model=model), progress=False)
    real = GradNormsProbe.measure

    def interrupted(self, ctx):
        if ctx.step == cut_at:
            raise KeyboardInterrupt
        return real(self, ctx)

    monkeypatch.setattr(GradNormsProbe, "measure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(smoke_cfg(tmp_path / "cut", *overrides, model=model), progress=False)
    monkeypatch.setattr(GradNormsProbe, "measure", real)
    return ref, train(smoke_cfg(tmp_path / "cut", *overrides, model=model), progress=False)


@pytest.mark.integration
def test_probe_records_survive_a_resume(tmp_path, monkeypatch):
    ref, res = train_cut_and_resumed(tmp_path, monkeypatch, "vgg16_noisy_bn", ["probes=paper"], cut_at=17)
    assert res.status == "done"
    m_ref, p_ref = records(ref)
    m, p = records(res)
    pd.testing.assert_frame_equal(m, m_ref, check_exact=True)
    pd.testing.assert_frame_equal(p, p_ref, check_exact=True)
    h_ref = load_runs(tmp_path / "ref").histograms(ref.run_id)
    h = load_runs(tmp_path / "cut").histograms(res.run_id)
    assert h.keys() == h_ref.keys()
    for key in h:
        np.testing.assert_array_equal(h[key], h_ref[key], err_msg=key)


@pytest.mark.integration
def test_a_probe_failing_midway_is_nan_and_training_goes_on_unchanged(tmp_path, monkeypatch):
    import bnopt.probes.ics as ics_module

    def broken(ctx):  # fails after the real optimiser step moved the weights and the optimiser state
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(ics_module, "forward_loss", broken)
    ref = train(smoke_cfg(tmp_path / "none", "probes=none", "optim.momentum=0.9"), progress=False)
    with pytest.warns(RuntimeWarning, match="probe ics failed at step"):
        res = train(smoke_cfg(tmp_path / "ics", "probes=ics", "optim.momentum=0.9"), progress=False)
    assert res.status == "done"
    m_ref, _ = records(ref)
    m, p = records(res)
    pd.testing.assert_frame_equal(m, m_ref, check_exact=True)
    assert set(p.probe) == {"ics"} and p.value.isna().all()
    assert len(p) == len(range(0, 30, 5)) * 2 * 3


@pytest.mark.e2e
def test_probes_mirror_to_wandb(tmp_path, monkeypatch):
    """What the probes hand to the W&B mirror at their steps (recorded at the mirror, so the check does not
    depend on how W&B orders steps)."""
    import wandb

    from bnopt.wandb_mirror import WandbMirror

    sent = []
    monkeypatch.setattr(WandbMirror, "log", lambda self, data, step: sent.append((step, data)))
    res = train(
        smoke_cfg(tmp_path, "probes=paper", "logger=wandb", "logger.mode=offline", "scale.steps=6"), progress=False
    )
    _, p = records(res)
    at5 = {}
    for step, data in sent:
        if step == 5:
            at5.update(data)
    land = p[(p.probe == "landscape") & (p.step == 5)].set_index("metric").value
    assert at5["landscape/beta"] == land["beta"]
    assert at5["landscape/loss_range"] == land["loss_max"] - land["loss_min"]
    assert at5["landscape/grad_diff_max"] == land["grad_diff_max"]
    for key in (
        "ics/layer5/l2",
        "ics/layer10/cos",
        "activations/layer2/q50",
        "gradnorms/layer3",
        "gradnorms/layer14/weight",
    ):
        assert math.isfinite(at5[key]), key
    hist = at5["activations/layer13/hist"]
    assert isinstance(hist, wandb.Histogram)
    assert len(hist.histogram) == 64 and len(hist.bins) == 65
    gradnorm_steps = sorted(step for step, data in sent if "gradnorms/layer1" in data)
    assert gradnorm_steps == list(range(6))


@pytest.mark.e2e
def test_probe_logging_keeps_every_train_row_in_wandb(tmp_path):
    """Probe payloads reach the offline W&B file together with every step's training row."""
    res = train(
        smoke_cfg(tmp_path, "probes=paper", "logger=wandb", "logger.mode=offline", "scale.steps=6"), progress=False
    )
    logged = logged_by_step(res.path)
    for step in range(6):
        assert "train/loss" in logged.get(step, {}), step
        assert "gradnorms/layer1" in logged[step], step
    _, p = records(res)
    land = p[(p.probe == "landscape") & (p.step == 5)].set_index("metric").value
    assert logged[5]["landscape/beta"] == pytest.approx(land["beta"])
    assert logged[5]["activations/layer13/hist/_type"] == "histogram"
