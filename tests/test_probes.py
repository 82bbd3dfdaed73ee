"""Probes against closed forms, and the no-trace hygiene of every probe (docs/PROTOCOL.md, Protocol and Pitfalls)."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from bnopt.config import resolve
from bnopt.models import Block, build_model, set_noise_generator
from bnopt.models.norms import noisy_layers
from bnopt.probes import (
    ActivationsProbe,
    GradNormsProbe,
    ICSProbe,
    LandscapeProbe,
    ProbeContext,
    build_probes,
    check_config,
    listen,
    probe_cadence,
)
from bnopt.probes.activations import (
    activation_stats,
    coarsen,
    histogram,
    layer_summary,
    robust_edges,
    sorted_histogram,
    sorted_quantiles,
    unit_moments,
)
from bnopt.probes.landscape import DLN_ETAS, VGG_ETAS
from bnopt.tasks import build_task

from .conftest import make_cfg

F64 = torch.float64


# ------------------------------------------------------------------------------ tiny models and tasks


class Quadratic(nn.Module):
    """L(w) = 0.5 w^T H w (the input is ignored)."""

    def __init__(self, h: torch.Tensor, w: torch.Tensor):
        super().__init__()
        self.register_buffer("h", h)
        self.w = nn.Parameter(w.clone())

    def forward(self, x):
        return 0.5 * self.w @ self.h @ self.w


class IdentityLoss:
    def loss(self, out, y):
        return out, {}


class SquaredError:
    def loss(self, out, y):
        return 0.5 * (out - y).pow(2).sum(), {}


class LinearNet(nn.Module):
    """y = W_K ... W_1 x with numbered blocks, as the probes address VGG and the DLN."""

    family = "dln"

    def __init__(self, dims: list[int], seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        blocks = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            lin = nn.Linear(a, b, bias=False).to(F64)
            with torch.no_grad():
                lin.weight.copy_(torch.randn(b, a, generator=g, dtype=F64) / math.sqrt(a))
            blocks.append(Block(lin, nn.Identity(), nn.Identity()))
        self.net = nn.Sequential(*blocks)
        self.blocks = blocks

    def forward(self, x):
        return self.net(x)

    def layer(self, k):
        return self.blocks[k - 1]

    @property
    def num_layers(self):
        return len(self.blocks)


def quadratic_setup(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=F64)
    h = a @ a.T + 0.5 * torch.eye(n, dtype=F64)
    w = torch.randn(n, generator=g, dtype=F64)
    model = Quadratic(h, w).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(None)
    loss.backward()
    ctx = ProbeContext(7, model, torch.zeros(1), torch.zeros(1), loss, opt, IdentityLoss())
    return model, h, ctx


def by_key(rows):
    return {(r["layer"], None if math.isnan(r["eta"]) else r["eta"], r["metric"]): r["value"] for r in rows}


# ---------------------------------------------------------------------------------------- landscape


def test_landscape_matches_the_quadratic_closed_form():
    model, h, ctx = quadratic_setup()
    w, g = model.w.detach().clone(), model.w.grad.clone()
    etas = [0.05, 0.1, 0.2, 0.4]
    rows = LandscapeProbe(1, etas)(ctx)
    assert {tuple(r) for r in rows} == {("step", "probe", "layer", "eta", "metric", "value")}
    assert all(r["step"] == 7 and r["probe"] == "landscape" and r["layer"] == 0 for r in rows)
    v = by_key(rows)
    hg = torch.linalg.vector_norm(h @ g).item()
    gn = torch.linalg.vector_norm(g).item()
    losses = []
    for eta in etas:
        we = w - eta * g
        losses.append((0.5 * we @ h @ we).item())
        assert v[(0, eta, "loss")] == pytest.approx(losses[-1], rel=1e-6, abs=1e-9)
        assert v[(0, eta, "grad_diff")] == pytest.approx(eta * hg, rel=1e-6)  # ||H(w - eta g) - Hw||
        assert v[(0, eta, "beta_eta")] == pytest.approx(hg / gn, rel=1e-6)
    assert v[(0, None, "beta")] == pytest.approx(hg / gn, rel=1e-6)
    assert v[(0, None, "loss_min")] == pytest.approx(min(losses), rel=1e-6)
    assert v[(0, None, "loss_max")] == pytest.approx(max(losses), rel=1e-6)
    assert v[(0, None, "grad_diff_min")] == pytest.approx(0.05 * hg, rel=1e-6)
    assert v[(0, None, "grad_diff_max")] == pytest.approx(0.4 * hg, rel=1e-6)
    assert v[(0, None, "grad_norm")] == pytest.approx(gn, rel=1e-9)
    assert v[(0, None, "loss0")] == pytest.approx((0.5 * w @ h @ w).item(), rel=1e-12)
    assert len(rows) == 3 * len(etas) + 7
    # no trace: weights and .grad bit-identical
    assert torch.equal(model.w.detach(), w) and torch.equal(model.w.grad, g)


def test_landscape_random_direction_has_the_gradient_norm_and_its_own_generator():
    model, h, ctx = quadratic_setup(seed=3)
    g = model.w.grad.clone()
    rng = torch.get_rng_state()
    probe = LandscapeProbe(1, [0.1, 0.3], direction="random", seed=5)
    v = by_key(probe(ctx))
    assert torch.equal(torch.get_rng_state(), rng)
    # along a direction d with ||d|| = ||g||: grad_diff = eta ||H d||, so beta_eta is the same for every eta
    assert v[(0, 0.1, "beta_eta")] == pytest.approx(v[(0, 0.3, "beta_eta")], rel=1e-6)
    assert v[(0, 0.3, "grad_diff")] == pytest.approx(3 * v[(0, 0.1, "grad_diff")], rel=1e-6)
    d = torch.randn(6, generator=torch.Generator().manual_seed(5), dtype=F64)
    d = d * torch.linalg.vector_norm(g) / torch.linalg.vector_norm(d)
    assert v[(0, 0.1, "grad_diff")] == pytest.approx(0.1 * torch.linalg.vector_norm(h @ d).item(), rel=1e-6)
    # the generator state survives a checkpoint: a restored probe draws the same next direction
    state = probe.state_dict()
    again = LandscapeProbe(1, [0.1, 0.3], direction="random", seed=5)
    again.load_state_dict(torch.load(io.BytesIO(_saved(state)), weights_only=False))
    assert by_key(again(ctx)) == by_key(probe(ctx))


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_default_etas():
    assert VGG_ETAS == (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
    assert DLN_ETAS[0] == 1e-8 and DLN_ETAS[-1] == 3e-5 and len(DLN_ETAS) == 8
    ratios = np.array(DLN_ETAS[1:]) / np.array(DLN_ETAS[:-1])
    np.testing.assert_allclose(ratios, ratios.mean(), rtol=2e-2)


# ---------------------------------------------------------------------------------------------- ICS


def manual_grads(ws, x, y):
    """Gradients of 0.5 ||W3 W2 W1 X - Y||^2 (X: d0 x n columns) by hand."""
    w1, w2, w3 = ws
    h1 = w1 @ x
    h2 = w2 @ h1
    r = w3 @ h2 - y
    return [w2.T @ w3.T @ r @ x.T, w3.T @ r @ h1.T, r @ h2.T]


@pytest.mark.parametrize("momentum,wd", [(0.0, 0.0), (0.9, 1e-2)])
def test_ics_matches_hand_computed_gradients(momentum, wd):
    torch.manual_seed(0)
    model = LinearNet([4, 5, 3, 2]).train()
    x, y = torch.randn(16, 4, dtype=F64), torch.randn(16, 2, dtype=F64)
    lr = 0.05
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=wd)
    task = SquaredError()
    for _ in range(2):  # a step first, so that momentum buffers exist
        opt.zero_grad()
        task.loss(model(x), y)[0].backward()
        if _ == 0:
            opt.step()
    ws = [model.layer(k).layer.weight.detach().clone() for k in (1, 2, 3)]
    grads = manual_grads(ws, x.T, y.T)
    for k in (1, 2, 3):
        torch.testing.assert_close(model.layer(k).layer.weight.grad, grads[k - 1], rtol=1e-10, atol=1e-12)
    # W^{t+1} of torch's SGD: d = g + wd W; buf = mu buf + d (or d at the first step); W - lr buf
    bufs = [opt.state[model.layer(k).layer.weight].get("momentum_buffer") for k in (1, 2, 3)]
    new = []
    for w, g, b in zip(ws, grads, bufs, strict=True):
        d = g + wd * w
        step = d if b is None else momentum * b + d
        new.append(w - lr * step)
    expected = {
        2: manual_grads([new[0], ws[1], ws[2]], x.T, y.T)[1],
        3: manual_grads([new[0], new[1], ws[2]], x.T, y.T)[2],
    }
    opt_state = {p: {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()}
    train_grads = [model.layer(k).layer.weight.grad.clone() for k in (1, 2, 3)]
    loss = task.loss(model(x), y)[0]
    v = by_key(ICSProbe(1, [1, 2, 3])(ProbeContext(0, model, x, y, loss, opt, task)))
    for k in (2, 3):
        gk, gp = grads[k - 1], expected[k]
        assert v[(k, None, "l2")] == pytest.approx(torch.linalg.vector_norm(gk - gp).item(), rel=1e-6)
        cos = (gk * gp).sum() / (torch.linalg.vector_norm(gk) * torch.linalg.vector_norm(gp))
        assert v[(k, None, "cos")] == pytest.approx(cos.item(), rel=1e-6, abs=1e-9)
        assert v[(k, None, "g_norm")] == pytest.approx(torch.linalg.vector_norm(gk).item(), rel=1e-9)
        assert v[(k, None, "l2")] > 1e-3  # the shift is real
    assert v[(1, None, "l2")] == 0.0 and v[(1, None, "cos")] == 1.0  # nothing precedes layer #1
    # no trace: weights, grads, optimiser state
    for k in (1, 2, 3):
        w = model.layer(k).layer.weight
        assert torch.equal(w.detach(), ws[k - 1]) and torch.equal(w.grad, train_grads[k - 1])
    assert set(opt.state) == set(opt_state)
    for p, s in opt_state.items():
        assert all(torch.equal(opt.state[p][k], val) for k, val in s.items())


def test_ics_single_layer_model_has_no_shift():
    model = LinearNet([3, 2]).train()
    x, y = torch.randn(8, 3, dtype=F64), torch.randn(8, 2, dtype=F64)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = SquaredError().loss(model(x), y)[0]
    loss.backward()
    v = by_key(ICSProbe(1, [1])(ProbeContext(0, model, x, y, loss, opt, SquaredError())))
    assert v[(1, None, "l2")] == 0.0 and v[(1, None, "cos")] == 1.0
    g = model.layer(1).layer.weight.grad
    assert v[(1, None, "g_norm")] == pytest.approx(torch.linalg.vector_norm(g).item())


# -------------------------------------------------------------------------------------- activations


def test_activation_stats_match_numpy():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 6, 5, 5, generator=g) * torch.arange(1, 7).view(1, 6, 1, 1) + 0.3
    s = activation_stats(a)
    x = a.numpy().ravel()
    q = np.quantile(x, [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
    got = [s[k] for k in ("q01", "q05", "q25", "q50", "q75", "q95", "q99")]
    np.testing.assert_allclose(got, q, rtol=1e-6)
    assert s["mean"] == pytest.approx(x.astype(np.float64).mean(), rel=1e-10)
    assert s["var"] == pytest.approx(x.astype(np.float64).var(), rel=1e-10)
    mean, var = unit_moments(a)
    per_unit = a.numpy().astype(np.float64).transpose(1, 0, 2, 3).reshape(6, -1)
    np.testing.assert_allclose(mean, per_unit.mean(1), rtol=1e-10)
    np.testing.assert_allclose(var, per_unit.var(1), rtol=1e-10)


def test_the_gpu_rule_reads_numpys_quantiles_and_histogram_off_sorted_values():
    """On a GPU the activations are sorted on the device and the quantiles and histogram read off the
    sorted values; numpy's numbers, including values exactly on bin edges and outside them."""
    g = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randn(5000, generator=g) * 3, torch.arange(-12, 13).float().repeat(40)])
    xs = torch.sort(x).values
    qs = [0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999, 0.0, 1.0]
    np.testing.assert_allclose(sorted_quantiles(xs, qs), np.quantile(x.numpy(), qs), rtol=1e-6, atol=1e-7)
    edges = np.linspace(-10, 10, 21)  # integers sit on the edges; some values lie outside
    counts, under, over = sorted_histogram(xs, edges)
    want, w_under, w_over = histogram(x.numpy(), edges)
    np.testing.assert_array_equal(counts, want)
    assert (under, over) == (w_under, w_over) and under > 0 and over > 0
    assert counts.sum() + under + over == x.numel()
    np.testing.assert_array_equal(robust_edges(-1.0, 1.0, 4), [-2.0, -1.0, 0.0, 1.0, 2.0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_layer_summary_on_the_gpu_gives_the_cpus_numbers():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(32, 8, 6, 6, generator=g) * torch.arange(1, 9).view(1, 8, 1, 1)
    cpu, gpu = layer_summary(a, 64), layer_summary(a.cuda(), 64)
    for k in cpu[0]:
        assert gpu[0][k] == pytest.approx(cpu[0][k], rel=1e-5, abs=1e-6), k
    np.testing.assert_allclose(gpu[1], cpu[1], rtol=1e-6)
    assert abs(gpu[2] - cpu[2]).sum() <= 2 and gpu[2].sum() + gpu[3] + gpu[4] == a.numel()


def test_coarsen_keeps_counts_and_edges():
    counts, edges = np.arange(100), np.linspace(0, 1, 101)
    c, e = coarsen(counts, edges, 64)
    assert len(c) <= 64 and len(e) == len(c) + 1 and c.sum() == counts.sum() and e[0] == 0 and e[-1] == 1


def smoke_model(name="vgg16_noisy_bn", *extra, width=None):
    over = [f"model={name}", "logger=none", "scale=smoke"]
    over += [] if name.startswith("dln") else ["data=synthetic"]
    if width is not None:
        over.append(f"model.width={width}")
    cfg = resolve(make_cfg([*over, *extra]))
    torch.manual_seed(0)
    model = build_model(cfg.model)
    if cfg.model.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    set_noise_generator(model, torch.Generator().manual_seed(1))
    return cfg, model.train()


def test_activations_hook_the_norm_output_before_the_relu():
    cfg, model = smoke_model("vgg16", width=0.25)  # norm none: the hooked value is the conv output
    x = torch.randn(4, 3, 32, 32)
    probe = ActivationsProbe.for_model(1, model, [3, 11], bins=16)
    captured = probe.capture(ProbeContext(0, model, x, None, None, None, None))
    assert captured[3].shape == (4, 128 * 0.25, 16, 16) and captured[11].shape[1] == 512 * 0.25
    assert (captured[3] < 0).any()  # taken before the in-place ReLU


def test_activations_rows_histograms_and_resume_state():
    cfg, model = smoke_model("vgg16_noisy_bn")
    task = build_task(cfg, torch.device("cpu"))
    x, y = task.batch(0)
    model(x)  # the step's training forward draws the noise the probe replays
    probe = ActivationsProbe.for_model(1, model, None, bins=64)
    assert probe.layers == [2, 3, 9, 11, 13]
    rows = probe(ProbeContext(0, model, x, y, None, None, task))
    v = by_key(rows)
    assert len(rows) == 5 * 9 and all(math.isfinite(r["value"]) for r in rows)
    assert v[(2, None, "q01")] < v[(2, None, "q50")] < v[(2, None, "q99")]
    probe(ProbeContext(5, model, x, y, None, None, task))
    arr = probe.arrays()
    n2 = x.shape[0] * 4 * 32 * 32  # layer #2 at width 1/16: 4 channels, 32x32
    assert arr["layer2_edges"].shape == (2, 65) and arr["layer2_counts"].shape == (2, 64)
    assert list(arr["layer2_steps"]) == [0, 5]
    assert arr["layer2_unit_mean"].shape == (2, 4) and arr["layer2_unit_var"].shape == (2, 4)
    total = arr["layer2_counts"].sum(1) + arr["layer2_underflow"] + arr["layer2_overflow"]
    assert list(total) == [n2, n2]
    np.testing.assert_array_equal(arr["layer2_counts"][0], arr["layer2_counts"][1])  # same batch, same noise
    assert v[(2, None, "mean")] == pytest.approx(arr["layer2_unit_mean"][0].mean(), rel=1e-6)
    again = ActivationsProbe.for_model(1, model, None, bins=64)
    again.load_state_dict(torch.load(io.BytesIO(_saved(probe.state_dict())), weights_only=False))
    for k, a in again.arrays().items():
        np.testing.assert_array_equal(a, arr[k])


class OneNormLayer(nn.Module):
    """The smallest model the activations probe reads: layer #1 with a `norm` whose output it is handed."""

    def __init__(self):
        super().__init__()
        self.block = nn.Module()
        self.block.norm = nn.Identity()

    def layer(self, k):
        return self.block


def grown_activations(probe: ActivationsProbe, scales=(1.0, 10.0, 100.0)) -> dict:
    """Measure a layer whose activations grow (scale s: N(s/2, s^2)) from one measurement to the next."""
    model = OneNormLayer()
    g = torch.Generator().manual_seed(0)
    for step, s in enumerate(scales):
        a = s * torch.randn(32, 8, 8, 8, generator=g) + s / 2
        probe(ProbeContext(step, model, None, None, None, None, None, heard={model.block.norm: a}))
    return probe.arrays()


def outside_fractions(arr: dict, k: int = 1) -> np.ndarray:
    out = arr[f"layer{k}_underflow"] + arr[f"layer{k}_overflow"]
    return out / (arr[f"layer{k}_counts"].sum(1) + out)


def test_per_measurement_edges_follow_a_growing_layer():
    """Issue 11: with the first measurement's edges a layer that grows 100x leaves them (most values in
    no bin); each measurement's own edges keep at most ~0.2% of its values outside."""
    arr = grown_activations(ActivationsProbe(1, [1], bins=64))
    assert arr["layer1_edges"].shape == (3, 65) and arr["layer1_counts"].shape == (3, 64)
    outside = outside_fractions(arr)
    assert outside.max() <= 0.005, outside  # the 0.1..99.9% range widened by half: ~0.2% at most
    spans = arr["layer1_edges"][:, -1] - arr["layer1_edges"][:, 0]
    assert spans[2] > 50 * spans[0]  # the edges grew with the layer

    old = grown_activations(ActivationsProbe(1, [1], bins=64, edges="first"))
    assert old["layer1_edges"].shape == (3, 65) and (old["layer1_edges"] == old["layer1_edges"][0]).all()
    assert outside_fractions(old)[0] <= 0.005 and outside_fractions(old)[2] > 0.5


def test_wandb_histogram_uses_the_measurements_own_edges():
    probe = ActivationsProbe(1, [1], bins=128)
    arr = grown_activations(probe)
    step, last = probe._last
    counts, edges = last[1]
    assert step == 2
    np.testing.assert_array_equal(edges, arr["layer1_edges"][-1])
    c, e = coarsen(counts, edges)
    assert len(c) == 64 and e[0] == edges[0] and e[-1] == edges[-1] and c.sum() == counts.sum()


def test_old_one_row_edges_still_load():
    """A checkpoint written before per-measurement edges holds layer{k}_edges [bins+1]: resuming from it
    gives every earlier measurement that row, and new measurements their own edges."""
    arr = grown_activations(ActivationsProbe(1, [1], bins=16, edges="first"), scales=(1.0, 2.0))
    state = {"bins": 16, "arrays": {k: torch.from_numpy(v) for k, v in arr.items()}}
    state["arrays"]["layer1_edges"] = torch.from_numpy(arr["layer1_edges"][0])  # the old one-row layout
    probe = ActivationsProbe(1, [1], bins=16)
    probe.load_state_dict(torch.load(io.BytesIO(_saved(state)), weights_only=False))
    again = probe.arrays()
    assert again["layer1_edges"].shape == (2, 17)
    np.testing.assert_array_equal(again["layer1_edges"], arr["layer1_edges"])
    model = OneNormLayer()
    a = 50 * torch.randn(32, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    probe(ProbeContext(7, model, None, None, None, None, None, heard={model.block.norm: a}))
    after = probe.arrays()
    assert after["layer1_edges"].shape == (3, 17) and list(after["layer1_steps"]) == [0, 1, 7]
    assert outside_fractions(after)[-1] <= 0.005


# ---------------------------------------------------------------------------------------- gradnorms


def test_gradnorms_per_layer_and_classifier():
    cfg, model = smoke_model("vgg16_bn")
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    probe = GradNormsProbe.for_model(1, model)
    v = by_key(probe(ProbeContext(0, model, x, y, loss, None, None)))
    assert probe.layers == list(range(1, 15))
    w5 = model.layer(5).layer.weight
    assert v[(5, None, "grad_norm")] == pytest.approx(w5.grad.norm().item(), rel=1e-6)
    assert v[(5, None, "weight_norm")] == pytest.approx(w5.norm().item(), rel=1e-6)
    assert v[(14, None, "grad_norm")] == pytest.approx(model.classifier.weight.grad.norm().item(), rel=1e-6)


# ------------------------------------------------------------------------------------------ hygiene


def training_state(model, opt, gen):
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "grads": [p.grad.clone() for p in model.parameters()],
        "buffers": [b.clone() for b in model.buffers()],
        "rng": torch.get_rng_state(),
        "gen": gen.get_state(),
        "noise": [m.last_noise for m in noisy_layers(model)],
        "noise_values": [tuple(t.clone() for t in m.last_noise) for m in noisy_layers(model)],
        "opt": {id(p): {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()},
    }


def assert_same_state(before, model, opt, gen):
    after = training_state(model, opt, gen)
    for key in ("params", "grads", "buffers", "noise_values"):
        assert len(before[key]) == len(after[key])
        for a, b in zip(before[key], after[key], strict=True):
            if isinstance(a, tuple):
                assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True)), key
            else:
                assert torch.equal(a, b), key
    assert all(a is b for a, b in zip(before["noise"], after["noise"], strict=True))  # the step's noise
    assert torch.equal(before["rng"], after["rng"]) and torch.equal(before["gen"], after["gen"])
    assert before["opt"].keys() == after["opt"].keys()
    for pid, s in before["opt"].items():
        assert s.keys() == after["opt"][pid].keys()
        assert all(torch.equal(v, after["opt"][pid][k]) for k, v in s.items())


@pytest.mark.integration
@pytest.mark.parametrize(
    "name,momentum,wd,warm",
    [
        ("vgg16_noisy_bn", 0.0, 0.0, True),
        ("vgg16_noisy_bn", 0.9, 5e-4, True),
        ("vgg16_bn", 0.9, 0.0, False),  # first step: the probe's optimizer.step() creates momentum buffers
        ("vgg16_l2", 0.9, 0.0, True),
        ("dln_bn", 0.0, 0.0, True),
    ],
)
def test_probes_leave_no_trace(name, momentum, wd, warm):
    cfg, model = smoke_model(name, "probes=dense")
    gen = torch.Generator().manual_seed(1)
    set_noise_generator(model, gen)
    task = build_task(cfg, torch.device("cpu"))
    opt = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=momentum, weight_decay=wd)
    for step in range(2 if warm else 1):  # one real step first: momentum buffers and moved running stats
        x, y = task.batch(step)
        loss, _ = task.loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if warm and step == 0:
            opt.step()
    probes = build_probes(cfg, model, task)
    assert [p.name for p in probes] == ["landscape", "ics", "activations", "gradnorms"]
    before = training_state(model, opt, gen)
    for probe in probes:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no NaN, no failure
            rows = probe(ProbeContext(1, model, x, y, loss, opt, task))
        assert rows and all(math.isfinite(r["value"]) for r in rows), probe.name
        assert_same_state(before, model, opt, gen)
        assert model.training


@pytest.mark.integration
def test_probes_replay_the_steps_noise():
    """A probe sees the function the training step saw: same noise, so the same activations and gradient."""
    cfg, model = smoke_model("vgg16_noisy_bn")
    task = build_task(cfg, torch.device("cpu"))
    x, y = task.batch(0)
    seen = {}

    def keep(module, inputs, output):  # returns None: the output is not replaced
        seen[3] = output.detach().clone()

    handle = model.layer(3).norm.register_forward_hook(keep)
    loss, _ = task.loss(model(x), y)
    handle.remove()
    loss.backward()
    probe = ActivationsProbe.for_model(1, model, [3])
    ctx = ProbeContext(0, model, x, y, loss, None, task)
    assert torch.equal(probe.capture(ctx)[3], seen[3])
    # an eta tiny enough that w - eta g is w in float32: the gradient there is the training gradient
    v = by_key(LandscapeProbe(1, [1e-12])(ctx))
    assert v[(0, 1e-12, "grad_diff")] <= 1e-6 * v[(0, None, "grad_norm")]  # fresh noise: ~ the norm itself
    assert v[(0, 1e-12, "loss")] == pytest.approx(loss.item(), rel=1e-6)


@pytest.mark.integration
def test_activations_read_from_the_training_forward_equal_their_own_forward():
    """`listen` hands the probe the step's own forward: the same rows as the probe's extra forward, and the
    step (loss, gradients) is what it is without listening."""
    cfg, model = smoke_model("vgg16_noisy_bn")
    gen = torch.Generator().manual_seed(1)
    set_noise_generator(model, gen)
    task = build_task(cfg, torch.device("cpu"))
    x, y = task.batch(0)
    probe = ActivationsProbe.for_model(1, model, None, bins=64)
    state = gen.get_state()
    with listen([probe], model) as heard:
        loss, _ = task.loss(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    assert set(heard) == {model.layer(k).norm for k in probe.layers}
    gen.set_state(state)  # the same step without listening
    loss2, _ = task.loss(model(x), y)
    assert torch.equal(loss, loss2)
    for g, g2 in zip(grads, torch.autograd.grad(loss2, list(model.parameters())), strict=True):
        assert torch.equal(g, g2)
    listened = probe(ProbeContext(0, model, x, y, loss, None, task, heard))
    own = ActivationsProbe.for_model(1, model, None, bins=64)(ProbeContext(0, model, x, y, loss, None, task))
    assert [r["value"] for r in listened] == [r["value"] for r in own]
    with listen([GradNormsProbe.for_model(1, model)], model) as nothing:  # taps nothing: no hooks
        model(x)
    assert nothing == {}


# ------------------------------------------------------------------------------------------- failure


def test_a_failing_probe_records_nan_and_warns(monkeypatch):
    model, h, ctx = quadratic_setup()
    probe = LandscapeProbe(1, [0.1, 0.2])

    def boom(self, ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(LandscapeProbe, "measure", boom)
    with pytest.warns(RuntimeWarning, match="landscape failed at step 7.*boom"):
        rows = probe(ctx)
    assert len(rows) == 3 * 2 + 7 and all(math.isnan(r["value"]) for r in rows)


def test_a_state_that_cannot_be_restored_stops_the_run(monkeypatch):
    from bnopt.probes.base import NoTrace, RestoreFailed

    model, h, ctx = quadratic_setup()

    def broken(self):
        raise RuntimeError("device lost")

    monkeypatch.setattr(NoTrace, "restore_params", broken)
    with pytest.raises(RestoreFailed):
        LandscapeProbe(1, [0.1])(ctx)


def test_non_finite_values_become_nan_with_a_warning():
    model, h, ctx = quadratic_setup()
    w0 = model.w.detach().clone()

    class Explodes:
        def loss(self, out, y):  # inf once the weights moved far from w0
            moved = torch.linalg.vector_norm(model.w.detach() - w0)
            far = moved > 0.15 * torch.linalg.vector_norm(model.w.grad)
            return out * (torch.inf if far else 1.0), {}

    ctx.task = Explodes()
    with pytest.warns(RuntimeWarning, match="non-finite"):
        rows = LandscapeProbe(1, [0.1, 0.2])(ctx)
    v = by_key(rows)
    assert math.isfinite(v[(0, 0.1, "loss")]) and math.isnan(v[(0, 0.2, "loss")])
    assert math.isnan(v[(0, None, "loss_max")]) and math.isfinite(v[(0, None, "grad_norm")])
    assert torch.equal(model.w.detach(), w0)


# ------------------------------------------------------------------------------------------ configs


@pytest.mark.integration
def test_presets_and_cadence():
    def probes_for(*over, model="vgg16_bn"):
        extra = ["data=synthetic"] if model.startswith("vgg") else []
        cfg = resolve(make_cfg([f"model={model}", "logger=none", *extra, *over]))
        check_config(cfg)
        return cfg, {p.name: p for p in build_probes(cfg, build_model(cfg.model), None)}

    def cadences(p):
        return tuple(p[k].every for k in ("landscape", "ics", "activations", "gradnorms"))

    cfg, p = probes_for("probes=paper", "scale=paper")
    assert cadences(p) == (100, 100, 100, 10)
    assert p["ics"].layers == [5, 10] and p["activations"].layers == [2, 3, 9, 11, 13]
    assert p["landscape"].etas == list(VGG_ETAS) and p["landscape"].direction == "gradient"
    _, p = probes_for("probes=paper", "scale=small")
    assert cadences(p) == (100, 100, 100, 10)
    _, p = probes_for("probes=paper", "scale=small", "probes.every=30")  # an explicit cadence wins
    assert p["landscape"].every == 30 and p["ics"].every == 30
    _, p = probes_for("probes=paper", "scale=small", model="dln_bn")
    assert cadences(p) == (100, 100, 100, 10)
    assert p["ics"].layers == [9, 17] and p["activations"].layers == [1, 11, 24]
    assert p["landscape"].etas == list(DLN_ETAS)
    _, p = probes_for("probes=dense", "scale=smoke")
    assert {v.every for v in p.values()} == {1}
    _, p = probes_for("probes=paper", "scale=smoke", "probes.ics.layers=all", "probes.landscape.direction=random")
    assert p["ics"].layers == list(range(1, 14)) and p["landscape"].direction == "random"
    _, p = probes_for("probes=landscape", "scale=smoke")
    assert list(p) == ["landscape"]
    _, p = probes_for("probes=none")
    assert p == {}
    cfg = resolve(make_cfg(["model=vgg16_bn", "data=synthetic", "probes=paper", "probes.ics.layers=[5,14]"]))
    with pytest.raises(ValueError, match="out of range"):
        check_config(cfg)
    with pytest.raises(ValueError, match="out of range"):
        build_probes(cfg, build_model(cfg.model), None)
    assert probe_cadence(cfg, cfg.probes.gradnorms) == 10
