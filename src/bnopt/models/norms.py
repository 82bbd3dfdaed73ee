"""Normalisation layers shared by VGG (N, C, H, W) and the DLN (N, C).

A "unit" is a channel for conv activations and a feature for linear ones; every statistic is taken over
all other dimensions (batch x height x width), as BN does.

- batch: torch's BatchNorm (1d or 2d).
- noisy_batch: BN followed by Algorithm 1 of the paper (Appendix A.2.1): time-varying, non-zero-mean,
  non-unit-variance noise, fresh at every training step and absent in eval mode.
- l1, l2, linf: Section 3.3. Centre by the batch mean; divide by the l_p "norm" of the unit's activations
  taken before centring: s_p = (mean |x|^p)^(1/p) for p = 1, 2 and s_inf = max |x|. Then gamma, beta.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

NORMS = ("none", "batch", "noisy_batch", "l1", "l2", "linf")


def _reduce_dims(x: torch.Tensor) -> list[int]:
    return [0] + list(range(2, x.dim()))


def _unit_shape(x: torch.Tensor) -> list[int]:
    """Shape that broadcasts a per-unit vector against x."""
    return [1, -1] + [1] * (x.dim() - 2)


def _memory_order_empty(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(buf, view): `buf` is an uninitialised contiguous tensor holding a's elements in a's memory order
    (N, H, W, C for channels_last), `view` the same memory shaped like a (N, C, H, W).

    Random fills go into `buf`: torch's CPU uniform_/normal_ take a vectorised path only on a contiguous
    tensor; on a permuted view normal_ falls back to an element-by-element loop (8x slower, measured,
    docs/PERFORMANCE.md)."""
    if a.dim() == 4 and not a.is_contiguous() and a.is_contiguous(memory_format=torch.channels_last):
        n, c, h, w = a.shape
        buf = torch.empty(n, h, w, c, dtype=a.dtype, device=a.device)
        return buf, buf.permute(0, 3, 1, 2)
    buf = torch.empty(a.shape, dtype=a.dtype, device=a.device)
    return buf, buf


def _unit_last(v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """A per-unit vector shaped to broadcast against `_memory_order_empty(a)[0]`."""
    if a.dim() == 4 and not a.is_contiguous() and a.is_contiguous(memory_format=torch.channels_last):
        return v
    return v.view(_unit_shape(a))


class NoisyBatchNorm(nn.Module):
    """BatchNorm, then a <- s * a + m with Algorithm 1's noise (training mode only).

    Per unit j: mu_j ~ U(-n_mu, n_mu), sigma_j ~ U(1, n_sigma); per element i of unit j:
    m_ij ~ U(mu_j - r_mu, mu_j + r_mu), s_ij ~ N(sigma_j, r_sigma).

    Noise comes from `self.generator` (a torch.Generator the run owns and checkpoints). The noise of the
    last training forward is kept so that probes can replay exactly the step's noise (`replay_noise`)
    instead of drawing fresh noise, which would change the training trajectory.
    """

    def __init__(
        self, num_features: int, dims: int, n_mu=0.5, n_sigma=1.25, r_mu=0.1, r_sigma=0.1, momentum=0.1, eps=1e-5
    ):
        super().__init__()
        bn_cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        self.bn = bn_cls(num_features, momentum=momentum, eps=eps)
        self.n_mu, self.n_sigma, self.r_mu, self.r_sigma = n_mu, n_sigma, r_mu, r_sigma
        self.generator: torch.Generator | None = None
        self.replay = False
        self.last_noise: tuple[torch.Tensor, torch.Tensor] | None = None

    def draw_noise(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, m) shaped like a: one uniform fill and one normal fill of contiguous memory per step."""
        g = self.generator
        c = a.shape[1]
        opts = dict(device=a.device, dtype=a.dtype)
        mu = torch.empty(c, **opts).uniform_(-self.n_mu, self.n_mu, generator=g)
        sigma = torch.empty(c, **opts).uniform_(1.0, self.n_sigma, generator=g)
        m_buf, m = _memory_order_empty(a)
        m_buf.uniform_(-self.r_mu, self.r_mu, generator=g).add_(_unit_last(mu, a))
        s_buf, s = _memory_order_empty(a)
        s_buf.normal_(0.0, self.r_sigma, generator=g).add_(_unit_last(sigma, a))
        return s, m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.bn(x)
        if not self.training:
            return a
        if self.replay:
            if self.last_noise is None or self.last_noise[0].shape != a.shape:
                raise RuntimeError("noisy BN replay asked for, but no noise of this shape was drawn")
        else:
            self.last_noise = self.draw_noise(a)
        s, m = self.last_noise
        return torch.addcmul(m, s, a)  # s * a + m in one pass


_ORD = {"l1": 1, "l2": 2}


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    """x as [elements per unit, units]: a view for (N, C) and channels_last (N, C, H, W); a copy otherwise."""
    return x.movedim(1, -1).reshape(-1, x.shape[1])


class _LpNormFunction(torch.autograd.Function):
    """y = (x - mean) / (s_p + eps) * weight + bias with the statistics of the batch, forward and backward
    written out: autograd through the plain formula takes ~13 elementwise passes over the activations
    per step, this takes ~8 (docs/PERFORMANCE.md). Also returns (mean, s_p), without gradient, for the
    running statistics.

    Backward, per unit, with a = weight / (s + eps), S1 = sum(gy), S2 = sum(gy * (x - mean)), n elements:
        d bias = S1,  d weight = S2 / (s + eps),
        d x = a * gy - a * S1 / n - a * S2 / (s + eps) * ds/dx
    with ds/dx = sign(x) / n (l1), x / (n s) (l2), and sign(x) at the unit's largest |x| (linf; one
    element per unit: ties, which need exactly equal floats, go to the first).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, p: str, eps: float):
        dims, shape = _reduce_dims(x), _unit_shape(x)
        n = x.numel() // x.shape[1]
        mean = x.mean(dims)
        peak = None
        if p == "linf":
            scale, peak = _unit_rows(x.abs()).max(0)
        else:
            scale = torch.linalg.vector_norm(x, _ORD[p], dims) / (n if p == "l1" else n**0.5)
        a = weight / (scale + eps)
        y = torch.addcmul((bias - mean * a).view(shape), x, a.view(shape))
        ctx.save_for_backward(x, mean, scale, a, peak)
        ctx.p, ctx.eps = p, eps
        ctx.mark_non_differentiable(mean, scale)
        return y, mean, scale

    @staticmethod
    def backward(ctx, gy, _grad_mean, _grad_scale):
        x, mean, scale, a, peak = ctx.saved_tensors
        dims, shape = _reduce_dims(x), _unit_shape(x)
        n = x.numel() // x.shape[1]
        denom = scale + ctx.eps
        s1 = gy.sum(dims)
        s2 = (gy * x).sum(dims) - mean * s1
        grad_scale = -a / denom * s2  # dL/ds
        gx = torch.addcmul((-a * s1 / n).view(shape), gy, a.view(shape))
        if ctx.p == "l2":
            k = torch.where(scale > 0, grad_scale / (n * scale), torch.zeros_like(scale))
            gx.addcmul_(x, k.view(shape))
        elif ctx.p == "l1":
            gx.addcmul_(x.sign(), (grad_scale / n).view(shape))
        else:  # the one element per unit that set s_inf
            units = torch.arange(x.shape[1], device=x.device)
            rows = _unit_rows(x)
            sign = rows[peak, units].sign()
            index = torch.unravel_index(peak, (x.shape[0], *x.shape[2:]))
            gx.index_put_((index[0], units, *index[1:]), grad_scale * sign, accumulate=True)
        return gx, s2 / denom, s1, None, None


def _lp_norm_plain(x, weight, bias, p: str, eps: float):
    """What `_LpNormFunction` computes, in plain autograd operations (slower, but differentiable twice:
    the fused backward's second derivative would miss the statistics' dependence on x and weight)."""
    dims, shape = _reduce_dims(x), _unit_shape(x)
    n = x.numel() // x.shape[1]
    mean = x.mean(dims)
    if p == "linf":
        scale = x.abs().amax(dims)
    else:
        scale = torch.linalg.vector_norm(x, _ORD[p], dims) / (n if p == "l1" else n**0.5)
    a = weight / (scale + eps)
    y = (x - mean.view(shape)) * a.view(shape) + bias.view(shape)
    return y, mean.detach(), scale.detach()


class LpNorm(nn.Module):
    """l_p normalisation of Section 3.3 with running statistics for eval mode (as BN keeps)."""

    def __init__(self, num_features: int, p: str, momentum=0.1, eps=1e-5):
        super().__init__()
        if p not in ("l1", "l2", "linf"):
            raise ValueError(f"unknown l_p norm {p!r}")
        self.p = p
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_scale", torch.ones(num_features))
        # plain autograd formula instead of the fused backward (`twice_differentiable`, Hessian probes)
        self.plain = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            if self.plain:
                y, mean, scale = _lp_norm_plain(x, self.weight, self.bias, self.p, self.eps)
            else:
                y, mean, scale = _LpNormFunction.apply(x, self.weight, self.bias, self.p, self.eps)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_scale.lerp_(scale, self.momentum)
            return y
        shape = _unit_shape(x)
        a = self.weight / (self.running_scale + self.eps)
        return torch.addcmul((self.bias - self.running_mean * a).view(shape), x, a.view(shape))

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, p={self.p}"


def make_norm(kind: str, num_features: int, dims: int, cfg) -> nn.Module:
    """One factory for every network: dims = 2 for conv activations, 1 for linear ones."""
    momentum, eps = float(cfg.get("momentum", 0.1)), float(cfg.get("eps", 1e-5))
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        return cls(num_features, momentum=momentum, eps=eps)
    if kind == "noisy_batch":
        n = cfg.noise
        return NoisyBatchNorm(num_features, dims, n.n_mu, n.n_sigma, n.r_mu, n.r_sigma, momentum, eps)
    if kind in ("l1", "l2", "linf"):
        return LpNorm(num_features, kind, momentum, eps)
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, LpNorm)  # noisy BN normalises with a BatchNorm


def norms_in_fp32(model: nn.Module) -> None:
    """Make every norm layer of `model` compute in fp32 under autocast: its input is cast to fp32, so the
    batch statistics, the running statistics' updates and the normalised output are fp32 (autocast casts
    only matmul-like ops such as conv and linear down; batch_norm, mean and norms follow their input).
    Without this BN would run on bf16 input and the l_p norms would fail (lerp_ of fp32 running
    statistics towards bf16 batch statistics). Idempotent; a no-op for fp32 input."""
    if getattr(model, "_bnopt_norms_fp32", False):
        return
    for m in model.modules():
        if isinstance(m, NORM_TYPES):
            m.register_forward_pre_hook(_input_to_fp32)
    model._bnopt_norms_fp32 = True


def _input_to_fp32(module, args):
    """A half-precision input (bf16, fp16) cast to fp32; any other left as it is (a float64 copy of the model,
    the landscape probe's dtype=float64, keeps computing in float64)."""
    x = args[0]
    if x.dtype in (torch.bfloat16, torch.float16):
        return (x.float(), *args[1:])
    return None


def noisy_layers(model: nn.Module) -> list[NoisyBatchNorm]:
    return [m for m in model.modules() if isinstance(m, NoisyBatchNorm)]


def set_noise_generator(model: nn.Module, generator: torch.Generator) -> None:
    for m in noisy_layers(model):
        m.generator = generator


@contextlib.contextmanager
def replay_noise(model: nn.Module):
    """Inside: noisy-BN layers reuse the noise of the last training forward instead of drawing anew."""
    layers = noisy_layers(model)
    for m in layers:
        m.replay = True
    try:
        yield
    finally:
        for m in layers:
            m.replay = False


@contextlib.contextmanager
def twice_differentiable(model: nn.Module):
    """Inside: l_p norm layers compute with their plain autograd formula, so that double backward
    (Hessian-vector products) through them is exact. Batch norm and noisy BN need nothing."""
    layers = [m for m in model.modules() if isinstance(m, LpNorm)]
    for m in layers:
        m.plain = True
    try:
        yield
    finally:
        for m in layers:
            m.plain = False
