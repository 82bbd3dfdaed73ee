"""Per-run measures and constants that more than one study in experiments/ reads (a study's own helpers
stay in its file)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .readers import Missing, probe_series
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


def smoothness(res: Results, rid: str) -> dict:
    """A run's landscape medians over its measured steps: loss range (max - min along the gradient), gradient
    predictiveness (max ||grad diff||), effective beta; and the peak of the gradient predictiveness."""
    lo, hi = probe_series(res, rid, "landscape", "loss_min"), probe_series(res, rid, "landscape", "loss_max")
    grad_diff = probe_series(res, rid, "landscape", "grad_diff_max")
    return {
        "loss_range": median(hi - lo),
        "grad_diff_max": median(grad_diff),
        "beta": median(probe_series(res, rid, "landscape", "beta")),
        "grad_diff_peak": float(grad_diff.max()),
    }


def smoothness_seed(res: Results, std_model: str, bn_model: str, lr: float, scale, seed) -> dict:
    """One seed's smoothness of the standard and the BN net: each net's medians (<model>_<median>) and
    log10_ratio_<median> = log10(BN / standard) for each of SMOOTHNESS. Missing without landscape records."""
    std = run_id_of(res, std_model, lr, scale, seed, probes=("landscape",))
    bn = run_id_of(res, bn_model, lr, scale, seed, probes=("landscape",))
    s, b = smoothness(res, std), smoothness(res, bn)
    if any(v != v for v in (*s.values(), *b.values())):
        raise Missing("no landscape probe records")
    out = {f"{std_model}_{k}": v for k, v in s.items()} | {f"{bn_model}_{k}": v for k, v in b.items()}
    out |= {f"log10_ratio_{k}": log_ratio(b[k], s[k]) for k in SMOOTHNESS}
    return out


def smoothness_lines(table: dict, std_model: str, bn_model: str, lr: float) -> list[str]:
    """The per-seed evidence of `smoothness_seed`'s rows: each median, BN vs standard."""

    def g(r, m, k):
        return fmt(r[f"{m}_{k}"])

    return [
        f"seed {seed}: {bn_model.split('_')[0]} LR {lr:g}, medians over measured steps, BN vs standard: "
        f"loss range {g(r, bn_model, 'loss_range')} vs {g(r, std_model, 'loss_range')}; gradient "
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
