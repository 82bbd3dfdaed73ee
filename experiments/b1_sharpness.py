"""B1: BN lowers the sharpness of the loss; running statistics bring it back (docs/PROTOCOL.md section 7).

Reads the `hessian` probe of its own VGG16 runs at LR 0.1 (configs/experiment/beyond_hessian.yaml): the top
Hessian eigenvalue by power iteration in train mode (batch statistics) and eval mode (running statistics).
Per seed: the median |top eigenvalue| over the converged points after step 0; S1 = log10(BN / standard) in
train mode, S2 = log10(BN eval mode / BN train mode). Its figure (beyond_hessian): the eigenvalues vs step,
and the curvature along the step's gradient g^T H g / ||g||^2 (B2's descriptive part).
"""

import numpy as np
import pandas as pd

from bnopt.figures.common import STEP_LABEL, figure_title
from bnopt.figures.panels import color, label, legend, new_figure, set_labels
from bnopt.figures.study_panels import line, seed_values, seeds_note
from bnopt.readers import VGG_LR, Missing, probe_series, required_series
from bnopt.run_selection import Requires
from bnopt.studies import Statistic, Study, run_id_of
from bnopt.verdicts import Test, Tests, above, below, fmt, log_ratio

CONVERGED = 0.1  # a power-iteration point counts when its residual ||Hv - lambda v|| / |lambda| is below this
MODELS = ("vgg16", "vgg16_bn")


def converged_eigenvalues(res, rid: str, suffix: str = "") -> pd.Series:
    """|top_eig<suffix>| at every measured step, NaN where the power iteration did not converge (residual not
    below CONVERGED) or the value is not finite: the points B1 counts and its figure draws. Missing when the
    run has no such records."""
    lam = required_series(res, rid, "hessian", "top_eig" + suffix, 0)
    resid = required_series(res, rid, "hessian", "top_eig_residual" + suffix, 0).reindex(lam.index)
    return lam.abs().where((resid < CONVERGED) & np.isfinite(lam))


def sharpness(res, rid: str, suffix: str = "") -> tuple[float, int, int]:
    """(median |top_eig<suffix>| over the converged points after step 0, points counted, points measured);
    Missing when fewer than half the points converged (PROTOCOL section 7, B1)."""
    lam = converged_eigenvalues(res, rid, suffix)
    lam = lam[lam.index > 0]
    ok = lam.dropna()
    if not len(lam) or 2 * len(ok) < len(lam):
        mode = "eval" if suffix else "train"
        raise Missing(
            f"run {rid}: {len(ok)} of {len(lam)} {mode}-mode power iterations converged (residual < {CONVERGED:g})"
        )
    return float(ok.median()), len(ok), len(lam)


def hessian_runs(res, scale, seed) -> tuple[str, str]:
    """(standard, BN) VGG16 runs at LR 0.1 with hessian records (configs/experiment/beyond_hessian.yaml)."""
    return tuple(run_id_of(res, m, VGG_LR, scale, seed, probes=("hessian",)) for m in MODELS)


def sharpness_panel(res, runs: dict, ax, name: str) -> dict:
    """(a) |top eigenvalue| vs step at the converged points, batch statistics and (BN) running statistics;
    returns each seed's records {"batch", "running", "ghg"} per (model, lr) for panel (b)."""

    def records(r):
        rid = r["run_id"]
        try:
            running = converged_eigenvalues(res, rid, "_eval").dropna()
        except Missing:  # a run measured in train mode only
            running = pd.Series(dtype=float)
        ghg = probe_series(res, rid, "hessian", "ghg", 0).dropna()
        return {"batch": converged_eigenvalues(res, rid).dropna(), "running": running, "ghg": ghg}

    tables = seed_values(res, runs, ax, name, "hessian records (probe hessian)", records)
    for (model, lr), ts in tables.items():
        mode = ", batch statistics" if model != "vgg16" else ""
        line(ax, [t["batch"] for t in ts], color(model), label(model, lr, mode), marker="o", ms=3, center="geometric")
        if model != "vgg16":
            running = [t["running"] for t in ts]
            line(
                ax,
                running,
                color(model),
                label(model, lr, ", running statistics"),
                ls="--",
                marker="s",
                ms=3,
                center="geometric",
            )
    ax.set_yscale("log", nonpositive="mask")
    seeds_note(
        ax,
        tables,
        [("-", "solid: train mode (batch statistics)"), ("--", "dashed: eval mode (running)")],
        center="geometric mean",
    )
    title = f"(a) Sharpness: |top Hessian eigenvalue| (points with residual < {CONVERGED:g})"
    set_labels(ax, title, STEP_LABEL, "|λ_max| of the loss on the step's batch")
    legend(ax, loc="best")
    return tables


def curvature_panel(tables: dict, ax) -> None:
    """(b) g^T H g / ||g||^2 vs step; symlog when it is not positive everywhere."""
    drawn = []
    for (model, lr), ts in tables.items():
        ghg = [t["ghg"] for t in ts if len(t["ghg"])]
        line(ax, ghg, color(model), label(model, lr), transform=None, marker="o", ms=3)
        drawn += [v for g in ghg for v in g if np.isfinite(v)]
    if drawn and min(drawn) > 0:
        ax.set_yscale("log")
    else:  # the curvature along the gradient can be negative: linear near 0, logarithmic beyond
        ax.set_yscale("symlog", linthresh=max(1e-2 * float(np.median(np.abs(drawn))) if drawn else 1.0, 1e-12))
        ax.axhline(0, color="0.5", lw=0.8)
    seeds_note(ax, tables)
    set_labels(ax, "(b) Curvature along the step's gradient (Thm 4.2)", STEP_LABEL, "gᵀHg / ‖g‖²")
    legend(ax, loc="best")


class B1(Study):
    id = "B1"
    claim = "BN lowers the sharpness (top Hessian eigenvalue) of the loss; running statistics bring it back"
    sweeps = ("beyond_hessian",)
    figures = ("beyond_hessian",)
    statistics = (
        Statistic("s1", "S1 = log10(median |top_eig| BN / standard), train mode"),
        Statistic("s2", "S2 = log10(median |top_eig| BN, eval mode / train mode)"),
    )
    rule = Tests(
        (
            Test(
                "s1",
                below(0.0),
                "with batch statistics the BN net's loss is sharper than the standard net's, not flatter",
            ),
            Test(
                "s2",
                above(0.0),
                "running statistics do not make the BN net's loss sharper than its batch statistics do",
            ),
        )
    )
    notes = (
        "measured: 20 power-iteration Hessian-vector products on the step's batch at each measured step; train mode "
        "uses the batch statistics, eval mode the running statistics, from the same start vector; a point counts when "
        f"its residual is below {CONVERGED:g}",
    )

    def measure(self, res, scale, seed):
        std, bn = hessian_runs(res, scale, seed)
        (lam_std, k_std, n_std), (lam_bn, k_bn, n_bn) = sharpness(res, std), sharpness(res, bn)
        lam_eval, k_eval, n_eval = sharpness(res, bn, "_eval")
        return {
            "top_eig_std": lam_std,
            "top_eig_bn": lam_bn,
            "top_eig_eval_bn": lam_eval,
            "counted": f"{k_std}/{n_std}, {k_bn}/{n_bn}, {k_eval}/{n_eval}",
            "s1": log_ratio(lam_bn, lam_std),
            "s2": log_ratio(lam_eval, lam_bn),
        }

    def lines(self, table):
        return [
            f"seed {s}: median |top eigenvalue| after step 0: standard {fmt(r['top_eig_std'])}, BN "
            f"{fmt(r['top_eig_bn'])} (batch statistics), BN {fmt(r['top_eig_eval_bn'])} (running statistics); "
            f"converged points counted (standard, BN, BN eval): {r['counted']}"
            for s, r in table.items()
        ]

    def draw(self, res, scale):
        """VGG16 vs VGG16+BN at LR 0.1: (a) the top Hessian eigenvalue's magnitude vs step, with batch
        statistics (train mode) and, for BN, running statistics (eval mode), at the converged points B1 counts;
        (b) the curvature along the step's gradient g^T H g / ||g||^2 (B2's descriptive part)."""
        name = self.figures[0]
        pairs = [(m, VGG_LR) for m in MODELS]
        runs = res.select(pairs, scale, Requires(probes=("hessian",)), figure=name, experiment=name)
        fig = new_figure(14, 5.2)
        ax_l, ax_g = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        curvature_panel(sharpness_panel(res, runs, ax_l, name), ax_g)
        title = "B1 — Sharpness of the loss: VGG16 with and without BN, LR 0.1, batch vs running statistics"
        figure_title(fig, title, runs)
        return fig
