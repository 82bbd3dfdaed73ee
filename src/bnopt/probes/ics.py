"""Internal covariate shift in the optimisation sense (docs/PROTOCOL.md, Definition 2.1; Fig 3).

For layer #k at step t, on the step's batch:
    G  = grad wrt W_k of L(W_1^t, ..., W_K^t)                      (the training gradient, .grad)
    G' = grad wrt W_k of L(W_1^{t+1}, ..., W_{k-1}^{t+1}, W_k^t, ..., W_K^t)
where "layer j" means all parameters of numbered block j (its conv/linear weight and bias and its norm's
affine parameters), and W^{t+1} is what the run's optimiser step actually produces (momentum and weight
decay included): the probe calls `optimizer.step()` for real, reads the new values of the layers it needs,
then restores the weights and the optimiser state exactly. Rows per layer: l2 = ||G - G'||_2,
cos = cos(G, G') (ideal 0 and 1), g_norm = ||G||_2.

Cost: one forward and one (partial) backward pass per measured layer; for layer #1 nothing precedes the
layer, so G' = G by definition (l2 = 0, cos = 1) and nothing is recomputed.
"""

from __future__ import annotations

import torch

from .base import NoTrace, OptimizerSnapshot, Probe, ProbeContext, forward_loss, global_norm, resolve_layers

DEFAULT_LAYERS = {"vgg": (5, 10), "dln": (9, 17)}  # Fig 3a / 3b
METRICS = ("l2", "cos", "g_norm")


class ICSProbe(Probe):
    name = "ics"

    def __init__(self, every: int, layers: list[int]):
        super().__init__(every)
        self.layers = sorted(set(int(k) for k in layers))
        if not self.layers or self.layers[0] < 1:
            raise ValueError(f"ics layers must be 1-based layer numbers, got {layers}")

    @classmethod
    def for_model(cls, every: int, model, layers=None, family: str | None = None) -> ICSProbe:
        family = family or getattr(model, "family", "vgg")
        return cls(every, resolve_layers(layers, model, DEFAULT_LAYERS.get(family, (1,))))

    def layout(self):
        return [(k, None, m) for k in self.layers for m in METRICS]

    def measure(self, ctx: ProbeContext) -> dict:
        model, opt = ctx.model, ctx.optimizer
        weights = {k: model.layer(k).layer.weight for k in self.layers}
        grads = {k: w.grad for k, w in weights.items()}
        if any(g is None for g in grads.values()):
            raise RuntimeError("a measured layer's weight has no training gradient")
        last = max(self.layers)
        before = [list(model.layer(j).parameters()) for j in range(1, last)]  # blocks #1..#last-1
        params = list(model.parameters())
        results = []
        with NoTrace(model, params) as nt:
            snap = OptimizerSnapshot(opt)
            try:
                opt.step()  # W^{t+1} as the run's optimiser produces it
                with torch.no_grad():
                    nxt = [[p.detach().clone() for p in block] for block in before]
            finally:
                nt.restore_params()
                snap.restore()
            moved = 0  # blocks #1..#moved are at W^{t+1}
            for k in self.layers:
                with torch.no_grad():
                    while moved < k - 1:
                        for p, v in zip(before[moved], nxt[moved], strict=True):
                            p.copy_(v)
                        moved += 1
                g = grads[k]
                if k == 1:  # nothing precedes layer #1: G' = G
                    gp = g
                else:
                    loss = forward_loss(ctx)
                    (gp,) = torch.autograd.grad(loss, [weights[k]])
                    del loss
                dot = (g.double() * gp.double()).sum()
                norms = torch.stack([global_norm([g]), global_norm([gp])])
                results.append((k, global_norm([g - gp]), dot, norms))
        out = {}
        for k, l2, dot, norms in results:
            l2, dot = float(l2), float(dot)
            ng, ngp = norms.tolist()
            if k == 1:
                l2, cos = 0.0, 1.0
            else:
                cos = dot / (ng * ngp) if ng > 0 and ngp > 0 else float("nan")
                cos = max(-1.0, min(1.0, cos)) if cos == cos else cos  # rounding can give 1 + 1e-16
            out[(k, None, "l2")], out[(k, None, "cos")], out[(k, None, "g_norm")] = l2, cos, ng
        return out

    def wandb(self, rows):
        return {f"ics/layer{r['layer']}/{r['metric']}": r["value"] for r in rows}

    def __repr__(self) -> str:
        return f"ICSProbe(every={self.every}, layers={self.layers})"
