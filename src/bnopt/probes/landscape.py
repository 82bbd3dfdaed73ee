"""Landscape along the gradient (docs/PROTOCOL.md, Protocol; Section 3.2, A.2.2; Fig 4, 10, 11, 12, 13).

At a measured step with weights w, the step's batch and its training gradient g (the .grad the backward
pass left, i.e. the eta = 0 point, not recomputed), for every eta in a set S and on the same batch:
    loss(eta)      = L(w - eta d)
    grad_diff(eta) = ||grad L(w - eta d) - g||_2            (gradient predictiveness)
    beta_eta(eta)  = grad_diff(eta) / ||eta d||_2            (effective beta-smoothness)
with d = g (direction: gradient, the paper) or a Gaussian direction rescaled to ||g|| (direction: random,
from the probe's own seeded generator). Per step also: loss_min / loss_max over eta (loss variation),
grad_diff_min / grad_diff_max (predictiveness range), beta = max over eta of beta_eta, grad_norm = ||g||
and loss0 = the step's training loss.

Each eta costs one forward and one backward pass, in train mode (batch statistics) and with the step's
noisy-BN noise replayed; weights are perturbed in place from one saved copy and restored exactly.

Two settings beyond the paper (issue 25, the DLN ablation):
- dtype: float32 (the paper, the model as trained) or float64. The standard DLN's loss (~1e4) moves by 1-3
  float32 spacings over S, which float32 cannot resolve. float64 measures on a float64 copy of the model
  (deepcopy, then .double(); the model itself is never touched) with the step's inputs and float targets
  cast and its noisy-BN noise replayed (cast), and recomputes g at w in float64 on the same batch; the
  random direction is drawn as in float32 (same generator, same numbers), then cast. One extra forward and
  backward pass per measurement. loss0 stays the step's training loss.
- norm_params: true (the paper: d covers every parameter) or false: d, g, grad_diff and every norm are
  taken over the parameters outside the norm layers (the `norm` of each numbered block) only, so BN's
  gamma and beta stay at w. Equal to true for a network without norm parameters.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch

from ..models.norms import noisy_layers
from .base import NoTrace, Probe, ProbeContext, ProbeGenerator, forward_loss, global_norm

# Fig 4 / 11a: S spans [0.05, 0.4] for VGG; the largest eta is just below the LR where the standard net
# diverges. Fig 10 / 11b: S spans [1e-8, 3e-5] for the DLN (log-spaced here, 3 significant digits).
VGG_ETAS = tuple(round(0.05 * i, 10) for i in range(1, 9))
DLN_ETAS = tuple(float(f"{v:.3g}") for v in np.geomspace(1e-8, 3e-5, 8))
DEFAULT_ETAS = {"vgg": VGG_ETAS, "dln": DLN_ETAS}

PER_ETA = ("loss", "grad_diff", "beta_eta")
SUMMARY = ("loss_min", "loss_max", "grad_diff_min", "grad_diff_max", "beta", "grad_norm", "loss0")
DIRECTIONS = ("gradient", "random")
DTYPES = ("float32", "float64")


def check_dtype(dtype, name: str = "landscape dtype") -> str:
    if dtype not in DTYPES:
        raise ValueError(f"{name} must be one of {', '.join(DTYPES)}, not {dtype!r}")
    return dtype


def check_norm_params(norm_params, name: str = "landscape norm_params") -> bool:
    if not isinstance(norm_params, bool):
        raise ValueError(f"{name} must be true or false, not {norm_params!r}")
    return norm_params


class LandscapeProbe(Probe):
    name = "landscape"

    def __init__(
        self,
        every: int,
        etas,
        direction: str = "gradient",
        seed: int = 0,
        dtype: str = "float32",
        norm_params: bool = True,
    ):
        super().__init__(every)
        etas = [float(e) for e in etas]
        if not etas or any(not (e > 0 and np.isfinite(e)) for e in etas):
            raise ValueError(f"landscape etas must be positive finite numbers, got {etas}")
        if direction not in DIRECTIONS:
            raise ValueError(f"landscape direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
        self.etas = sorted(set(etas))
        self.direction = direction
        self.seed = int(seed)
        self.dtype = check_dtype(dtype)
        self.norm_params = check_norm_params(norm_params)
        self.rng = ProbeGenerator(self.seed)

    def layout(self):
        return [(0, eta, m) for eta in self.etas for m in PER_ETA] + [(0, None, m) for m in SUMMARY]

    def _moved(self, model: torch.nn.Module) -> list[torch.Tensor]:
        """The parameters the direction covers: all of them, or (norm_params false) those outside the norm
        layers, in model.parameters() order (the same order in the model and in its float64 copy)."""
        params = [p for p in model.parameters() if p.requires_grad]
        if self.norm_params:
            return params
        in_norms = {id(p) for block in getattr(model, "blocks", ()) for p in block.norm.parameters()}
        return [p for p in params if id(p) not in in_norms]

    def _direction(self, like, g, g_norm):
        """d = g, or a Gaussian draw shaped (and typed) like the tensors `like` (the trained model's
        parameters), cast to g's dtype and rescaled to ||g||."""
        if self.direction == "gradient":
            return g
        gen = self.rng.get(like[0].device)
        r = [
            torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype).to(gi.dtype)
            for p, gi in zip(like, g, strict=True)
        ]
        scale = (g_norm / global_norm(r)).to(g[0].dtype)
        return [t.mul_(scale) for t in r]

    def measure(self, ctx: ProbeContext) -> dict:
        trained = self._moved(ctx.model)
        work = float64_context(ctx) if self.dtype == "float64" else ctx
        params = self._moved(work.model) if work is not ctx else trained
        losses, diffs = [], []
        with NoTrace(work.model, params) as nt:
            if work is ctx:  # the training gradient, as the backward pass left it
                g = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            else:  # the eta = 0 point again, in float64, on the same batch and noise
                g = _gradient(work, params)
            g_norm = global_norm(g)
            d = self._direction(trained, g, g_norm)
            d_norm = global_norm(d)
            for eta in self.etas:
                with torch.no_grad():  # w - eta d, from the saved copy
                    torch._foreach_copy_(params, nt.saved)
                    torch._foreach_add_(params, d, alpha=-eta)
                loss = forward_loss(work)
                grads = _gradient(work, params, loss)
                diffs.append(global_norm(torch._foreach_sub(grads, g)))
                losses.append(loss.detach().to(torch.float64))
                del grads, loss
        vals = (
            torch.stack(
                [
                    *losses,
                    *diffs,
                    g_norm.to(losses[0].device),
                    d_norm.to(losses[0].device),
                    ctx.loss.detach().to(torch.float64),
                ]
            )
            .cpu()
            .tolist()
        )
        n = len(self.etas)
        loss_v, diff_v, (gn, dn, loss0) = vals[:n], vals[n : 2 * n], vals[2 * n :]
        out = {}
        betas = []
        for eta, lo, gd in zip(self.etas, loss_v, diff_v, strict=True):
            beta = gd / (eta * dn) if dn > 0 else float("nan")
            betas.append(beta)
            out[(0, eta, "loss")], out[(0, eta, "grad_diff")], out[(0, eta, "beta_eta")] = lo, gd, beta
        out[(0, None, "loss_min")], out[(0, None, "loss_max")] = _strict(min, loss_v), _strict(max, loss_v)
        out[(0, None, "grad_diff_min")] = _strict(min, diff_v)
        out[(0, None, "grad_diff_max")] = _strict(max, diff_v)
        out[(0, None, "beta")] = _strict(max, betas)
        out[(0, None, "grad_norm")], out[(0, None, "loss0")] = gn, loss0
        return out

    def wandb(self, rows):
        s = {r["metric"]: r["value"] for r in rows if r["metric"] in SUMMARY}
        if not s:
            return {}
        out = {f"landscape/{k}": v for k, v in s.items()}
        out["landscape/loss_range"] = s["loss_max"] - s["loss_min"]
        out["landscape/grad_diff_range"] = s["grad_diff_max"] - s["grad_diff_min"]
        return out

    def state_dict(self) -> dict:
        return self.rng.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.rng.load_state_dict(state)

    def __repr__(self) -> str:
        return (
            f"LandscapeProbe(every={self.every}, etas={self.etas}, direction={self.direction}, dtype={self.dtype}, "
            f"norm_params={self.norm_params})"
        )


def _strict(fn, values: list[float]) -> float:
    """min/max, but NaN if any value is NaN (Python's min/max skip NaNs depending on their position)."""
    return float("nan") if any(v != v for v in values) else fn(values)


def _gradient(ctx: ProbeContext, params: list[torch.Tensor], loss: torch.Tensor | None = None) -> list[torch.Tensor]:
    """grad of `loss` (default: the step's batch loss at the current weights) for `params`, zeros for the
    parameters it does not reach; `.grad` is not written."""
    loss = forward_loss(ctx) if loss is None else loss
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [gi if gi is not None else torch.zeros_like(p) for gi, p in zip(grads, params, strict=True)]


def float64_context(ctx: ProbeContext) -> ProbeContext:
    """The step's context on a float64 copy of the model: inputs and float targets cast to float64, the
    noisy-BN layers holding the step's noise (cast), in the mode the model is in. The model is only read."""
    model = ctx.model
    # the copy never draws noise (it replays), so it shares no generator with the run
    memo = {id(m.generator): None for m in noisy_layers(model) if m.generator is not None}
    twin = copy.deepcopy(model, memo).double()
    for layer in noisy_layers(twin):
        if layer.last_noise is not None:
            layer.last_noise = tuple(t.to(torch.float64) for t in layer.last_noise)
    return dataclasses.replace(
        ctx, model=twin, inputs=_to_float64(ctx.inputs), targets=_to_float64(ctx.targets), heard={}
    )


def _to_float64(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float64) if torch.is_tensor(t) and t.is_floating_point() else t
