"""Draw the paper's figures from run records.

    python -m bnopt.figures                                   # every figure it can, results/ -> results/figures/
    python -m bnopt.figures --results results --out results/figures --figs fig1 fig4
    python -m bnopt.figures --from-wandb ENTITY/PROJECT       # from the W&B mirror (no histogram figures)

Exit 0 when the figures that have runs were drawn (the others are listed with the command that trains
their runs), 1 when a figure failed to draw, 2 on bad input (no results directory, unknown figure, W&B
project unreadable).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import SCALES
from ..run_selection import train_command
from ..wandb_source import load_wandb
from .catalog import ALIASES, draw_all, figure_list, figure_names


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bnopt.figures", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="results", help="results root holding runs/ (default: results)")
    p.add_argument(
        "--out", default=None, help="output folder (default: <results>/<scale>/figures, else <results>/figures)"
    )
    p.add_argument(
        "--figs",
        nargs="+",
        default=None,
        metavar="FIG",
        help=f"figures to draw (default: all): {', '.join([*figure_list(), *ALIASES])}",
    )
    p.add_argument("--scale", default=None, help=f"only runs of this scale preset ({', '.join(SCALES)})")
    p.add_argument(
        "--from-wandb",
        default=None,
        metavar="ENTITY/PROJECT",
        help="read runs from this W&B project instead of the results folder",
    )
    return p.parse_args(argv)


def fail(message: str) -> int:
    print(f"bnopt.figures: error: {message}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        figure_names(args.figs)
    except ValueError as e:
        return fail(str(e))
    if args.scale is not None and args.scale not in SCALES:
        return fail(f"unknown scale {args.scale!r}; choose one of {', '.join(SCALES)}")
    default_out = Path(args.results) / args.scale / "figures" if args.scale else Path(args.results) / "figures"
    if args.from_wandb:
        try:
            source = load_wandb(args.from_wandb)
        except Exception as e:  # network, auth, unknown project: one line
            return fail(f"could not read W&B project {args.from_wandb!r} ({type(e).__name__}: {e})")
        out = Path(args.out or default_out)
        print(f"{len(source.runs)} runs from W&B project {args.from_wandb}")
    else:
        root = Path(args.results)
        if not root.is_dir():
            return fail(
                f"results directory {root} does not exist; train runs first, e.g. {train_command('fig1', args.scale)}"
            )
        source, out = root, Path(args.out or default_out)
    report = draw_all(source, out, args.figs, scale=args.scale, progress=True)  # minutes for every figure: a bar
    drawn = {k: v for k, v in report.items() if not isinstance(v, str)}
    width = max(len(k) for k in report)
    for name, value in report.items():
        if isinstance(value, str):
            print(f"{name:<{width}}  {value}")
        else:
            print(f"{name:<{width}}  {', '.join(str(p) for p in value)}")
    missing = [v for v in report.values() if isinstance(v, str) and v.startswith("missing")]
    failed = [k for k, v in report.items() if isinstance(v, str) and v.startswith("failed")]
    commands = sorted(
        {c for v in missing if "produce them with: " in v for c in v.split("produce them with: ")[1].split(" ; ")}
    )
    print(
        f"drew {len(drawn)} of {len(report)} figures into {out}"
        + (f"; {len(missing)} lack runs or records" if missing else "")
        + (f"; {len(failed)} failed: {', '.join(failed)}" if failed else "")
    )
    if commands:
        print("to train the missing runs:\n  " + "\n  ".join(commands))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
