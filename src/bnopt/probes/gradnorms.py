"""Per-layer gradient and weight norms (the vanishing/exploding-gradient claim; Section 4's bounds).

Rows per layer k = 1..num_layers (VGG: the 13 conv layers and the classifier as layer num_layers + 1;
DLN: the 25 linear layers): grad_norm = ||grad wrt W_k||_2 of the step's training gradient and
weight_norm = ||W_k||_2 (Frobenius). Read-only and cheap: no forward or backward pass, one host sync.
"""

from __future__ import annotations

import torch

from .base import Probe, ProbeContext, num_layers

METRICS = ("grad_norm", "weight_norm")


def numbered_weights(model) -> list[tuple[int, torch.nn.Parameter]]:
    """(layer number, weight) of every numbered layer; a VGG's classifier is layer num_layers + 1."""
    n = num_layers(model)
    out = [(k, model.layer(k).layer.weight) for k in range(1, n + 1)]
    head = getattr(model, "classifier", None)
    if head is not None and getattr(head, "weight", None) is not None:
        out.append((n + 1, head.weight))
    return out


class GradNormsProbe(Probe):
    name = "gradnorms"

    def __init__(self, every: int, layers: list[int]):
        super().__init__(every)
        self.layers = list(layers)

    @classmethod
    def for_model(cls, every: int, model) -> GradNormsProbe:
        return cls(every, [k for k, _ in numbered_weights(model)])

    def layout(self):
        return [(k, None, m) for k in self.layers for m in METRICS]

    @torch.no_grad()
    def measure(self, ctx: ProbeContext) -> dict:
        weights = dict(numbered_weights(ctx.model))
        ws = [weights[k] for k in self.layers]
        nan = torch.full((), float("nan"), device=ws[0].device)
        # float32 norms (torch accumulates them with pairwise sums): exact enough, no float64 copies
        vals = torch._foreach_norm([w.grad if w.grad is not None else nan for w in ws] + ws)
        flat = torch.stack(vals).cpu().tolist()
        n = len(ws)
        flat = [v for pair in zip(flat[:n], flat[n:], strict=True) for v in pair]
        out = {}
        for i, k in enumerate(self.layers):
            out[(k, None, "grad_norm")], out[(k, None, "weight_norm")] = flat[2 * i], flat[2 * i + 1]
        return out

    def wandb(self, rows):
        return {
            f"gradnorms/layer{r['layer']}" + ("" if r["metric"] == "grad_norm" else "/weight"): r["value"] for r in rows
        }

    def __repr__(self) -> str:
        return f"GradNormsProbe(every={self.every}, layers=1..{max(self.layers) if self.layers else 0})"
