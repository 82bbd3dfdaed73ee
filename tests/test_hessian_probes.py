"""The beyond-the-paper probes (issue 12): hessian (top eigenvalue, g^T H g / g^T g) and rank, against
closed forms, and their no-trace hygiene (docs/PROTOCOL.md, Pitfalls), alone and inside smoke runs."""

from __future__ import annotations

import contextlib
import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.func import functional_call

from bnopt.config import ConfigError, identity, resolve, validate
from bnopt.models import build_model, set_noise_generator
from bnopt.models.dln import DLN
from bnopt.models.norms import LpNorm, noisy_layers, twice_differentiable
from bnopt.probes import HessianProbe, ProbeContext, RankProbe, build_probes, listen
from bnopt.probes.rank import rank_stats
from bnopt.records import METRICS_FILE, PROBES_FILE
from bnopt.train import train

from .conftest import make_cfg, smoke_cfg
from .test_probes import IdentityLoss, SquaredError
from .test_probes_e2e import train_cut_and_resumed

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is faster (the hand-off between threads costs more than the
    work, the more so on a busy machine); restored after this file."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class TwoPartQuadratic(nn.Module):
    """L(w) = 0.5 w^T A w with w split over two parameters (the probe works on parameter lists)."""

    def __init__(self, a: torch.Tensor, w: torch.Tensor, split: int):
        super().__init__()
        self.register_buffer("a", a)
        self.w1 = nn.Parameter(w[:split].clone())
        self.w2 = nn.Parameter(w[split:].clone())

    def forward(self, x):
        w = torch.cat([self.w1, self.w2])
        return 0.5 * w @ self.a @ w


def by_key(rows):
    return {(r["layer"], r["metric"]): r["value"] for r in rows}


def snapshot(model):
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "buffers": [b.clone() for b in model.buffers()],
        "training": [m.training for m in model.modules()],
        "rng": torch.get_rng_state(),
    }


def assert_unchanged(model, before):
    after = snapshot(model)
    for a, b in zip(before["params"], after["params"], strict=True):
        assert torch.equal(a, b)
    for a, b in zip(before["grads"], after["grads"], strict=True):
        assert (a is None and b is None) or torch.equal(a, b)
    for a, b in zip(before["buffers"], after["buffers"], strict=True):
        assert torch.equal(a, b)
    assert before["training"] == after["training"]
    assert torch.equal(before["rng"], after["rng"])


# ------------------------------------------------------------------------------------------- hessian


def quadratic_ctx(eigs, seed=0, split=3):
    n = len(eigs)
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    a = q @ torch.diag(torch.tensor(eigs, dtype=F64)) @ q.T
    a = 0.5 * (a + a.T)
    model = TwoPartQuadratic(a, torch.randn(n, generator=g, dtype=F64), split).train()
    loss = model(None)
    loss.backward()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, a, ProbeContext(3, model, torch.zeros(1), torch.zeros(1), loss, opt, IdentityLoss())


def test_hessian_matches_the_quadratic_closed_form():
    eigs = [7.0, 3.0, 2.0, 1.0, 0.5, -0.4, 0.1, 1e-3]
    model, a, ctx = quadratic_ctx(eigs)
    g = torch.cat([model.w1.grad, model.w2.grad])
    before = snapshot(model)
    rows = HessianProbe(1, iterations=40, mode=["train"], seed=5)(ctx)
    assert [(r["probe"], r["layer"], r["metric"]) for r in rows] == [
        ("hessian", 0, "top_eig"),
        ("hessian", 0, "top_eig_residual"),
        ("hessian", 0, "ghg"),
    ]
    assert all(r["step"] == 3 and math.isnan(r["eta"]) for r in rows)
    v = by_key(rows)
    assert v[(0, "top_eig")] == pytest.approx(7.0, abs=1e-6)
    assert v[(0, "top_eig_residual")] < 1e-6
    assert v[(0, "ghg")] == pytest.approx((g @ a @ g / (g @ g)).item(), rel=1e-12)
    assert_unchanged(model, before)


def test_too_few_power_iterations_show_in_the_residual():
    model, _, ctx = quadratic_ctx([1.0, 0.99, 0.98, 0.5])  # tiny spectral gap: slow convergence
    v = by_key(HessianProbe(1, iterations=2, seed=1)(ctx))
    assert v[(0, "top_eig_residual")] > 1e-3
    assert v[(0, "top_eig")] < 1.0


def test_the_start_vector_is_seeded_and_resumes_from_the_state_dict():
    model, _, ctx = quadratic_ctx([1.0, 0.9, 0.8, 0.5, 0.1])
    params = list(model.parameters())
    a, b = HessianProbe(1, seed=3), HessianProbe(1, seed=3)
    first = a.start_vector(params)
    assert all(torch.equal(x, y) for x, y in zip(first, b.start_vector(params), strict=True))
    state = a.state_dict()
    nxt = a.start_vector(params)
    assert not torch.equal(first[0], nxt[0])  # a fresh start vector per measurement
    resumed = HessianProbe(1, seed=3)
    resumed.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(nxt, resumed.start_vector(params), strict=True))
    assert sum(float(t.square().sum()) for t in nxt) == pytest.approx(1.0, rel=1e-12)
    # and the rows of a measurement follow: two measurements from the same state are equal
    c = HessianProbe(1, iterations=3, seed=3)
    c.load_state_dict(state)
    d = HessianProbe(1, iterations=3, seed=3)
    d.load_state_dict(state)
    assert c(ctx) == d(ctx)


def full_hessian(model, loss_of_output, x, mode):
    """Dense Hessian of loss(model(x)) over every parameter (flattened in order), with torch.func, in
    `mode` (train or eval), on a copy of the model (a train-mode forward moves the running statistics)."""
    model = copy.deepcopy(model).train(mode == "train")
    for m in model.modules():  # l_p norms: the plain formula (test_lp_plain_formula_is_the_fused_one)
        if isinstance(m, LpNorm):
            m.plain = True
    names, params = zip(*model.named_parameters(), strict=True)
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]

    def f(flat):
        parts = dict(zip(names, (t.view(s) for t, s in zip(flat.split(sizes), shapes, strict=True)), strict=True))
        return loss_of_output(functional_call(model, parts, (x,)))

    flat = torch.cat([p.detach().reshape(-1) for p in params])
    return torch.autograd.functional.hessian(f, flat)


@pytest.mark.parametrize("norm", ["batch", "l2", "linf"])
def test_hessian_of_a_small_network_matches_the_dense_hessian(norm):
    """Double backward through train-mode BN / l_p norms (their plain formula) and eval-mode BN."""
    torch.manual_seed(0)
    model = DLN(norm=norm, depth=3, dim=4).to(F64).train()
    x, y = torch.randn(16, 4, dtype=F64), torch.randn(16, 4, dtype=F64)
    with torch.no_grad():  # non-trivial running statistics for eval mode
        for m in model.modules():
            for name in ("running_mean", "running_var", "running_scale"):
                if hasattr(m, name):
                    getattr(m, name).uniform_(0.5, 1.5)
    task = SquaredError()
    loss = task.loss(model(x), y)[0]
    loss.backward()
    params = list(model.parameters())
    g = torch.cat([p.grad.reshape(-1) for p in params])
    before = snapshot(model)
    ctx = ProbeContext(0, model, x, y, loss, torch.optim.SGD(params, lr=0.1), task)
    v = by_key(HessianProbe(1, iterations=300, mode=["train", "eval"], seed=0)(ctx))
    assert_unchanged(model, before)
    assert not any(getattr(m, "plain", False) for m in model.modules())  # the fused l_p path again
    for mode, suffix in (("train", ""), ("eval", "_eval")):
        h = full_hessian(model, lambda out: task.loss(out, y)[0], x, mode)
        ev = torch.linalg.eigvalsh(0.5 * (h + h.T))
        top = ev[ev.abs().argmax()].item()
        assert v[(0, "top_eig" + suffix)] == pytest.approx(top, rel=1e-6), mode
        if mode == "train":
            assert v[(0, "ghg")] == pytest.approx((g @ h @ g / (g @ g)).item(), rel=1e-8)
    assert_unchanged(model, before)


@pytest.mark.parametrize("p", ["l1", "l2", "linf"])
def test_lp_plain_formula_is_the_fused_one(p):
    """The l_p norms' plain autograd path (used while the Hessian is measured) computes the same output,
    gradients and running statistics as their fused forward/backward."""
    torch.manual_seed(0)
    x = torch.randn(12, 5, 3, 3, dtype=F64, requires_grad=True)
    out = {}
    for plain in (False, True):
        norm = LpNorm(5, p).to(F64).train()
        torch.manual_seed(1)
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-1, 1)
        with twice_differentiable(norm) if plain else contextlib.nullcontext():
            assert norm.plain == plain
            y = norm(x)
        assert not norm.plain
        grads = torch.autograd.grad(
            (y * torch.linspace(-1, 1, y.numel(), dtype=F64).view_as(y)).sum(), [x, norm.weight, norm.bias]
        )
        out[plain] = (y.detach(), *grads, norm.running_mean.clone(), norm.running_scale.clone())
    for a, b in zip(out[False], out[True], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_eval_mode_measurement_restores_train_mode_statistics_noise_and_rng():
    cfg = make_cfg(["model=vgg16_noisy_bn", "data=synthetic", "scale=smoke", "logger=none"])
    model = build_model(resolve(cfg).model).train()
    gen = torch.Generator().manual_seed(1)
    set_noise_generator(model, gen)
    model.layer(4).eval()  # a module's own flag is kept too
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    task = _CE()
    loss = task.loss(model(x), y)[0]
    loss.backward()
    before = snapshot(model)
    noise = [tuple(t.clone() for t in m.last_noise) for m in noisy_layers(model) if m.last_noise is not None]
    gen_state = gen.get_state()
    ctx = ProbeContext(0, model, x, y, loss, torch.optim.SGD(model.parameters(), lr=0.1), task)
    with torch.no_grad():
        stats = [m.bn.running_mean.clone() for m in noisy_layers(model)]
    v = by_key(HessianProbe(1, iterations=3, mode=["train", "eval"], seed=0)(ctx))
    assert all(math.isfinite(val) for val in v.values()) and len(v) == 5
    assert v[(0, "top_eig")] != v[(0, "top_eig_eval")]
    assert_unchanged(model, before)
    assert model.training and not model.layer(4).training
    assert torch.equal(gen.get_state(), gen_state)
    after = [m.last_noise for m in noisy_layers(model) if m.last_noise is not None]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(noise, after, strict=True))
    assert all(torch.equal(s, m.bn.running_mean) for s, m in zip(stats, noisy_layers(model), strict=True))


class _CE:
    def loss(self, out, y):
        return nn.functional.cross_entropy(out, y), {}


# ---------------------------------------------------------------------------------------------- rank


def test_rank_of_a_matrix_of_known_rank():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(128, 4, generator=g) @ torch.randn(4, 10, generator=g)  # float32, rank 4
    rank, stable = rank_stats(a).tolist()
    assert rank == 4 == np.linalg.matrix_rank(a.numpy())
    s = np.linalg.svd(a.numpy().astype(np.float64), compute_uv=False)
    assert stable == pytest.approx((s**2).sum() / s[0] ** 2, rel=1e-9)
    assert 1 <= stable <= 4
    # wide matrices (N < D), VGG-like [N, C, H, W] flattened per sample, full rank, zero
    wide = torch.randn(6, 3, generator=g) @ torch.randn(3, 2 * 4 * 4, generator=g)
    assert rank_stats(wide.view(6, 2, 4, 4))[0].item() == 3 == np.linalg.matrix_rank(wide.numpy())
    full = torch.randn(20, 7, generator=g)
    assert rank_stats(full)[0].item() == 7
    assert rank_stats(torch.ones(5, 3))[1].item() == pytest.approx(1.0)
    assert rank_stats(torch.zeros(5, 3)).tolist() == [0.0, 0.0]


def test_rank_probe_reads_the_layers_outputs_from_the_training_forward_or_its_own():
    torch.manual_seed(0)
    model = DLN(norm="none", depth=3, dim=10)
    with torch.no_grad():  # layer #1 of rank 4: every later layer's output has rank <= 4
        model.layer(1).layer.weight.copy_(torch.randn(10, 4) @ torch.randn(4, 10))
    probe = RankProbe.for_model(1, model, family="dln")
    assert probe.layers == [1, 2, 3]  # DLN default: every layer
    x, y = torch.randn(64, 10), torch.randn(64, 10)
    task = SquaredError()
    with listen([probe], model) as heard:
        loss = task.loss(model(x), y)[0]
    loss.backward()
    assert set(heard) == {model.layer(k) for k in (1, 2, 3)}
    before = snapshot(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rows = probe(ProbeContext(0, model, x, y, loss, opt, task, heard))
    own = probe(ProbeContext(0, model, x, y, loss, opt, task))  # no listening: a forward of its own
    assert rows == own
    assert_unchanged(model, before)
    v = by_key(rows)
    assert [v[(k, "rank")] for k in (1, 2, 3)] == [4, 4, 4]
    out1 = model.layer(1)(x).detach().numpy()
    s = np.linalg.svd(out1.astype(np.float64), compute_uv=False)
    assert v[(1, "stable_rank")] == pytest.approx((s**2).sum() / s[0] ** 2, rel=1e-6)


# ------------------------------------------------------------------------------------------- configs


@pytest.mark.integration
def test_beyond_preset_builds_both_probes_and_the_paper_presets_have_neither():
    cfg = resolve(make_cfg(["model=vgg16_bn", "data=synthetic", "scale=smoke", "probes=beyond", "logger=none"]))
    validate(cfg)
    probes = {p.name: p for p in build_probes(cfg, build_model(cfg.model), None)}
    assert list(probes) == ["landscape", "ics", "activations", "gradnorms", "hessian", "rank"]
    h, r = probes["hessian"], probes["rank"]
    assert (h.every, h.iterations, h.modes, h.seed) == (5, 20, ["train", "eval"], 3)
    assert (r.every, r.layers) == (5, [2, 9, 13])
    dln = resolve(make_cfg(["model=dln_bn", "scale=small", "probes=beyond", "logger=none"]))
    assert dln.probes.rank.layers == "all"
    assert build_probes(dln, build_model(dln.model), None)[-1].layers == list(range(1, 26))
    for preset in ("paper", "dense", "landscape", "ics", "activations", "none"):
        c = resolve(make_cfg(["model=vgg16_bn", "data=synthetic", f"probes={preset}"]))
        assert "hessian" not in c.probes and "rank" not in c.probes, preset
        assert "hessian" not in identity(c).get("probes", {}), preset
        assert {p.name for p in build_probes(c, build_model(c.model), None)} <= {
            "landscape",
            "ics",
            "activations",
            "gradnorms",
        }


@pytest.mark.parametrize(
    "override, message",
    [
        ("probes.hessian.iterations=0", "probes.hessian.iterations must be an integer in 1..10000, got 0"),
        ("probes.hessian.mode=[train,test]", "probes.hessian.mode must be a non-empty list of distinct values"),
        ("probes.hessian.mode=[eval,eval]", "probes.hessian.mode must be a non-empty list of distinct values"),
        ("probes.hessian.seed=-1", "probes.hessian.seed must be an integer >= 0"),
        ("probes.rank.layers=[0,2]", r"probes.rank.layers \[0\] out of range"),
    ],
)
def test_bad_settings_are_one_line_errors(override, message):
    cfg = resolve(make_cfg(["model=vgg16_bn", "data=synthetic", "probes=beyond", "logger=none", override]))
    with pytest.raises(ConfigError, match=message) as e:
        validate(cfg)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------------- inside training

FAST = ("scale.steps=10", "probes.hessian.iterations=3")


@pytest.mark.integration
@pytest.mark.parametrize("model", ["vgg16_bn", "dln_bn", "vgg16_noisy_bn", "vgg16_linf"])
def test_beyond_probes_leave_training_bit_identical(tmp_path, model):
    ref = train(smoke_cfg(tmp_path / "none", "probes=none", FAST[0], model=model), progress=False)
    res = train(smoke_cfg(tmp_path / "beyond", "probes=beyond", *FAST, model=model), progress=False)
    assert ref.status == res.status == "done"
    m_ref = pd.read_parquet(ref.path / METRICS_FILE)
    m = pd.read_parquet(res.path / METRICS_FILE)
    pd.testing.assert_frame_equal(m, m_ref, check_exact=True)
    p = pd.read_parquet(res.path / PROBES_FILE)
    for name in ("hessian", "rank"):
        rows = p[p.probe == name]
        assert sorted(rows.step.unique()) == [0, 5], name
        assert np.isfinite(rows.value).all(), name
    hess = p[p.probe == "hessian"]
    assert set(hess.metric) == {"top_eig", "top_eig_residual", "ghg", "top_eig_eval", "top_eig_residual_eval"}
    rank = p[(p.probe == "rank") & (p.metric == "rank")]
    expected_layers = list(range(1, 26)) if model == "dln_bn" else [2, 9, 13]
    assert sorted(rank.layer.unique()) == expected_layers
    assert (rank.value >= 1).all()


@pytest.mark.integration
def test_beyond_probe_records_survive_a_resume(tmp_path, monkeypatch):
    """The hessian probe's start vectors continue from the checkpointed generator: an interrupted and
    resumed run records exactly the rows of an uninterrupted one."""
    over = ("probes=beyond", "scale.steps=20", "probes.hessian.iterations=3")
    ref, res = train_cut_and_resumed(tmp_path, monkeypatch, "dln_bn", over, cut_at=13)  # checkpoint at 10
    assert res.status == "done"
    p_ref = pd.read_parquet(ref.path / PROBES_FILE)
    p = pd.read_parquet(res.path / PROBES_FILE)
    pd.testing.assert_frame_equal(p, p_ref, check_exact=True)
    assert sorted(p[p.probe == "hessian"].step.unique()) == [0, 5, 10, 15]
