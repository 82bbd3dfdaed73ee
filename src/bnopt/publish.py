"""Publishing a scale's outputs: results/<scale>/figures (and their figure manifest), REPORT.md
(bnopt.report), manifest.json (the runs they were drawn from) and the finished runs' records
(results/<scale>/runs, bnopt.archive). Outputs are only replaced by ones drawn from at least the runs the
manifest lists (so `make figures` on a fresh clone, whose run folders are not in git, keeps the committed
evidence)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import figures
from .archive import archive_run
from .records import FINAL_STATUSES, RECORDS_DIR, atomic_write_text
from .report import MANIFEST, newest_record, write_report
from .results import load_runs
from .run_folder import RunFolder
from .run_selection import FIGURE_MANIFEST


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
