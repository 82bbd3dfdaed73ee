"""Distributions of layer activations over training (docs/PROTOCOL.md; Fig 1c, 2, 6, 8, 9).

What is measured: the output of `model.layer(k).norm`, i.e. the layer's activations after the norm (and
the noisy-BN noise), before the non-linearity, in train mode on the step's batch with the step's noise
replayed. They are copied out of the step's own training forward (`taps` + `base.listen`: a forward hook
that copies the norm's output and changes nothing else); a caller that did not listen gets them from one
extra no-grad forward pass with the step's noise replayed and the norm running statistics restored.

Rows per layer (probes.parquet): quantiles q01, q05, q25, q50, q75, q95, q99 (numpy's default linear
interpolation) and mean, var (population variance, ddof 0) over all elements.

Arrays (activations.npz in the run folder, written at checkpoints; `Results.histograms(run_id)`):
    layer{k}_edges      [n, bins+1]   bin edges of each measurement (`probes.activations.edges`):
                                       per_measurement (default) = that measurement's own 0.1%..99.9%
                                       quantile range widened by half its length on each side, so at most
                                       ~0.2% of its values fall outside; first = the first measurement's
                                       edges repeated (the old rule: a growing layer leaves its edges).
                                       Records written before this rule hold one row [bins+1]: readers
                                       broadcast it to every measurement.
    layer{k}_counts     [n, bins]     histogram counts per measurement (values outside the edges are
    layer{k}_underflow  [n]           not in any bin; they are counted here
    layer{k}_overflow   [n]           and here)
    layer{k}_steps      [n]           the measured steps
    layer{k}_unit_mean  [n, C]        per-unit (channel / feature) mean over batch x height x width
    layer{k}_unit_var   [n, C]        per-unit population variance: Fig 8's moment drift
"""

from __future__ import annotations

import numpy as np
import torch

from .base import Probe, ProbeContext, capture_outputs, resolve_layers

DEFAULT_LAYERS = {"vgg": (2, 3, 9, 11, 13), "dln": (1, 11, 24)}  # Fig 1c, 2, 6, 8 / Fig 9
QUANTILES = {"q01": 0.01, "q05": 0.05, "q25": 0.25, "q50": 0.5, "q75": 0.75, "q95": 0.95, "q99": 0.99}
METRICS = (*QUANTILES, "mean", "var")
EDGE_QUANTILES = (0.001, 0.999)
EDGE_MARGIN = 0.5  # fraction of the 0.1%..99.9% range added on each side
WANDB_MAX_BINS = 64
# Bin edges of a measurement: its own robust range (default), or the layer's first measurement's (old rule).
EDGE_RULES = ("per_measurement", "first")


def activation_stats(a: torch.Tensor, moments=None) -> dict:
    """Row values of one activation tensor [N, C, ...]: quantiles (numpy's linear rule), mean, var.
    moments: unit_moments(a), if at hand."""
    return layer_summary(a, 2, moments=moments)[0]


def layer_summary(a: torch.Tensor, bins: int, edges: np.ndarray | None = None, moments=None):
    """What one measurement records of a layer: (row values, edges, counts, underflow, overflow, unit mean,
    unit var). edges: given (the `first` rule), else the measurement's own `robust_edges`.

    Computed where the activations live, so that only a few numbers cross to the host: on a GPU one sort,
    the quantiles read off it and the histogram by binary search (copying a full-width layer to the host
    and sorting it there cost ~0.85 s per call on an H200 machine); on the CPU numpy's partition-based
    quantile and histogram. Both give numpy's numbers (`sorted_quantiles`, `sorted_histogram`)."""
    mean, var = unit_moments(a) if moments is None else moments
    qs = [*QUANTILES.values(), *EDGE_QUANTILES]
    if a.is_cuda:
        xs = torch.sort(a.detach().reshape(-1).float()).values
        q = sorted_quantiles(xs, qs)
    else:
        x = a.detach().reshape(-1).float().cpu().numpy()
        q = np.quantile(x, qs)
    edges = robust_edges(q[-2], q[-1], bins) if edges is None else edges
    counts, under, over = sorted_histogram(xs, edges) if a.is_cuda else histogram(x, edges)
    out = dict(zip(QUANTILES, (float(v) for v in q[: len(QUANTILES)]), strict=True))
    # every unit has the same number of elements: the overall moments follow from the per-unit ones
    out["mean"] = float(mean.mean())
    out["var"] = float(var.mean() + ((mean - mean.mean()) ** 2).mean())
    return out, edges, counts, under, over, mean, var


def sorted_quantiles(xs: torch.Tensor, qs) -> np.ndarray:
    """numpy's default ('linear') quantiles of already sorted values: the value at position q (n - 1),
    interpolated between its two neighbours (in float64 on the host, from 2 values per quantile)."""
    n = xs.numel()
    pos = np.asarray(qs, dtype=np.float64) * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    v = xs[torch.as_tensor(np.concatenate([lo, hi]), device=xs.device)].double().cpu().numpy()
    below, above = v[: len(lo)], v[len(lo) :]
    return below + (above - below) * (pos - lo)


def sorted_histogram(xs: torch.Tensor, edges: np.ndarray) -> tuple[np.ndarray, int, int]:
    """numpy.histogram's counts over `edges` ([e_i, e_i+1), the last bin closed) and the values below and
    above them, from sorted values by binary search (compared in float64, as numpy compares)."""
    e = torch.as_tensor(edges, dtype=torch.float64, device=xs.device)
    x = xs.double()
    at = torch.cat([torch.searchsorted(x, e[:-1]), torch.searchsorted(x, e[-1:], right=True)]).cpu().numpy()
    return np.diff(at).astype(np.int64), int(at[0]), int(xs.numel() - at[-1])


def unit_moments(a: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit mean and population variance (float64) over every dimension but the unit (channel) one."""
    d = a.detach().double()
    dims = [0] + list(range(2, d.dim()))
    var, mean = torch.var_mean(d, dim=dims, correction=0)
    return mean.cpu().numpy(), var.cpu().numpy()


def robust_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """bins+1 edges over [lo, hi] (a measurement's 0.1% and 99.9% quantiles) widened by EDGE_MARGIN of its
    length on each side."""
    lo, hi = float(lo), float(hi)
    span = hi - lo
    if not span > 0:
        span = max(abs(lo), 1.0)
    return np.linspace(lo - EDGE_MARGIN * span, hi + EDGE_MARGIN * span, bins + 1)


def histogram(x: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, int, int]:
    counts, _ = np.histogram(x, bins=len(edges) - 1, range=(edges[0], edges[-1]))
    return counts.astype(np.int64), int((x < edges[0]).sum()), int((x > edges[-1]).sum())


def coarsen(counts: np.ndarray, edges: np.ndarray, max_bins: int = WANDB_MAX_BINS):
    """Merge adjacent bins so that at most max_bins remain (for W&B)."""
    n = len(counts)
    if n <= max_bins:
        return counts, edges
    k = -(-n // max_bins)
    starts = np.arange(0, n, k)
    return np.add.reduceat(counts, starts), np.append(edges[starts], edges[-1])


class ActivationsProbe(Probe):
    name = "activations"

    def __init__(
        self,
        every: int,
        layers: list[int],
        bins: int = 64,
        wandb_histograms: bool = True,
        edges: str = "per_measurement",
    ):
        super().__init__(every)
        self.layers = sorted(set(int(k) for k in layers))
        self.bins = int(bins)
        if not 2 <= self.bins <= 4096:
            raise ValueError(f"activations bins must be in 2..4096, got {bins}")
        if edges not in EDGE_RULES:
            raise ValueError(f"activations edges must be one of {', '.join(EDGE_RULES)}, got {edges!r}")
        self.edges = edges
        self.wandb_histograms = wandb_histograms
        self.hist: dict[int, dict] = {}  # layer -> lists of per-measurement arrays (edges included)
        self._last: tuple[int, dict] | None = None  # (step, {layer: (counts, edges)}) for W&B

    @classmethod
    def for_model(
        cls,
        every: int,
        model,
        layers=None,
        bins: int = 64,
        family: str | None = None,
        wandb_histograms: bool = True,
        edges: str = "per_measurement",
    ) -> ActivationsProbe:
        family = family or getattr(model, "family", "vgg")
        chosen = resolve_layers(layers, model, DEFAULT_LAYERS.get(family, (1,)))
        return cls(every, chosen, bins, wandb_histograms, edges)

    def layout(self):
        return [(k, None, m) for k in self.layers for m in METRICS]

    def taps(self, model) -> list[torch.nn.Module]:
        return [model.layer(k).norm for k in self.layers]

    def capture(self, ctx: ProbeContext) -> dict[int, torch.Tensor]:
        """The norm outputs of the measured layers on the step's batch: from the training forward when the
        caller listened (`ctx.heard`), else from one no-grad forward of our own (no trace)."""
        return capture_outputs(ctx, {k: ctx.model.layer(k).norm for k in self.layers})

    def measure(self, ctx: ProbeContext) -> dict:
        captured = self.capture(ctx)
        out, pending = {}, {}
        for k, a in captured.items():
            first = self.hist[k]["edges"][0] if self.edges == "first" and k in self.hist else None
            row, *recorded = layer_summary(a, self.bins, first)
            pending[k] = recorded
            out |= {(k, None, m): v for m, v in row.items()}
        # all layers measured: only now touch the accumulators (a failure above leaves them as they were)
        for k, (edges, counts, under, over, mean, var) in pending.items():
            h = self.hist.setdefault(
                k,
                {
                    "edges": [],
                    "counts": [],
                    "underflow": [],
                    "overflow": [],
                    "steps": [],
                    "unit_mean": [],
                    "unit_var": [],
                },
            )
            h["edges"].append(edges)
            h["counts"].append(counts)
            h["underflow"].append(under)
            h["overflow"].append(over)
            h["steps"].append(int(ctx.step))
            h["unit_mean"].append(mean)
            h["unit_var"].append(var)
        self._last = (int(ctx.step), {k: (p[1], p[0]) for k, p in pending.items()})
        return out

    # ---- records
    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for k, h in sorted(self.hist.items()):
            out[f"layer{k}_edges"] = np.stack(h["edges"]).astype(np.float64)
            out[f"layer{k}_counts"] = np.stack(h["counts"]).astype(np.int64)
            out[f"layer{k}_underflow"] = np.asarray(h["underflow"], dtype=np.int64)
            out[f"layer{k}_overflow"] = np.asarray(h["overflow"], dtype=np.int64)
            out[f"layer{k}_steps"] = np.asarray(h["steps"], dtype=np.int64)
            out[f"layer{k}_unit_mean"] = np.stack(h["unit_mean"]).astype(np.float64)
            out[f"layer{k}_unit_var"] = np.stack(h["unit_var"]).astype(np.float64)
        return out

    def state_dict(self) -> dict:
        return {
            "bins": self.bins,
            "edges": self.edges,
            "arrays": {k: torch.from_numpy(v) for k, v in self.arrays().items()},
        }

    def load_state_dict(self, state: dict) -> None:
        arrays = {k: v.numpy() if torch.is_tensor(v) else np.asarray(v) for k, v in state.get("arrays", {}).items()}
        self.hist = {}
        for key in arrays:
            if not key.endswith("_edges"):
                continue
            p = key[: -len("_edges")]
            k = int(p[len("layer") :])
            counts = list(arrays[f"{p}_counts"])
            edges = arrays[f"{p}_edges"]
            if edges.ndim == 1:  # a checkpoint written before per-measurement edges: one row for all
                edges = np.broadcast_to(edges, (len(counts), len(edges)))
            self.hist[k] = {
                "edges": [np.array(e) for e in edges],
                "counts": counts,
                "underflow": [int(v) for v in arrays[f"{p}_underflow"]],
                "overflow": [int(v) for v in arrays[f"{p}_overflow"]],
                "steps": [int(v) for v in arrays[f"{p}_steps"]],
                "unit_mean": list(arrays[f"{p}_unit_mean"]),
                "unit_var": list(arrays[f"{p}_unit_var"]),
            }

    def wandb(self, rows):
        out = {f"activations/layer{r['layer']}/{r['metric']}": r["value"] for r in rows}
        if not (self.wandb_histograms and rows and self._last and self._last[0] == rows[0]["step"]):
            return out
        try:
            import wandb
        except Exception:
            return out
        for k, (counts, edges) in self._last[1].items():
            c, e = coarsen(counts, edges)
            out[f"activations/layer{k}/hist"] = wandb.Histogram(np_histogram=(c.tolist(), e.tolist()))
        return out

    def __repr__(self) -> str:
        return f"ActivationsProbe(every={self.every}, layers={self.layers}, bins={self.bins}, edges={self.edges})"
