"""The cell-cycle figure: what it draws is what the fit computed, and it touches nothing else.

The artists are read back from the Axes (Agg backend, nothing shown or saved) and compared
with ``CellCycleFit.eval_components()`` number for number.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import StepPatch

from cytoflow_res import plotting as pl
from cytoflow_res import simulate as sim
from cytoflow_res.cellcycle import CellCycleFit, DNAHistogram, ModelSpec, fit_cell_cycle
from cytoflow_res.plotting.cellcycle import COLOURS

matplotlib.use("Agg")  # no window, no display needed; switches pyplot if already imported

BINS = 256
MODEL_RANGE = 262_144.0  # the simulator's linear scale


def _histogram(pi_a: np.ndarray, source: str | None = None) -> DNAHistogram:
    counts, edges = np.histogram(pi_a, bins=BINS, range=(0.0, MODEL_RANGE))
    return DNAHistogram.from_counts(counts.astype(float), edges=edges, channel="PI-A", source=source)


@pytest.fixture(scope="module")
def fit() -> CellCycleFit:
    """A control sample with debris, doublets and sub-G1 left in: every component is non-zero."""
    events, _truth = sim.simulate_cell_cycle(
        sim.CellCycleSpec.profile("control", n_events=20_000, debris_fraction=0.05, doublet_fraction=0.05),
        seed=5,
    )
    hist = _histogram(events["PI-A"].to_numpy(), source="/data/plate 1/A01.fcs")
    result = fit_cell_cycle(hist, model=ModelSpec(debris="single_cut", aggregates=True, sub_g1=True))
    assert result.status in ("ok", "warn"), result.message
    return result


@pytest.fixture(scope="module")
def two_cycle_fit() -> CellCycleFit:
    """A diploid population plus a second (hypodiploid, DNA index 0.64) cycle."""
    a, _ = sim.simulate_cell_cycle(sim.CellCycleSpec.profile("control", n_events=12_000), seed=1)
    b, _ = sim.simulate_cell_cycle(sim.CellCycleSpec.profile("g1_arrest", n_events=8_000, g1_mean=32_000.0),
                                   seed=2)
    hist = _histogram(np.concatenate([a["PI-A"].to_numpy(), b["PI-A"].to_numpy()]))
    scale = BINS / MODEL_RANGE
    result = fit_cell_cycle(hist, model=ModelSpec(second_cycle=True), g1_mean=50_000.0 * scale,
                            b_g1_mean=32_000.0 * scale)
    assert result.status in ("ok", "warn"), result.message
    return result


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    before = set(plt.get_fignums())
    yield
    plt.close("all")
    assert not before  # no test starts with a figure left open by another


def _draw(ax: Axes) -> Figure:
    """Render to the Agg canvas in memory; any warning is an error."""
    fig = ax.figure
    assert isinstance(fig, Figure)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig.canvas.draw()
    return fig


def _fills(ax: Axes) -> dict[str, PolyCollection]:
    return {str(c.get_label()): c for c in ax.collections if isinstance(c, PolyCollection)}


def _lines(ax: Axes) -> dict[str, Line2D]:
    return {str(line.get_label()): line for line in ax.lines}


def _curve(fill: PolyCollection, x: np.ndarray) -> np.ndarray:
    """The upper curve of a ``fill_between(x, y)`` polygon (its baseline is y = 0).

    The polygon runs (x[0], 0), (x[i], y[i]) for every i, then back along the baseline.
    """
    (path,) = fill.get_paths()
    vertices = np.asarray(path.vertices, dtype=float)
    upper = vertices[1 : x.size + 1]
    np.testing.assert_array_equal(upper[:, 0], x)
    np.testing.assert_array_equal(vertices[x.size + 2 : 2 * x.size + 2, 1], 0.0)
    return upper[:, 1]


def _xy(line: Line2D) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)


def _rgba(colours: object) -> np.ndarray:
    """Face or edge colours of a collection as an (n, 4) array."""
    return np.asarray(colours, dtype=float).reshape(-1, 4)


# ------------------------------------------------------------------ what is returned


def test_draws_into_the_given_axes_and_returns_it(fit: CellCycleFit) -> None:
    fig, ax = plt.subplots()
    n_figures = len(plt.get_fignums())
    out = fit.plot(ax=ax)
    assert out is ax
    assert out.figure is fig
    assert len(plt.get_fignums()) == n_figures  # no new figure
    _draw(out)


def test_without_axes_makes_one_new_figure(fit: CellCycleFit) -> None:
    assert plt.get_fignums() == []
    ax = pl.plot_cell_cycle_fit(fit)
    assert isinstance(ax, Axes)
    assert plt.get_fignums() == [ax.figure.number]  # type: ignore[union-attr]
    fig = _draw(ax)
    assert ax in fig.axes and ax.residual_axes in fig.axes  # type: ignore[attr-defined]


def test_method_and_function_draw_the_same(fit: CellCycleFit) -> None:
    a = fit.plot()
    b = pl.plot_cell_cycle_fit(fit)
    assert [str(c.get_label()) for c in a.get_children()] == [str(c.get_label()) for c in b.get_children()]
    for name, line in _lines(a).items():
        np.testing.assert_array_equal(line.get_ydata(), _lines(b)[name].get_ydata())


def test_nothing_is_shown_or_written(fit: CellCycleFit, monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the plot function must not show or save")

    monkeypatch.setattr(plt, "show", forbidden)
    monkeypatch.setattr(Figure, "show", forbidden)
    monkeypatch.setattr(Figure, "savefig", forbidden)
    monkeypatch.chdir(tmp_path)
    _draw(fit.plot())
    _draw(fit.plot(ax=plt.subplots()[1], residuals=False, legend=False))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ what is drawn


def test_data_are_drawn_as_a_filled_histogram(fit: CellCycleFit) -> None:
    ax = fit.plot()
    (data,) = [p for p in ax.patches if isinstance(p, StepPatch)]
    assert data.get_label() == "Data"
    assert data.get_fill()
    values, edges, _baseline = data.get_data()
    np.testing.assert_array_equal(values, fit.histogram.counts)
    np.testing.assert_array_equal(edges, fit.histogram.channel_edges)


def test_g1_g2_filled_and_s_hatched_equal_the_components(fit: CellCycleFit) -> None:
    ax = fit.plot()
    comps = fit.eval_components()
    x = fit.histogram.channel_centers
    fills = _fills(ax)
    assert set(fills) == {"G0/G1", "G2/M", "S"}
    for label, key in (("G0/G1", "g1"), ("G2/M", "g2")):
        fill = fills[label]
        assert fill.get_hatch() is None
        (face,) = _rgba(fill.get_facecolor())
        assert face[3] > 0.5  # filled, not transparent
        np.testing.assert_allclose(face[:3], to_rgba(COLOURS[key])[:3])
        np.testing.assert_allclose(_curve(fill, x), comps[key], rtol=1e-12, atol=1e-9)
    s = fills["S"]
    assert s.get_hatch() == "////"
    assert np.all(_rgba(s.get_facecolor())[:, 3] == 0)  # hatched outline, no fill
    np.testing.assert_allclose(_rgba(s.get_edgecolor())[0, :3], to_rgba(COLOURS["s"])[:3])
    np.testing.assert_allclose(_curve(s, x), comps["s"], rtol=1e-12, atol=1e-9)


def test_debris_aggregates_sub_g1_and_model_lines_equal_the_components(fit: CellCycleFit) -> None:
    ax = fit.plot()
    comps = fit.eval_components()
    x = fit.histogram.channel_centers
    lines = _lines(ax)
    assert set(lines) == {"Debris", "Aggregates", "Sub-G1", "Model"}
    for label, key in (("Debris", "debris"), ("Aggregates", "aggregates"), ("Sub-G1", "sub_g1")):
        assert comps[key].max() > 0, key  # the sample really has this component
        line_x, line_y = _xy(lines[label])
        np.testing.assert_array_equal(line_x, x)
        np.testing.assert_allclose(line_y, comps[key], rtol=1e-12, atol=1e-9)
    lo, hi = fit.histogram.fit_range
    model_x, model_y = _xy(lines["Model"])
    np.testing.assert_array_equal(model_x, x[lo:hi])  # drawn where it was fitted only
    np.testing.assert_allclose(model_y, comps["total"][lo:hi], rtol=1e-12, atol=1e-9)
    # the components drawn add up to the model drawn
    drawn = np.sum([_curve(f, x) for f in _fills(ax).values()]
                   + [_xy(lines[k])[1] for k in ("Debris", "Aggregates", "Sub-G1")], axis=0)
    np.testing.assert_allclose(drawn[lo:hi], model_y, rtol=1e-9, atol=1e-9)


def test_legend_carries_the_fractions_cv_and_rcs(fit: CellCycleFit) -> None:
    ax = fit.plot()
    legend = ax.get_legend()
    assert legend is not None
    title = legend.get_title().get_text().splitlines()
    s = fit.summary()
    assert title[:4] == [
        f"G0/G1 {fit.g0g1_pct:.1f}%",
        f"S {fit.s_pct:.1f}%",
        f"G2/M {fit.g2m_pct:.1f}%",
        f"CV {s['g1_cv_pct']:.1f}%  RCS {s['rcs']:.2f}",
    ]
    if fit.status == "ok":
        assert len(title) == 4
    else:
        assert title[4] == f"status: {fit.status}"
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["Data", "G0/G1", "G2/M", "S", "Debris", "Aggregates", "Sub-G1", "Model"]


def test_residual_panel_shows_pearson_residuals(fit: CellCycleFit) -> None:
    ax = fit.plot()
    fig = _draw(ax)
    rax = ax.residual_axes
    assert isinstance(rax, Axes)
    assert rax.figure is fig
    assert rax.get_shared_x_axes().joined(ax, rax)
    assert rax.get_position().y1 <= ax.get_position().y0 + 1e-9  # below the histogram
    assert rax.get_xlabel() == f"PI-A (channel, {BINS} bins)"
    assert ax.get_xlabel() == ""  # the label moved to the bottom panel
    lo, hi = fit.histogram.fit_range
    expected = fit.eval_components()["total"]
    pearson = (fit.histogram.counts - expected) / np.sqrt(np.maximum(expected, 1.0))
    (resid,) = [line for line in rax.lines if np.size(line.get_xdata()) > 2]  # not the zero line
    resid_x, resid_y = _xy(resid)
    np.testing.assert_array_equal(resid_x, fit.histogram.channel_centers[lo:hi])
    np.testing.assert_allclose(resid_y, pearson[lo:hi], rtol=1e-12, atol=1e-12)
    # a correct model leaves residuals of order 1
    assert np.abs(resid_y).mean() < 2.0


def test_options_remove_the_panel_and_the_legend_and_set_the_title(fit: CellCycleFit) -> None:
    fig, ax = plt.subplots()
    out = fit.plot(ax=ax, residuals=False, legend=False, title="vehicle, 24 h")
    assert not hasattr(out, "residual_axes")
    assert fig.axes == [out]
    assert out.get_legend() is None
    assert out.get_title() == "vehicle, 24 h"
    assert out.get_xlabel() == f"PI-A (channel, {BINS} bins)"


def test_default_title_is_the_file_name(fit: CellCycleFit) -> None:
    ax = fit.plot()
    assert ax.get_title() == "A01.fcs"


def test_axis_limits_cover_the_histogram(fit: CellCycleFit) -> None:
    ax = fit.plot()
    lo, hi = fit.histogram.fit_range
    assert ax.get_xlim() == (0.0, BINS)
    assert ax.get_ylim() == pytest.approx((0.0, 1.1 * fit.histogram.counts[lo:hi].max()))


def test_second_cycle_is_filled_without_duplicate_legend_entries(two_cycle_fit: CellCycleFit) -> None:
    ax = two_cycle_fit.plot()
    comps = two_cycle_fit.eval_components()
    x = two_cycle_fit.histogram.channel_centers
    polys = [c for c in ax.collections if isinstance(c, PolyCollection)]
    # drawn in this order: filled g1, g2, b_g1, b_g2; hatched s, b_s
    keys = ("g1", "g2", "b_g1", "b_g2", "s", "b_s")
    assert len(polys) == len(keys)
    for poly, key in zip(polys, keys, strict=True):
        np.testing.assert_allclose(_curve(poly, x), comps[key], rtol=1e-12, atol=1e-9, err_msg=key)
        second = key.startswith("b_")
        assert str(poly.get_label()).startswith("_") == second, key  # one legend entry per phase
        if key.endswith("s"):
            assert poly.get_hatch() == "////"
        else:
            alpha = _rgba(poly.get_facecolor())[0, 3]
            assert alpha == (0.55 if second else 0.75), key  # the second population is lighter
    legend = ax.get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) == len(set(labels))


def test_a_failed_fit_draws_the_data_and_says_so() -> None:
    counts = np.zeros(BINS)
    counts[40] = 10.0
    failed = fit_cell_cycle(counts)
    assert failed.status == "failed"
    ax = failed.plot()
    _draw(ax)
    assert [c for c in ax.collections if isinstance(c, PolyCollection)] == []
    assert list(ax.lines) == []
    assert not hasattr(ax, "residual_axes")
    legend = ax.get_legend()
    assert legend is not None
    assert legend.get_title().get_text().splitlines()[-1] == "status: failed"


def test_default_figure_keeps_the_residual_labels_inside(fit: CellCycleFit) -> None:
    ax = fit.plot()
    fig = _draw(ax)
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    box = ax.residual_axes.get_tightbbox(renderer)
    assert box.y0 >= fig.bbox.y0 - 0.5
