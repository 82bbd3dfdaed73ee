"""The paper figures over seeds (issue 24 item 10): geometric means on log axes, every seed in the range panels
and in Fig 8, the claims' smoothing window, the title's scale, the activation labels, Fig 12/13's small
multiples. Built from hand-made records (no training); the figures are built, never saved."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bnopt.figures import drift, landscape
from bnopt.figures.curves import acc_panel, loss_panel, over_seeds, probe_line
from bnopt.figures.panels import label, new_figure, recording
from bnopt.figures.selection import titled
from bnopt.readers import WINDOW, smoothed_acc
from bnopt.results import Results
from bnopt.run_selection import Requires, scale_numbers, select_runs

from .run_rows import Maker, run_row

# every test here draws a whole paper figure: the integration tier (pyproject.toml's markers)
pytestmark = pytest.mark.integration


def frame(values, steps=(0, 5, 10), column="v") -> pd.DataFrame:
    return pd.DataFrame({column: np.asarray(values, dtype=float)}, index=pd.Index(list(steps), name="step"))


# ---------------------------------------------------------------------------------- centres over seeds


def test_over_seeds_geometric_mean_of_two_seeds():
    a, b = frame([1, 10, 100]), frame([100, 10, 1])
    steps, mid, lo, hi = over_seeds([a, b], "v", center="geometric")
    assert list(steps) == [0, 5, 10]
    np.testing.assert_allclose(mid, [10, 10, 10])  # sqrt(1 * 100); the arithmetic mean would be 50.5
    np.testing.assert_allclose(lo, [1, 10, 1])
    np.testing.assert_allclose(hi, [100, 10, 100])
    np.testing.assert_allclose(over_seeds([a, b], "v")[1], [50.5, 10, 50.5])
    np.testing.assert_allclose(over_seeds([a, b, frame([5, 5, 5])], "v", center="median")[1], [5, 10, 5])
    # a non-positive value has no place on a log axis: the other seeds' geometric mean, and their min
    steps, mid, lo, _ = over_seeds([frame([-1, 4, 0]), frame([4, 16, 9])], "v", center="geometric")
    np.testing.assert_allclose(mid, [4, 8, 9])
    np.testing.assert_allclose(lo, [4, 4, 9])
    with pytest.raises(ValueError, match="center"):
        over_seeds([a], "v", center="arithmetic")


def test_probe_line_names_its_centre():
    ax = new_figure(4, 3).add_subplot(1, 1, 1)
    probe_line(
        ax,
        [frame([1, 100, 1], column="beta"), frame([100, 1, 1], column="beta")],
        "beta",
        "k",
        "BN",
        center="geometric",
    )
    (line,) = ax.get_lines()
    assert line.get_label() == "BN (2 seeds, geometric mean)"
    np.testing.assert_allclose(line.get_ydata(), [10, 10, 1])
    assert len(ax.collections) == 1  # the min-max band


def test_loss_panel_draws_the_geometric_mean_of_the_seeds(tmp_path):
    m = Maker(tmp_path)
    m.run("dln", 1e-6, seed=0, loss_end=10.0).run("dln", 1e-6, seed=1, loss_end=1000.0)
    res = m.results()
    runs = select_runs(res, [("dln", 1e-6)], requires=Requires(seed=0))
    ax = new_figure(5, 4).add_subplot(1, 1, 1)
    loss_panel(ax, res, runs, [1e-6])
    (line,) = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    assert line.get_label() == "Standard, LR 1e-06 (2 seeds, geometric mean)"
    steps = np.asarray(line.get_xdata(), dtype=float)
    np.testing.assert_allclose(line.get_ydata(), 100.0 * (1 + 10 * np.exp(-steps / 200)))  # sqrt(10 * 1000)
    assert ax.get_yscale() == "log"


def test_the_accuracy_curves_smooth_over_the_claims_window(tmp_path):
    """One window, readers.WINDOW, for the figures and the claims (it was 1/60 of the run: 33 steps of 2000)."""
    m = Maker(tmp_path)
    m.run("vgg16", 0.1, seed=0, acc_rate=0.01).run("vgg16", 0.1, seed=1, acc_rate=0.03).run("vgg16_bn", 0.1)
    res = m.results()
    runs = select_runs(res, [("vgg16", 0.1), ("vgg16_bn", 0.1)], requires=Requires(seed=0))
    ax = new_figure(5, 4).add_subplot(1, 1, 1)
    acc_panel(ax, res, runs, [0.1])
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    one = smoothed_acc(res, runs[("vgg16_bn", 0.1)]["run_id"])
    np.testing.assert_allclose(lines["Batch Norm, LR 0.1"].get_ydata(), one.to_numpy())
    both = (smoothed_acc(res, "vgg16-lr0.1") + smoothed_acc(res, "vgg16-lr0.1-s1")) / 2
    np.testing.assert_allclose(lines["Standard, LR 0.1 (2 seeds)"].get_ydata(), both.to_numpy())
    assert any(f"moving avg. over {WINDOW} steps" in text for text in lines)


# ------------------------------------------------------------------ hand-made runs with landscape records


class Records:
    """Runs at a preset's numbers with landscape records, and activation histograms (layers `layers`)."""

    def __init__(self, tmp_path):
        self.tmp, self.runs, self.metrics, self.probes = tmp_path, [], [], []

    def run(self, model, lr, seed, *, scale="small", numbers_of="small", factor=1.0, layers=()):
        family = "dln" if model.startswith("dln") else "vgg"
        numbers = scale_numbers(numbers_of, family)
        rid = f"{model}-lr{lr:g}-s{seed}"
        path = self.tmp / rid
        path.mkdir()
        row = run_row(model, lr, seed, run_id=rid, steps=numbers["steps"], path=str(path), probes="paper")
        self.runs.append(row | numbers | {"scale": scale})
        steps = np.arange(0, 500, 100)
        self.metrics.append(
            pd.DataFrame(dict(step=steps, kind="train", loss=factor * (1 + 1 / (1 + steps)), acc=0.5, run_id=rid))
        )
        rows = []
        for s in steps:
            values = dict(loss_min=factor, loss_max=2 * factor, grad_diff_min=factor, grad_diff_max=3 * factor)
            rows += [(s, "landscape", 0, np.nan, k, v) for k, v in (values | {"beta": 10 * factor}).items()]
            rows += [(s, "activations", k, np.nan, "mean", 0.0) for k in layers]
        self.probes.append(
            pd.DataFrame(rows, columns=["step", "probe", "layer", "eta", "metric", "value"]).assign(run_id=rid)
        )
        if layers:
            n, bins, units = len(steps), 8, 4
            arrays = {}
            for k in layers:
                arrays |= {
                    f"layer{k}_counts": np.ones((n, bins)),
                    f"layer{k}_edges": np.tile(np.linspace(-1, 1, bins + 1), (n, 1)),
                    f"layer{k}_steps": steps,
                    f"layer{k}_unit_mean": factor * np.cumsum(np.ones((n, units)), axis=0),
                    f"layer{k}_unit_var": np.ones((n, units)),
                }
            np.savez(path / "activations.npz", **arrays)
        return self

    def results(self) -> Results:
        return Results(pd.DataFrame(self.runs), pd.concat(self.metrics), pd.concat(self.probes, ignore_index=True))


def band_count(ax) -> int:
    """Drawn range bands (fill_between with vertices; the legend's proxy entries have none)."""
    return sum(1 for c in ax.collections if any(len(p.vertices) for p in c.get_paths()))


def test_fig4_range_panels_draw_every_seed(tmp_path):
    rec = Records(tmp_path)
    for s in (0, 1, 2):
        rec.run("vgg16", 0.1, s, factor=1 + s).run("vgg16_bn", 0.1, s, factor=0.5 + s)
    res = rec.results()
    with recording() as drawn:
        fig = landscape.build_fig4(res, "small")
    assert set(drawn.runs) == set(res.runs["run_id"])  # every seed's run is drawn (the figure manifest)
    ax_loss, ax_grad, ax_beta = fig.axes
    for ax in (ax_loss, ax_grad):
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert texts == ["Standard, LR 0.1 (3 seeds, a band each)", "Batch Norm, LR 0.1 (3 seeds, a band each)"]
        assert band_count(ax) == 6  # one band per seed and network
    tops = sorted({float(np.nanmax(c.get_paths()[0].vertices[:, 1])) for c in ax_loss.collections if c.get_paths()})
    assert tops == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # loss_max = 2 x factor of each seed
    assert ax_beta.get_yscale() == "linear"  # VGG16's beta: the arithmetic mean over seeds
    (std,) = [ln for ln in ax_beta.get_lines() if ln.get_label() == "Standard, LR 0.1 (3 seeds)"]
    np.testing.assert_allclose(std.get_ydata(), 20.0)  # mean of 10, 20, 30


def test_fig10_title_says_the_scale_it_is_drawn_for(tmp_path):
    """The DLN's runs are shared by the paper and small presets (same numbers): trained under `small`, they
    are Fig 10's runs at scale paper too, and the title says the scale asked for."""
    rec = Records(tmp_path)
    for s in (0, 1):
        rec.run("dln", 1e-6, s, scale="small", factor=10.0**s).run("dln_bn", 1e-6, s, scale="small")
    res = rec.results()
    for scale in ("paper", "small"):
        with recording() as drawn:
            fig = landscape.build_fig10(res, scale)
        assert f"(scale {scale}, 10000 steps)" in fig.get_suptitle()
        assert {r["scale"] for r in drawn.title.values()} == {scale}  # what a composite's title would read
    assert {r["scale"] for r in drawn.runs.values()} == {"small"}  # the runs' own rows, as they are
    beta = fig.axes[2]
    assert beta.get_yscale() == "log"
    (std,) = [ln for ln in beta.get_lines() if ln.get_label().startswith("Standard")]
    assert std.get_label() == "Standard, LR 1e-06 (2 seeds, geometric mean)"
    np.testing.assert_allclose(std.get_ydata(), np.sqrt(10 * 100))  # beta 10 and 100: geometric, not 55
    assert titled({"k": {"scale": "small"}}, None) == {"k": {"scale": "small"}}


def test_fig13_range_panels_are_small_multiples_on_shared_axes(tmp_path):
    rec = Records(tmp_path)
    models = ("dln", "dln_bn", "dln_l1", "dln_l2", "dln_linf")
    for m in models:
        for s in (0, 1):
            rec.run(m, 1e-6, s, factor=1 + s)
    fig = landscape.build_fig13(rec.results(), "small")
    by_title = {}
    for ax in fig.axes:
        by_title.setdefault(ax.get_title(), []).append(ax)
    for m in models:
        loss, grad = by_title[label(m, 1e-6, " (2 seeds, a band each)")]  # one panel per network and range
        assert band_count(loss) == band_count(grad) == 2  # one band per seed
        assert grad.get_yscale() == "log" and not loss.get_legend()
    grads = [axes[1] for axes in by_title.values() if len(axes) == 2]
    assert all(ax.get_shared_y_axes().joined(grads[0], ax) for ax in grads)
    suptitles = [sf.get_suptitle() for sf in fig.subfigs]
    assert "(b) Loss landscape: one panel per network, one band per seed" in suptitles
    assert "(c) Gradient predictiveness: one panel per network, one band per seed" in suptitles


# ----------------------------------------------------------------------------------------- Fig 8 and 9


def test_fig8_draws_every_seed(tmp_path):
    rec = Records(tmp_path)
    for m in ("vgg16", "vgg16_bn", "vgg16_noisy_bn"):
        for s in (0, 1, 2):
            rec.run(m, 0.1, s, factor=1 + s, layers=(2, 9, 13))
    res = rec.results()
    with recording() as drawn:
        fig = drift.build_fig8(res, "small")
    assert set(drawn.runs) == set(res.runs["run_id"])  # 3 networks x 3 seeds
    ax = fig.axes[2]  # layer #2, |mu(t) - mu(0)|: factor x 1, 2, ... per seed
    (std,) = [ln for ln in ax.get_lines() if ln.get_label() == "Standard, LR 0.1 (3 seeds)"]
    np.testing.assert_allclose(std.get_ydata(), 2.0 * np.arange(5))  # the mean of factors 1, 2, 3
    assert len(ax.collections) == 3  # a min-max band per network
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "band: min-max over seeds" in legend and "Noisy Batch Norm, LR 0.1 (3 seeds)" in legend


def test_fig9_labels_say_where_the_activations_are(tmp_path):
    """The standard network has no norm layer: its activations are the layer's own output."""
    assert drift.activation_site("dln", "dln") == "activation (linear layer output, no norm layer)"
    assert drift.activation_site("dln_bn", "dln") == "activation (after BN)"
    assert drift.activation_site("vgg16", "vgg") == "activation (conv. output, no norm layer, before ReLU)"
    assert drift.activation_site("vgg16_noisy_bn", "vgg") == "activation (after BN + noise, before ReLU)"
    rec = Records(tmp_path)
    for m in ("dln", "dln_bn"):
        rec.run(m, 1e-6, 0, layers=(1, 11, 24))
    fig = drift.build_fig9(rec.results(), "small")
    xlabels = [ax.get_xlabel() for ax in fig.axes if ax.get_xlabel()]
    assert xlabels == ["activation (linear layer output, no norm layer)", "activation (after BN)"]
    assert fig.axes[0].get_title() == "Standard, LR 1e-06, seed 0, layer #1"
