"""Where the notebooks find results: the same folders whatever folder Jupyter starts them in.

    located = locate_results(os.environ.get("BNOPT_RESULTS"), scale=None)
    located.records   # the results root load_runs reads (its runs/ folder)
    located.figures   # the folder holding <scale>/figures/ (committed PNGs, figure manifests)
    located.note      # one line saying which folder it is and why
    showcase_run(located.records)   # the run a notebook opens when none is named (no frames read)

Jupyter runs a notebook in its own folder (notebooks/), so a relative path such as the README's
`results/small` is read from the repository root, found by walking up from the working directory (or
from the installed bnopt package, an editable install) to the folder holding pyproject.toml and
configs/. Without a setting: results/ when results/runs holds runs, else the committed records of a
published scale (results/small/runs on a fresh clone).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bnopt

from ..config import SCALES
from ..results import FINAL_STATUSES, run_folders, run_rows, runs_folder

REPO_MARKERS = ("pyproject.toml", "configs")
RESULTS_DIR = "results"
# the published scales whose committed records stand in when results/runs holds none: the README's first
COMMITTED_ORDER = ("small", "paper", "smoke")


@dataclass(frozen=True)
class Located:
    records: Path  # the results root whose runs/ load_runs reads
    figures: Path  # the folder holding <scale>/figures (committed images and figure manifests)
    note: str  # which folder, and why, in one line


def is_repo(folder: Path) -> bool:
    return all((folder / marker).exists() for marker in REPO_MARKERS)


def repo_root(start: str | Path | None = None) -> Path | None:
    """The checkout: the first folder at or above `start` (default: the working directory) holding
    pyproject.toml and configs/, else the one above the imported bnopt package (src/bnopt in an editable
    install); None outside a checkout."""
    here = Path(start or Path.cwd()).resolve()
    package = Path(bnopt.__file__).resolve().parent
    for folder in [here, *here.parents, *package.parents]:
        if is_repo(folder):
            return folder
    return None


def figures_root(records: Path) -> Path:
    """The folder holding <scale>/figures: the parent of a published scale folder (results/small, which is
    a results root of its own), else the results root itself."""
    return records.parent if records.name in SCALES and (records / "figures").is_dir() else records


def resolve_setting(setting: str, repo: Path | None) -> Path:
    """A path as a user writes it: absolute as is; relative from the repository root (where the README's
    commands run), else from the working directory when only that exists."""
    path = Path(setting).expanduser()
    if path.is_absolute():
        return path
    candidates = ([repo / path] if repo else []) + [Path.cwd() / path]
    return next((p for p in candidates if p.exists()), candidates[0]).resolve()


def locate_results(setting: str | None = None, scale: str | None = None, start: str | Path | None = None) -> Located:
    """The results a notebook reads. `setting` (BNOPT_RESULTS): a path, relative ones from the repository
    root. None or "": <repo>/results when its runs/ holds runs, else the committed records of the first
    published scale holding some (`scale` first, then small, paper, smoke)."""
    repo = repo_root(start)
    if setting:
        records = resolve_setting(str(setting), repo)
        return Located(records, figures_root(records), f"BNOPT_RESULTS={setting}: {records}")
    base = (repo or Path.cwd().resolve()) / RESULTS_DIR
    if n := len(run_folders(base)):
        return Located(base, base, f"{base} ({n} runs in {runs_folder(base)})")
    for name in dict.fromkeys([scale, *COMMITTED_ORDER]) if scale else COMMITTED_ORDER:
        if n := len(run_folders(base / name)):
            committed = base / name
            why = f"{runs_folder(base)} holds no runs: the {n} committed runs of {runs_folder(committed)}"
            return Located(committed, base, f"{committed} ({why})")
    return Located(base, base, f"{base} (no runs in {runs_folder(base)} nor committed ones)")


def showcase_run(root: str | Path) -> str | None:
    """The run a notebook opens when none is named: the first finished run under root/runs recorded with
    the paper's probes (every section has records to show), else the first run; None without runs."""
    rows = run_rows(root)
    full = [r for r in rows if r["status"] in FINAL_STATUSES and r["probes"] == "paper"]
    return (full or rows or [{"run_id": None}])[0]["run_id"]
