"""Measured cost of the probes on this machine (`make bench` calls `probe_costs`; also runnable alone:
`python -m bnopt.bench.probe_costs [--seconds S] [--only vgg16_bn]`).

For each case (model, width, probe preset) the preset is built as a run would build it; one training step
(forward, backward, SGD step; the forward copies the activations the activations probe reads, as at a
measured step of a run) and one call of each probe are timed, interleaved, after a warm-up, and the
overhead of the paper's probes at each scale's cadence is computed as sum_i(cost_i / every_i) / step time.
The small VGG and the DLN are timed with `probes=beyond` (the paper's probes plus B1's hessian and B10's
rank), so that the reproduce plan can estimate those studies' runs; the full-width CPU case keeps `paper`
(one hessian call there is minutes on a CPU). Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from ..config import compose
from ..probes import ProbeContext, build_probes, listen, probe_cadence
from ..train import forward_backward
from .build import setup, sync

CASES = [
    ("vgg16_bn", 0.25, "beyond"),
    ("vgg16_noisy_bn", 0.25, "paper"),
    ("vgg16_bn", 1.0, "paper"),
    ("dln_bn", 1.0, "beyond"),
]


def _cadences(model_name: str) -> dict[str, dict[str, int]]:
    """{scale: {probe: every}} of the paper preset for this model at the paper and small scales."""
    out = {}
    for scale in ("paper", "small"):
        extra = [] if model_name.startswith("dln") else ["data=synthetic"]
        cfg = compose([f"model={model_name}", "logger=none", "probes=paper", f"scale={scale}", *extra])
        out[scale] = {
            name: probe_cadence(cfg, cfg.probes[name])
            for name in cfg.probes
            if hasattr(cfg.probes[name], "get") and cfg.probes[name].get("enabled", False)
        }
    return out


def time_case(
    model_name: str, width: float, seconds: float = 8.0, warmup: int = 1, preset: str = "paper", extra=()
) -> dict:
    cfg, device, model, opt, task = setup(model_name, width, extra=[f"probes={preset}", *extra])
    probes = build_probes(cfg, model, task)
    step_times: list[float] = []
    probe_times: dict[str, list[float]] = {p.name: [] for p in probes}
    listened = [p for p in probes if p.taps(model)]
    step, t_start = 0, time.perf_counter()
    while True:
        # a plain training step (what most steps of a run are), then the same step again with the
        # activations copied out of its forward, as at a measured step: the copies are charged to the
        # probes that read them
        t0 = time.perf_counter()
        forward_backward(model, task, opt, step)
        sync(device)
        t_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        with listen(probes, model) as heard:
            x, y, loss, _ = forward_backward(model, task, opt, step)
        sync(device)
        t_fb = time.perf_counter() - t0
        for p in probes:
            t1 = time.perf_counter()
            p(ProbeContext(step, model, x, y, loss, opt, task, heard))
            sync(device)
            if step >= warmup:
                extra = max(t_fb - t_plain, 0.0) / len(listened) if p in listened else 0.0
                probe_times[p.name].append(time.perf_counter() - t1 + extra)
        t2 = time.perf_counter()
        opt.step()
        sync(device)
        if step >= warmup:
            step_times.append(t_plain + time.perf_counter() - t2)
        step += 1
        if step >= warmup + 2 and time.perf_counter() - t_start > seconds:
            break
    ms_step = 1000 * statistics.median(step_times)
    ms_probe = {k: round(1000 * statistics.median(v), 2) for k, v in probe_times.items()}
    overhead = {}
    for scale, every in _cadences(model_name).items():
        per_step = sum(ms_probe[k] / every[k] for k in ms_probe if every.get(k))
        overhead[scale] = {"every": every, "overhead_fraction": round(per_step / ms_step, 4)}
    return {
        "model": model_name,
        "width": width,
        "batch_size": int(cfg.scale.batch_size),
        "device": str(device),
        "ms_per_train_step": round(ms_step, 2),
        "ms_per_probe_call": ms_probe,
        "probe_call_in_train_steps": {k: round(v / ms_step, 2) for k, v in ms_probe.items()},
        "overhead": overhead,
        "steps_timed": len(step_times),
    }


def probe_costs(seconds: float = 8.0, only: list[str] | None = None, extra=(), warmup: int = 1) -> list[dict]:
    """only: model names (every width) or model:width entries; extra: config overrides of every case; warmup:
    steps not timed (0 in the tests' quick bench: two timed steps, the first with its warm-up in it)."""
    rows = []
    for name, width, preset in CASES:
        if only and name not in only and f"{name}:{width:g}" not in only:
            continue
        r = time_case(name, width, seconds, warmup=warmup, preset=preset, extra=extra)
        calls = "  ".join(f"{k} {v:.0f}" for k, v in r["ms_per_probe_call"].items())
        over = "  ".join(f"{s} {100 * o['overhead_fraction']:.1f}%" for s, o in r["overhead"].items())
        print(
            f"probes {name:16s} width {width:<5g} step {r['ms_per_train_step']:.0f} ms; per call (ms): {calls}; "
            f"overhead of probes=paper: {over}"
        )
        rows.append(r)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--only", nargs="*", help="model names or model:width, e.g. vgg16_bn:0.25")
    ap.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    rows = probe_costs(args.seconds, args.only)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
