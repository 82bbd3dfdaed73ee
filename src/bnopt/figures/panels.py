"""Style (one colour per network in every figure) and the panel types the figures are made of.

Figures are `matplotlib.figure.Figure` objects on an Agg canvas, made without pyplot: no global
backend is switched and nothing is left open, so the module works the same in scripts, tests and notebooks.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_rgb
from matplotlib.figure import Figure, SubFigure
from matplotlib.font_manager import FontProperties
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.textpath import TextToPath
from matplotlib.transforms import Bbox

# One colour per normalisation, shared by the VGG and the DLN: standard = black/grey, BN = blue,
# noisy BN = orange, l1 = green, l2 = red, l_inf = purple.
NORM_COLORS = {
    "none": "#333333",
    "batch": "#1f77b4",
    "noisy_batch": "#ff7f0e",
    "l1": "#2ca02c",
    "l2": "#d62728",
    "linf": "#9467bd",
}
NORM_LABELS = {
    "none": "Standard",
    "batch": "Batch Norm",
    "noisy_batch": "Noisy Batch Norm",
    "l1": "$\\ell_1$ Norm",
    "l2": "$\\ell_2$ Norm",
    "linf": "$\\ell_\\infty$ Norm",
}
MODEL_NORM = {
    "vgg16": "none",
    "vgg16_bn": "batch",
    "vgg16_noisy_bn": "noisy_batch",
    "vgg16_l1": "l1",
    "vgg16_l2": "l2",
    "vgg16_linf": "linf",
    "dln": "none",
    "dln_bn": "batch",
    "dln_l1": "l1",
    "dln_l2": "l2",
    "dln_linf": "linf",
}
MODEL_COLORS = {m: NORM_COLORS[n] for m, n in MODEL_NORM.items()}
LR_STYLES = ("-", "--", ":", "-.")  # first LR of a figure solid, second dashed, ...
DPI = 120
# No matplotlib version and no date in the files: a figure redrawn from the same records has the same bytes.
PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
LAYOUT_GRID = 1e-6  # figure fraction (about 1/1000 of a pixel) that solved layout positions are rounded to


def model_norm(model: str) -> str:
    if model in MODEL_NORM:
        return MODEL_NORM[model]
    for suffix, norm in (
        ("_noisy_bn", "noisy_batch"),
        ("_bn", "batch"),
        ("_linf", "linf"),
        ("_l1", "l1"),
        ("_l2", "l2"),
    ):
        if model.endswith(suffix):
            return norm
    return "none"


def color(model: str) -> str:
    return MODEL_COLORS.get(model, NORM_COLORS[model_norm(model)])


def label(model: str, lr: float | None = None, note: str = "") -> str:
    text = NORM_LABELS[model_norm(model)]
    if lr is not None:
        text += f", LR {float(lr):g}"
    return text + note


class ReproducibleLayout(ConstrainedLayoutEngine):
    """Matplotlib's constrained layout, with the positions it solves rounded to LAYOUT_GRID of the figure.

    Why: kiwisolver, the solver under constrained layout, sorts the terms of each constraint by the memory
    address of their variables (its `Constraint::reduce` keys a std::map by Variable, which compares data
    pointers), so the order of its floating-point row operations changes with where the allocator put them.
    The same figure drawn twice then gets positions one ulp apart (measured: 5.6e-17 of the figure), and an
    anti-aliased edge that sits on a pixel boundary flips: fig9.png differed in 8 pixels between draws.
    Rounded, the layout depends on the figure alone."""

    def execute(self, fig):
        grids = super().execute(fig)
        snap_positions(fig)
        return grids


def snap(values) -> np.ndarray:
    return np.round(np.asarray(values, dtype=float) / LAYOUT_GRID) * LAYOUT_GRID


def snap_positions(fig) -> None:
    """Round every subfigure's box and every Axes' position (all the layout solver sets) to LAYOUT_GRID."""
    for sub in fig.subfigs:
        sub.bbox_relative.set_points(snap(sub.bbox_relative.get_points()))
        snap_positions(sub)
    if isinstance(fig, SubFigure):
        return  # a subfigure shares its parent's list of Axes: done once, by the figure
    for ax in fig.axes:
        in_layout = ax.get_in_layout()
        ax.set_position(Bbox(snap(ax.get_position(original=True).get_points())))
        ax.set_in_layout(in_layout)  # set_position takes an Axes out of the layout: the next draw solves it again


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout=ReproducibleLayout())
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, out_dir: str | Path, name: str, dpi: int = DPI) -> list[Path]:
    """name.png (dpi) and name.pdf in out_dir; the same figure gives the same bytes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=dpi, metadata=PNG_METADATA)
    engine = fig.get_layout_engine()
    fig.set_layout_engine("none")  # the layout the PNG got: the PDF need not solve it again
    try:
        fig.savefig(paths[1], metadata=PDF_METADATA)
    finally:
        fig.set_layout_engine(engine)
    return paths


def png_bytes(fig: Figure, dpi: int = DPI) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata=PNG_METADATA)
    return buf.getvalue()


def show(fig: Figure, dpi: int = DPI) -> None:
    """Display a figure in a notebook (as a PNG, whatever matplotlib backend the kernel uses)."""
    from IPython.display import Image, display

    display(Image(data=png_bytes(fig, dpi)))


FOOTER_POINTS = 6  # the footer's font size; a wrapped line of it takes 0.1 inch


def footer(fig: Figure, runs: dict) -> None:
    """Small grey line naming the runs drawn (run ids and scale) for traceability."""
    rows = list(runs.values())
    scales = sorted({str(r.get("scale", "?")) for r in rows})
    text = f"scale {', '.join(scales)} | runs: " + ", ".join(str(r["run_id"]) for r in rows)
    strip = footer_inches(text, fig.get_figwidth()) / fig.get_figheight()  # kept free by the layout
    engine = fig.get_layout_engine()
    if engine is not None and hasattr(engine, "set"):
        engine.set(rect=(0, strip, 1, 1 - strip))
    fig.text(
        0.5, 0.05 / fig.get_figheight(), text, ha="center", va="bottom", fontsize=FOOTER_POINTS, color="0.45", wrap=True
    )


def footer_inches(text: str, fig_width: float) -> float:
    """Height of the strip the footer needs: 0.2 inch for one line, 0.1 inch more for each line it wraps to
    (a figure of many runs names them in several lines, which overlapped the panels' axis labels). The text's
    width is measured from the font (TextToPath, no renderer: the same on every machine); matplotlib wraps it
    at the figure's width, so 0.9 of it allows for breaks between words."""
    width = TextToPath().get_text_width_height_descent(text, FontProperties(size=FOOTER_POINTS), ismath=False)[0]
    lines = max(1, math.ceil(width / 72 / (0.9 * fig_width)))
    return 0.1 + 0.1 * lines


def diverged_note(run) -> str:
    if str(run.get("status")) == "diverged":
        return f" (diverged at step {int(run.get('steps_done') or 0)})"
    return ""


# ------------------------------------------------------------------------------------------- curves


def smoothed(values: pd.Series, window: int) -> pd.Series:
    return values.rolling(window, min_periods=1, center=False).mean() if window > 1 else values


def finite_positive(y) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    return np.where(np.isfinite(y) & (y > 0), y, np.nan)


def band(ax, x, lo, hi, col: str, lbl: str | None, log: bool = False, alpha: float = 0.25, zorder: float = 2) -> None:
    """Shaded range [lo, hi] per step with its two edges drawn thin."""
    x = np.asarray(x, dtype=float)
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    if log:
        lo, hi = finite_positive(lo), finite_positive(hi)
    ok = np.isfinite(lo) & np.isfinite(hi)
    ax.fill_between(
        x, lo, hi, where=ok, color=col, alpha=alpha, linewidth=0, label=lbl, interpolate=False, zorder=zorder
    )
    ax.plot(x, lo, color=col, lw=0.8, alpha=0.9, zorder=zorder)
    ax.plot(x, hi, color=col, lw=0.8, alpha=0.9, zorder=zorder)
    if ok.sum() == 1:  # one measured step: a vertical bar instead of an invisible band
        i = int(np.flatnonzero(ok)[0])
        ax.vlines(x[i], lo[i], hi[i], color=col, lw=3, alpha=0.6)
    if log:
        ax.set_yscale("log", nonpositive="mask")


def set_labels(ax, title: str | None = None, xlabel: str | None = None, ylabel: str | None = None) -> None:
    if title:
        ax.set_title(title, fontsize=10)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3, lw=0.5)


def legend(ax, **kw) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7, framealpha=0.8, **kw)


# --------------------------------------------------------------------------------------- histograms


def outside_fraction(h, idx) -> float:
    """Fraction of the values of measurements `idx` of a LayerHistogram outside their edges (not in any bin)."""
    idx = np.asarray(idx, dtype=int)
    if not len(idx):
        return 0.0
    inside = np.asarray(h.counts, dtype=float)[idx].sum(1)
    under, over = getattr(h, "underflow", None), getattr(h, "overflow", None)
    if under is not None and over is not None:
        out = np.asarray(under, dtype=float)[idx] + np.asarray(over, dtype=float)[idx]
    else:  # from the per-measurement fractions
        frac = np.asarray(h.outside, dtype=float)[idx]
        out = np.divide(inside * frac, 1 - frac, out=np.zeros_like(frac), where=frac < 1)
    total = float((inside + out).sum())
    return float(out.sum()) / total if total > 0 else 0.0


def percent(x: float) -> str:
    return "0%" if x <= 0 else "<0.1%" if x < 5e-4 else f"{100 * x:.1f}%"


@dataclass
class Drawing:
    """What was drawn while a `recording()` was open, for the figure manifest (`catalog.describe`): the runs
    drawn ({run_id: runs row}, first drawn first), the histogram panels (`ridge`'s descriptions) and the runs
    the last `common.figure_title` named (a composite adds its halves' to its own title)."""

    runs: dict[str, dict] = field(default_factory=dict)
    histograms: list[dict] = field(default_factory=list)
    title: dict | None = None


# The recordings open in this context, outermost first: what is drawn is noted in each of them.
_RECORDINGS: ContextVar[tuple[Drawing, ...]] = ContextVar("bnopt_recordings", default=())


@contextmanager
def recording() -> Iterator[Drawing]:
    """Note what the figure code draws while open: `with recording() as rec: fig = builder(res, scale)`.

    Recordings nest: a drawing is noted in every open one (a composite records each half in its own while
    the figure's recording gets both); the title is the innermost one's. With none open (a notebook calling a
    builder itself) nothing is noted. Nothing is ever stored on the matplotlib objects."""
    rec = Drawing()
    token = _RECORDINGS.set((*_RECORDINGS.get(), rec))
    try:
        yield rec
    finally:
        _RECORDINGS.reset(token)


def record_histogram(fig, panel: dict) -> None:
    """Note a histogram panel drawn on `fig` (a Figure, SubFigure or Axes) in the open recordings."""
    for rec in _RECORDINGS.get():
        rec.histograms.append(panel)


def record_runs(fig, rows) -> None:
    """Note runs (runs-table rows) drawn on `fig` (a Figure, SubFigure or Axes) in the open recordings."""
    open_ = _RECORDINGS.get()
    rows = list(rows) if open_ else []
    for rec in open_:
        for r in rows:
            rec.runs.setdefault(str(r["run_id"]), dict(r))


def record_title(fig, runs: dict) -> None:
    """Note the runs a title on `fig` names in the innermost open recording."""
    if open_ := _RECORDINGS.get():
        open_[-1].title = runs


def ridge(ax, h, col: str, max_curves: int = 12, overlap: float = 1.8) -> dict:
    """Stacked per-step histograms of one layer of one run (a ridge / joy plot).

    Each measured step's histogram (fraction of its activations per bin, in that measurement's own bins:
    `probes.activations.edges`) is drawn offset vertically, the first measurement at the top and the last
    at the bottom, on one shared x-axis whose range is the union of the drawn measurements' edges; all
    curves share one height scale, so a distribution that spreads out widens. At most `max_curves` evenly
    spaced measurements are drawn. A note on the panel says what it shows and the fraction of the drawn
    measurements' values outside their edges (in no bin, so not drawn).

    Returns the panel's description {run_id, layer, steps, outside, x_range, bins}, also noted in the open
    recordings (`recording`) for the figure manifest.
    """
    n = len(h.steps)
    idx = np.unique(np.linspace(0, n - 1, min(n, max_curves)).round().astype(int)) if n else np.array([], int)
    edges = np.asarray(h.edges, dtype=float)
    if edges.ndim == 1:  # one row of edges for every measurement (old records)
        edges = np.broadcast_to(edges, (n, len(edges)))
    centers = 0.5 * (edges[:, :-1] + edges[:, 1:])
    totals = h.counts.sum(1, keepdims=True) + 0.0
    frac = np.divide(h.counts, totals, out=np.zeros_like(h.counts, dtype=float), where=totals > 0)
    peak = frac[idx].max() if len(idx) and frac[idx].max() > 0 else 1.0
    m = len(idx)
    fill = 0.35 * np.asarray(to_rgb(col)) + 0.65  # opaque light tint: a later curve hides the one behind it
    for j, i in enumerate(idx):
        base = m - 1 - j  # first measurement on top
        y = base + overlap * frac[i] / peak
        ax.fill_between(centers[i], base, y, color=fill, lw=0, zorder=2 * j)
        ax.plot(centers[i], y, color=col, lw=0.9, zorder=2 * j + 1)
        ax.plot(centers[i], np.full_like(centers[i], base), color=col, lw=0.5, zorder=2 * j + 1)
    ax.set_yticks([m - 1 - j for j in range(m)], [str(int(h.steps[i])) for i in idx], fontsize=7)
    ax.set_ylim(-0.3, m - 1 + overlap + 0.8)  # headroom for the note
    lo, hi = (float(edges[idx, 0].min()), float(edges[idx, -1].max())) if m else (0.0, 1.0)
    ax.set_xlim(lo, hi)
    shared = bool(m) and bool(np.all(edges[idx] == edges[idx[0]]))
    bins = "same bins for every step" if shared else "bins per measurement; x-range covers all drawn steps"
    out = outside_fraction(h, idx)
    ax.text(
        0.99,
        0.99,
        f"{bins};\n{percent(out)} of values outside",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=6,
        color="0.35",
    )
    panel = {
        "run_id": str(getattr(h, "run_id", "")),
        "layer": int(h.layer),
        "steps": [int(h.steps[i]) for i in idx],
        "bins": "shared" if shared else "per_measurement",
        "x_range": [lo, hi],
        "outside": out,
    }
    record_histogram(ax.figure, panel)
    return panel


def step_colorbar(fig: Figure, ax, steps, cmap: str = "viridis"):
    """A colormap over training steps and its colorbar next to `ax`; returns step -> colour."""
    steps = np.asarray(steps, dtype=float)
    lo, hi = (float(steps.min()), float(steps.max())) if len(steps) else (0.0, 1.0)
    norm = Normalize(lo, hi if hi > lo else lo + 1)
    cm = colormaps[cmap]
    fig.colorbar(ScalarMappable(norm=norm, cmap=cm), ax=ax, label="training step", pad=0.01)
    return lambda s: cm(norm(float(s)))


__all__ = [
    "Drawing",
    "recording",
    "NORM_COLORS",
    "NORM_LABELS",
    "MODEL_COLORS",
    "color",
    "label",
    "new_figure",
    "save",
    "png_bytes",
    "band",
    "ridge",
    "outside_fraction",
    "step_colorbar",
    "smoothed",
]
