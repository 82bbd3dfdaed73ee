"""Copies of finished runs' records under results/<scale>/runs (committed with a published report) and
their restore into results/runs on a fresh clone; the files copied are records.ARCHIVE_FILES."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .records import ARCHIVE_FILES, atomic_write_bytes, read_run
from .run_folder import RunFolder


def archive_run(folder: Path, dest_root: Path) -> bool:
    """Copy the records of the finished run in `folder` into dest_root/<run id>/. Files that already hold
    the same bytes are left alone (committing again changes nothing); returns whether anything was written."""
    folder = Path(folder)
    read_run(folder)  # a damaged run is never committed
    dest = Path(dest_root) / folder.name
    dest.mkdir(parents=True, exist_ok=True)
    changed = False
    for name in ARCHIVE_FILES:
        src = folder / name
        if src.exists():
            data = src.read_bytes()
            if not (dest / name).exists() or (dest / name).read_bytes() != data:
                atomic_write_bytes(dest / name, data)
                changed = True
        elif (dest / name).exists():
            (dest / name).unlink()
            changed = True
    return changed


def restore_runs(archive_root: Path, results_root: Path, run_ids) -> list[str]:
    """Copy the archived runs among `run_ids` into results_root/runs/ where they have no folder yet (a
    folder that exists, finished or half-trained, is never touched); returns the ids restored."""
    restored = []
    for rid in run_ids:
        src = Path(archive_root) / rid
        dest = RunFolder(results_root, rid).path
        if not src.is_dir() or dest.exists():
            continue
        tmp = dest.with_name(f".{rid}.restoring")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        os.replace(tmp, dest)  # whole or not at all: a kill while copying leaves no half run behind
        restored.append(rid)
    return restored
