"""C5: BN does not reduce internal covariate shift (Definition 2.1); it is often larger (Fig 3;
docs/PROTOCOL.md section 2).

Reads Fig 3's runs (ICS probe): standard and BN VGG16 at LR 0.1 and 0.01 (layers #5, #10), standard and BN
DLN at LR 1e-6 and 1e-7 (layers #9, #17). Per seed: the fraction of (network, layer, LR) pairs where BN does
not reduce ICS, i.e. where BN's median l2 difference is not lower or its median cosine not higher than the
standard net's. The fraction is compared over seeds only on the same pairs: seeds lacking pairs drop out.
"""

from bnopt.measures import median
from bnopt.probes import ICS_LAYERS
from bnopt.readers import DLN_LR, VGG_LR, Missing, probe_series
from bnopt.studies import Statistic, Study, per_seed, run_id_of, seed_means
from bnopt.verdicts import FAILS, HOLDS, PARTLY, at_least, fmt, one

# Fig 3's (family, standard model, BN model, learning rates), as configs/experiment/fig3_ics_{vgg,dln}.yaml
# sweep them. Declared here, not read from the runs table: configs/probes/paper.yaml records ICS in every
# run, so runs outside Fig 3 (LR 0.5, noisy BN, l_p nets) hold ICS records too.
ICS_RUNS = (
    ("vgg", "vgg16", "vgg16_bn", (VGG_LR, 0.01)),
    ("dln", "dln", "dln_bn", (DLN_LR, 1e-7)),
)
NUMBERS = ("pairs", "pairs_not_reduced", "fraction_not_reduced")  # the per-seed numbers (the rest: evidence)


def ics_runs() -> list[tuple[str, str, str, float]]:
    """(family, standard, BN, lr) of every pair of runs C5 compares, in the report's order."""
    return [(f, std, bn, lr) for f, std, bn, lrs in ICS_RUNS for lr in lrs]


def medians(res, rid: str, layer: int) -> tuple[float, float]:
    """(median l2, median cosine) of the run's ICS at the layer over its measured steps."""
    return median(probe_series(res, rid, "ics", "l2", layer)), median(probe_series(res, rid, "ics", "cos", layer))


def same_pairs(table: dict) -> tuple[list, list, int]:
    """(kept seeds, left-out seeds, pairs in all): the seeds that have every pair any seed has (else those
    with the most pairs), e.g. DLN-only seeds beyond the VGG runs' seeds drop out."""
    union = set().union(*(table[s]["pair_set"] for s in table))
    best = max(len(table[s]["pair_set"]) for s in table)
    keep = [s for s in table if table[s]["pair_set"] == union] or [
        s for s in table if len(table[s]["pair_set"]) == best
    ]
    return keep, [s for s in table if s not in keep], len(union)


class C5(Study):
    id = "C5"
    claim = "BN does not reduce internal covariate shift (Definition 2.1); it is often larger"
    paper = (
        "BN's ICS (l2 difference, cosine) is not smaller, often larger, than the standard net's "
        "(Fig 3a VGG layers #5, #10; Fig 3b DLN #9, #17)"
    )
    sweeps = ("fig3_ics_dln", "fig3_ics_vgg")
    figures = ("fig3",)
    statistics = (
        Statistic(
            "fraction",
            "fraction of pairs where BN does not reduce ICS",
            column="fraction_not_reduced",
            method="bootstrap",
            pct=True,
        ),
    )
    rule = one("fraction", (at_least(0.75), HOLDS), (at_least(0.5), PARTLY), otherwise=FAILS)
    notes = (
        "a pair counts as BN reducing ICS when BN's median l2 difference is lower and its median cosine higher "
        "than the standard net's (medians over the measured steps)",
    )

    def measure(self, res, scale, seed):
        not_reduced, found, lines = 0, set(), []
        for family, m_std, m_bn, lr in ics_runs():
            try:
                std = run_id_of(res, m_std, lr, scale, seed, probes=("ics",))
                bn = run_id_of(res, m_bn, lr, scale, seed, probes=("ics",))
            except Missing:
                continue
            for k in ICS_LAYERS[family]:
                (l2_s, cs_s), (l2_b, cs_b) = medians(res, std, k), medians(res, bn, k)
                if l2_s != l2_s or l2_b != l2_b:
                    continue
                reduced = l2_b < l2_s and cs_b > cs_s  # BN better on both measures
                not_reduced += not reduced
                found.add((family, k, lr))
                lines.append(
                    f"seed {seed} {family} layer #{k} LR {lr:g}: median l2 BN {fmt(l2_b)} vs std {fmt(l2_s)}; "
                    f"median cos BN {fmt(cs_b)} vs std {fmt(cs_s)} -> "
                    + ("BN reduces ICS" if reduced else "BN does not reduce ICS")
                )
        if not found:
            raise Missing("no ICS probe records")
        total = len(found)
        numbers = {"pairs": total, "pairs_not_reduced": not_reduced, "fraction_not_reduced": not_reduced / total}
        return numbers | {"pair_set": frozenset(found), "pair_lines": lines}

    def table(self, res, scale):
        """The seeds that have the same pairs; each kept row says which seeds were left out."""
        table = per_seed(res, lambda seed: self.measure(res, scale, seed))
        keep, dropped, in_all = same_pairs(table)
        return {s: table[s] | {"left_out": tuple(dropped), "pairs_in_all": in_all} for s in keep}

    def lines(self, table):
        out = [line for r in table.values() for line in r["pair_lines"]]
        first = next(iter(table.values()))
        if first["left_out"]:
            out.append(
                f"seeds {', '.join(map(str, first['left_out']))} left out: they lack pairs the other seeds have "
                f"({first['pairs_in_all']} pairs in all)"
            )
        return out

    def conclude(self, table, extra_stats=()):
        j = super().conclude(table, extra_stats)
        j.numbers = seed_means({s: {k: r[k] for k in NUMBERS} for s, r in table.items()}) | {"n_seeds": len(table)}
        return j
