"""Issue 23 item 0: the committed evidence is recomputable byte for byte. Publishing again from the committed
records results/small/runs gives the committed REPORT.md, manifest.json, figures/manifest.json and figure
PNGs, byte for byte: no clock in the outputs (they are dated by their records), no matplotlib version in the
images, a layout that does not depend on memory addresses, theorem checks that print no round-off digits."""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bnopt.archive import restore_runs
from bnopt.figures.panels import LAYOUT_GRID, new_figure, save, snap
from bnopt.publish import publish
from bnopt.records import RECORDS_DIR, STATUS_FILE
from bnopt.report import MANIFEST, newest_record
from bnopt.verdicts import roundoff

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "results" / "small"
TEXT_OUTPUTS = ("REPORT.md", MANIFEST, "figures/manifest.json")


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def text_diff(committed: Path, regenerated: Path) -> str:
    lines = difflib.unified_diff(
        committed.read_text().splitlines(),
        regenerated.read_text().splitlines(),
        "committed",
        "regenerated",
        lineterm="",
    )
    return "\n".join(list(lines)[:40])


@pytest.mark.e2e
def test_the_committed_small_results_are_regenerated_byte_for_byte(tmp_path, monkeypatch):
    """What `make figures SCALE=small` does on a fresh clone (restore the committed records into results/runs,
    publish into results/small), with publish called directly: the planned run ids are the committed
    manifest's, so no config is composed. Every output equals the committed file; the records are untouched."""
    manifest = json.loads((COMMITTED / MANIFEST).read_text())
    planned = [*manifest["runs"], *manifest["planned_not_trained"]]
    results, out = tmp_path / "results", tmp_path / "results" / "small"
    shutil.copytree(COMMITTED / RECORDS_DIR, out / RECORDS_DIR)
    restore_runs(out / RECORDS_DIR, results, sorted(manifest["runs"]))
    monkeypatch.chdir(tmp_path)  # the header names the records' folder as make figures does: results/small/runs
    published = publish(Path("results"), Path("results") / "small", "small", planned=planned, progress=False)
    assert not published.kept
    images = sorted(p.name for p in (COMMITTED / "figures").glob("*.png"))
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == images
    differing = [
        name
        for name in (*TEXT_OUTPUTS, *(f"figures/{image}" for image in images))
        if (out / name).read_bytes() != (COMMITTED / name).read_bytes()
    ]
    diffs = [text_diff(COMMITTED / name, out / name) for name in differing if name in TEXT_OUTPUTS]
    assert not differing, f"{differing} differ from the committed files\n" + "\n".join(diffs)
    assert folder_bytes(out / RECORDS_DIR) == folder_bytes(COMMITTED / RECORDS_DIR)


@pytest.mark.integration
def test_saved_figures_carry_no_version_or_date_and_repeat_their_bytes(tmp_path):
    def drawn(folder: str) -> list[bytes]:  # a new figure each time, as publishing draws each once
        fig = new_figure(3, 2)
        fig.add_subplot().plot([0, 1], [1, 0])
        return [p.read_bytes() for p in save(fig, tmp_path / folder, "f")]

    first, again = drawn("a"), drawn("b")
    assert first == again
    png, pdf = first
    assert b"Software" not in png and b"Matplotlib" not in png
    assert b"CreationDate" not in pdf and b"Matplotlib" not in pdf


def test_the_layout_rounds_what_the_solver_sets_to_a_grid():
    """kiwisolver's results vary by an ulp from draw to draw (the order of its sums follows memory addresses):
    every position it sets, of Axes, colorbars and subfigures, is rounded to LAYOUT_GRID of the figure."""
    fig = new_figure(7, 3.3)
    left, right = fig.subfigures(1, 2)
    for sub in (left, right):
        ax = sub.subplots(1, 2)[1]
        ax.set_title("a title that takes room")
        sub.colorbar(ax.imshow(np.eye(3)), ax=ax)
        sub.suptitle("half")
    fig.draw_without_rendering()
    positions = np.array([ax.get_position(original=True).get_points() for ax in fig.axes])
    boxes = np.array([sub.bbox_relative.get_points() for sub in fig.subfigs])
    assert len(positions) == 6 and (positions[:, 1] > positions[:, 0]).all()  # 2 Axes and a colorbar each
    for values in (positions, boxes):
        assert np.array_equal(snap(values), values)
        assert np.allclose(values / LAYOUT_GRID, np.round(values / LAYOUT_GRID), rtol=0, atol=1e-6)
    assert all(ax.get_in_layout() for ax in fig.axes)  # the next draw lays them out again


def test_theorem_checks_print_round_off_as_a_bound():
    """B2's largest gap is 1.2e-15 with AVX2's vectorised sums and 1.3e-15 without: the report prints neither."""
    assert roundoff(1.2462955761647263e-15) == roundoff(1.3293819479090415e-15) == "below 1e-12"
    assert roundoff(3e-9) == "3.00e-09"  # not round-off: the number


def test_outputs_are_dated_by_their_newest_record(tmp_path):
    folders = []
    for name, updated in (("a", "2026-12-01T11:05:10"), ("b", "2026-12-01T13:30:02"), ("c", None)):
        folder = tmp_path / name
        folder.mkdir()
        status = {"status": "done"} | ({"updated": updated} if updated else {})
        (folder / STATUS_FILE).write_text(json.dumps(status))
        folders.append(str(folder))
    runs = pd.DataFrame({"run_id": ["a", "b", "c", "d"], "path": [*folders, str(tmp_path / "gone")]})
    assert newest_record(runs) == "2026-12-01T13:30:02"
    assert newest_record(runs.drop(columns="path")) is None  # W&B: no run folders
