"""`make bench`: measured speed of the train loop (and probes) on this machine -> results/bench.json.

Times the same code the runs use (`forward_backward` + SGD step on a task's device batches) after a
warm-up, for the networks and widths the scale presets use. Numbers, not assertions: the README and the
issue notes quote them. The probes' costs come from `probes.bench`; what both build is in `bench_setup`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .bench_setup import setup, sync
from .probes.bench import probe_costs
from .records import atomic_write_text, environment
from .train import forward_backward

TRAIN_CASES = [  # (model, width)
    ("vgg16", 0.25),
    ("vgg16_bn", 0.25),
    ("vgg16_noisy_bn", 0.25),
    ("vgg16_l2", 0.25),
    ("vgg16", 1.0),
    ("vgg16_bn", 1.0),
    ("dln", 1.0),
    ("dln_bn", 1.0),
]


def time_train_steps(model_name: str, width: float, seconds: float = 8.0, warmup: int = 3) -> dict:
    cfg, device, model, opt, task = setup(model_name, width)
    for step in range(warmup):
        forward_backward(model, task, opt, step)
        opt.step()
    sync(device)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or steps < 3:
        forward_backward(model, task, opt, warmup + steps)
        opt.step()
        steps += 1
    sync(device)
    dt = (time.perf_counter() - t0) / steps
    return {
        "model": model_name,
        "width": width,
        "batch_size": int(cfg.scale.batch_size),
        "device": str(device),
        "ms_per_step": round(dt * 1000, 2),
        "images_per_s": round(cfg.scale.batch_size / dt, 1),
        "steps_timed": steps,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/bench.json")
    ap.add_argument("--seconds", type=float, default=8.0, help="timing budget per case")
    ap.add_argument("--only", nargs="*", help="model names to time (default: all cases)")
    args = ap.parse_args(argv)
    cases = [c for c in TRAIN_CASES if not args.only or c[0] in args.only]
    rows = []
    for name, width in cases:
        r = time_train_steps(name, width, args.seconds)
        print(
            f"train  {name:16s} width {width:<5g} {r['ms_per_step']:8.1f} ms/step  {r['images_per_s']:8.1f} samples/s"
        )
        rows.append(r)
    out = {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "environment": environment(), "train": rows}
    out["probes"] = probe_costs(args.seconds)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out), json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
