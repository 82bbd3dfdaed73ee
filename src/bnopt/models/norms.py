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


def _dense_like(a: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor shaped like a, in a's memory format (contiguous or channels_last), whose
    memory is one dense block: torch's CPU normal_ on a channels_last tensor takes a slow element-by-element
    path (about 6x), and mixing memory formats would slow every later op, so sample in memory order."""
    if a.dim() == 4 and not a.is_contiguous() and a.is_contiguous(memory_format=torch.channels_last):
        n, c, h, w = a.shape
        return torch.empty(n, h, w, c, dtype=a.dtype, device=a.device).permute(0, 3, 1, 2)
    return torch.empty(a.shape, dtype=a.dtype, device=a.device)


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
        g = self.generator
        c = a.shape[1]
        opts = dict(device=a.device, dtype=a.dtype)
        mu = torch.empty(c, **opts).uniform_(-self.n_mu, self.n_mu, generator=g)
        sigma = torch.empty(c, **opts).uniform_(1.0, self.n_sigma, generator=g)
        shape = _unit_shape(a)
        m = _dense_like(a).uniform_(-self.r_mu, self.r_mu, generator=g).add_(mu.view(shape))
        s = _dense_like(a).normal_(0.0, self.r_sigma, generator=g).add_(sigma.view(shape))
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
        return s * a + m


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

    def batch_scale(self, x: torch.Tensor) -> torch.Tensor:
        dims = _reduce_dims(x)
        if self.p == "l1":
            return x.abs().mean(dims)
        if self.p == "l2":
            return x.pow(2).mean(dims).sqrt()
        return x.abs().amax(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = _unit_shape(x)
        if self.training:
            mean = x.mean(_reduce_dims(x))
            scale = self.batch_scale(x)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_scale.lerp_(scale.detach(), self.momentum)
        else:
            mean, scale = self.running_mean, self.running_scale
        y = (x - mean.view(shape)) / (scale.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)

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
