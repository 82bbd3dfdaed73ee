"""The figure registry: names -> builders, the composites (a)+(b) in one file, and the ways to draw them.

    figures.make_figure("fig4", res)                  # the matplotlib Figure, e.g. for a notebook
    figures.draw("fig4", res, "results/figures")      # -> [results/figures/fig4.png, results/figures/fig4.pdf]
    figures.fig4(res, "results/figures")              # the same, one function per figure
    figures.draw_all("results", "results/figures")    # every figure it can; {name: paths or message}
    drawn = catalog.draw_figure("fig4", res)          # Drawn(fig, runs, histograms): the Figure, what it drew
    figures.describe(drawn, res)                      # its manifest entry: the runs, steps and histogram panels

The studies beyond the paper (experiments/b*.py) draw their own figures (`Study.draw`, found through
bnopt.studies.registry), after the paper's: beyond_hessian (B1) .. beyond_rank (B10), beyond_edge (B11).
Fig 3, 5 and 11 have an (a) VGG and a (b) DLN half, from different experiments' runs: `fig3` draws both
into fig3.png (and needs both halves' runs); the halves alone are fig3_vgg / fig3_dln (also fig3a / fig3b),
fig5_vgg / fig5_dln and fig11_vgg / fig11_dln.
A figure whose runs are missing raises `MissingRuns` (never an empty plot) with the command that trains
them. Nothing here trains anything.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from tqdm import tqdm

from .. import studies
from ..results import Results, load_runs
from .common import DEFAULT_OUT, figure_title
from .drift import build_fig8, build_fig9
from .ics import build_fig3_dln, build_fig3_vgg
from .landscape import build_fig4, build_fig10, build_fig11_dln, build_fig11_vgg, build_fig12, build_fig13
from .panels import new_figure, recording, save
from .selection import MissingRecords, MissingRuns
from .training import build_fig1, build_fig2, build_fig5_dln, build_fig5_vgg, build_fig6

# The halves of the two-part figures: builder(res, scale, fig) draws into `fig` (a SubFigure) when given.
HALVES: dict[str, Callable] = {
    "fig3_vgg": build_fig3_vgg,
    "fig3_dln": build_fig3_dln,
    "fig5_vgg": build_fig5_vgg,
    "fig5_dln": build_fig5_dln,
    "fig11_vgg": build_fig11_vgg,
    "fig11_dln": build_fig11_dln,
}
# A composite: the paper's two-part figure, (a) VGG and (b) DLN, in one file; both halves' runs needed.
COMPOSITES = {
    "fig3": ("Fig. 3 — Internal covariate shift (Definition 2.1)", ("fig3_vgg", "fig3_dln"), "rows", (15, 19)),
    "fig5": ("Fig. 5 — ℓp normalisations vs BatchNorm", ("fig5_vgg", "fig5_dln"), "cols", (16, 5.8)),
    "fig11": (
        "Fig. 11 — Gradient change ‖∇L(w − ηg) − g‖ vs step size η, one curve per measured step",
        ("fig11_vgg", "fig11_dln"),
        "rows",
        (13, 10),
    ),
}


def _composite(name: str, res, scale=None):
    title, halves, layout, size = COMPOSITES[name]
    fig = new_figure(*size)
    subs = fig.subfigures(2, 1) if layout == "rows" else fig.subfigures(1, 2)
    missing: list[MissingRuns] = []
    runs = {}  # {(key, half's subfigure): runs row} of both halves' titles, for the composite's title
    for half, sub in zip(halves, subs, strict=True):
        try:
            with recording() as drawn:  # inside the figure's recording (draw_figure), when one is open
                HALVES[half](res, scale, sub)
        except MissingRuns as e:
            missing.append(e)
            continue
        runs.update({(k, sub): v for k, v in (drawn.title or {}).items()})
    if missing:
        commands = [e.command for e in missing if e.command]
        raise (MissingRuns if any(type(e) is MissingRuns for e in missing) else MissingRecords)(
            name,
            "; ".join(f"{e.figure}: {e.detail}" for e in missing),
            command=" ; ".join(dict.fromkeys(commands)) or None,
        )
    figure_title(fig, title, runs)
    return fig


BUILDERS: dict[str, Callable] = {
    "fig1": build_fig1,
    "fig2": build_fig2,
    "fig3": lambda res, scale=None: _composite("fig3", res, scale),
    "fig4": build_fig4,
    "fig5": lambda res, scale=None: _composite("fig5", res, scale),
    "fig6": build_fig6,
    "fig8": build_fig8,
    "fig9": build_fig9,
    "fig10": build_fig10,
    "fig11": lambda res, scale=None: _composite("fig11", res, scale),
    "fig12": build_fig12,
    "fig13": build_fig13,
    **HALVES,
}
PAPER_FIGURES = ("fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "fig8", "fig9", "fig10", "fig11", "fig12", "fig13")


def study_figures() -> dict[str, Callable]:
    """{figure: builder(res, scale)} of the figures the studies in experiments/ draw themselves (`Study.draw`),
    in study order. Read when asked, not at import: a study file imports this package to draw."""
    return {s.figures[0]: s.draw for s in studies.registry().values() if s.draws}


def builders() -> dict[str, Callable]:
    return BUILDERS | study_figures()


def figure_list() -> list[str]:
    """What draw_all draws by default: the paper's figures, then the studies' own, one file each (the halves
    of the paper's two-part figures are drawn on request)."""
    return [*PAPER_FIGURES, *study_figures()]


ALIASES = {
    "fig3a": "fig3_vgg",
    "fig3b": "fig3_dln",
    "fig5a": "fig5_vgg",
    "fig5b": "fig5_dln",
    "fig11a": "fig11_vgg",
    "fig11b": "fig11_dln",
    "fig3_ics_vgg": "fig3_vgg",
    "fig3_ics_dln": "fig3_dln",
    "fig5_lp_vgg": "fig5_vgg",
    "fig5_lp_dln": "fig5_dln",
}


def figure_names(figs=None) -> list[str]:
    """Figure names to draw (None = figure_list()); aliases such as fig3a -> fig3_vgg resolved; ValueError if
    unknown."""
    if not figs:
        return figure_list()
    known = builders()
    out: list[str] = []
    for name in figs:
        name = ALIASES.get(name, name)
        if name not in known:
            raise ValueError(f"unknown figure {name!r}; choose from {', '.join([*known, *ALIASES])}")
        if name not in out:
            out.append(name)
    return out


@dataclass(frozen=True)
class Drawn:
    """A figure drawn by `draw_figure`: the matplotlib Figure, the runs it drew ({run_id: runs row}, the runs
    its title names and every seed its curves average) and its histogram panels (`panels.ridge`'s)."""

    fig: Figure
    runs: dict[str, dict]
    histograms: list[dict]


def draw_figure(name: str, results: Results, scale: str | None = None) -> Drawn:
    """One figure and what it drew (for its manifest entry, `describe`); raises MissingRuns when runs are
    missing. The builder runs inside its own `panels.recording`: nothing is kept from one figure to the next."""
    (name,) = figure_names([name])
    with recording() as rec:
        fig = builders()[name](results, scale)
    return Drawn(fig, rec.runs, rec.histograms)


def make_figure(name: str, results: Results, scale: str | None = None) -> Figure:
    """The matplotlib Figure of one figure (for notebooks); raises MissingRuns when runs are missing."""
    return draw_figure(name, results, scale).fig


def draw(name: str, results: Results, out_dir: str | Path = DEFAULT_OUT, scale: str | None = None) -> list[Path]:
    """Draw one figure to out_dir/<name>.png and .pdf; returns the two paths."""
    (name,) = figure_names([name])
    return save(make_figure(name, results, scale), out_dir, name)


def _drawer(name: str, doc: str):
    def fn(results: Results, out_dir: str | Path = DEFAULT_OUT, scale: str | None = None) -> list[Path]:
        return draw(name, results, out_dir, scale)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{doc}\n\nWrites out_dir/{name}.png and .pdf; raises MissingRuns when runs are missing."
    return fn


fig1 = _drawer("fig1", "Fig 1: VGG16 vs VGG16+BN at LR 0.1 and 0.5: train/test accuracy, histograms #3, #11.")
fig2 = _drawer("fig2", "Fig 2: standard, BN, noisy BN at LR 0.1: train accuracy, histograms #2, #9, #13.")
fig3_vgg = _drawer("fig3_vgg", "Fig 3a: VGG16 ICS at LR 0.1 and 0.01, layers #5, #10.")
fig3_dln = _drawer("fig3_dln", "Fig 3b: DLN ICS at LR 1e-6 and 1e-7, layers #9, #17.")
fig4 = _drawer("fig4", "Fig 4: VGG16 loss range, gradient predictiveness, effective beta at LR 0.1.")
fig5_vgg = _drawer("fig5_vgg", "Fig 5a: VGG16 train accuracy, standard, BN, l1, l2, l_inf at LR 0.1.")
fig5_dln = _drawer("fig5_dln", "Fig 5b: DLN train loss, standard, BN, l1, l2, l_inf at LR 1e-6.")
fig6 = _drawer("fig6", "Fig 6: histograms of VGG16 layer #11, standard, BN, l1, l2, l_inf.")
fig8 = _drawer("fig8", "Fig 8: moment drift of VGG16 layers #2, #9, #13, standard, BN, noisy BN.")
fig9 = _drawer("fig9", "Fig 9: DLN histograms of layers #1, #11, #24, standard vs BN.")
fig10 = _drawer("fig10", "Fig 10: DLN loss range, gradient predictiveness, effective beta at LR 1e-6.")
fig11_vgg = _drawer("fig11_vgg", "Fig 11a: VGG16 ||grad L(w - eta g) - g|| vs eta, one curve per step.")
fig11_dln = _drawer("fig11_dln", "Fig 11b: DLN ||grad L(w - eta g) - g|| vs eta, one curve per step.")
fig12 = _drawer("fig12", "Fig 12: VGG16 l_p variants: accuracy, loss range, predictiveness, beta.")
fig13 = _drawer("fig13", "Fig 13: DLN l_p variants: loss, loss range, predictiveness, beta.")
fig3 = _drawer("fig3", "Fig 3: ICS, (a) VGG16 (fig3_vgg) and (b) DLN (fig3_dln) in one figure.")
fig5 = _drawer("fig5", "Fig 5: l_p normalisations, (a) VGG16 accuracy (fig5_vgg) and (b) DLN loss (fig5_dln).")
fig11 = _drawer("fig11", "Fig 11: gradient change vs eta, (a) VGG16 (fig11_vgg) and (b) DLN (fig11_dln).")


def _record_steps(results: Results, rows: list[dict]) -> dict[str, list[int]]:
    """{run_id: [first, last] step of its metric records} (of its probe records, else [0, steps_done])."""
    out: dict[str, list[int]] = {}
    for frame in (results.metrics, results.probes):
        if frame is None or not len(frame) or "step" not in frame:
            continue
        mine = frame[frame["run_id"].isin([r["run_id"] for r in rows if str(r["run_id"]) not in out])]
        for run_id, steps in mine.groupby("run_id")["step"]:
            out[str(run_id)] = [int(steps.min()), int(steps.max())]
    for r in rows:
        out.setdefault(str(r["run_id"]), [0, int(r.get("steps_done") or 0)])
    return {str(r["run_id"]): out[str(r["run_id"])] for r in rows}


def describe(drawn: Drawn, results: Results, scale: str | None = None) -> dict:
    """What a figure (`draw_figure`'s Drawn) was drawn from, its entry in results/<scale>/figures/manifest.json:
    run_ids (the runs its title names and every seed its curves average), seeds, scale, steps ({run_id:
    [first, last] step of its records}) and histograms (each ridge panel: run_id, layer, steps drawn, bins,
    x_range and `outside`, the fraction of the drawn measurements' values outside the drawn range)."""
    if not isinstance(drawn, Drawn):
        raise TypeError(f"describe takes the Drawn of draw_figure(name, results), not {type(drawn).__name__}")
    rows = list(drawn.runs.values())
    seeds = sorted({int(r["seed"]) for r in rows if r.get("seed") is not None and r["seed"] == r["seed"]})
    scales = sorted({str(r["scale"]) for r in rows if r.get("scale")})
    return {
        "run_ids": [str(r["run_id"]) for r in rows],
        "seeds": seeds,
        "scale": scale or ("/".join(scales) if scales else None),
        "steps": _record_steps(results, rows),
        "histograms": [dict(h) for h in drawn.histograms],
    }


def draw_all(
    results_root: str | Path | Results = "results",
    out_dir: str | Path | None = None,
    figs=None,
    scale: str | None = None,
    manifest: dict | None = None,
    progress: bool = False,
) -> dict[str, list[Path] | str]:
    """Every figure it can draw. Returns {name: [png, pdf]} for drawn figures and {name: message} for the
    others: "missing: ... ; produce them with: bnopt-train experiment=... scale=..." or "failed: ..." (a bug).
    `manifest`, when given, gets {name: describe(draw_figure(name))} of the drawn figures and {name: {"missing":
    message}} of the others (bnopt.publish.publish writes it next to the images). `progress`: a bar on
    stderr naming the figure being drawn (a figure takes seconds, all of them minutes)."""
    names = figure_names(figs)
    if isinstance(results_root, Results):
        results = results_root
        out = Path(out_dir) if out_dir is not None else DEFAULT_OUT
    else:
        results = load_runs(results_root, progress=progress)
        out = Path(out_dir) if out_dir is not None else Path(results_root) / "figures"
    report: dict[str, list[Path] | str] = {}
    bar = tqdm(names, desc="figures", unit="figure", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    for name in bar:
        bar.set_description(f"figure {name}")
        try:
            drawn = draw_figure(name, results, scale)
            report[name] = save(drawn.fig, out, name)
            if manifest is not None:
                manifest[name] = describe(drawn, results, scale)
        except MissingRuns as e:
            report[name] = f"missing: {e.detail}" + (f"; produce them with: {e.command}" if e.command else "")
        except Exception as e:  # one broken figure must not stop the others
            tb = traceback.extract_tb(e.__traceback__)[-1]
            report[name] = f"failed: {type(e).__name__}: {e} ({Path(tb.filename).name}:{tb.lineno})"
        if manifest is not None and isinstance(report[name], str):
            manifest[name] = {"missing": report[name]}
    return report
