"""results/<scale>/REPORT.md: first where its runs sit against the paper's (`## Regime`, bnopt.regime: the
final numbers of Fig 1's VGG nets and the DLNs, and whether each regime's magnitude is comparable to the
paper's); for each claim C1-C9 the verdict (with a note when its magnitude is not comparable, and a mark
when its rule was changed after seeing results), our numbers per seed with their mean and 95% interval
beside the paper's, the number of seeds, the figure, and the runs behind it (scale, hardware, versions,
wall time); then `## Beyond the paper`, the studies B1-B11 (experiments/, bnopt.studies) judged the same way.
Generated; never edited by hand.

    python -m bnopt.report [--results results] [--scale small]

`publish` writes a scale's outputs (figures/, REPORT.md, manifest.json) into results/<scale>/. The
manifest lists the runs they were drawn from; figures/manifest.json, per figure, its runs, seeds, steps
and histogram panels (`bnopt.run_selection.figure_manifest` reads it); outputs are only replaced by ones
drawn from at least those runs (so `make figures` on a fresh clone, whose run folders are not in git, keeps
the committed evidence). Smoke-scale runs (seconds of training) never produce verdicts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from . import regime, studies
from .config import SCALES
from .records import FINAL_STATUSES, RECORDS_DIR, STATUS_FILE, atomic_write_text
from .results import load_runs
from .verdicts import BEYOND, INCONCLUSIVE, NOT_RUN, PAPER

NOT_JUDGED = "not judged (smoke scale)"

# how a verdict reads in the tables: a failed claim in bold, an inconclusive one in italics
VERDICT_MARK = {
    **{w.holds: w.holds for w in (PAPER, BEYOND)},
    **{w.partly: w.partly for w in (PAPER, BEYOND)},
    **{w.fails: f"**{w.fails}**" for w in (PAPER, BEYOND)},
    INCONCLUSIVE: "*inconclusive*",
    NOT_RUN: NOT_RUN,
    NOT_JUDGED: NOT_JUDGED,
}
MANIFEST = "manifest.json"
COMPARABLE = "magnitude comparable to the paper"  # the tables' column (bnopt.regime)
NO_VERDICT_SCALES = ("smoke",)  # too short to judge anything: numbers are shown, verdicts are not


def _finite(x) -> float | None:
    """x as a float, or None when it is missing or not finite."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if x == x and abs(x) != float("inf") else None


def _machines(res) -> list[tuple[dict, list[str]]]:
    """[(environment, families of its runs)] per kind of machine the runs were trained on (GPU name, or
    CPU core count), most runs first: a report may mix machines (paper-scale VGG runs from a GPU, the DLN
    runs it shares with the small scale from a CPU)."""
    groups: dict[str, tuple[dict, list[str]]] = {}
    envs = res.runs.get("environment", [])
    families = res.runs.get("family", [None] * len(envs))
    for env, family in zip(envs, families, strict=False):
        if not isinstance(env, dict) or not env:
            continue
        key = str(env["gpu"]) if env.get("gpu") else f"cpu-{env.get('cpu_count')}"
        groups.setdefault(key, (env, []))[1].append(str(family))
    return sorted(groups.values(), key=lambda g: -len(g[1]))


def hardware_lines(res) -> list[str]:
    machines = _machines(res) or [({}, [])]
    lines = []
    for env, fams in machines:
        who = f"{len(fams)} run(s) ({', '.join(sorted(set(fams)))}): " if len(machines) > 1 else ""
        lines += [
            f"- Hardware: {who}{env.get('platform', '?')}, {env.get('cpu_count', '?')} CPU cores"
            + (f", GPU {env['gpu']}" if env.get("gpu") else ", no GPU"),
            f"- Versions{' (same runs)' if who else ''}: Python {env.get('python', '?')}, "
            f"torch {env.get('torch', '?')}, numpy {env.get('numpy', '?')}",
        ]
    return lines


def _stats_table(stats) -> list[str]:
    """The judged statistics of a claim: per-seed values, mean, 95% interval, N seeds, verdict."""
    out = ["| statistic | per seed | mean | 95% interval | N seeds | verdict |", "|---|---|---|---|---|---|"]
    for s in stats:
        per_seed = ", ".join(f"s{k}: {s.fmt(v)}" for k, v in s.values.items())
        ci = _interval_cell(s)
        name = s.name.replace("|", "\\|")  # a norm's bars would end the cell
        out.append(f"| {name} | {per_seed} | {s.fmt(s.mean)} | {ci} | {s.n} | {s.verdict or '-'} |")
    return out


def comparable(c, reg: regime.Regime | None) -> tuple[bool | None, str]:
    """Whether a judged study's magnitude is comparable to the paper's (bnopt.regime), and why not; None
    (unknown) for a study that was not run or without a regime measured."""
    if reg is None or c.verdict == NOT_RUN:
        return None, ""
    return reg.comparable(c.regime)


def verdict_line(c, reg: regime.Regime | None) -> list[str]:
    """ "Verdict: **...**", with why the magnitude is not comparable to the paper's; then, for a rule changed
    after seeing results (Study.post_hoc), that it was."""
    ok, why = comparable(c, reg)
    note = f" (magnitude not comparable to the paper's: {why})" if ok is False else ""
    lines = [f"Verdict: **{c.verdict}**{note}", ""]
    if c.post_hoc:
        lines += [
            'Rule changed after seeing results (post hoc), see docs/PROTOCOL.md section 2, "Rule changes": '
            f"{c.post_hoc}.",
            "",
        ]
    return lines


def _section(c, level: str, out_dir: Path, reg: regime.Regime | None = None) -> list[str]:
    """One claim's or study's section: verdict (and whether its magnitude is the paper's), reference, seeds,
    the judged statistics, evidence, figures."""
    lines = [f"{level} {c.id}: {c.text}", "", *verdict_line(c, reg)]
    if c.reference:
        lines += [f"Paper: {c.reference}.", ""]
    if c.seeds and c.verdict != NOT_RUN:
        seeds = ", ".join("?" if s is None else str(s) for s in c.seeds)
        lines += [f"Seeds: {len(c.seeds)} ({seeds}); N seeds per statistic: {c.n_seeds}.", ""]
    if c.stats:
        lines += _stats_table(c.stats) + [""]
    shown = tuple(f"{s.name}: per seed" for s in c.stats)  # in the table above
    lines += [f"- {e}" for e in c.evidence if not e.startswith(shown)] + [""]
    figs = [f.strip() for f in c.figure.split(",") if f.strip()]
    lines += [f"![{f}](figures/{f}.png)" for f in figs if (out_dir / "figures" / f"{f}.png").exists()]
    return lines + [""]


def _interval_cell(s) -> str:
    """The 95% interval with its kind, or why there is none (one seed; a non-finite seed: the count)."""
    if s.n <= 1 or s.method == "seeds":
        return s.label
    return f"[{s.fmt(s.lo)}, {s.fmt(s.hi)}] ({s.kind})"


def _numbers(c) -> str:
    """A study's judged statistics in one table cell: mean [95% interval] (N seeds) each."""
    if c.verdict == NOT_RUN or not (c.stats or c.cell):
        return "-"
    if not c.stats:
        return c.cell
    parts = []
    for s in c.stats:
        name = s.name.split(" = ")[0]
        if s.method == "seeds":
            parts.append(f"{name}: {s.label}")
            continue
        ci = f" [{s.fmt(s.lo)}, {s.fmt(s.hi)}]" if s.n > 1 else ""
        seeds = f"{s.n} seed{'s' if s.n > 1 else ''}" + (", range" if s.method == "range" and s.n > 1 else "")
        parts.append(f"{name} {s.fmt(s.mean)}{ci} ({seeds})")
    return "; ".join(parts)


def _beyond_section(judged, out_dir: Path, reg: regime.Regime | None = None) -> list[str]:
    """`## Beyond the paper`: one table row per study B1..B10, then a subsection each (PROTOCOL section 7)."""
    lines = [
        "## Beyond the paper",
        "",
        "Popular claims about BN the paper did not test, and later papers' findings, judged with the same",
        "rigour: rules fixed in docs/PROTOCOL.md section 7 before the runs, per-seed numbers, 95% intervals",
        "(verdicts: supported, partly, not supported, inconclusive, not run).",
        "",
        f"| id | claim | numbers (mean [95% interval]) | verdict | {COMPARABLE} | figure |",
        "|---|---|---|---|---|---|",
    ]
    for c in judged:
        lines.append(
            f"| {c.id} | {c.text} | {_numbers(c)} | {VERDICT_MARK[c.verdict]} | "
            f"{regime.yes_no(comparable(c, reg)[0])} | {c.figure or '-'} |"
        )
    lines.append("")
    for c in judged:
        lines += _section(c, "###", out_dir, reg)
    return lines


def render(
    results_root: Path,
    scale: str | None = None,
    res=None,
    out_dir: Path | None = None,
    planned=None,
    committed: Path | None = None,
    progress: bool = False,
) -> tuple[str, list]:
    """(markdown text, claim checks then beyond-the-paper studies). Figures are linked from out_dir/figures
    (default: results_root). `committed`: the folder the finished runs' records are copied to (publish's
    out_dir/runs), which the header names as where the records are. `progress`: a bar on stderr over the
    checks (a minute at small scale)."""
    results_root = Path(results_root)
    out_dir = Path(out_dir) if out_dir is not None else results_root
    res = load_runs(results_root) if res is None else res
    if scale:
        res = res.at_scale(scale)  # by the preset's resolved numbers, not its name
    checks, beyond = judge_all(res, scale, progress)
    if scale in NO_VERDICT_SCALES:
        for c in checks + beyond:
            if c.verdict != NOT_RUN:
                c.verdict = NOT_JUDGED
            for s in c.stats:
                s.verdict = ""
    reg = regime.measure(res, scale)
    by_regime: dict[str, list[str]] = {}
    for c in checks + beyond:
        for family in c.regime:
            by_regime.setdefault(family, []).append(c.id)
    runs = res.runs
    lines = [
        *header_lines(res, scale, results_root, planned, committed),
        *regime.section(reg, scale, by_regime),
        "## The paper's claims",
        "",
        "Each claim is judged per seed and over seeds: the per-seed numbers, their mean and a 95% t-interval",
        "(for a ratio, of its log10: the mean is then the geometric mean); a verdict is *inconclusive* when the",
        "interval straddles a threshold of the rule (docs/PROTOCOL.md section 2). A statistic with an infinite",
        "per-seed value has no interval: the report gives the count and the rule is applied to each seed (one",
        "verdict for all seeds, else inconclusive). One seed: no interval.",
        "",
        f"| claim | verdict | N seeds | {COMPARABLE} | figure |",
        "|---|---|---|---|---|",
    ]
    for c in checks:
        n = c.n_seeds if c.verdict != NOT_RUN else "-"
        ok = regime.yes_no(comparable(c, reg)[0])
        lines.append(f"| {c.id}: {c.text} | {VERDICT_MARK[c.verdict]} | {n} | {ok} | {c.figure or '-'} |")
    lines.append("")
    for c in checks:
        lines += _section(c, "##", out_dir, reg)
    lines += _beyond_section(beyond, out_dir, reg)
    lines += runs_table(runs)
    not_run = [c.id for c in checks if c.verdict == NOT_RUN]
    if not_run:
        lines += ["", f"Not run: {', '.join(not_run)}. `make reproduce` trains what they need."]
    return "\n".join(lines) + "\n", checks + beyond


def header_lines(res, scale: str | None, results_root: Path, planned, committed: Path | None) -> list[str]:
    """The title, where the records are, the scale's numbers, the machines, the wall time, partial or not."""
    runs = res.runs
    wall = float(runs.elapsed_s.fillna(0).sum()) if len(runs) and "elapsed_s" in runs else 0.0
    numbers = ""
    if len(runs):
        vgg, dln = runs[runs.family == "vgg"], runs[runs.family == "dln"]
        numbers = (
            f" (VGG width {sorted(set(vgg.width))}, steps {sorted(set(vgg.steps))}; DLN steps {sorted(set(dln.steps))})"
        )
    return [
        "# Does batch normalisation help optimisation? What reproduces",
        "",
        f"Generated by `make reproduce` / `python -m bnopt.report`{newest_record_note(runs)} "
        f"from {records_line(runs, results_root, committed)}.",
        "",
        f"- Scale: **{scale or 'all runs found'}**{numbers}",
        *hardware_lines(res),
        f"- Wall time of the runs: {wall / 60:.1f} min in total",
        *coverage_lines(runs, planned, scale),
        "",
    ]


def runs_table(runs) -> list[str]:
    """`## Runs`: one row per run (id, seed, status, steps, final test accuracy, speed, wall time)."""
    lines = [
        "## Runs",
        "",
        "| run | seed | status | steps | final test acc | samples/s | wall min |",
        "|---|---|---|---|---|---|---|",
    ]
    order = [k for k in ("family", "model", "lr", "seed") if k in runs]
    for _, r in runs.sort_values(order).iterrows() if len(runs) else []:
        acc, ips, wall_s = (_finite(r.get(k)) for k in ("test_acc", "images_per_s", "elapsed_s"))
        lines.append(
            f"| `{r.run_id}` | {r.get('seed', '-')} | {r.status} | {r.steps_done}/{r.steps} | "
            f"{'-' if acc is None else f'{100 * acc:.1f}%'} | {'-' if ips is None else f'{ips:.0f}'} | "
            f"{'-' if wall_s is None else f'{wall_s / 60:.1f}'} |"
        )
    return lines


def judge_all(res, scale: str | None, progress: bool = False) -> tuple[list, list]:
    """(the paper's claims C1-C9, the studies beyond it) judged from `res` (bnopt.studies, experiments/);
    `progress`: a bar on stderr advancing per study."""
    total = len(studies.registry())
    with tqdm(total=total, unit="study", file=sys.stderr, disable=not progress, dynamic_ncols=True) as bar:
        judged = studies.judge_all(
            res, scale, lambda study_id: (bar.set_description(f"judged {study_id}"), bar.update())
        )
    paper = [j for j in judged if j.id.startswith("C")]
    return paper, [j for j in judged if not j.id.startswith("C")]


def records_line(runs, results_root: Path, committed: Path | None) -> str:
    """Where the records a report was drawn from are: the committed folder when publishing copies them there
    (a fresh clone restores them from it into results/runs, which git does not hold), else results/runs."""
    n = len(runs)
    finished = int(runs["status"].isin(FINAL_STATUSES).sum()) if n and "status" in runs else 0
    if committed is None or not finished:
        return f"{n} run(s) under `{Path(results_root) / RECORDS_DIR}`"
    if finished == n:
        return f"{n} run(s); their records are in `{committed}`"
    return (
        f"{n} run(s) under `{Path(results_root) / RECORDS_DIR}`; the records of the {finished} finished ones "
        f"are in `{committed}`"
    )


def newest_record(runs) -> str | None:
    """The newest `updated` time (ISO, to the second) of the runs' status.json, or None when none reads.
    The report and manifest are dated by their records, not by the clock of the redraw, so that redrawing
    from the same records writes the same bytes."""
    stamps = []
    for folder in runs.get("path", []):
        try:
            stamps.append(str(json.loads((Path(folder) / STATUS_FILE).read_text())["updated"]))
        except (OSError, TypeError, KeyError, json.JSONDecodeError):
            continue  # a W&B mirror has no run folders; an unreadable status is the loader's to report
    return max(stamps, default=None)


def newest_record_note(runs) -> str:
    """ " (newest record 2026-12-01 13:30)" for the header, or "" without a time."""
    stamp = newest_record(runs)
    return f" (newest record {stamp.replace('T', ' ')[:16]})" if stamp else ""


def coverage_lines(runs, planned, scale: str | None) -> list[str]:
    """One line when runs `make reproduce` plans for this scale (`planned`: their ids) are not among the
    report's runs: the report is partial, and each claim's N seeds says what it rests on."""
    missing = sorted(set(planned or ()) - set(runs.get("run_id", [])))
    if not missing:
        return []
    return [
        f"- **Partial:** drawn from {len(planned) - len(missing)} of the {len(planned)} runs `make reproduce "
        f"SCALE={scale}` plans; {len(missing)} are not trained yet (e.g. {missing[0]}), so some claims rest on "
        "fewer seeds than planned (the N seeds column says how many)"
    ]


def write_report(
    results_root: Path | str = "results",
    scale: str | None = None,
    res=None,
    out_dir: Path | str | None = None,
    planned=None,
    committed: Path | None = None,
    progress: bool = False,
) -> tuple[Path, list]:
    """Write REPORT.md (into out_dir, default results_root) from the records under results_root (or from
    `res`, a Results already loaded); returns its path and the claim checks. `planned`: the ids of the runs
    `make reproduce` plans for the scale, to say when the report is drawn from fewer; `committed` and
    `progress`: see render."""
    results_root = Path(results_root)
    out_dir = Path(out_dir) if out_dir is not None else results_root
    out_dir.mkdir(parents=True, exist_ok=True)
    text, checks = render(results_root, scale, res, out_dir, planned, committed, progress)
    path = out_dir / "REPORT.md"
    atomic_write_text(path, text)
    return path, checks


def print_verdicts(checks) -> None:
    for c in checks:
        print(f"  {c.id} {c.verdict:>15s}: {c.text}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write REPORT.md from the run records.")
    ap.add_argument("--results", default="results")
    ap.add_argument("--scale", default=None, help="only runs with this scale preset's numbers (default: all)")
    ap.add_argument("--out", default=None, help="folder of REPORT.md (default: results/<scale>, or results)")
    args = ap.parse_args(argv)
    if not Path(args.results).is_dir():
        print(f"bnopt: error: results directory {args.results} does not exist", file=sys.stderr)
        return 2
    if args.scale is not None and args.scale not in SCALES:
        print(f"bnopt: error: unknown scale {args.scale!r}; choose one of {', '.join(SCALES)}", file=sys.stderr)
        return 2
    out = args.out or (Path(args.results) / args.scale if args.scale else args.results)
    path, checks = write_report(args.results, args.scale, out_dir=out)
    print_verdicts(checks)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
