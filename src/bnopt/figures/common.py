"""What every paper figure shares: the networks and learning rates it draws, axis text, the title block.

Used by the figure families (`training`, `ics`, `landscape`, `drift`) and the registry (`catalog`).
"""

from __future__ import annotations

import re
from pathlib import Path

from matplotlib.figure import SubFigure

from ..results import Results
from .panels import footer

VGG_LR, DLN_LR = 0.1, 1e-6
VGG_STD = ["vgg16", "vgg16_bn"]
DLN_STD = ["dln", "dln_bn"]
VGG_NOISE = ["vgg16", "vgg16_bn", "vgg16_noisy_bn"]
VGG_LP = ["vgg16", "vgg16_bn", "vgg16_l1", "vgg16_l2", "vgg16_linf"]
DLN_LP = ["dln", "dln_bn", "dln_l1", "dln_l2", "dln_linf"]
DEFAULT_OUT = Path("results") / "figures"
STEP_LABEL = "training step (SGD updates)"


def from_wandb(res: Results) -> bool:
    """True when the results come from the W&B mirror (no histograms, no per-eta landscape rows)."""
    return getattr(res, "source", "local") == "wandb"


def figure_title(fig, text: str, runs: dict) -> None:
    """Title with the scale and step count of the runs, and the run-id footer; on half of a composite
    figure only "(a) ..." (the composite adds the footer of both halves)."""
    if isinstance(fig, SubFigure):
        fig.suptitle(re.sub(r"^Fig\. \d+([ab]) — ", r"(\1) ", text), fontsize=11)
        fig.bnopt_runs = runs
        return
    rows = list(runs.values())
    steps = sorted({int(r["steps"]) for r in rows if r.get("steps") == r.get("steps")})
    scales = sorted({str(r.get("scale", "?")) for r in rows})
    sub = f"scale {'/'.join(scales)}, {'/'.join(str(s) for s in steps)} steps"
    fig.suptitle(f"{text}\n({sub})", fontsize=11)
    footer(fig, runs)
