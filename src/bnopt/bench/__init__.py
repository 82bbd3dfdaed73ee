"""`make bench`: measured speed of the train loop, the norms and the probes on this machine -> results/bench.json.

bench.json holds one record per kind of machine under `machines` (keyed by the GPU's name, or `cpu-<cores>`):
a bench replaces this machine's record and keeps the others'.

Cases of one group are timed in one process and interleaved: each repeat runs every case for a few steps
in turn, and a case's time is its best repeat (machine noise only ever adds time). Ratios therefore
compare like with like. What is timed is the code the runs use (`forward_backward` + SGD step on the
task's device batches), built as a run builds it (`bench.build`). Numbers, not assertions: the README,
the issue notes and the reproduce plan (`reproduce.estimate_seconds`) read them.

    ratios.loop_over_bare        throughput of the loop's step / a bare step of the same model on one
                                 ready-made device batch (>= 0.95: the data path costs nothing)
    ratios.loop_over_dataloader  throughput of the loop's step / common practice: a torchvision-style
                                 Dataset (PIL image -> ToTensor -> Normalize), DataLoader with 2 workers,
                                 NCHW model
    ratios.noisy_bn_over_bn      step time of vgg16_noisy_bn / vgg16_bn (width 0.25)
    ratios.lp_over_bn            worst of vgg16_l1 / l2 / linf over vgg16_bn (width 0.25)
    ratios.probe_overhead_paper  probes=paper at the paper cadence, fraction of the training time
                                 (vgg16_bn width 0.25)
    ratios.dln_bn_ms_per_step    dln_bn, one full-batch step (1000 samples, 25 layers), ms

On CUDA the full-width rows also come in bf16 (train.precision=bf16), for the paper-scale img/s.

The package: `build` (a run's config, model, optimiser and task, built as a run builds them), `loop` (the
train-loop cases and their interleaved timing), `probe_costs` (each probe's cost and overhead; also
`python -m bnopt.bench.probe_costs`), and here the command that writes bench.json. The speed code lives here,
outside the packages it times: it imports the train loop and the probes, neither of which imports it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..estimates import machine_key, machine_records
from ..records import atomic_write_text, environment
from .loop import SMALL, measure
from .probe_costs import probe_costs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/bench.json")
    ap.add_argument("--seconds", type=float, default=8.0, help="timing budget per case")
    ap.add_argument("--quick", action="store_true", help="fewer cases, a short budget (for tests)")
    args = ap.parse_args(argv)
    out_path = Path(args.out)
    try:  # an unwritable output is found before minutes of timing, and the old file is kept until the end
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SystemExit(f"bnopt bench: error: cannot write {out_path} ({e})") from None
    result = measure(args.seconds, args.quick)
    # --quick (tests): one Hessian-vector product per power iteration instead of 20, so that timing B1's
    # probe on the small VGG takes seconds, not minutes
    quick = (
        {"only": ["vgg16_bn:0.25", "dln_bn:1"], "extra": ["probes.hessian.iterations=1"], "warmup": 0}
        if args.quick
        else {}
    )
    probes = probe_costs(args.seconds, **quick)
    row = next(r for r in probes if r["model"] == "vgg16_bn" and r["width"] == SMALL)
    result["ratios"]["probe_overhead_paper"] = row["overhead"]["paper"]["overhead_fraction"]
    out = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "environment": environment(),
        "ratios": result["ratios"],
        "train": result["train"],
        "per_run": result["per_run"],
        "probes": probes,
    }
    print("ratios " + "  ".join(f"{k} {v}" for k, v in out["ratios"].items()))
    key = machine_key(out["environment"])
    atomic_write_text(out_path, json.dumps({"machines": {**other_machines(out_path, key), key: out}}, indent=2))
    print(f"wrote {out_path} (machine {key!r})")


def other_machines(path: Path, key: str) -> dict[str, dict]:
    """The records of other kinds of machine already in `path`, kept beside this one's (a GPU's bench does
    not erase the CPU's). An unreadable file is replaced, with a note."""
    try:
        old = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        print(f"bnopt bench: note: {path} does not read ({e}); writing a new one")
        return {}
    return {k: v for k, v in machine_records(old).items() if k != key}


if __name__ == "__main__":
    main()
