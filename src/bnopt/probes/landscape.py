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
"""

from __future__ import annotations

import numpy as np
import torch

from .base import NoTrace, Probe, ProbeContext, ProbeGenerator, forward_loss, global_norm

# Fig 4 / 11a: S spans [0.05, 0.4] for VGG; the largest eta is just below the LR where the standard net
# diverges. Fig 10 / 11b: S spans [1e-8, 3e-5] for the DLN (log-spaced here, 3 significant digits).
VGG_ETAS = tuple(round(0.05 * i, 10) for i in range(1, 9))
DLN_ETAS = tuple(float(f"{v:.3g}") for v in np.geomspace(1e-8, 3e-5, 8))
DEFAULT_ETAS = {"vgg": VGG_ETAS, "dln": DLN_ETAS}

PER_ETA = ("loss", "grad_diff", "beta_eta")
SUMMARY = ("loss_min", "loss_max", "grad_diff_min", "grad_diff_max", "beta", "grad_norm", "loss0")
DIRECTIONS = ("gradient", "random")


class LandscapeProbe(Probe):
    name = "landscape"

    def __init__(self, every: int, etas, direction: str = "gradient", seed: int = 0):
        super().__init__(every)
        etas = [float(e) for e in etas]
        if not etas or any(not (e > 0 and np.isfinite(e)) for e in etas):
            raise ValueError(f"landscape etas must be positive finite numbers, got {etas}")
        if direction not in DIRECTIONS:
            raise ValueError(f"landscape direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
        self.etas = sorted(set(etas))
        self.direction = direction
        self.seed = int(seed)
        self.rng = ProbeGenerator(self.seed)

    def layout(self):
        return [(0, eta, m) for eta in self.etas for m in PER_ETA] + [(0, None, m) for m in SUMMARY]

    def _direction(self, params, g, g_norm):
        if self.direction == "gradient":
            return g
        gen = self.rng.get(params[0].device)
        r = [torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype) for p in params]
        scale = (g_norm / global_norm(r)).to(params[0].dtype)
        return [t.mul_(scale) for t in r]

    def measure(self, ctx: ProbeContext) -> dict:
        model = ctx.model
        params = [p for p in model.parameters() if p.requires_grad]
        g = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        g_norm = global_norm(g)
        d = self._direction(params, g, g_norm)
        d_norm = global_norm(d)
        losses, diffs = [], []
        with NoTrace(model, params) as nt:
            for eta in self.etas:
                with torch.no_grad():  # w - eta d, from the saved copy
                    torch._foreach_copy_(params, nt.saved)
                    torch._foreach_add_(params, d, alpha=-eta)
                loss = forward_loss(ctx)
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                grads = [gi if gi is not None else torch.zeros_like(g0) for gi, g0 in zip(grads, g, strict=True)]
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
        return f"LandscapeProbe(every={self.every}, etas={self.etas}, direction={self.direction})"


def _strict(fn, values: list[float]) -> float:
    """min/max, but NaN if any value is NaN (Python's min/max skip NaNs depending on their position)."""
    return float("nan") if any(v != v for v in values) else fn(values)
