"""Networks and norms: shapes, layer numbering, and each norm's forward against its formula."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from bnopt.models import DLN, VGG, LpNorm, NoisyBatchNorm, build_model, make_norm, replay_noise

from .conftest import make_cfg

NORM_CFG = OmegaConf.create(
    {"momentum": 0.1, "eps": 1e-5, "noise": {"n_mu": 0.5, "n_sigma": 1.25, "r_mu": 0.1, "r_sigma": 0.1}}
)
PAPER_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def test_vgg16_paper_shapes_and_numbering():
    model = VGG("batch", 1.0, norm_cfg=NORM_CFG)
    assert model.num_layers == 13
    assert [model.layer(k).layer.out_channels for k in range(1, 14)] == PAPER_WIDTHS
    assert model.classifier.in_features == 512 and model.classifier.out_features == 10
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(IndexError):
        model.layer(14)
    # order is conv -> norm -> ReLU
    block = model.layer(3)
    assert isinstance(block.norm, torch.nn.BatchNorm2d) and isinstance(block.act, torch.nn.ReLU)


def test_vgg_width_multiplier_and_glorot_init():
    model = VGG("none", 0.25, norm_cfg=NORM_CFG)
    assert [model.layer(k).layer.out_channels for k in range(1, 14)] == [w // 4 for w in PAPER_WIDTHS]
    w = model.layer(5).layer.weight
    fan_in, fan_out = w.shape[1] * 9, w.shape[0] * 9
    bound = (6 / (fan_in + fan_out)) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound  # xavier uniform fills its range
    assert torch.all(model.layer(5).layer.bias == 0)
    assert isinstance(model.layer(1).norm, torch.nn.Identity)


@pytest.mark.parametrize("family", ["vgg", "dln"])
def test_init_scale_multiplies_the_glorot_weights_and_1_is_plain_glorot(family):
    """model.init_scale (B3) is Glorot's gain: the same random draw times the scale; 1 changes nothing."""

    def weights(scale):
        torch.manual_seed(0)
        cfg = OmegaConf.merge(NORM_CFG, {"init_scale": scale}) if scale is not None else NORM_CFG
        net = VGG("batch", 0.125, norm_cfg=cfg) if family == "vgg" else DLN("batch", 5, 4, norm_cfg=cfg)
        return [net.layer(k).layer.weight.detach().clone() for k in range(1, net.num_layers + 1)]

    plain, one, ten = weights(None), weights(1.0), weights(10.0)
    for a, b, c in zip(plain, one, ten, strict=True):
        assert torch.equal(a, b)
        torch.testing.assert_close(c, 10 * a, rtol=1e-6, atol=0)


def product(net: DLN) -> torch.Tensor:
    """W25 ... W1 of a DLN in float64."""
    p = torch.eye(net.layer(1).layer.weight.shape[1], dtype=torch.float64)
    for k in range(1, net.num_layers + 1):
        p = net.layer(k).layer.weight.double() @ p
    return p


def test_orthogonal_init_gives_a_dln_product_with_every_singular_value_1_and_glorot_does_not():
    """model.init=orthogonal (issue 25's DLN set-up ablation): each layer orthogonal, so the 25-layer product is
    too; Glorot's product spans many decades (the rank collapse the ablation asks about)."""
    torch.manual_seed(0)
    ortho = DLN("none", norm_cfg=OmegaConf.merge(NORM_CFG, {"init": "orthogonal"}))
    svals = torch.linalg.svdvals(product(ortho))  # float32 weights: orthogonal to about 1e-7 each
    torch.testing.assert_close(svals, torch.ones(10, dtype=torch.float64), rtol=1e-5, atol=0)
    torch.manual_seed(0)
    glorot = torch.linalg.svdvals(product(DLN("none", norm_cfg=NORM_CFG)))
    assert glorot[0] / glorot[-1] > 1e6
    with pytest.raises(ValueError, match="unknown model.init 'he'; choose one of glorot, orthogonal"):
        DLN("none", norm_cfg=OmegaConf.merge(NORM_CFG, {"init": "he"}))


def test_the_critical_gain_keeps_a_vectors_log_norm_through_the_glorot_product_level():
    """configs/dln_setup/critical_gain.yaml's 1.047 (docs/PROTOCOL.md section 8): at Glorot's gain 1 a vector's
    log-norm through the 25 layers falls by about 0.046 a layer on average (to ~0.32 of its length); at 1.047 it
    stays level, to within the sampling error of 400 draws."""

    def mean_log_growth(gain: float) -> float:
        torch.manual_seed(1)
        logs = []
        for _ in range(400):
            net = DLN("none", norm_cfg=OmegaConf.merge(NORM_CFG, {"init_scale": gain}))
            x = torch.nn.functional.normalize(torch.randn(10, dtype=torch.float64), dim=0)
            logs.append(torch.log(torch.linalg.vector_norm(product(net) @ x)).item() / 25)
        return sum(logs) / len(logs)

    assert mean_log_growth(1.0) == pytest.approx(-0.046, abs=0.008)
    assert mean_log_growth(1.047) == pytest.approx(0.0, abs=0.008)


def test_dln_shapes_numbering_and_no_norm_on_output():
    model = DLN("batch", norm_cfg=NORM_CFG)
    assert model.num_layers == 25
    assert all(model.layer(k).layer.weight.shape == (10, 10) for k in range(1, 26))
    assert all(model.layer(k).layer.bias is None for k in range(1, 26))
    assert isinstance(model.layer(24).norm, torch.nn.BatchNorm1d)
    assert isinstance(model.layer(25).norm, torch.nn.Identity)
    x = torch.randn(7, 10)
    assert model(x).shape == (7, 10)
    plain = DLN("none", norm_cfg=NORM_CFG)
    product = torch.eye(10)
    for k in range(1, 26):
        product = plain.layer(k).layer.weight @ product
    torch.testing.assert_close(plain(x), x @ product.T, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "name",
    [
        "vgg16",
        "vgg16_bn",
        "vgg16_noisy_bn",
        "vgg16_l1",
        "vgg16_l2",
        "vgg16_linf",
        "dln",
        "dln_bn",
        "dln_l1",
        "dln_l2",
        "dln_linf",
    ],
)
def test_every_model_config_builds(name):
    cfg = make_cfg([f"model={name}", "model.width=0.0625"])
    model = build_model(cfg.model)
    x = torch.randn(4, 3, 32, 32) if cfg.model.family == "vgg" else torch.randn(4, 10)
    assert torch.isfinite(model(x)).all()


def test_batchnorm_worked_example():
    """Features [1,2,3], [3,4,5], [2,3,4] over a batch of three (the issue's example)."""
    x = torch.tensor([[1.0, 3.0, 2.0], [2.0, 4.0, 3.0], [3.0, 5.0, 4.0]])  # rows = samples
    bn = make_norm("batch", 3, 1, NORM_CFG).train()
    bn.eps = 1e-12  # torch refuses 0; the worked example has none
    y = bn(x)
    expected = torch.tensor([-1.2247, 0.0, 1.2247]).repeat(3, 1).T
    torch.testing.assert_close(y, expected, atol=1e-4, rtol=0)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, 1.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.5, 0.0, -0.5]))
    y = bn(x)
    want = torch.tensor([[-1.337, -1.225, -1.112], [0.5, 0.0, -0.5], [2.337, 1.225, 0.112]])
    torch.testing.assert_close(y, want, atol=1e-3, rtol=0)


@pytest.mark.parametrize("p", ["l1", "l2", "linf"])
def test_lp_norm_matches_formula(p):
    torch.manual_seed(0)
    x = torch.randn(8, 5, 4, 4) * 3 + 1
    norm = LpNorm(5, p).train()
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 6.0))
        norm.bias.copy_(torch.arange(5.0) / 10)
    y = norm(x)
    xs = x.transpose(0, 1).reshape(5, -1)  # unit-major
    scale = {"l1": xs.abs().mean(1), "l2": xs.pow(2).mean(1).sqrt(), "linf": xs.abs().max(1).values}[p]
    want = (xs - xs.mean(1, keepdim=True)) / (scale[:, None] + 1e-5)
    want = want * torch.arange(1.0, 6.0)[:, None] + (torch.arange(5.0) / 10)[:, None]
    torch.testing.assert_close(y.transpose(0, 1).reshape(5, -1), want, atol=1e-5, rtol=1e-5)
    # running statistics move toward the batch values and are used in eval mode
    torch.testing.assert_close(norm.running_mean, 0.1 * xs.mean(1))
    torch.testing.assert_close(norm.running_scale, 0.9 + 0.1 * scale)
    norm.eval()
    y_eval = norm(x)
    want_eval = (x - norm.running_mean.view(1, -1, 1, 1)) / (norm.running_scale.view(1, -1, 1, 1) + 1e-5)
    want_eval = want_eval * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(y_eval, want_eval.detach())


def _lp_reference(x, weight, bias, p, eps=1e-5):
    """Section 3.3's l_p normalisation as plain autograd ops (the formula, before the fused version)."""
    dims = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)
    scale = {
        "l1": lambda: x.abs().mean(dims),
        "l2": lambda: x.pow(2).mean(dims).sqrt(),
        "linf": lambda: x.abs().amax(dims),
    }[p]()
    return (x - x.mean(dims).view(shape)) / (scale.view(shape) + eps) * weight.view(shape) + bias.view(shape)


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "features"])
@pytest.mark.parametrize("p", ["l1", "l2", "linf"])
def test_lp_norm_gradients_match_autograd_of_the_formula(p, layout):
    torch.manual_seed(1)
    shape = (6, 4) if layout == "features" else (6, 4, 3, 5)
    x = torch.randn(*shape, dtype=torch.float64) * 2 + 0.3
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    norm = LpNorm(4, p).double().train()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, 1.0, -2.0, 3.0]))
        norm.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    y = norm(x)
    gy = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, norm.weight, norm.bias], gy)
    want_y = _lp_reference(x, norm.weight, norm.bias, p)
    want = torch.autograd.grad(want_y, [x, norm.weight, norm.bias], gy)
    torch.testing.assert_close(y, want_y, rtol=1e-12, atol=1e-12)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)

    # and against finite differences
    def as_function(x, w, b):
        return torch.func.functional_call(norm, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(
        as_function, (x, norm.weight.detach().requires_grad_(), norm.bias.detach().requires_grad_())
    )


def test_noisy_bn_noise_follows_algorithm_1():
    torch.manual_seed(0)
    layer = NoisyBatchNorm(64, 2)
    layer.generator = torch.Generator().manual_seed(3)
    x = torch.randn(64, 64, 16, 16)
    a = layer.bn(x).detach()
    layer.train()
    y = layer(x).detach()
    s, m = layer.last_noise
    torch.testing.assert_close(y, s * a + m)
    # per unit: m ~ U(mu_j - 0.1, mu_j + 0.1) with mu_j ~ U(-0.5, 0.5); s ~ N(sigma_j, 0.1), sigma_j ~ U(1, 1.25)
    m_unit = m.transpose(0, 1).reshape(64, -1)
    s_unit = s.transpose(0, 1).reshape(64, -1)
    mu, sigma = m_unit.mean(1), s_unit.mean(1)
    assert mu.abs().max() <= 0.5 + 1e-3 and mu.std() > 0.2  # spread over U(-0.5, 0.5): std 0.289
    spread = m_unit.amax(1) - m_unit.amin(1)  # U(mu_j - 0.1, mu_j + 0.1) spans 0.2
    assert spread.max() <= 0.2 and spread.min() > 0.199
    torch.testing.assert_close((m_unit - mu[:, None]).std(1), torch.full((64,), 0.1 / 3**0.5), atol=3e-3, rtol=0)
    assert sigma.min() >= 1 - 5e-3 and sigma.max() <= 1.25 + 5e-3
    torch.testing.assert_close(s_unit.std(1), torch.full((64,), 0.1), atol=3e-3, rtol=0)
    # fresh noise at the next training step, none in eval mode, replay reuses the step's noise
    y2 = layer(x)
    assert not torch.equal(y2, y)
    model = torch.nn.Sequential(layer)
    with replay_noise(model):
        torch.testing.assert_close(layer(x), y2, rtol=0, atol=0)
    layer.eval()
    torch.testing.assert_close(layer(x), layer.bn(x))


def test_noisy_bn_noise_is_replayable_from_generator_state():
    layer = NoisyBatchNorm(4, 1)
    layer.generator = torch.Generator().manual_seed(7)
    x = torch.randn(16, 4)
    state = layer.generator.get_state()
    y1 = layer(x)
    layer.generator.set_state(state)
    torch.testing.assert_close(layer(x), y1, rtol=0, atol=0)
