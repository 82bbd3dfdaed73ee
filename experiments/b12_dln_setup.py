"""B12: why the DLN differs from Fig 10: does any faithful reading of the paper's set-up give BN the smoother
landscape? (issue 25; docs/PROTOCOL.md section 8, written before its runs).

Reads the DLN and DLN+BN under each set-up of configs/experiment/beyond_dln_setup.yaml, one change at a time
from the protocol's (configs/dln_setup/<name>.yaml: the init, the data, the LR, the landscape probe's precision
and its direction). Per set-up and seed, as C8(b) measures them: log10(BN / standard) of the landscape medians
(loss range, gradient predictiveness, effective beta; `bnopt.measures.smoothness`; a float64 probe's ranges are
resolved against float64 spacings). Reported beside them, not judged: each net's final loss and k (the singular
directions of the target learned), E = the late median of beta x eta / 2 and S = that of the top Hessian
eigenvalue x eta / 2 (B11's measures). One sub-test per set-up, C8(b)'s: BN smoother on at least 2 of the 3
medians. Its figure (beyond_dln_setup): the three log-ratios per set-up, every seed a dot, the 95% interval.
"""

from functools import cache

import numpy as np
from omegaconf import OmegaConf
from scipy import stats

from bnopt import experiments
from bnopt.config import CONFIG_DIR
from bnopt.figures.common import figure_title
from bnopt.figures.panels import new_figure, set_labels
from bnopt.measures import FIT, SMOOTHNESS, dln_fit, edge_series, fit_text, late_median, smoothness
from bnopt.readers import Missing, train_rows
from bnopt.run_selection import MissingRuns
from bnopt.studies import Statistic, Study, run_id_of, seeds_of
from bnopt.verdicts import PASS, AtLeast, Test, Tests, below, fmt, log_ratio, t_interval

SWEEP = "beyond_dln_setup"
NETS = ("dln", "dln_bn")
PROTOCOL_LR = 1e-6  # the set-up's LR unless it changes it (configs/optim/sgd_dln.yaml)
# what a configs/dln_setup file sets -> the run_selection.Requires field (or "lr") that finds its runs
KEYS = {
    "model.init": "init",
    "model.init_scale": "init_scale",
    "data.data_seed": "data_seed",
    "optim.lr": "lr",
    "probes.landscape.dtype": "landscape_dtype",
    "probes.landscape.norm_params": "landscape_norm_params",
}
MEDIANS = {"loss_range": "loss range", "grad_diff_max": "gradient predictiveness", "beta": "effective beta"}


def setups() -> tuple[str, ...]:
    """The set-ups the sweep declares, in its order."""
    return tuple(dict(experiments.get(SWEEP).params)["dln_setup"].split(","))


@cache
def setup_of(name: str) -> tuple[float, tuple]:
    """(LR, sorted Requires items) of a set-up, read from its configs/dln_setup file (the one declaration)."""
    cfg = OmegaConf.load(CONFIG_DIR / "dln_setup" / f"{name}.yaml")
    values = {k: OmegaConf.select(cfg, k) for k in experiments.config_keys(cfg)}
    values = {k: v for k, v in values.items() if not OmegaConf.is_dict(v)}  # the values set, not their groups
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise ValueError(f"configs/dln_setup/{name}.yaml sets {unknown}, which B12 cannot find runs by")
    req = {KEYS[k]: v for k, v in values.items()}
    return float(req.pop("lr", PROTOCOL_LR)), tuple(sorted(req.items()))


def runs_of(res, name: str, scale, seed, probes=("landscape",)) -> dict:
    """{net: run id} of a set-up at a seed (readers.Missing when a net has none)."""
    lr, req = setup_of(name)
    return {net: run_id_of(res, net, lr, scale, seed, probes=probes, **dict(req)) for net in NETS}


def edge_numbers(res, rids: dict, lr: float, name: str, scale, seed) -> dict:
    """E (beta x eta / 2) of each net's landscape run and S (top eigenvalue x eta / 2) where a run has hessian
    records, late medians."""
    out = {f"{name}_E_{net}": late_median(res, rid, edge_series(res, rid, lr)) for net, rid in rids.items()}
    try:
        hess = runs_of(res, name, scale, seed, probes=("hessian",))
    except Missing:
        return out
    for net, rid in hess.items():
        out[f"{name}_S_{net}"] = late_median(res, rid, edge_series(res, rid, lr, "hessian", "top_eig"))
    return out


def loss_rose(res, rid: str) -> bool:
    """Whether a run ended above where it started (or not finite): broader than `readers.diverged` (the status a
    non-finite loss sets), it also takes a net that oscillates upwards. The LR is then past the net's stability
    limit, and a smaller landscape median of the other net says that this one diverges, not that the other is
    smooth."""
    loss = train_rows(res, rid)["loss"]
    return bool(len(loss)) and not float(loss.iloc[-1]) <= float(loss.iloc[0])


def label(net: str) -> str:
    return "BN" if net == "dln_bn" else "standard"


def summary_line(table: dict, names) -> str:
    """Which set-ups give Fig 10's direction on the seeds' means (the verdict itself is the rule's)."""
    smoother = []
    for n in names:
        means = [np.nanmean([r.get(f"{n}_log10_ratio_{k}", np.nan) for r in table.values()]) for k in SMOOTHNESS]
        if sum(m < 0 for m in means) >= 2:
            smoother.append(n)
    said = ", ".join(smoother) if smoother else "none"
    unstable = [
        f"{n} ({label(net)} in {sum(bool(r.get(f'{n}_diverged_{net}')) for r in table.values())} of "
        f"{sum(f'{n}_diverged_{net}' in r for r in table.values())} seeds)"
        for n in names
        for net in NETS
        if any(r.get(f"{n}_diverged_{net}") for r in table.values())
    ]
    return (
        f"set-ups whose seed means put BN smoother on at least 2 of 3 medians (Fig 10's direction): {said}; "
        "set-ups where a net diverged (final loss above its initial loss or not finite): "
        + (", ".join(unstable) or "none")
    )


def stable(table: dict, name: str) -> bool:
    """Whether both nets trained under a set-up at every seed (no final loss above its initial one)."""
    return not any(r.get(f"{name}_diverged_{net}") for r in table.values() for net in NETS)


def answer_line(table: dict, outcomes: dict) -> str:
    """The study's answer in words: where Fig 10's direction passes the rule, and whether both nets trained
    there (a pass where a net diverged says that net diverges, not that the other is smooth)."""
    passed = [n for n, o in outcomes.items() if o == PASS]
    calm = [n for n in passed if stable(table, n)]
    wild = [n for n in passed if n not in calm]
    rest = [f"{n} {o}" for n, o in outcomes.items() if o != PASS and stable(table, n)]
    if calm:
        out = f"Answer: Fig 10's direction (BN smoother) passes where both nets train stably in: {', '.join(calm)}"
    else:
        out = "Answer: no set-up in which both nets train stably gives Fig 10's direction (BN smoother) conclusively"
    if rest:
        out += f"; the stable set-ups that do not pass: {', '.join(rest)}"
    if wild:
        out += (
            f"; it passes where a net diverged: {', '.join(wild)} (past that net's stability limit, where BN looks "
            "smoother because the other net diverges)"
        )
    return out


def gap_lines(table: dict, names) -> list[str]:
    """Exploratory, not judged (written after the runs): over the stable set-ups' (set-up, seed) pairs, how
    the log-ratios go with the gap in learned directions, k(BN) - k(standard): the standard net's rank
    collapse (k = 4 of 10 under Glorot) against BN keeping rank."""
    # one pair per trained pair of nets: a set-up that changes only the probe (float64, weights_only) measures
    # the protocol's nets again, and fixed_data's seed 0 is the protocol's run (the same numbers, counted once)
    trained = [n for n in names if stable(table, n) and not any(k.startswith("landscape_") for k, _ in setup_of(n)[1])]
    pairs = {
        (r[f"{n}_k_dln_bn"] - r[f"{n}_k_dln"], *(r[f"{n}_log10_ratio_{k}"] for k in SMOOTHNESS))
        for n in trained
        for r in table.values()
        if f"{n}_log10_ratio_beta" in r and np.isfinite(r.get(f"{n}_k_dln", np.nan) + r.get(f"{n}_k_dln_bn", np.nan))
    }
    if len(pairs) < 3:
        return []
    rows = np.array(sorted(pairs))
    gap, ratios = rows[:, 0], rows[:, 1:]
    groups = []
    for what, mask in (("BN learned more directions", gap > 0), ("both learned as many", gap == 0)):
        if mask.any():
            means = " / ".join(fmt(float(np.nanmean(ratios[mask, i]))) for i in range(len(SMOOTHNESS)))
            groups.append(f"{what} ({int(mask.sum())} pairs): mean log10(BN / standard) {means}")
    rhos = []
    for i, k in enumerate(SMOOTHNESS):
        ok = np.isfinite(ratios[:, i])
        rho, p = stats.spearmanr(gap[ok], ratios[ok, i])
        rhos.append(f"{MEDIANS[k]} {fmt(float(rho))} (p = {fmt(float(p))})")
    return [
        "exploratory, not judged (post hoc): the log-ratios (loss range / predictiveness / beta) against the gap "
        "in learned directions k(BN) - k(standard), over the trained pairs of nets of the stable set-ups: "
        + "; ".join(groups)
        + "; Spearman correlation with the gap: "
        + ", ".join(rhos)
    ]


class B12(Study):
    id = "B12"
    claim = "Why the DLN differs from Fig 10: Fig 10's direction (BN smoother) holds under every faithful DLN set-up"
    sweeps = (SWEEP, "fig10")
    figures = ("beyond_dln_setup",)
    regime = ("dln",)

    def measure(self, res, scale, seed):
        row = {}
        for name in setups():
            lr = setup_of(name)[0]
            try:
                rids = runs_of(res, name, scale, seed)
            except Missing:
                try:  # a net that diverged in its first steps left no landscape record: still say it diverged
                    rids = runs_of(res, name, scale, seed, probes=())
                except Missing:
                    continue
            row |= {f"{name}_diverged_{net}": loss_rose(res, rid) for net, rid in rids.items()}
            s = {net: smoothness(res, rid) for net, rid in rids.items()}
            if any(s[net]["beta"] != s[net]["beta"] for net in NETS):
                continue  # a net without any landscape measurement: no log-ratios at this seed
            row |= {f"{name}_log10_ratio_{k}": log_ratio(s["dln_bn"][k], s["dln"][k]) for k in SMOOTHNESS}
            row |= {f"{name}_{k}_{net}": s[net][k] for net in NETS for k in SMOOTHNESS}
            for net, rid in rids.items():
                row |= {f"{name}_{q}_{net}": v for q, v in dln_fit(res, rid).items()}
            row |= edge_numbers(res, rids, lr, name, scale, seed)
        if not row:
            raise Missing(f"no run of the DLN set-up ablation ({SWEEP}) with landscape records")
        return row

    def measured(self, table: dict, at_least: int = 2) -> list[str]:
        """The set-ups with log-ratios of at least `at_least` seeds, in the sweep's order."""
        return [n for n in setups() if sum(f"{n}_log10_ratio_beta" in r for r in table.values()) >= at_least]

    def judged_by(self, table):
        names = self.measured(table)
        if not names:
            raise Missing("no set-up of the DLN ablation has landscape records of 2 seeds")
        judged = [
            Statistic(f"{n}_log10_ratio_{k}", f"{n}: log10(BN / standard) {MEDIANS[k]}")
            for n in names
            for k in SMOOTHNESS
        ]
        reported = [
            Statistic(f"{n}_{q}_{net}", f"{n}: {what} {label(net)} (not judged)", method="range" if q == "k" else "t")
            for n in names
            for q, what in (("E", "beta x eta / 2"), ("S", "top eigenvalue x eta / 2"), ("k", "k"))
            for net in NETS
            if any(f"{n}_{q}_{net}" in r for r in table.values())
        ]
        rule = Tests(
            tuple(
                AtLeast(
                    2,
                    tuple(Test(f"{n}_log10_ratio_{k}", below(0.0)) for k in SMOOTHNESS),
                    name=f"{n}: BN smoother on at least",
                )
                for n in names
            )
        )
        return (*judged, *reported), rule

    def conclude(self, table, extra_stats=()):
        """The rule's judgement, its answer stated first in words (`answer_line`)."""
        j = super().conclude(table, extra_stats)
        statistics, rule = self.judged_by(table)
        named = {s.key: s.over(table, rule.thresholds(s.key)) for s in statistics}
        outcomes = {n: sub.judge_all(named) for n, sub in zip(self.measured(table), rule.tests, strict=True)}
        j.evidence.insert(0, answer_line(table, outcomes))
        return j

    def lines(self, table):
        names = self.measured(table)
        out = [summary_line(table, names), *gap_lines(table, names)]
        for s, r in table.items():
            for n in names:
                if f"{n}_log10_ratio_beta" not in r:
                    continue
                fits = ", ".join(
                    f"{label(net)} {fit_text(*(r[f'{n}_{q}_{net}'] for q in FIT))}"
                    + (" (diverged)" if r.get(f"{n}_diverged_{net}") else "")
                    for net in NETS
                )
                edge = ", ".join(
                    f"{q} {fmt(r[f'{n}_{q}_dln_bn'])} vs {fmt(r[f'{n}_{q}_dln'])}"
                    for q in ("E", "S")
                    if f"{n}_{q}_dln" in r
                )
                ratios = " / ".join(fmt(r[f"{n}_log10_ratio_{k}"]) for k in SMOOTHNESS)
                out.append(
                    f"seed {s}, {n}: log10(BN / standard) loss range / predictiveness / beta {ratios}; "
                    f"final loss {fits}; BN vs standard {edge}"
                )
        return out

    def draw(self, res, scale):
        """The three log10(BN / standard) medians per set-up: a dot per seed, the mean and its 95% interval."""
        try:
            table = self.table(res, scale)
        except Missing as e:
            raise MissingRuns(self.figures[0], str(e), SWEEP, scale) from None
        names = self.measured(table, at_least=1)  # drawn from one seed (a dot each), judged from 2
        if not names:
            raise MissingRuns(self.figures[0], "no set-up with landscape records", SWEEP, scale)
        fig = new_figure(15, 5)
        x = np.arange(len(names))
        for i, (k, title) in enumerate(MEDIANS.items()):
            ax = fig.add_subplot(1, 3, i + 1)
            for j, n in enumerate(names):
                vals = [r[f"{n}_log10_ratio_{k}"] for r in table.values() if f"{n}_log10_ratio_{k}" in r]
                finite = [v for v in vals if np.isfinite(v)]
                ax.plot([j] * len(finite), finite, "o", color="tab:blue", alpha=0.5, ms=4)
                if len(finite) >= 2:
                    mean, lo, hi = t_interval(finite)
                    ax.errorbar([j + 0.2], [mean], yerr=[[mean - lo], [hi - mean]], fmt="s", color="k", ms=4)
            ax.axhline(0.0, color="0.3", ls="--", lw=0.9)
            ax.set_xticks(x, names, rotation=45, ha="right")
            set_labels(ax, f"({'abc'[i]}) {title}", "set-up", "log10(BN / standard); < 0: BN smoother")
        drawn = {}
        for seed in seeds_of(res):
            for n in names:
                try:
                    rids = runs_of(res, n, scale, seed)
                except Missing:
                    continue
                for net, rid in rids.items():
                    drawn[(n, net, seed)] = res.runs.set_index("run_id").loc[rid].to_dict() | {"run_id": rid}
        figure_title(
            fig, "B12 — The DLN set-up ablation: BN vs standard landscape medians (Fig 10's direction < 0)", drawn
        )
        return fig
