"""REPORT.md (bnopt.report) from hand-made records: the claims' and studies' rows and sections, seeds and
intervals, what is not run and what trains it, and a report drawn from fewer runs than planned (ported
from tests/test_claims.py and tests/test_beyond.py)."""

from __future__ import annotations

import re

import pytest

from bnopt import studies
from bnopt.report import _stats_table, write_report
from bnopt.verdicts import BEYOND, NOT_RUN, PAPER, Stat
from tests.run_rows import Maker
from tests.test_study_b6_b10 import JITTER, SEEDS, Records, layer_rows

PAPER_CLAIMS = [f"C{i}" for i in range(1, 10)]


def beyond_ids() -> list[str]:
    return [s.id for s in studies.beyond()]


@pytest.mark.integration
def test_missing_runs_are_not_run_and_the_report_says_so(tmp_path):
    res = Maker(tmp_path).run("vgg16", 0.1).results()
    reg = studies.registry()
    checks = {cid: reg[cid].judge(res, None) for cid in PAPER_CLAIMS}
    assert checks["C1"].verdict == NOT_RUN and "vgg16_bn" in checks["C1"].evidence[0]
    assert checks["C1"].evidence[1] == "train its runs with `bnopt-train experiment=fig1`"  # from its sweeps
    assert "`bnopt-train experiment=fig3_ics_vgg`" in checks["C5"].evidence[1]
    assert checks["C9"].verdict == PAPER.partly  # a theorem: no runs needed
    path, judged = write_report(tmp_path, res=res)
    # the claims, then the studies beyond the paper (experiments/), here all not run but B2 (a theorem)
    assert [c.id for c in judged] == PAPER_CLAIMS + beyond_ids()
    assert beyond_ids()[:10] == [f"B{i}" for i in range(1, 11)]
    assert [c.verdict for c in judged[: len(checks)]] == [c.verdict for c in checks.values()]
    assert {c.id for c in judged[len(checks) :] if c.verdict != NOT_RUN} == {"B2"}
    text = path.read_text()
    assert "| C1: BN speeds up training" in text and "| not run |" in text and "`vgg16-lr0.1`" in text
    assert "Not run: C1, C2, C3, C4, C5, C6, C7, C8." in text  # C9 needs no runs
    assert "Partial" not in text  # no plan given: nothing to be partial against


@pytest.mark.integration
def test_a_report_drawn_from_fewer_runs_than_planned_says_it_is_partial(tmp_path):
    res = Maker(tmp_path).run("vgg16", 0.1).run("vgg16_bn", 0.1).results()
    have = list(res.runs.run_id)
    path, _ = write_report(tmp_path, res=res, planned=[*have, "vgg16-lr0.5-0000000000"])
    line = next(x for x in path.read_text().splitlines() if "Partial" in x)
    assert "drawn from 2 of the 3 runs" in line and "1 are not trained yet" in line and "vgg16-lr0.5-0000000000" in line
    path, _ = write_report(tmp_path, res=res, planned=have)
    assert "Partial" not in path.read_text()


@pytest.mark.integration
def test_report_shows_seeds_and_intervals(tmp_path):
    m = Maker(tmp_path)
    for seed, gap in enumerate([0.03, 0.031, 0.032]):
        m.run("vgg16", 0.1, test_acc=0.80, seed=seed).run("vgg16_bn", 0.1, test_acc=0.80 + gap, seed=seed)
    path, _ = write_report(tmp_path, res=m.results())
    lines = path.read_text().splitlines()
    header = next(x for x in lines if x.startswith("| claim |"))
    assert header.startswith("| claim | verdict | N seeds |") and header.endswith("| figure |")
    c3 = next(x for x in lines if x.startswith("| C3: "))
    assert c3.startswith("| C3: BN improves test accuracy (about 83% vs 80%, no augmentation) | reproduced | 3 |")
    assert c3.endswith("| fig1 |")
    gap = next(x for x in lines if x.startswith("| gap test acc BN - standard |"))
    assert gap.endswith("| s0: 3.0%, s1: 3.1%, s2: 3.2% | 3.1% | [2.9%, 3.3%] (t) | 3 | reproduced |")
    section = lines[lines.index("## C3: BN improves test accuracy (about 83% vs 80%, no augmentation)") :]
    assert "Seeds: 3 (0, 1, 2); N seeds per statistic: 3." in section[:12]


@pytest.mark.integration
def test_report_has_the_beyond_section_with_one_row_per_study(tmp_path):
    r = Records(tmp_path)
    for seed in SEEDS:
        for model, growth in (("vgg16", 0.0), ("vgg16_bn", 0.1 + JITTER[seed])):
            norms = {0: [1.0] * 14, 990: [10**growth] * 14}
            r.run(model, 0.1, seed, rows=layer_rows("gradnorms", "weight_norm", norms))
    path, judged = write_report(tmp_path, None, r.results(), tmp_path / "out")
    text = path.read_text()
    section = text[text.index("## Beyond the paper") : text.index("## Runs")]
    rows = [ln for ln in section.splitlines() if ln.startswith("| B")]
    assert [ln.split(" | ")[0] for ln in rows] == [f"| {i}" for i in beyond_ids()]
    assert "| holds in 200/200 random BN units;" in next(ln for ln in rows if ln.startswith("| B2 |"))
    b9 = next(ln for ln in rows if ln.startswith("| B9 |"))
    assert "E_BN 0.1 [" in b9 and "(3 seeds)" in b9 and f"| {BEYOND.holds} |" in b9
    assert "| not run |" in next(ln for ln in rows if ln.startswith("| B1 |"))
    assert "### B9:" in section and {c.id for c in judged} >= {"C1", "B1", "B10"}


def test_a_statistic_named_with_bars_keeps_its_table_row():
    """A name like |a - b| must not split its markdown table row into extra cells."""
    row = _stats_table([Stat("D = |a - b|", {0: 0.1, 1: 0.2})])[2]
    assert len(re.split(r"(?<!\\)\|", row)) == 8 and "D = \\|a - b\\|" in row
