"""Per-run measures and constants that more than one study in experiments/ reads (a study's own helpers
stay in its file)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .dln_rank import learned_directions
from .readers import DLN_LR, WINDOW, Missing, final_train_loss, probe_series, run_steps
from .results import Results
from .studies import Statistic, run_id_of
from .verdicts import Test, below, fmt, log_ratio

CONV_LAYERS = tuple(range(1, 14))  # VGG16's conv layers #1..#13 (the classifier, #14, is left out): B7, B9


def median(s: pd.Series) -> float:
    """The median of a probe's series over its finite values; NaN when none (C5, C6, C8, B2)."""
    s = s.replace([np.inf, -np.inf], np.nan).dropna()
    return float(s.median()) if len(s) else float("nan")


# ------------------------------------------------------------------- smoothness of the landscape (C6, C8)

SMOOTHNESS = ("loss_range", "grad_diff_max", "beta")  # the landscape probe's medians C6 and C8 judge
# A per-step loss range below this many float32 spacings of the loss is rounding, not resolved: it is left out
# of the loss-range median (PROTOCOL section 2, rules of 2026-12-07, "DLN (C7, C8)"; issue 24, item 6: the
# standard DLN's ranges are 1-3 spacings, 2^-10 each at a loss of about 1e4).
RESOLVED_SPACINGS = 4


def resolved_ranges(lo: pd.Series, hi: pd.Series, dtype: str = "float32") -> tuple[pd.Series, float]:
    """The per-step loss ranges hi - lo (by step) that the probe's precision (`dtype`, the run's
    probes.landscape.dtype) resolves, at least RESOLVED_SPACINGS x np.spacing(loss) in it (the loss: hi), and
    the fraction of the measured steps (finite range) they leave out; NaN when none is measured."""
    r = (hi - lo).replace([np.inf, -np.inf], np.nan).dropna()
    if not len(r):
        return r, float("nan")
    spacing = np.spacing(np.abs(hi.loc[r.index].to_numpy(dtype=np.dtype(dtype))))
    keep = r.to_numpy() >= RESOLVED_SPACINGS * spacing.astype(float)
    return r[keep], float(1 - keep.mean())


def landscape_dtype(res: Results, rid: str) -> str:
    """The precision the run's landscape probe measured in (float32 but for issue 25's float64 ablation)."""
    runs = res.runs
    if "landscape_dtype" not in runs:
        return "float32"
    value = runs.loc[runs["run_id"] == rid, "landscape_dtype"]
    return str(value.iloc[0]) if len(value) and isinstance(value.iloc[0], str) else "float32"


def smoothness(res: Results, rid: str) -> dict:
    """A run's landscape medians over its measured steps: loss range (max - min along the gradient, over the
    steps float32 resolves: `resolved_ranges`; NaN when none), gradient predictiveness (max ||grad diff||),
    effective beta; the peak of the gradient predictiveness; and the fraction of loss ranges left out."""
    lo, hi = probe_series(res, rid, "landscape", "loss_min"), probe_series(res, rid, "landscape", "loss_max")
    grad_diff = probe_series(res, rid, "landscape", "grad_diff_max")
    ranges, unresolved = resolved_ranges(lo, hi, landscape_dtype(res, rid))
    return {
        "loss_range": median(ranges),
        "grad_diff_max": median(grad_diff),
        "beta": median(probe_series(res, rid, "landscape", "beta")),
        "grad_diff_peak": float(grad_diff.max()),
        "loss_range_unresolved": unresolved,
    }


def smoothness_seed(res: Results, std_model: str, bn_model: str, lr: float, scale, seed) -> dict:
    """One seed's smoothness of the standard and the BN net: each net's medians (<model>_<median>) and
    log10_ratio_<median> = log10(BN / standard) for each of SMOOTHNESS (NaN, not measured, for the loss range
    when a net has no resolved one). Missing without landscape records."""
    std = run_id_of(res, std_model, lr, scale, seed, probes=("landscape",))
    bn = run_id_of(res, bn_model, lr, scale, seed, probes=("landscape",))
    s, b = smoothness(res, std), smoothness(res, bn)
    if any(r[k] != r[k] for r in (s, b) for k in ("grad_diff_max", "beta", "grad_diff_peak")):
        raise Missing("no landscape probe records")
    out = {f"{std_model}_{k}": v for k, v in s.items()} | {f"{bn_model}_{k}": v for k, v in b.items()}
    out |= {f"log10_ratio_{k}": log_ratio(b[k], s[k]) for k in SMOOTHNESS}
    return out


def unresolved_note(bn: float, std: float) -> str:
    """'(below 4 float32 spacings, left out: a vs b of steps)': the fractions of a BN and a standard run's
    loss ranges `resolved_ranges` leaves out."""
    return f"(below {RESOLVED_SPACINGS} float32 spacings, left out: {fmt(bn, True)} vs {fmt(std, True)} of steps)"


def smoothness_lines(table: dict, std_model: str, bn_model: str, lr: float) -> list[str]:
    """The per-seed evidence of `smoothness_seed`'s rows: each median, BN vs standard."""

    def g(r, m, k):
        return fmt(r[f"{m}_{k}"])

    return [
        f"seed {seed}: {bn_model.split('_')[0]} LR {lr:g}, medians over measured steps, BN vs standard: "
        f"loss range {g(r, bn_model, 'loss_range')} vs {g(r, std_model, 'loss_range')} "
        f"{unresolved_note(r[f'{bn_model}_loss_range_unresolved'], r[f'{std_model}_loss_range_unresolved'])}; gradient "
        f"predictiveness (max ||grad diff||) {g(r, bn_model, 'grad_diff_max')} vs {g(r, std_model, 'grad_diff_max')} "
        f"(peaks {g(r, bn_model, 'grad_diff_peak')} vs {g(r, std_model, 'grad_diff_peak')}); effective beta "
        f"{g(r, bn_model, 'beta')} vs {g(r, std_model, 'beta')}"
        for seed, r in table.items()
    ]


def smoothness_statistics(prefix: str = "") -> tuple[Statistic, ...]:
    """The judged log10(BN / standard) of each median (keys log10_ratio_<median>); `prefix` names a
    sub-test, e.g. "(b) "."""
    return tuple(Statistic(f"log10_ratio_{k}", f"{prefix}log10(BN / standard) {k}") for k in SMOOTHNESS)


SMOOTHER = tuple(Test(f"log10_ratio_{k}", below(0.0)) for k in SMOOTHNESS)  # BN lower on a median


def grid_line(row: dict, prefix: str, values) -> str:
    """'BN a / b / c; standard d / e / f' from a per-seed row's <prefix>_<bn|std>_<value> accuracies, the
    evidence line of a study swept over a grid (B3's init scales, B4's LRs, B5's batch sizes)."""
    nets = (("bn", "BN"), ("std", "standard"))
    return "; ".join(
        f"{name} " + " / ".join(fmt(row[f"{prefix}_{key}_{v:g}"], True) for v in values) for key, name in nets
    )


# ------------------------------------------------------------------ the edge of stability (B11, B12)

LATE = 0.5  # "late in training": the measured steps after this fraction of the run's steps (B11, B12, C6)


def edge_series(res: Results, rid: str, lr: float, probe: str = "landscape", metric: str = "beta") -> pd.Series:
    """x eta / 2 at each measured step of the run (step 0 left out: initialisation) of the landscape probe's
    effective beta, or with probe="hessian", metric="top_eig" of the sharpness: 1 is the edge of stability
    (2 / eta, Cohen et al. 2021)."""
    s = probe_series(res, rid, probe, metric)
    return (s[s.index > 0] * lr / 2).replace([np.inf, -np.inf], np.nan).dropna()


def late_median(res: Results, rid: str, s: pd.Series) -> float:
    """The median of a run's series over its measured steps in the last LATE of training; NaN when none."""
    return median(s[s.index > LATE * run_steps(res, rid)])


# ---------------------------------------------------------------- DLN final losses and their k (C7, C8)

DLN_NETS = {"dln": "standard", "dln_bn": "BN", "dln_l1": "l1", "dln_l2": "l2", "dln_linf": "linf"}
FIT = ("loss", "k", "residual")  # a DLN run's final loss, its k and the optimal rank-k residual
SAME_LOSS = 1e-3  # DLN losses within 0.1% of each other (or of a residual) are the same: at its plateau


def dln_fit(res: Results, rid: str) -> dict:
    """A DLN run's final loss (`readers.final_train_loss`), and k, the singular directions of its target it
    has learned, with the optimal rank-k residual nearest that loss (`dln_rank.learned_directions`; NaN for
    a run without a run folder, read from W&B)."""
    try:
        k, residual = learned_directions(res, rid)
    except Missing:
        k, residual = float("nan"), float("nan")
    return {"loss": final_train_loss(res, rid), "k": k, "residual": residual}


def same_loss(*losses: float) -> bool:
    """Whether DLN losses are the same: all within SAME_LOSS (relative) of the least."""
    return max(losses) <= min(losses) * (1 + SAME_LOSS)


def fit_text(loss: float, k: float, residual: float) -> str:
    """'2439 (k = 6, at the rank-6 residual 2438)', or '3810 (k = 6, 4.5% above the rank-6 residual 3647)' when
    the loss is not within SAME_LOSS of it: a DLN run's final loss, with its k where known (not NaN)."""
    if k != k:
        return fmt(loss)
    rank = f"the rank-{int(k)} residual {fmt(residual)}"
    if same_loss(loss, residual):
        return f"{fmt(loss)} (k = {int(k)}, at {rank})"
    gap = loss / residual - 1 if residual > 0 else float("inf")
    if gap > 1:  # a percentage of a residual far below the loss (the last one is 0 up to rounding) says nothing
        return f"{fmt(loss)} (k = {int(k)}, {rank})"
    return f"{fmt(loss)} (k = {int(k)}, {fmt(abs(gap), True)} {'above' if gap > 0 else 'below'} {rank})"


def dln_fits(res: Results, scale, seed, models=tuple(DLN_NETS)) -> dict:
    """{fit_<model>_<loss|k|residual>: `dln_fit`'s numbers} of each of `models`' DLN runs at LR DLN_LR and
    `seed` that exists."""
    out = {}
    for model in models:
        try:
            fit = dln_fit(res, run_id_of(res, model, DLN_LR, scale, seed))
        except Missing:
            continue
        out |= {f"fit_{model}_{k}": v for k, v in fit.items()}
    return out


def dln_fits_line(seed, row: dict) -> str:
    """A seed's `dln_fits` as an evidence line: every DLN run's final loss and k."""
    fits = ", ".join(
        f"{name} {fit_text(*(row[f'fit_{m}_{q}'] for q in FIT))}"
        for m, name in DLN_NETS.items()
        if f"fit_{m}_loss" in row
    )
    return (
        f"seed {seed}: DLN at LR {DLN_LR:g}, final loss (mean of the last {WINDOW} steps) and k, the singular "
        f"directions of the target learned (the rank whose optimal residual is nearest the loss): {fits}"
    )
