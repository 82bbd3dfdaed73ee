"""C6: BN makes the loss landscape smoother (Fig 4, 11; docs/PROTOCOL.md section 2, rules of 2026-12-07).

Reads the landscape probe of VGG16 with and without BN at LR 0.1 (Fig 4's runs). Per seed and net, three
medians: the loss range along the gradient, the gradient predictiveness (max ||grad diff||) and the effective
beta, over the early phase (measured steps in (0, steps/4]), where the nets differ; the statistics are
log10(BN / standard) of each, judged with a margin (BN lower only when below -0.05). Late in training both
nets' effective beta sits at the edge of stability, beta = 2 / eta, where gradient descent pins it whatever
the network: beta x eta / 2 over the last half of training is reported beside it, not judged.
"""

from bnopt.measures import LATE, SMOOTHNESS, median, resolved_ranges, smoothness_lines, smoothness_seed, unresolved_note
from bnopt.readers import VGG_LR, Missing, probe_series, run_steps
from bnopt.studies import Statistic, Study, run_id_of
from bnopt.verdicts import Test, Tests, below, fmt, log_ratio, within

MARGIN = 0.05  # |log10 ratio| below this is no difference (a factor 1.12): PROTOCOL, rules of 2026-12-07
EARLY = 0.25  # the early phase: measured steps in (0, EARLY x steps]
EDGE = within(0.8, 1.25)  # beta x eta / 2 "at the edge of stability"
MEDIANS = {"loss_range": None, "grad_diff_max": "grad_diff_max", "beta": "beta"}


def phase_medians(res, rid: str, first: float, last: float) -> dict:
    """The landscape medians over the measured steps in (first, last] (the loss range over those float32
    resolves, `measures.resolved_ranges`), and the fraction of loss ranges left out."""

    def window(metric: str):
        s = probe_series(res, rid, "landscape", metric)
        return s[(s.index > first) & (s.index <= last)]

    ranges, unresolved = resolved_ranges(window("loss_min"), window("loss_max"))
    return {
        "loss_range": median(ranges),
        "grad_diff_max": median(window("grad_diff_max")),
        "beta": median(window("beta")),
        "loss_range_unresolved": unresolved,
    }


class C6(Study):
    id = "C6"
    claim = "BN makes the loss landscape smoother: loss variation, gradient predictiveness, effective beta"
    paper = (
        "gradient predictiveness: standard peaks ~250, BN mostly < 30; effective beta: BN ~20 and flat, "
        "standard 5-45 (Fig 4)"
    )
    sweeps = ("fig4",)
    figures = ("fig4", "fig11")
    statistics = tuple(Statistic(f"early_{k}", f"log10(BN / standard) {k}, early phase") for k in SMOOTHNESS)
    rule = Tests(tuple(Test(f"early_{k}", below(-MARGIN)) for k in SMOOTHNESS))  # BN lower beyond the margin

    def measure(self, res, scale, seed):
        row = smoothness_seed(res, "vgg16", "vgg16_bn", VGG_LR, scale, seed)  # whole-run medians, reported
        for net in ("vgg16", "vgg16_bn"):
            rid = run_id_of(res, net, VGG_LR, scale, seed, probes=("landscape",))
            steps = run_steps(res, rid)
            early, late = phase_medians(res, rid, 0, EARLY * steps), phase_medians(res, rid, LATE * steps, steps)
            if early["grad_diff_max"] != early["grad_diff_max"] or early["beta"] != early["beta"]:
                raise Missing(f"run {rid} has no landscape records in its first {EARLY:.0%} of steps")
            row |= {f"{net}_early_{k}": v for k, v in early.items()}  # an unresolved loss range stays NaN
            row[f"{net}_edge_early"] = early["beta"] * VGG_LR / 2
            row[f"{net}_edge_late"] = late["beta"] * VGG_LR / 2
        for k in SMOOTHNESS:
            row[f"early_{k}"] = log_ratio(row[f"vgg16_bn_early_{k}"], row[f"vgg16_early_{k}"])
        return row

    def lines(self, table):
        out = []
        for seed, r in table.items():
            left_out = unresolved_note(
                r["vgg16_bn_early_loss_range_unresolved"], r["vgg16_early_loss_range_unresolved"]
            )
            early = "; ".join(
                f"{k} {fmt(r[f'vgg16_bn_early_{k}'])} vs {fmt(r[f'vgg16_early_{k}'])}"
                + (f" {left_out}" if k == "loss_range" else "")
                for k in SMOOTHNESS
            )
            out.append(
                f"seed {seed}: VGG LR 0.1, medians over the early phase (steps <= {EARLY:.0%} of training), BN vs "
                f"standard: {early}; beta x eta / 2 early {fmt(r['vgg16_bn_edge_early'])} vs "
                f"{fmt(r['vgg16_edge_early'])}, last half {fmt(r['vgg16_bn_edge_late'])} vs {fmt(r['vgg16_edge_late'])}"
            )
        out += smoothness_lines(table, "vgg16", "vgg16_bn", VGG_LR)
        pinned = [s for s, r in table.items() if EDGE(r["vgg16_edge_late"]) and EDGE(r["vgg16_bn_edge_late"])]
        if pinned:
            out.append(
                f"seeds {', '.join(map(str, pinned))}: over the last half of training both nets' beta x eta / 2 lies "
                f"{EDGE.describe()}: their effective beta is pinned at 2 / eta = {2 / VGG_LR:g} (the edge of "
                "stability, Cohen et al. 2021), so the late beta is set by the step size, not by the network"
            )
        return [*out, fig4c_line(table)]


def fig4c_line(table: dict) -> str:
    """What the paper's Fig 4c (BN's effective beta about 20 and flat) means next to B11: at its LR 0.1, 20 is
    2 / eta, the edge of stability, where gradient descent holds the sharpness whatever the network."""

    def span(net):
        v = sorted(x for r in table.values() if (x := r[f"{net}_edge_late"]) == x)
        return f"{fmt(v[0])}-{fmt(v[-1])}" if v else "not measured"

    return (
        f"Fig 4c: the paper's flat BN beta of about 20 is 2 / eta = {2 / VGG_LR:g} at its LR {VGG_LR:g}, the edge of "
        "stability (Cohen et al. 2021), where gradient descent holds the sharpness whatever the network; so a flat "
        "beta near 2 / eta marks the step size and is not by itself evidence that BN smooths the landscape (B11 "
        f"tests the edge across learning rates). Here, over the last half of training and {len(table)} seed(s), "
        f"beta x eta / 2 is {span('vgg16_bn')} for BN and {span('vgg16')} for the standard net"
    )
