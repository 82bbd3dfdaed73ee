"""Measurements taken inside training (docs/PROTOCOL.md, Protocol): landscape, ics, activations, gradnorms;
beyond the paper (issue 12): hessian, rank.

A probe is called after the step's backward pass and before the optimiser step, with a `ProbeContext`:
the model (train mode, parameters' .grad holding the step's training gradient), the step's batch, its
loss, the optimiser and the task. A probe returns tidy record rows and leaves no trace on training
(base.py says how).

Record rows (probes.parquet, results.PROBE_COLUMNS): step, probe, layer (0 = whole model, k = layer #k,
1-based), eta (NaN when not applicable), metric, value (NaN + a warning when the probe failed or the
value was not finite).

    probe        layer  eta      metrics
    landscape    0      eta      loss, grad_diff, beta_eta
    landscape    0      NaN      loss_min, loss_max, grad_diff_min, grad_diff_max, beta, grad_norm, loss0
    ics          k      NaN      l2, cos, g_norm
    activations  k      NaN      q01, q05, q25, q50, q75, q95, q99, mean, var   (+ activations.npz)
    gradnorms    k      NaN      grad_norm, weight_norm   (VGG classifier = layer num_layers + 1)
    hessian      0      NaN      top_eig, top_eig_residual, ghg   (mode train: batch statistics)
    hessian      0      NaN      top_eig_eval, top_eig_residual_eval   (mode eval: running statistics)
    rank         k      NaN      rank, stable_rank   (block #k's output as [batch, features])

Configuration: configs/probes/*.yaml (none, paper, dense, landscape, ics, activations; beyond = paper +
hessian + rank); `build_probes` reads it. A probe whose section is absent from the config is off (the
paper's presets have no hessian or rank section, so their resolved configs and run ids are unchanged).
"""

from __future__ import annotations

from .activations import DEFAULT_LAYERS as ACTIVATION_LAYERS
from .activations import EDGE_RULES, ActivationsProbe
from .base import NoTrace, OptimizerSnapshot, Probe, ProbeContext, listen, make_row
from .gradnorms import GradNormsProbe
from .hessian import HessianProbe, check_iterations, check_modes
from .ics import DEFAULT_LAYERS as ICS_LAYERS
from .ics import ICSProbe
from .landscape import DEFAULT_ETAS, DIRECTIONS, LandscapeProbe, check_dtype, check_norm_params
from .rank import DEFAULT_LAYERS as RANK_LAYERS
from .rank import RankProbe

__all__ = [
    "Probe",
    "ProbeContext",
    "NoTrace",
    "OptimizerSnapshot",
    "make_row",
    "LandscapeProbe",
    "ICSProbe",
    "ActivationsProbe",
    "GradNormsProbe",
    "HessianProbe",
    "RankProbe",
    "build_probes",
    "listen",
    "check_config",
    "probe_cadence",
    "PROBE_NAMES",
]

# build (and call) order; a name whose section the config lacks is off
PROBE_NAMES = ("landscape", "ics", "activations", "gradnorms", "hessian", "rank")


def _get(node, key, default=None):
    if node is None:
        return default
    value = node.get(key, default) if hasattr(node, "get") else getattr(node, key, default)
    return default if value is None else value


def probe_cadence(cfg, sub) -> int:
    """Steps between measurements of one probe (0 = off): `probes.<probe>.every`, which the config
    resolves (configs/probes/paper.yaml: probes.every if set, else the scale preset's cadence)."""
    return int(_get(sub, "every", 0))


def _wandb_on(cfg) -> bool:
    lg = cfg.get("logger") or {}
    return _get(lg, "name") == "wandb" and _get(lg, "mode") != "disabled"


def build_probes(cfg, model, task=None) -> list[Probe]:
    """The probes the config asks for, in PROBE_NAMES order. Raises ValueError on a bad probe config."""
    pc = cfg.probes
    if _get(pc, "name") == "none":
        return []
    family = cfg.model.family
    probes: list[Probe] = []
    for key in PROBE_NAMES:
        sub = pc.get(key)
        if sub is None or not _get(sub, "enabled", True):
            continue
        every = probe_cadence(cfg, sub)
        if every < 0:
            raise ValueError(f"probes.{key}.every must be >= 0, got {every}")
        if every == 0:
            continue
        if key == "landscape":
            etas = _get(sub, "etas") or DEFAULT_ETAS[family]
            seed = _get(sub, "seed", int(cfg.get("seed", 0)) + 2)  # as the config: noisy-BN noise uses seed + 1
            direction, dtype = _get(sub, "direction", "gradient"), _get(sub, "dtype", "float32")
            probes.append(LandscapeProbe(every, list(etas), direction, seed, dtype, _get(sub, "norm_params", True)))
        elif key == "ics":
            probes.append(ICSProbe.for_model(every, model, _get(sub, "layers"), family))
        elif key == "activations":
            bins = int(_get(sub, "bins", 64))
            probes.append(
                ActivationsProbe.for_model(
                    every,
                    model,
                    _get(sub, "layers"),
                    bins,
                    family,
                    wandb_histograms=_wandb_on(cfg),
                    edges=_get(sub, "edges", "per_measurement"),
                )
            )
        elif key == "gradnorms":
            probes.append(GradNormsProbe.for_model(every, model))
        elif key == "hessian":
            seed = _get(sub, "seed", int(cfg.get("seed", 0)) + 3)  # as configs/probes/hessian.yaml (landscape: + 2)
            probes.append(HessianProbe(every, _get(sub, "iterations", 20), _get(sub, "mode", ["train"]), seed))
        elif key == "rank":
            probes.append(RankProbe.for_model(every, model, _get(sub, "layers"), family))
    return probes


def check_config(cfg) -> None:
    """Every bad probe setting as one ValueError line, without building a model (for config.validate)."""
    pc = cfg.probes
    if _get(pc, "name") == "none":
        return
    family = cfg.model.family
    n_layers = 13 if family == "vgg" else int(_get(cfg.model, "depth", 25))
    for key in PROBE_NAMES:
        sub = pc.get(key)
        if sub is None or not _get(sub, "enabled", True):
            continue
        every = probe_cadence(cfg, sub)
        if not isinstance(every, int) or every < 0:
            raise ValueError(f"probes.{key}.every must be an integer >= 0, got {every!r}")
        if key == "landscape":
            etas = _get(sub, "etas")
            if etas is not None and (isinstance(etas, str) or not len(etas) or any(not float(e) > 0 for e in etas)):
                raise ValueError(f"probes.landscape.etas must be null or a list of positive numbers, got {etas}")
            if _get(sub, "direction", "gradient") not in DIRECTIONS:
                raise ValueError(f"probes.landscape.direction must be one of {', '.join(DIRECTIONS)}")
            check_dtype(_get(sub, "dtype", "float32"), "probes.landscape.dtype")
            check_norm_params(_get(sub, "norm_params", True), "probes.landscape.norm_params")
        if key == "hessian":
            check_iterations(_get(sub, "iterations", 20), "probes.hessian.iterations")
            check_modes(_get(sub, "mode", ["train"]), "probes.hessian.mode")
            seed = _get(sub, "seed", 0)
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ValueError(f"probes.hessian.seed must be an integer >= 0, got {seed!r}")
        if key in ("ics", "activations", "rank"):
            layers = _get(sub, "layers")
            if layers is None or layers == "all":
                continue
            if isinstance(layers, str):
                raise ValueError(f"probes.{key}.layers must be null, 'all' or a list of layer numbers")
            layers = [layers] if isinstance(layers, int) else list(layers)
            bad = [k for k in layers if not 1 <= int(k) <= n_layers]
            if bad:
                raise ValueError(f"probes.{key}.layers {bad} out of range: {cfg.model.name} has layers #1..#{n_layers}")
        if key == "activations" and not 2 <= int(_get(sub, "bins", 64)) <= 4096:
            raise ValueError("probes.activations.bins must be in 2..4096")
        if key == "activations" and _get(sub, "edges", "per_measurement") not in EDGE_RULES:
            raise ValueError(f"probes.activations.edges must be one of {', '.join(EDGE_RULES)}")


# re-exported for figures that want the defaults
DEFAULT_LAYERS = {"ics": ICS_LAYERS, "activations": ACTIVATION_LAYERS, "rank": RANK_LAYERS}
