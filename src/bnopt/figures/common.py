"""What every paper figure shares: the networks and learning rates it draws, axis text, the title block.

Used by the figure families (`training`, `ics`, `landscape`, `drift`) and the registry (`catalog`).
"""

from __future__ import annotations

import re
from pathlib import Path

from matplotlib.figure import SubFigure

from .. import experiments
from ..results import Results
from ..run_selection import Requires
from .panels import footer, record_runs, record_title

DEFAULT_OUT = Path("results") / "figures"
STEP_LABEL = "training step (SGD updates)"


def experiment_runs(
    res: Results, experiment: str, scale=None, probes=(), figure: str | None = None, init_scale: float = 1.0
) -> dict:
    """{(model, lr): runs row} for every run of an experiment's sweep (configs/experiment, the one
    registry) at one `model.init_scale`, chosen by the one selection function (`Results.select`)."""
    requires = Requires(probes=tuple(probes), init_scale=init_scale)
    return res.select(
        experiments.pairs(experiment), scale, requires, figure=figure or experiment, experiment=experiment
    )


def models_of(runs: dict) -> list[str]:
    """The networks of a figure's runs, in sweep order."""
    return list(dict.fromkeys(m for m, _ in runs))


def lrs_of(runs: dict) -> list[float]:
    """The learning rates of a figure's runs, in sweep order."""
    return list(dict.fromkeys(lr for _, lr in runs))


def from_wandb(res: Results) -> bool:
    """True when the results come from the W&B mirror (no histograms, no per-eta landscape rows)."""
    return getattr(res, "source", "local") == "wandb"


def figure_title(fig, text: str, runs: dict) -> None:
    """Title with the scale and step count of the runs, and the run-id footer; on half of a composite
    figure only "(a) ..." (the composite adds the footer of both halves). The runs are noted in the open
    recordings (`panels.recording`) for the figure manifest (`catalog.describe`) and the composite's title."""
    record_runs(fig, runs.values())
    record_title(fig, runs)
    if isinstance(fig, SubFigure):
        fig.suptitle(re.sub(r"^Fig\. \d+([ab]) — ", r"(\1) ", text), fontsize=11)
        return
    rows = list(runs.values())
    steps = sorted({int(r["steps"]) for r in rows if r.get("steps") == r.get("steps")})
    scales = sorted({str(r.get("scale", "?")) for r in rows})
    sub = f"scale {'/'.join(scales)}, {'/'.join(str(s) for s in steps)} steps"
    fig.suptitle(f"{text}\n({sub})", fontsize=11)
    footer(fig, runs)
