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
and histogram panels (`bnopt.results.figure_manifest` reads it); outputs are only replaced by ones drawn from at least
those runs (so `make figures` on a fresh clone, whose run folders are not in git, keeps the committed
evidence). Smoke-scale runs (seconds of training) never produce verdicts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from . import figures, regime, studies
from .archive import archive_run
from .config import SCALES
from .records import FINAL_STATUSES, RECORDS_DIR, STATUS_FILE, RunFolder, atomic_write_text
from .results import FIGURE_MANIFEST, load_runs
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
        parts.append(f"{name} {s.fmt(s.mean)}{ci} ({s.n} seed{'s' if s.n > 1 else ''})")
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
    wall = float(runs.elapsed_s.fillna(0).sum()) if len(runs) and "elapsed_s" in runs else 0.0
    lines = [
        "# Does batch normalisation help optimisation? What reproduces",
        "",
        f"Generated by `make reproduce` / `python -m bnopt.report`{newest_record_note(runs)} "
        f"from {records_line(runs, results_root, committed)}.",
        "",
        f"- Scale: **{scale or 'all runs found'}**"
        + (
            f" (VGG width {sorted(set(runs[runs.family == 'vgg'].width))}, "
            f"steps {sorted(set(runs[runs.family == 'vgg'].steps))}; DLN steps "
            f"{sorted(set(runs[runs.family == 'dln'].steps))})"
            if len(runs)
            else ""
        ),
        *hardware_lines(res),
        f"- Wall time of the runs: {wall / 60:.1f} min in total",
        *coverage_lines(runs, planned, scale),
        "",
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
    lines += [
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
    not_run = [c.id for c in checks if c.verdict == NOT_RUN]
    if not_run:
        lines += ["", f"Not run: {', '.join(not_run)}. `make reproduce` trains what they need."]
    return "\n".join(lines) + "\n", checks + beyond


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


@dataclass
class Published:
    summary: str
    checks: list = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    kept: bool = False


def read_manifest(out_dir: Path) -> dict:
    try:
        return json.loads((Path(out_dir) / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def write_figure_manifest(figure_dir: Path, entries: dict) -> Path:
    """figures/manifest.json, {figure: entry} (`figures.describe`), merged into the one there: a figure
    not drawn this time keeps its old entry while its image is still in the folder."""
    figure_dir = Path(figure_dir)
    path = figure_dir / FIGURE_MANIFEST
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        old = {}
    merged = dict(old) if isinstance(old, dict) else {}
    for name, entry in entries.items():
        kept = merged.get(name)
        if "missing" in entry and kept and "missing" not in kept and (figure_dir / f"{name}.png").exists():
            continue
        merged[name] = entry
    figure_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return path


def publish(
    results_root: Path | str,
    out_dir: Path | str,
    scale: str,
    figs=None,
    force: bool = False,
    planned=None,
    progress: bool = True,
) -> Published:
    """Draw the figures and write REPORT.md + manifest.json of one scale into out_dir, from the runs with
    that scale's numbers. Outputs drawn from runs that are not all here any more are kept, not replaced.
    `planned`: the ids of the runs `make reproduce` plans (the report and manifest say which are missing).
    `progress`: bars on stderr over the records read, the figures and the checks (minutes at small scale),
    and the seconds of each in the summary."""
    results_root, out_dir = Path(results_root), Path(out_dir)
    clock = Stopwatch()
    res = load_runs(results_root, progress=progress).at_scale(scale)
    clock.lap("records")
    old = read_manifest(out_dir)
    lost = sorted(set(old.get("runs", {})) - set(res.runs.get("run_id", [])))
    if lost:
        why = (
            f"they were drawn from {len(old['runs'])} runs, {len(lost)} of which are not under "
            f"{results_root}/runs (e.g. {lost[0]}); train them (make reproduce SCALE={scale})"
        )
    elif not old and (out_dir / "REPORT.md").exists() and not len(res.runs):
        why = f"no runs with the {scale} preset's numbers under {results_root}/runs to draw new ones from"
    else:
        why = None
    if why and not force:
        print(
            f"bnopt: keeping {out_dir}/REPORT.md and its figures: {why}; replace them anyway with make figures FORCE=1",
            file=sys.stderr,
        )
        return Published(f"kept the outputs in {out_dir}", kept=True)
    described: dict = {}
    drawn = figures.draw_all(res, out_dir / "figures", figs=figs, scale=scale, manifest=described, progress=progress)
    write_figure_manifest(out_dir / "figures", described)
    clock.lap("figures")
    # the finished runs' records are copied beside the report (commit_records, below): the header names them
    committed = out_dir / RECORDS_DIR
    path, checks = write_report(results_root, scale, res, out_dir, planned, committed, progress)
    clock.lap("checks")
    made = {k: v for k, v in drawn.items() if not isinstance(v, str)}
    manifest = {
        "scale": scale,
        "records_updated": newest_record(res.runs),  # not the time of drawing: see newest_record
        "runs": {
            r.run_id: {
                "model": r.model,
                "lr": float(r.lr),
                "seed": int(r.get("seed", 0)),
                "status": r.status,
                "steps_done": int(r.steps_done),
            }
            for _, r in res.runs.iterrows()
        }
        if len(res.runs)
        else {},
        "figures": {k: [Path(p).name for p in v] for k, v in made.items()},
        "claims": {c.id: c.verdict for c in checks},
        "claim_seeds": {c.id: c.n_seeds for c in checks},
    }
    if planned is not None:
        manifest["planned_not_trained"] = sorted(set(planned) - set(manifest["runs"]))
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    commit_records(results_root, out_dir, [rid for rid, r in manifest["runs"].items() if r["status"] in FINAL_STATUSES])
    clock.lap("copying records")
    for name, v in drawn.items():
        if isinstance(v, str):
            print(f"  {name}: not drawn: {v}")
    return Published(figure_summary(drawn, out_dir / "figures") + f", report {path} ({clock})", checks, drawn)


class Stopwatch:
    """Seconds per stage of publishing, for its summary line: `lap(name)` ends a stage."""

    def __init__(self):
        self.start, self.laps = time.perf_counter(), {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name], self.start = now - self.start, now

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.0f} s" for name, seconds in self.laps.items())


def figure_summary(drawn: dict, folder: Path) -> str:
    """ "21 of 21 figure(s) in <folder>", with how many lack runs and how many failed."""
    missing = sum(1 for v in drawn.values() if isinstance(v, str) and v.startswith("missing"))
    failed = sum(1 for v in drawn.values() if isinstance(v, str) and not v.startswith("missing"))
    made = len(drawn) - missing - failed
    notes = [f"{missing} lack runs or records"] * bool(missing) + [f"{failed} failed"] * bool(failed)
    return f"{made} of {len(drawn)} figure(s) in {folder}" + (f" ({', '.join(notes)})" if notes else "")


def commit_records(results_root: Path, out_dir: Path, run_ids) -> None:
    """The records of exactly the finished runs the report was drawn from, under out_dir/runs/ (see
    records.py); records of other runs there are removed."""
    archive = out_dir / RECORDS_DIR
    for rid in run_ids:
        archive_run(RunFolder(results_root, rid).path, archive)
    for old in archive.iterdir() if archive.is_dir() else []:
        if old.is_dir() and old.name not in run_ids:
            shutil.rmtree(old)


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
