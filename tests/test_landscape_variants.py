"""The landscape probe's issue-25 settings: dtype (float32 / float64) and norm_params (with / without BN's
gamma and beta in the direction), against closed forms on tiny deep linear networks, and their hygiene."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from bnopt.config import resolve
from bnopt.losses import regression_loss
from bnopt.models import set_noise_generator
from bnopt.models.dln import DLN
from bnopt.models.norms import norms_in_fp32
from bnopt.probes import LandscapeProbe, ProbeContext, build_probes, check_config
from bnopt.records import METRICS_FILE, PROBES_FILE
from bnopt.train import train

from .conftest import make_cfg, smoke_cfg
from .test_probes import assert_same_state, by_key, training_state

F64 = torch.float64
NOISE = {"n_mu": 0.5, "n_sigma": 1.25, "r_mu": 0.1, "r_sigma": 0.1}
EPS = 1e-5


class SumSquares:
    """The DLN task's loss (model.loss_norm sum) without the task's data."""

    def loss(self, out, y):
        return regression_loss(out, y, "sum"), {}


def dln_step(norm="none", depth=4, dim=3, n=8, target_scale=1.0, seed=0, warm=False):
    """A float32 DLN after one training forward/backward on a fixed batch (`warm`: one SGD step with
    momentum before, so running statistics and optimiser state have moved). Returns model, opt, gen, ctx."""
    torch.manual_seed(seed)
    model = DLN(norm, depth, dim, norm_cfg=OmegaConf.create({"noise": NOISE, "eps": EPS})).train()
    g = torch.Generator().manual_seed(seed + 10)
    with torch.no_grad():  # gamma and beta away from 1 and 0, so that moving them or not matters
        for block in model.blocks:
            for name, p in block.norm.named_parameters():
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.3 * torch.randn(p.shape, generator=g))
    gen = torch.Generator().manual_seed(seed + 1)
    set_noise_generator(model, gen)
    x = torch.randn(n, dim, generator=g)
    y = target_scale * torch.randn(n, dim, generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    for step in range(2 if warm else 1):
        loss, _ = SumSquares().loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if step == 0 and warm:
            opt.step()
    return model, opt, gen, ProbeContext(3, model, x, y, loss, opt, SumSquares())


# ------------------------------------------------------------------------------- hand computations


def linear_product(ws, dim: int = 3):
    """W_K ... W_1 (the identity for no matrices)."""
    prod = torch.eye(dim, dtype=F64)
    for w in ws:
        prod = w @ prod
    return prod


def linear_loss(ws, x, y):
    return (x @ linear_product(ws).T - y).pow(2).sum()


def linear_grads(ws, x, y):
    """dL/dW_k = (W_K..W_k+1)^T dL/dP (W_k-1..W_1)^T, with dL/dP = 2 (X P^T - Y)^T X."""
    dp = 2 * (x @ linear_product(ws).T - y).T @ x
    return [linear_product(ws[k + 1 :]).T @ dp @ linear_product(ws[:k]).T for k in range(len(ws))]


def bn_loss(ws, gammas, betas, x, y):
    """The BN DLN written out: h <- W h, then on hidden layers h <- (h - mean) / sqrt(var + eps) gamma + beta
    with the batch's biased variance (what BatchNorm1d does in train mode)."""
    h = x
    for k, w in enumerate(ws):
        h = h @ w.T
        if k < len(ws) - 1:
            mean, var = h.mean(0), h.var(0, unbiased=False)
            h = (h - mean) / torch.sqrt(var + EPS) * gammas[k] + betas[k]
    return (h - y).pow(2).sum()


def float64_weights(model) -> list[torch.Tensor]:
    return [b.layer.weight.detach().to(F64) for b in model.blocks]


def float64_bn_params(model) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """gamma and beta of the hidden layers' BatchNorm (the output layer has none)."""
    norms = [b.norm for b in model.blocks[:-1]]
    return [m.weight.detach().to(F64) for m in norms], [m.bias.detach().to(F64) for m in norms]


def measure(ctx, etas, **settings) -> dict:
    return by_key(LandscapeProbe(1, etas, **settings)(ctx))


# ------------------------------------------------------------------------------------------- float64


def test_float64_matches_the_linear_closed_form():
    model, _, _, ctx = dln_step("none")
    ws = float64_weights(model)
    x, y = ctx.inputs.to(F64), ctx.targets.to(F64)
    g = linear_grads(ws, x, y)
    g_norm = math.sqrt(sum(float(t.pow(2).sum()) for t in g))
    etas = [1e-3, 1e-2, 3e-2]
    v = measure(ctx, etas, dtype="float64")
    for eta in etas:
        moved = [w - eta * gk for w, gk in zip(ws, g, strict=True)]
        assert v[(0, eta, "loss")] == pytest.approx(linear_loss(moved, x, y).item(), rel=1e-12)
        diff = [a - b for a, b in zip(linear_grads(moved, x, y), g, strict=True)]
        grad_diff = math.sqrt(sum(float(t.pow(2).sum()) for t in diff))
        assert v[(0, eta, "grad_diff")] == pytest.approx(grad_diff, rel=1e-9)
        assert v[(0, eta, "beta_eta")] == pytest.approx(grad_diff / (eta * g_norm), rel=1e-9)
    assert v[(0, None, "grad_norm")] == pytest.approx(g_norm, rel=1e-12)
    assert v[(0, None, "loss0")] == ctx.loss.item()  # the step's training loss, as in float32
    # float32 (the default) is this model as trained: its loss at eta = 1e-3 is only float32-accurate
    v32 = measure(ctx, etas)
    assert v32 == measure(ctx, etas, dtype="float32")
    assert v32[(0, 1e-3, "loss")] == pytest.approx(v[(0, 1e-3, "loss")], rel=1e-5)


def test_float64_resolves_a_loss_change_that_float32_rounds_away():
    """Loss ~1e4 (as the standard DLN's) and steps so small that the loss moves by far less than one
    float32 spacing: float32 sees one value, float64 the change eta ||g||^2 of the closed form."""
    model, _, _, ctx = dln_step("none", target_scale=30.0)
    ws = float64_weights(model)
    x, y = ctx.inputs.to(F64), ctx.targets.to(F64)
    g = linear_grads(ws, x, y)
    etas = [1e-11, 2e-11, 4e-11]
    hand = [linear_loss([w - eta * gk for w, gk in zip(ws, g, strict=True)], x, y).item() for eta in etas]
    assert 1e3 < hand[0] < 1e5
    spacing32 = float(np.spacing(np.float32(hand[0])))  # the gap between float32 numbers near the loss
    assert spacing32 > 1e-4 and 0 < hand[0] - hand[-1] < 0.1 * spacing32

    v32 = measure(ctx, etas)
    assert v32[(0, None, "loss_max")] - v32[(0, None, "loss_min")] == 0.0
    v64 = measure(ctx, etas, dtype="float64")
    for eta, lo in zip(etas, hand, strict=True):
        assert v64[(0, eta, "loss")] == pytest.approx(lo, rel=1e-13)
    assert v64[(0, None, "loss_max")] - v64[(0, None, "loss_min")] == pytest.approx(hand[0] - hand[-1], rel=1e-4)
    # and the gradient's change: along g of a (locally) quadratic loss, beta_eta is the same at every eta
    assert v64[(0, 1e-11, "beta_eta")] == pytest.approx(v64[(0, 4e-11, "beta_eta")], rel=1e-5)
    assert v32[(0, 1e-11, "grad_diff")] == 0.0


@pytest.mark.parametrize("norm", ["batch", "noisy_batch"])
@pytest.mark.parametrize("norm_params", [True, False])
def test_float64_leaves_no_trace_and_replays_the_steps_noise(norm, norm_params):
    model, opt, gen, ctx = dln_step(norm, warm=True)
    before = training_state(model, opt, gen)
    probe = LandscapeProbe(1, [1e-9, 1e-3], dtype="float64", norm_params=norm_params)
    v = by_key(probe(ctx))
    # parameters, .grad, BN running statistics, noise (values and identity), RNGs, optimiser state: untouched
    assert_same_state(before, model, opt, gen)
    assert all(p.dtype == torch.float32 for p in model.parameters()) and model.training
    # the function the step saw (same batch statistics, same noise): at a negligible step the float64
    # loss is the training loss and its gradient the training gradient, to float32 accuracy
    assert v[(0, 1e-9, "loss")] == pytest.approx(ctx.loss.item(), rel=1e-6)
    v32 = measure(ctx, [1e-9, 1e-3], norm_params=norm_params)
    assert v[(0, None, "grad_norm")] == pytest.approx(v32[(0, None, "grad_norm")], rel=1e-5)
    assert v[(0, 1e-3, "loss")] == pytest.approx(v32[(0, 1e-3, "loss")], rel=1e-5)
    assert v[(0, 1e-9, "grad_diff")] < 1e-5 * v[(0, None, "grad_norm")]  # fresh noise: ~ the norm itself


def test_float64_ignores_the_bf16_casts_of_the_norm_layers():
    """bf16 training makes the norm layers cast their input to float32 (norms_in_fp32); the float64 copy
    drops those hooks, so the measurement is the same as on a model that never had them."""
    etas = [1e-3, 1e-2]
    plain = measure(dln_step("batch")[3], etas, dtype="float64")
    model, _, _, ctx = dln_step("batch")
    norms_in_fp32(model)
    assert measure(ctx, etas, dtype="float64") == plain


def train_weights(probes, steps=4, norm="noisy_batch") -> list[torch.Tensor]:
    """Weights after `steps` SGD steps (momentum) of a DLN with the probes called between backward and
    update, as train.py does."""
    model, opt, gen, ctx = dln_step(norm)
    x, y = ctx.inputs, ctx.targets
    for step in range(steps):
        loss, _ = SumSquares().loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for probe in probes:
            probe(ProbeContext(step, model, x, y, loss, opt, SumSquares()))
        opt.step()
    return [t.detach().clone() for t in [*model.parameters(), *model.buffers()]] + [gen.get_state()]


def test_training_with_the_float64_probe_is_bit_identical():
    probes = [
        LandscapeProbe(1, [1e-4, 1e-3], dtype="float64"),
        LandscapeProbe(1, [1e-4, 1e-3], direction="random", dtype="float64", norm_params=False),
    ]
    with_probes, without = train_weights(probes), train_weights([])
    assert len(with_probes) == len(without)
    assert all(torch.equal(a, b) for a, b in zip(with_probes, without, strict=True))


# --------------------------------------------------------------------------------------- norm_params


@pytest.mark.parametrize("dtype,rel", [("float64", 1e-10), ("float32", 1e-4)])
def test_without_norm_params_gamma_and_beta_stay_at_w(dtype, rel):
    model, _, _, ctx = dln_step("batch")
    ws, (gammas, betas) = float64_weights(model), float64_bn_params(model)
    x, y = ctx.inputs.to(F64), ctx.targets.to(F64)
    leaves = [t.clone().requires_grad_() for t in (*ws, *gammas, *betas)]
    k = len(ws)
    grads = torch.autograd.grad(bn_loss(leaves[:k], leaves[k : 2 * k - 1], leaves[2 * k - 1 :], x, y), leaves)
    g_w, g_gamma, g_beta = grads[:k], grads[k : 2 * k - 1], grads[2 * k - 1 :]
    etas = [1e-3, 1e-2]
    v = measure(ctx, etas, dtype=dtype, norm_params=False)
    v_all = measure(ctx, etas, dtype=dtype, norm_params=True)
    w_norm = math.sqrt(sum(float(t.pow(2).sum()) for t in g_w))
    all_norm = math.sqrt(sum(float(t.pow(2).sum()) for t in grads))
    assert v[(0, None, "grad_norm")] == pytest.approx(w_norm, rel=rel)  # the weights' gradient only
    assert v_all[(0, None, "grad_norm")] == pytest.approx(all_norm, rel=rel)
    assert all_norm > 1.01 * w_norm
    for eta in etas:
        step = [w - eta * gk for w, gk in zip(ws, g_w, strict=True)]
        fixed = bn_loss(step, gammas, betas, x, y).item()
        moved = bn_loss(
            step,
            [t - eta * gt for t, gt in zip(gammas, g_gamma, strict=True)],
            [t - eta * gt for t, gt in zip(betas, g_beta, strict=True)],
            x,
            y,
        ).item()
        assert abs(fixed - moved) > 100 * rel * abs(fixed)  # the two settings measure different things
        assert v[(0, eta, "loss")] == pytest.approx(fixed, rel=rel)
        assert v_all[(0, eta, "loss")] == pytest.approx(moved, rel=rel)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("direction", ["gradient", "random"])
def test_norm_params_change_nothing_without_norm_layers(dtype, direction):
    ctx = dln_step("none")[3]
    settings = dict(direction=direction, seed=4, dtype=dtype)
    with_norms = LandscapeProbe(1, [1e-3, 1e-2], norm_params=True, **settings)(ctx)
    assert LandscapeProbe(1, [1e-3, 1e-2], norm_params=False, **settings)(ctx) == with_norms


# ------------------------------------------------------------------------------------------- configs


def landscape_cfg(*over: str):
    return resolve(make_cfg(["model=dln_bn", "probes=landscape", "scale=smoke", "logger=none", *over]))


def test_the_settings_reach_the_probe():
    model = DLN("batch", 4, 3)
    (default,) = build_probes(landscape_cfg(), model)
    assert (default.dtype, default.norm_params) == ("float32", True)
    cfg = landscape_cfg("probes.landscape.dtype=float64", "probes.landscape.norm_params=false")
    check_config(cfg)
    (probe,) = build_probes(cfg, model)
    assert (probe.dtype, probe.norm_params) == ("float64", False)


@pytest.mark.parametrize(
    "override,message",
    [
        ("probes.landscape.dtype=float16", "probes.landscape.dtype must be one of float32, float64, not 'float16'"),
        ("probes.landscape.dtype=64", "probes.landscape.dtype must be one of float32, float64, not 64"),
        ("probes.landscape.norm_params=maybe", "probes.landscape.norm_params must be true or false, not 'maybe'"),
        ("probes.landscape.norm_params=1", "probes.landscape.norm_params must be true or false, not 1"),
    ],
)
def test_bad_settings_are_one_line_errors(override, message):
    with pytest.raises(ValueError) as e:
        check_config(landscape_cfg(override))
    assert str(e.value) == message


def test_the_probe_itself_refuses_bad_settings():
    with pytest.raises(ValueError, match="landscape dtype must be one of float32, float64, not 'half'"):
        LandscapeProbe(1, [0.1], dtype="half")
    with pytest.raises(ValueError, match="landscape norm_params must be true or false, not 'no'"):
        LandscapeProbe(1, [0.1], norm_params="no")


# --------------------------------------------------------------------------------------- in training


@pytest.mark.integration
def test_a_smoke_dln_run_with_the_float64_probe_trains_bit_identically(tmp_path):
    ref = train(smoke_cfg(tmp_path / "none", "probes=none", model="dln_bn"), progress=False)
    over = ("probes=landscape", "probes.landscape.dtype=float64", "probes.landscape.norm_params=false")
    res = train(smoke_cfg(tmp_path / "f64", *over, model="dln_bn"), progress=False)
    assert ref.status == res.status == "done"
    m_ref, m = (pd.read_parquet(r.path / METRICS_FILE) for r in (ref, res))
    pd.testing.assert_frame_equal(m, m_ref, check_exact=True)
    land = pd.read_parquet(res.path / PROBES_FILE)
    assert set(land.probe) == {"landscape"} and land.value.notna().all()
