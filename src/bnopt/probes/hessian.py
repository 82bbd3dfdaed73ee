"""Curvature of the loss on the step's batch (beyond the paper, issue 12; Section 4, Thm 4.2).

At a measured step with weights w, the step's batch and its training gradient g (the .grad the backward
pass left), with Hessian-vector products Hv = grad of (grad L(w) . v) by double backward (one
forward + backward with create_graph, then one backward of the gradient per product):
    top_eig           the eigenvalue of H of largest magnitude (in practice the top one), by power
                      iteration: `iterations` products from a random unit start vector drawn from the
                      probe's own seeded generator (run seed + 3; its state is checkpointed, so a
                      resumed run draws the same start vectors); top_eig = v^T H v of the last iterate v
    top_eig_residual  ||Hv - top_eig v|| / |top_eig| of that last iterate (a convergence check: small
                      when v is an eigenvector)
    ghg               g^T H g / ||g||^2: the curvature along the step's gradient, the quadratic form
                      Thm 4.2 bounds (smaller with BN)
Measured in train mode (batch statistics, the step's noisy-BN noise replayed) and, with `mode` holding
`eval`, once more with the model in eval mode (running statistics, no noise): top_eig_eval and
top_eig_residual_eval, from the same start vector. The modules' train/eval flags are restored after.

Rows: layer 0, eta NaN. Cost per measurement and mode: about 2 x (iterations + 1) backward passes.
Parameters are never written (only read through autograd.grad); norm running statistics, RNG states and
the noise are restored by NoTrace. l_p norm layers compute with their plain autograd formula while
measured (their fused backward has no second derivative; `norms.twice_differentiable`).
"""

from __future__ import annotations

import contextlib

import torch

from ..models.norms import twice_differentiable
from .base import NoTrace, Probe, ProbeContext, ProbeGenerator, forward_loss

MODES = ("train", "eval")
TRAIN_METRICS = ("top_eig", "top_eig_residual", "ghg")
EVAL_METRICS = ("top_eig_eval", "top_eig_residual_eval")
MAX_ITERATIONS = 10_000


def check_modes(mode, name: str = "hessian mode") -> list[str]:
    """`mode` as a list of distinct modes in MODES order (a single string is one mode)."""
    modes = [mode] if isinstance(mode, str) else list(mode) if mode is not None else []
    if not modes or any(m not in MODES for m in modes) or len(set(modes)) != len(modes):
        raise ValueError(f"{name} must be a non-empty list of distinct values among {', '.join(MODES)}, got {modes!r}")
    return [m for m in MODES if m in modes]


def check_iterations(iterations, name: str = "hessian iterations") -> int:
    if isinstance(iterations, bool) or not isinstance(iterations, int) or not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"{name} must be an integer in 1..{MAX_ITERATIONS}, got {iterations!r}")
    return iterations


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """sum of a_i . b_i accumulated in float64, as a 0-dim device tensor (no host sync)."""
    return torch.stack([(x * y).sum(dtype=torch.float64) for x, y in zip(a, b, strict=True)]).sum()


@contextlib.contextmanager
def modules_in(model: torch.nn.Module, mode: str):
    """Inside: the model as the step ran it (train) or in eval mode (eval); after: every module's own flag
    as it was."""
    if mode == "train":
        yield
        return
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


class HessianProbe(Probe):
    name = "hessian"

    def __init__(self, every: int, iterations: int = 20, mode=("train",), seed: int = 0):
        super().__init__(every)
        self.iterations = check_iterations(iterations)
        self.modes = check_modes(mode)
        self.seed = int(seed)
        self.rng = ProbeGenerator(self.seed)

    def layout(self):
        out = []
        if "train" in self.modes:
            out += [(0, None, m) for m in TRAIN_METRICS]
        if "eval" in self.modes:
            out += [(0, None, m) for m in EVAL_METRICS]
        return out

    def start_vector(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """A random unit vector over `params` from the probe's generator (advances it)."""
        gen = self.rng.get(params[0].device)
        v = [torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype) for p in params]
        scale = _dot(v, v).rsqrt()
        return [t.mul_(scale.to(t.dtype)) for t in v]

    def measure(self, ctx: ProbeContext) -> dict:
        model = ctx.model
        params = [p for p in model.parameters() if p.requires_grad]
        g = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        v0 = self.start_vector(params)
        out = {}
        for mode in self.modes:
            # one NoTrace per mode: eval mode reads the running statistics as the step left them, not as
            # the train-mode measurement's forward moved them
            with NoTrace(model), twice_differentiable(model), modules_in(model, mode):
                values = self._curvature(ctx, params, v0, g if mode == "train" else None)
                lam, res, *ghg = torch.stack(values).cpu().tolist()
                suffix = "" if mode == "train" else "_eval"
                out[(0, None, "top_eig" + suffix)] = lam
                out[(0, None, "top_eig_residual" + suffix)] = res
                if ghg:
                    out[(0, None, "ghg")] = ghg[0]
        return out

    def _curvature(self, ctx: ProbeContext, params, v0, g) -> list[torch.Tensor]:
        """[top_eig, residual] (+ [g^T H g / g^T g] when g is given), as float64 device scalars."""
        loss = forward_loss(ctx)
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        used = [i for i, gi in enumerate(grads) if gi is not None and gi.requires_grad]
        if not used:
            raise RuntimeError("the loss has no second derivative with respect to any parameter")
        ps = [params[i] for i in used]
        gs = [grads[i] for i in used]

        def hvp(v: list[torch.Tensor]) -> list[torch.Tensor]:
            hv = torch.autograd.grad(gs, ps, grad_outputs=v, retain_graph=True, allow_unused=True)
            return [h if h is not None else torch.zeros_like(p) for h, p in zip(hv, ps, strict=True)]

        extra = []
        if g is not None:
            gu = [g[i].detach() for i in used]
            gg = _dot(g, g)  # over every parameter (an unused one has g = 0)
            extra.append(_dot(gu, hvp(gu)) / gg)
        v = [v0[i] for i in used]
        v = [t.mul(_dot(v, v).rsqrt().to(t.dtype)) for t in v]  # unit over the used parameters
        for i in range(self.iterations):
            hv = hvp(v)
            lam = _dot(v, hv)
            if i == self.iterations - 1:
                r = torch.stack([(h.double() - lam * t.double()).square().sum() for h, t in zip(hv, v, strict=True)])
                resid = r.sum().sqrt()
                resid = torch.where(resid == 0, resid, resid / lam.abs())
                break
            n = _dot(hv, hv).sqrt()
            v = [h.mul((1 / n).to(h.dtype)) for h in hv]
        return [lam, resid, *extra]

    def wandb(self, rows):
        return {f"hessian/{r['metric']}": r["value"] for r in rows}

    def state_dict(self) -> dict:
        return self.rng.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.rng.load_state_dict(state)

    def __repr__(self) -> str:
        return f"HessianProbe(every={self.every}, iterations={self.iterations}, mode={self.modes})"
