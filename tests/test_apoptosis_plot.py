"""The Annexin V / PI figures draw what the analysis decided, and nothing else.

Artists are read back from the Axes (Agg backend, nothing shown or saved) and compared with
the result: the cells in the density with ``n_cells``, the quadrant lines with the template's
transform of the thresholds, the corner texts with the percentages, the gate outlines with
the gates' own coordinates.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.patches import Polygon, Rectangle

from cytoflow_res import read_fcs
from cytoflow_res import simulate as sim
from cytoflow_res.apoptosis import QUADRANTS, ApoptosisGating, ApoptosisResult
from cytoflow_res.gating.gates import EllipseGate, PolygonGate, RangeGate
from cytoflow_res.gating.templates import Template, load_template, parse_template
from cytoflow_res.plotting.apoptosis import (
    QUADRANT_COLOURS,
    QUADRANT_LABELS,
    plot_apoptosis,
    plot_gating_steps,
    plot_quadrant_summary,
)
from cytoflow_res.transforms import make_transform
from tests.conftest import REPO_ROOT, shared_file

matplotlib.use("Agg")

APOPTOSIS = REPO_ROOT / "example_fcs" / "apoptosis"


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def result() -> ApoptosisResult:
    """The committed example's parental drugA+drugB sample, gated with its unstained control."""
    unstained = read_fcs(APOPTOSIS / "parental_unstained.fcs")
    gating = ApoptosisGating.prepare("generic_modern", unstained=unstained)
    return gating.analyze(read_fcs(APOPTOSIS / "parental_drugA+drugB_r1.fcs"))


@pytest.fixture(scope="module")
def calibur(tmp_path_factory: pytest.TempPathFactory) -> ApoptosisResult:
    """A simulated FACSCalibur file (FSC-H / SSC-H only, 4-decade log FL1-H / FL2-H)."""
    path = tmp_path_factory.mktemp("calibur") / "calibur.fcs"
    sim.write_apoptosis_sample(path, sim.ApoptosisSpec(n_events=3000), dialect="facscalibur", seed=3)
    return ApoptosisGating.prepare("facscalibur", thresholds=(30, 30)).analyze(read_fcs(path))


def _variant(base: str = "generic_modern", **changes: Any) -> Template:
    doc = load_template(base).to_dict()
    for key, value in changes.items():
        doc[key] = {**doc[key], **value}
    return parse_template(doc)


def _analyze(template: Template, result: ApoptosisResult) -> ApoptosisResult:
    thresholds = (result.thresholds.annexin, result.thresholds.pi)
    return ApoptosisGating.prepare(template, thresholds=thresholds).analyze(
        read_fcs(APOPTOSIS / "parental_drugA+drugB_r1.fcs"))


def _one(ax: Axes, gid: str) -> Any:
    found = ax.findobj(lambda a: a.get_gid() == gid)
    assert len(found) == 1, f"{len(found)} artists with gid {gid!r}"
    return found[0]


def _mesh_counts(ax: Axes, gid: str = "density") -> np.ndarray:
    mesh = _one(ax, gid)
    assert isinstance(mesh, QuadMesh)
    return np.ma.filled(mesh.get_array(), 0.0)


# ---------------------------------------------------------------- quadrant plot
def test_plot_draws_in_the_given_axes_and_returns_them(result: ApoptosisResult) -> None:
    fig, ax = plt.subplots()
    assert plot_apoptosis(result, ax) is ax
    assert result.plot(ax=ax) is ax  # the result's own method goes through the same function
    assert plt.get_fignums() == [fig.number]


def test_plot_without_axes_makes_one_figure(result: ApoptosisResult) -> None:
    ax = plot_apoptosis(result)
    assert isinstance(ax, Axes)
    assert len(plt.get_fignums()) == 1
    ax.figure.canvas.draw()  # renders without a warning (warnings are errors)


def test_density_holds_every_analysed_cell(result: ApoptosisResult) -> None:
    counts = _mesh_counts(plot_apoptosis(result, bins=128))
    assert counts.shape == (128, 128)
    assert counts.sum() == result.n_cells
    assert counts.min() >= 0
    mesh = _one(plt.gca(), "density")
    assert np.ma.getmaskarray(mesh.get_array()).sum() == np.count_nonzero(counts == 0)  # empty bins blank


def test_values_beyond_the_scale_are_clipped_to_its_edges(result: ApoptosisResult) -> None:
    # top of scale 1000 (logicle) for Annexin V and a 4-decade log scale for PI: bright cells
    # are beyond the top, and PI values <= 0 have no logarithm
    narrow = {"type": "logicle", "t": 1000, "w": 0.5, "m": 4.5, "a": 0}
    res = _analyze(_variant(transforms={"annexin": narrow, "pi": {"type": "log"}}), result)
    annexin, pi = res.annexin_values(), res.pi_values()
    assert (annexin > 1000).any() and (pi <= 1).any()
    counts = _mesh_counts(plot_apoptosis(res, bins=64))
    assert counts.sum() == res.n_cells
    # histogram is stored (y, x): last column = top of the Annexin V scale, first row = bottom of PI
    assert counts[:, -1].sum() >= np.count_nonzero(annexin >= 1000)
    assert counts[0, :].sum() >= np.count_nonzero(pi <= 1)


def test_quadrant_lines_at_the_transformed_thresholds(result: ApoptosisResult) -> None:
    ax = plot_apoptosis(result)
    spec = result.template.transforms
    x = make_transform(spec["annexin"]).apply([result.thresholds.annexin])[0]
    y = make_transform(spec["pi"]).apply([result.thresholds.pi])[0]
    assert _one(ax, "threshold:annexin").get_xdata()[0] == pytest.approx(x, abs=1e-12)
    assert _one(ax, "threshold:pi").get_ydata()[0] == pytest.approx(y, abs=1e-12)
    assert ax.get_xlim() == (0.0, 1.0) and ax.get_ylim() == (0.0, 1.0)  # logicle display range


def test_corner_percentages_are_the_results(result: ApoptosisResult) -> None:
    ax = plot_apoptosis(result)
    corners = {"viable": (0, 0), "early_apoptotic": (1, 0), "late_apoptotic": (1, 1), "necrotic": (0, 1)}
    for name, (right, top) in corners.items():
        text = _one(ax, f"pct:{name}")
        assert text.get_text() == f"{result.percentages[name]:.1f}%"
        assert (text.xy[0] > 0.5, text.xy[1] > 0.5) == (bool(right), bool(top))
        assert _one(ax, f"label:{name}").get_text() == QUADRANT_LABELS[name]
    assert sum(float(_one(ax, f"pct:{n}").get_text()[:-1]) for n in QUADRANTS) == pytest.approx(100, abs=0.2)


def test_percentages_can_be_left_out(result: ApoptosisResult) -> None:
    ax = plot_apoptosis(result, show_percentages=False, title="")
    assert not ax.texts
    assert ax.get_title() == ""


def test_labels_ticks_and_title(result: ApoptosisResult) -> None:
    ax = plot_apoptosis(result)
    assert ax.get_xlabel() == "Annexin V (FITC-A)"
    assert ax.get_ylabel() == "PI (PE-A)"
    assert ax.get_title() == result.sample_id
    logicle = make_transform(result.template.transforms["annexin"])
    ticks = {t.get_text(): t.get_position()[0] for t in ax.get_xticklabels()}
    for label, value in (("0", 0.0), ("10³", 1e3), ("10⁴", 1e4), ("10⁵", 1e5), ("−10²", -100.0)):
        assert ticks[label] == pytest.approx(logicle.apply([value])[0])
    assert "10¹" not in ticks  # too close to 0 on this scale: a minor tick
    minor = ax.get_xticks(minor=True)
    assert np.any(np.isclose(minor, logicle.apply([2e3])[0]))
    assert len(minor) > len(ticks)


def test_template_without_transform_gets_a_fitted_logicle(result: ApoptosisResult) -> None:
    doc = load_template("generic_modern").to_dict()
    del doc["transforms"]["annexin"]
    res = _analyze(parse_template(doc), result)
    ax = plot_apoptosis(res)
    assert _mesh_counts(ax).sum() == res.n_cells
    assert ax.get_xlim() == (0.0, 1.0)


def test_asinh_and_linear_scales(result: ApoptosisResult) -> None:
    res = _analyze(_variant(transforms={"annexin": {"type": "asinh", "cofactor": 150},
                                        "pi": {"type": "linear"}}), result)
    ax = plot_apoptosis(res)
    assert _mesh_counts(ax).sum() == res.n_cells
    assert _one(ax, "threshold:annexin").get_xdata()[0] == pytest.approx(
        np.arcsinh(res.thresholds.annexin / 150))
    assert _one(ax, "threshold:pi").get_ydata()[0] == pytest.approx(res.thresholds.pi)
    assert ax.get_ylim() == (0.0, 262144.0)  # linear: the channel's range


# ---------------------------------------------------------------- gating steps
def test_gating_panels_show_the_gates(result: ApoptosisResult) -> None:
    axes = plot_gating_steps(result)
    assert len(axes) == 2
    assert axes[0].figure is axes[1].figure
    pre = result.pregate
    debris, singlets = pre.gates["debris"], pre.gates["singlets"]
    assert isinstance(debris, RangeGate) and isinstance(singlets, PolygonGate)

    cells_ax, singlet_ax = axes
    assert (cells_ax.get_xlabel(), cells_ax.get_ylabel()) == ("FSC-A", "SSC-A")
    assert (singlet_ax.get_xlabel(), singlet_ax.get_ylabel()) == ("FSC-A", "FSC-H")
    # scatter is on a linear scale in data units: outlines are the gates' own coordinates
    rect = _one(cells_ax, "gate:debris").get_xy()
    assert rect[0, 0] == pytest.approx(debris.min)
    assert rect[0, 0] == rect[3, 0]
    assert rect[1, 0] > cells_ax.get_xlim()[1]  # the open side is outside the axes
    poly = _one(singlet_ax, "gate:singlets")
    assert isinstance(poly, Polygon)
    np.testing.assert_allclose(poly.get_xy()[: len(singlets.vertices)], np.asarray(singlets.vertices))

    assert _mesh_counts(cells_ax).sum() == pre.events_total
    assert _mesh_counts(singlet_ax).sum() == pre.events_cells
    assert _one(cells_ax, "count:debris").get_text() == (
        f"cells: {pre.events_cells:,} ({100 * pre.events_cells / pre.events_total:.1f}%)")
    assert _one(singlet_ax, "count:singlets").get_text() == (
        f"singlets: {pre.events_singlets:,} ({100 * pre.events_singlets / pre.events_cells:.1f}%)")
    cells_ax.figure.canvas.draw()


def test_gating_into_given_axes(result: ApoptosisResult) -> None:
    _fig, grid = plt.subplots(2, 2)
    axes = result.plot_gating(axes=grid)
    assert axes == [grid[0, 0], grid[0, 1]]
    assert not grid[1, 0].has_data()
    with pytest.raises(ValueError, match=r"needs 2 axes .*debris, singlets.*got 1"):
        plot_gating_steps(result, axes=grid[1, 0])


def test_fixed_rectangle_and_polygon_gates_are_drawn(result: ApoptosisResult) -> None:
    vertices = [[20_000.0, 10_000.0], [250_000.0, 180_000.0], [250_000.0, 260_000.0], [20_000.0, 40_000.0]]
    template = _variant(pregates={
        "debris": {"method": "rectangle", "x": "fsc_a", "y": "ssc_a", "x_min": 25_000, "y_max": 200_000},
        "singlets": {"method": "polygon", "area": "fsc_a", "height": "fsc_h", "vertices": vertices},
    })
    res = _analyze(template, result)
    cells_ax, singlet_ax = plot_gating_steps(res)
    rect = _one(cells_ax, "gate:debris").get_xy()
    assert rect[0, 0] == 25_000 and rect[2, 1] == 200_000
    assert rect[0, 1] < cells_ax.get_ylim()[0] and rect[1, 0] > cells_ax.get_xlim()[1]
    np.testing.assert_allclose(_one(singlet_ax, "gate:singlets").get_xy()[:4], vertices)


def test_polygon_on_a_log_scale_follows_its_curved_edges(result: ApoptosisResult) -> None:
    vertices = [[20_000.0, 10_000.0], [250_000.0, 10_000.0], [250_000.0, 200_000.0]]
    template = _variant(
        pregates={"debris": {"method": "polygon", "x": "fsc_a", "y": "ssc_a", "vertices": vertices}},
        transforms={"ssc_a": {"type": "logicle", "t": 262144, "w": 0.5, "m": 4.5, "a": 0}},
    )
    res = _analyze(template, result)
    ax = plot_gating_steps(res)[0]
    drawn = _one(ax, "gate:debris").get_xy()
    logicle = make_transform(template.transforms["ssc_a"])
    # every vertex is on the outline, in display coordinates, with points between them
    for x, y in vertices:
        assert np.any(np.isclose(drawn[:, 0], x) & np.isclose(drawn[:, 1], logicle.apply([y])[0]))
    assert len(drawn) > 3 * len(vertices)


def test_ellipse_gate_outline_is_on_its_boundary(result: ApoptosisResult) -> None:
    ellipse = EllipseGate.from_axes(("FSC-A", "SSC-A"), (80_000.0, 45_000.0), (50_000.0, 25_000.0),
                                    angle=0.4, name="debris")
    res = _with_gate(result, "debris", ellipse)
    outline = _one(plot_gating_steps(res)[0], "gate:debris").get_xy()
    d2 = ellipse.distance2({"FSC-A": outline[:, 0], "SSC-A": outline[:, 1]})
    np.testing.assert_allclose(d2, 1.0, rtol=1e-9)


def _with_gate(result: ApoptosisResult, step_name: str, gate: Any) -> ApoptosisResult:
    steps = tuple(dataclasses.replace(s, gate=gate) if s.name == step_name else s
                  for s in result.pregate.steps)
    return dataclasses.replace(result, pregate=dataclasses.replace(result.pregate, steps=steps))


@pytest.mark.parametrize("gate", [None, RangeGate("SSC-H", 10.0)], ids=["no gate", "other channel"])
def test_undrawable_gate_shades_removed_events(result: ApoptosisResult, gate: Any) -> None:
    res = _with_gate(result, "singlets", gate)
    ax = plot_gating_steps(res)[1]
    assert not ax.findobj(lambda a: a.get_gid() == "gate:singlets")
    pre = res.pregate
    assert _mesh_counts(ax, "kept").sum() == pre.events_singlets
    assert _mesh_counts(ax, "removed").sum() == pre.events_cells - pre.events_singlets


def test_steps_that_are_off_have_no_panel(result: ApoptosisResult) -> None:
    template = _variant(pregates={"debris": {"method": "none"}, "singlets": {"method": "none"}})
    res = _analyze(template, result)
    assert plot_gating_steps(res) == []
    assert plt.get_fignums() == []


def test_facscalibur_result_draws_without_fsc_a(calibur: ApoptosisResult) -> None:
    assert "fsc_a" not in calibur.channels
    axes = plot_gating_steps(calibur)
    assert len(axes) == 1  # no singlet step on a FACSCalibur
    ax = axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("FSC-H", "SSC-H")
    gate = calibur.pregate.gates["debris"]
    assert isinstance(gate, RangeGate)
    assert _one(ax, "gate:debris").get_xy()[0, 0] == pytest.approx(gate.min)
    assert _mesh_counts(ax).sum() == calibur.pregate.events_total

    qax = plot_apoptosis(calibur)
    assert _mesh_counts(qax).sum() == calibur.n_cells
    assert [t.get_text() for t in qax.get_xticklabels()] == ["10⁰", "10¹", "10²", "10³", "10⁴"]
    log = make_transform({"type": "log"})
    assert _one(qax, "threshold:pi").get_ydata()[0] == pytest.approx(log.apply([30.0])[0])
    assert qax.get_xlabel() == "Annexin V (FL1-H)"
    qax.figure.canvas.draw()


@pytest.mark.shared
def test_real_facscan_file() -> None:
    sample = read_fcs(shared_file("stains", "FlowIO_3FITC_4PE_004.fcs"))
    res = ApoptosisGating.prepare("facscalibur", thresholds=(30, 30)).analyze(sample)
    ax = plot_apoptosis(res)
    assert _mesh_counts(ax).sum() == res.n_cells
    assert len(plot_gating_steps(res)) == 1


# ---------------------------------------------------------------- summary
@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "sample_id": ["vehicle", "drugA", "failed"],
        "viable_pct": [90.5, 60.0, math.nan],
        "early_apoptotic_pct": [4.0, 20.0, math.nan],
        "late_apoptotic_pct": [3.5, 15.0, math.nan],
        "necrotic_pct": [2.0, 5.0, math.nan],
    })


def test_summary_bars_are_the_frame_values(frame: pd.DataFrame) -> None:
    fig, ax = plt.subplots()
    assert plot_quadrant_summary(frame, ax) is ax
    left = np.zeros(len(frame))
    for name in QUADRANT_LABELS:
        bars = ax.findobj(lambda a, name=name: a.get_gid() == f"bar:{name}")
        assert all(isinstance(b, Rectangle) for b in bars)
        widths = np.array([b.get_width() for b in bars])
        np.testing.assert_array_equal(widths, frame[f"{name}_pct"].to_numpy())
        np.testing.assert_allclose([b.get_x() for b in bars][:2], left[:2])
        assert bars[0].get_facecolor() == matplotlib.colors.to_rgba(QUADRANT_COLOURS[name])
        left = left + widths
    assert [t.get_text() for t in ax.get_yticklabels()] == ["vehicle", "drugA", "failed"]
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # first row on top
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(QUADRANT_LABELS.values())
    fig.canvas.draw()


def test_summary_of_results_to_frame(result: ApoptosisResult) -> None:
    ax = plot_quadrant_summary(result.to_frame(), by=None, legend=False)
    assert ax.get_legend() is None
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0"]
    widths = [b.get_width() for b in ax.findobj(lambda a: a.get_gid() == "bar:late_apoptotic")]
    assert widths == [pytest.approx(result.percentages["late_apoptotic"])]


def test_summary_names_a_missing_column(frame: pd.DataFrame) -> None:
    with pytest.raises(KeyError, match=r"no column 'necrotic_pct'.*sample_id, viable_pct"):
        plot_quadrant_summary(frame.drop(columns="necrotic_pct"))


def test_quadrant_names_match_the_analysis() -> None:
    assert list(QUADRANT_LABELS) == list(QUADRANTS) == list(QUADRANT_COLOURS)


def test_nothing_is_written(result: ApoptosisResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plot_apoptosis(result)
    plot_gating_steps(result)
    assert list(tmp_path.iterdir()) == []
