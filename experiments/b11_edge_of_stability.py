"""B11: the paper's effective beta is the edge of stability (Cohen et al. 2021; docs/PROTOCOL.md section 7).

Reads the landscape probe's effective beta of VGG16 with and without BN at LR 0.05, 0.1 and 0.2
(configs/experiment/beyond_edge.yaml; LR 0.1 is Fig 1's runs) and of the DLN with and without BN at LR 1e-6
and 1e-7 (Fig 3b's runs). Per (net, LR) and seed: E = the median of beta x eta / 2 over the last half of
training (1: the edge of stability, beta = 2 / eta) and T = the fraction of training before beta x eta / 2
first reaches 0.8. One sub-test per (net, LR): E within [0.8, 1.25]. Beside E, not judged: S = the same median
of the top Hessian eigenvalue x eta / 2 (the sharpness) where a run of that net, LR and seed has hessian records
(B1's VGG runs, the DLN set-up ablation's), so that effective beta and sharpness are told apart. Its figure
(beyond_edge): beta x eta / 2 against the step, one panel per net, one line per LR, every seed a thin line, the
edge at 1.
"""

from bnopt.figures.common import STEP_LABEL, figure_title
from bnopt.figures.panels import legend, new_figure, record_runs, set_labels
from bnopt.measures import LATE, edge_series, late_median
from bnopt.readers import DLN_LR, TRAINS, Missing, final_accuracy, run_steps
from bnopt.run_selection import MissingRuns
from bnopt.studies import Statistic, Study, run_id_of, seed_median, seeds_of
from bnopt.verdicts import Test, Tests, fmt, within

NETS = {  # (net, learning rates): the VGG grid of beyond_edge, the DLN rates of Fig 3b
    "vgg16": (0.05, 0.1, 0.2),
    "vgg16_bn": (0.05, 0.1, 0.2),
    "dln": (1e-7, DLN_LR),
    "dln_bn": (1e-7, DLN_LR),
}
AT_EDGE = within(0.8, 1.25)  # E "at the edge of stability"
REACHED = 0.8  # T: the first measured step with beta x eta / 2 at or above this
MIN_SEEDS = 3


def sharpness(res, net: str, lr: float, scale, seed) -> float | None:
    """S: the late median of the top Hessian eigenvalue x eta / 2 of the run of (net, lr, seed) with hessian
    records (same training as the landscape run: probes leave it unchanged); None when there is none."""
    try:
        rid = run_id_of(res, net, lr, scale, seed, probes=("hessian",))
    except Missing:
        return None
    s = late_median(res, rid, edge_series(res, rid, lr, "hessian", "top_eig"))
    return s if s == s else None


def key(net: str, lr: float) -> str:
    return f"{net}_{lr:g}"


def name(k: str) -> str:
    """vgg16_bn_0.1 -> "vgg16_bn LR 0.1"."""
    net, lr = k.rsplit("_", 1)
    return f"{net} LR {lr}"


class B11(Study):
    id = "B11"
    claim = "The paper's effective beta is the edge of stability: late in training beta sits at 2 / eta"
    sweeps = ("beyond_edge", "fig3_ics_dln", "beyond_hessian", "beyond_dln_setup")
    figures = ("beyond_edge",)
    regime = ("vgg", "dln")

    def measure(self, res, scale, seed):
        row = {}
        for net, lrs in NETS.items():
            for lr in lrs:
                try:
                    rid = run_id_of(res, net, lr, scale, seed, probes=("landscape",))
                except Missing:
                    continue
                s = edge_series(res, rid, lr)
                steps = run_steps(res, rid)
                if not (s.index > LATE * steps).any():
                    continue
                hit = s.index[s.to_numpy() >= REACHED]
                row[f"E_{key(net, lr)}"] = late_median(res, rid, s)
                row[f"T_{key(net, lr)}"] = float(hit[0]) / steps if len(hit) else 1.0
                if net.startswith("vgg"):  # how far it trained: a net stuck at chance has a flat landscape
                    row[f"A_{key(net, lr)}"] = final_accuracy(res, rid)
                if (sharp := sharpness(res, net, lr, scale, seed)) is not None:
                    row[f"S_{key(net, lr)}"] = sharp
        if not row:
            raise Missing("no landscape records of the nets and learning rates B11 reads")
        return row

    def cells(self, table: dict) -> list[str]:
        """The (net, LR) keys with E of at least MIN_SEEDS seeds, in NETS order."""
        keys = [key(n, lr) for n, lrs in NETS.items() for lr in lrs]
        return [k for k in keys if sum(f"E_{k}" in r for r in table.values()) >= MIN_SEEDS]

    def judged_by(self, table):
        cells = self.cells(table)
        if not cells:
            raise Missing(f"no (net, LR) has landscape records of {MIN_SEEDS} seeds")
        named = [Statistic(f"E_{k}", f"E {name(k)}: median beta x eta / 2, last half") for k in cells]
        timing = [
            Statistic(f"T_{k}", f"T {name(k)}: first reaches {REACHED:g}", method="range", pct=True) for k in cells
        ]
        sharp = [
            Statistic(f"S_{k}", f"S {name(k)}: median top Hessian eigenvalue x eta / 2, last half (not judged)")
            for k in cells
            if any(f"S_{k}" in r for r in table.values())
        ]
        rule = Tests(tuple(Test(f"E_{k}", AT_EDGE, f"{name(k)} does not sit at the edge of stability") for k in cells))
        return (*named, *timing, *sharp), rule

    def lines(self, table):
        def cell(r, k):
            return f"{name(k)} {fmt(r[f'E_{k}'])}" + (f" (sharpness {fmt(r[f'S_{k}'])})" if f"S_{k}" in r else "")

        return self.trained_lines(table) + [
            f"seed {s}: median beta x eta / 2 over the last half (beside it, where measured, the top Hessian "
            "eigenvalue x eta / 2): " + ", ".join(cell(r, k) for k in self.cells(table) if f"E_{k}" in r)
            for s, r in table.items()
        ]

    def trained_lines(self, table) -> list[str]:
        """How far each judged VGG net trained (median final train-subset accuracy over its seeds), flagged
        where it does not train (below readers.TRAINS, as B3 and B4 count it): a net stuck at chance has a flat
        landscape, so its E near 0 says the net is dead, not that a training net stays below the edge."""
        out = []
        for k in self.cells(table):
            acc, n = seed_median(table, f"A_{k}")
            if not n:
                continue
            dead = "; it does not train, so its E says the net is dead, not below the edge" if acc < TRAINS else ""
            out.append(
                f"{name(k)}, how far it trained (final train-subset accuracy, median over {n} seeds): {acc:.0%}{dead}"
            )
        return out

    def draw(self, res, scale):
        """beta x eta / 2 against the step: a panel per net, a colour per LR, a thin line per seed, the edge."""
        fig = new_figure(14, 9)
        drawn = {}
        for i, (net, lrs) in enumerate(NETS.items()):
            ax = fig.add_subplot(2, 2, i + 1)
            for lr, col in zip(lrs, ("tab:blue", "tab:orange", "tab:green"), strict=False):
                for seed in seeds_of(res):
                    try:
                        rid = run_id_of(res, net, lr, scale, seed, probes=("landscape",))
                    except Missing:
                        continue
                    s = edge_series(res, rid, lr)
                    ax.plot(s.index, s.to_numpy(), color=col, lw=0.7, alpha=0.6)
                    row = res.runs.set_index("run_id").loc[rid].to_dict() | {"run_id": rid}
                    drawn[(net, lr, seed)] = row
                    record_runs(ax, [row])
                ax.plot([], [], color=col, label=f"LR {lr:g}")
            ax.axhline(1.0, color="0.3", ls="--", lw=0.9, label="edge of stability (beta = 2 / eta)")
            ax.set_yscale("log")
            set_labels(ax, f"({'abcd'[i]}) {net}", STEP_LABEL, "beta x eta / 2")
            legend(ax, loc="best")
        if not drawn:
            raise MissingRuns(self.figures[0], "no run with landscape records", "beyond_edge", scale)
        figure_title(fig, "B11 — Effective beta x eta / 2: the edge of stability", drawn)
        return fig
