"""Rank of the layers' representations (beyond the paper, issue 12).

What is measured: the output of numbered block #k (`model.layer(k)`: weight layer -> norm -> activation;
the DLN has no activation, so its block output is the norm's output, and #25's is the network's output),
in train mode on the step's batch with the step's noisy-BN noise replayed, as a [batch, features]
matrix A (a VGG layer's [N, C, H, W] output flattened per sample to [N, C*H*W]). The outputs are copied out of
the step's own training forward (`taps` + `base.listen`); a caller that did not listen gets them from one
extra no-grad forward with the norm running statistics restored.

Rows per layer (probes.parquet):
    rank         numerical rank: the number of singular values above max(sv) * max(N, D) * eps, eps of the
                 representation's dtype (float32), the rule of numpy.linalg.matrix_rank
    stable_rank  ||A||_F^2 / ||A||_2^2 (sum of squared singular values over the largest squared one;
                 0 for an all-zero A)
The singular values come from the eigenvalues of the smaller Gram matrix (A A^T or A^T A) in float64: its
rounding (~1e-8 of max(sv)) is far below the float32 threshold (>= 1e-6 of max(sv)).
"""

from __future__ import annotations

import torch

from .base import Probe, ProbeContext, capture_outputs, resolve_layers

DEFAULT_LAYERS = {"vgg": (2, 9, 13), "dln": "all"}
METRICS = ("rank", "stable_rank")


def rank_stats(a: torch.Tensor) -> torch.Tensor:
    """[numerical rank, stable rank] of a [N, ...] representation flattened to [N, D], as a float64 device
    tensor (no host sync)."""
    eps = torch.finfo(a.dtype).eps if a.is_floating_point() else torch.finfo(torch.float32).eps
    m = a.detach().reshape(a.shape[0], -1).double()
    n, d = m.shape
    gram = m @ m.T if n <= d else m.T @ m
    ev = torch.linalg.eigvalsh(gram).clamp_min(0)
    top = ev.max()
    sv = ev.sqrt()
    tol = sv.max() * max(n, d) * eps
    rank = (sv > tol).sum().double()
    stable = torch.where(top > 0, ev.sum() / top, torch.zeros_like(top))
    return torch.stack([rank, stable])


class RankProbe(Probe):
    name = "rank"

    def __init__(self, every: int, layers: list[int]):
        super().__init__(every)
        self.layers = sorted(set(int(k) for k in layers))
        if not self.layers or self.layers[0] < 1:
            raise ValueError(f"rank layers must be 1-based layer numbers, got {layers}")

    @classmethod
    def for_model(cls, every: int, model, layers=None, family: str | None = None) -> RankProbe:
        family = family or getattr(model, "family", "vgg")
        default = DEFAULT_LAYERS.get(family, (1,))
        if layers is None and isinstance(default, str):
            layers = default
        return cls(every, resolve_layers(layers, model, () if isinstance(default, str) else default))

    def layout(self):
        return [(k, None, m) for k in self.layers for m in METRICS]

    def taps(self, model) -> list[torch.nn.Module]:
        return [model.layer(k) for k in self.layers]

    def capture(self, ctx: ProbeContext) -> dict[int, torch.Tensor]:
        """The block outputs of the measured layers on the step's batch: from the training forward when the
        caller listened (`ctx.heard`), else from one no-grad forward of our own (no trace)."""
        return capture_outputs(ctx, {k: ctx.model.layer(k) for k in self.layers})

    def measure(self, ctx: ProbeContext) -> dict:
        captured = self.capture(ctx)
        vals = torch.stack([rank_stats(captured[k]) for k in self.layers]).cpu().tolist()
        out = {}
        for k, (rank, stable) in zip(self.layers, vals, strict=True):
            out[(k, None, "rank")], out[(k, None, "stable_rank")] = rank, stable
        return out

    def wandb(self, rows):
        return {f"rank/layer{r['layer']}/{r['metric']}": r["value"] for r in rows}

    def __repr__(self) -> str:
        return f"RankProbe(every={self.every}, layers={self.layers})"
