"""Annexin V / PI figures: the quadrant plot, the pre-gating steps, a summary of many samples.

Everything drawn here was decided by the analysis (:mod:`cytoflow_res.apoptosis`): the
events are the result's analysed cells, the lines its thresholds and gates, the numbers its
percentages. The only choices made here are the display ones: the template's display
transforms (logicle unless it says otherwise), where ticks go, and colours.

Events are plotted in transformed (display) coordinates, with ticks labelled in data units.
Values outside a transform's display range are clipped to the nearest edge rather than left
out, so every analysed event is in the picture, and values a transform cannot place (zero or
negative values on a log scale, NaN) sit at the bottom edge, on the side the quadrant counts
put them (below the threshold).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from cytoflow_res.gating.gates import EllipsoidGate, Gate, PolygonGate, RangeGate, RectangleGate
from cytoflow_res.transforms import default_logicle_for, make_transform

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.patches import Polygon

    from cytoflow_res.apoptosis import ApoptosisResult
    from cytoflow_res.gating.preprocess import PregateStep
    from cytoflow_res.sample import Sample
    from cytoflow_res.transforms import Transform

__all__ = [
    "DENSITY_CMAP",
    "QUADRANT_COLOURS",
    "QUADRANT_LABELS",
    "plot_apoptosis",
    "plot_gating_steps",
    "plot_quadrant_summary",
]

#: Quadrant name -> display name, in the order of the result columns.
QUADRANT_LABELS: dict[str, str] = {
    "viable": "Viable",
    "early_apoptotic": "Early apoptotic",
    "late_apoptotic": "Late apoptotic",
    "necrotic": "Necrotic",
}

#: Quadrant name -> colour (Okabe-Ito, colour-blind safe).
QUADRANT_COLOURS: dict[str, str] = {
    "viable": "#009E73",
    "early_apoptotic": "#E69F00",
    "late_apoptotic": "#D55E00",
    "necrotic": "#0072B2",
}

#: Default colour map of the density plots: blue (sparse) to red (dense), as in FlowJo. It is
#: turbo without its near-black ends, so that single events stay visible.
DENSITY_CMAP = "cytoflow_res.pseudocolor"

# (x in, y in) for each quadrant: where its percentage goes.
_CORNERS: dict[str, tuple[bool, bool]] = {
    "viable": (False, False),
    "early_apoptotic": (True, False),
    "late_apoptotic": (True, True),
    "necrotic": (False, True),
}
# Transform kinds (the ``kind`` of the transform objects) whose display range is [0, 1].
_UNIT_SCALES = frozenset({"logicle", "hyperlog", "flog", "fasinh"})
_LOG_LIKE = frozenset({"logicle", "hyperlog", "flog", "fasinh", "asinh"})
# Ticks closer than this (fraction of the axis) to a labelled decade are left unlabelled.
_MIN_LABEL_SEP = 0.07
# A decade narrower than this (fraction of the axis) gets no minor ticks.
_MIN_MINOR_DECADE = 0.12
_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_MM = 1 / 25.4
_REMOVED_GREY = "#B0B0B0"
_LINE = "#222222"
_TEXT_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.75}


# ============================================================================ display scales
@dataclass(frozen=True)
class _Scale:
    """A display transform and the part of its range shown on an axis."""

    transform: Transform
    kind: str
    lo: float
    hi: float

    def to_display(self, values: Any, *, clip: bool = True) -> np.ndarray:
        """Transformed values; those without one (NaN, <= 0 on log) at ``lo``; clipped if asked."""
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.asarray(self.transform.apply(np.asarray(values, dtype=float)), dtype=float)
        out = np.where(np.isnan(out), self.lo, out)
        return np.clip(out, self.lo, self.hi) if clip else out

    def data_limits(self) -> tuple[float, float]:
        """The data values at the two ends of the axis."""
        lo, hi = (float(v) for v in self.transform.inverse(np.array([self.lo, self.hi])))
        return lo, hi


def _scale(sample: Sample, spec: Mapping[str, Any] | None, channel: str, values: np.ndarray) -> _Scale:
    """The display scale of one channel: the template's transform, or a logicle fitted to it."""
    tf: Transform = make_transform(spec) if spec is not None else default_logicle_for(sample, channel)
    kind = str(getattr(tf, "kind", ""))
    if kind in _UNIT_SCALES:
        return _Scale(tf, kind, 0.0, 1.0)
    # flin / asinh have no bottom or top of their own: show the channel's range, from 0 (or,
    # on asinh, from the negative values that compensation spreads out).
    finite = values[np.isfinite(values)]
    top = sample.channel(channel).max_value
    if not (math.isfinite(top) and top > 0):
        top = float(finite.max()) if finite.size else 1.0
    bottom = 0.0
    if kind == "asinh" and finite.size:
        bottom = min(0.0, float(np.quantile(finite, 0.001)))
    lo, hi = (float(v) for v in tf.apply(np.array([bottom, top])))
    if not hi > lo:
        hi = lo + 1.0
    return _Scale(tf, kind, lo, hi)


def _role_scale(result: ApoptosisResult, role: str, values: np.ndarray) -> _Scale:
    return _scale(result.sample, result.template.transforms.get(role), result.channels[role], values)


def _decade_label(value: float) -> str:
    if value == 0:
        return "0"
    exponent = round(math.log10(abs(value)))
    return f"{'−' if value < 0 else ''}10{str(exponent).translate(_SUPERSCRIPTS)}"


def _decade_ticks(scale: _Scale) -> tuple[list[float], list[str], list[float]]:
    """Major ticks at 0 and +-10^k (labelled where they do not crowd), minor ticks between."""
    d_lo, d_hi = scale.data_limits()
    span = scale.hi - scale.lo
    e_top = math.floor(math.log10(max(abs(d_lo), abs(d_hi), 1e-300)) + 1e-9)
    e_bottom = math.ceil(math.log10(d_lo) - 1e-9) if d_lo > 0 else 0
    exponents = range(e_bottom, e_top + 1)
    # every value a tick could sit at, placed in one call of the transform
    grid = [0.0] + [sign * k * 10.0**e for e in range(e_bottom, e_top + 2) for k in range(1, 10)
                    for sign in (1.0, -1.0)]
    where = dict(zip(grid, scale.to_display(grid, clip=False).tolist(), strict=True))

    def inside(v: float) -> bool:
        return d_lo <= v <= d_hi and scale.lo - 1e-9 <= where[v] <= scale.hi + 1e-9

    # labelled first: 0, then decades from the largest magnitude down, each only if it keeps
    # its distance from those already labelled
    candidates = [0.0] if d_lo <= 0 <= d_hi else []
    for e in reversed(exponents):
        candidates += [10.0**e, -(10.0**e)]
    majors: list[float] = []
    minors: list[float] = []
    for v in candidates:
        if not inside(v):
            continue
        if all(abs(where[v] - where[m]) >= _MIN_LABEL_SEP * span for m in majors):
            majors.append(v)
        else:
            minors.append(v)
    for e in exponents:
        for sign in (1.0, -1.0):
            if abs(where[sign * 10.0 ** (e + 1)] - where[sign * 10.0**e]) < _MIN_MINOR_DECADE * span:
                continue
            minors += [sign * k * 10.0**e for k in range(2, 10) if inside(sign * k * 10.0**e)]
    majors.sort()
    return [where[v] for v in majors], [_decade_label(v) for v in majors], sorted(where[v] for v in minors)


def _linear_label(value: float, top: float) -> str:
    if top >= 10_000 and value != 0:
        return f"{value / 1000:g}K"
    return f"{value:g}"


def _linear_ticks(scale: _Scale) -> tuple[list[float], list[str], list[float]]:
    from matplotlib.ticker import MaxNLocator

    d_lo, d_hi = scale.data_limits()
    values = [float(v) for v in MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]).tick_values(d_lo, d_hi)]
    values = [v for v in values if d_lo - 1e-9 * abs(d_hi) <= v <= d_hi]
    step = values[1] - values[0] if len(values) > 1 else d_hi - d_lo
    minor_values = np.arange(values[0] - step, d_hi, step / 5.0) if values else np.array([])
    minor_values = minor_values[(minor_values >= d_lo) & (minor_values <= d_hi)]
    top = max(abs(d_lo), abs(d_hi))
    majors = [float(p) for p in scale.to_display(values, clip=False)]
    minors = [float(p) for p in scale.to_display(minor_values, clip=False)]
    return majors, [_linear_label(v, top) for v in values], minors


def _format_axis(ax: Axes, scale: _Scale, which: Literal["x", "y"]) -> None:
    majors, labels, minors = (_decade_ticks if scale.kind in _LOG_LIKE else _linear_ticks)(scale)
    if which == "x":
        ax.set_xlim(scale.lo, scale.hi)
        ax.set_xticks(majors, labels)
        ax.set_xticks(minors, minor=True)
    else:
        ax.set_ylim(scale.lo, scale.hi)
        ax.set_yticks(majors, labels)
        ax.set_yticks(minors, minor=True)
    ax.tick_params(axis=which, which="both", direction="out", labelsize=7)
    ax.tick_params(axis=which, which="minor", length=2)


# ============================================================================ drawing pieces
def _cmap(cmap: str | Colormap) -> Colormap:
    import matplotlib as mpl

    if not isinstance(cmap, str):
        return cmap
    if cmap == DENSITY_CMAP:
        from matplotlib.colors import LinearSegmentedColormap

        turbo = mpl.colormaps["turbo"]
        return LinearSegmentedColormap.from_list(DENSITY_CMAP, turbo(np.linspace(0.1, 0.92, 64)))
    return mpl.colormaps[cmap]


def _density(
    ax: Axes, x: np.ndarray, y: np.ndarray, xs: _Scale, ys: _Scale, *, bins: int, cmap: Colormap,
    gid: str,
) -> Any:
    """Pseudocolor 2-D histogram (log colour, empty bins transparent); returns the QuadMesh."""
    from matplotlib.colors import LogNorm

    counts, x_edges, y_edges = np.histogram2d(x, y, bins=bins, range=[[xs.lo, xs.hi], [ys.lo, ys.hi]])
    top = max(float(counts.max(initial=0.0)), 2.0)
    mesh = ax.pcolormesh(
        x_edges, y_edges, np.ma.masked_equal(counts.T, 0.0), cmap=cmap,
        norm=LogNorm(vmin=1.0, vmax=top), shading="flat", rasterized=True, zorder=1,
    )
    mesh.set_gid(gid)
    return mesh


def _densify(vertices: np.ndarray, n: int = 24) -> np.ndarray:
    """Points along each edge of a closed polygon (data units), so curved display edges follow."""
    ends = np.roll(vertices, -1, axis=0)
    t = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
    return np.concatenate([v0 + t * (v1 - v0) for v0, v1 in zip(vertices, ends, strict=True)])


def _gate_outline(
    gate: Gate | None, x_name: str, y_name: str, xs: _Scale, ys: _Scale
) -> np.ndarray | None:
    """Vertices (display coordinates) of a gate's outline on these axes, or None if not drawable."""
    if isinstance(gate, RangeGate):
        gate = RectangleGate((gate.dimension,), ((gate.min, gate.max),))
    if isinstance(gate, RectangleGate):
        # an open side is drawn just outside the axes, where clipping hides it
        def outside(scale: _Scale) -> tuple[float, float]:
            pad = 0.02 * (scale.hi - scale.lo)
            return scale.lo - pad, scale.hi + pad

        bounds = {"x": outside(xs), "y": outside(ys)}
        for dim, (lo, hi) in zip(gate.dimensions, gate.ranges, strict=True):
            axis = {x_name: "x", y_name: "y"}.get(dim) if isinstance(dim, str) else None
            if axis is None:
                return None
            scale = xs if axis == "x" else ys
            bounds[axis] = (
                bounds[axis][0] if lo is None else float(scale.to_display([lo], clip=False)[0]),
                bounds[axis][1] if hi is None else float(scale.to_display([hi], clip=False)[0]),
            )
        (x0, x1), (y0, y1) = bounds["x"], bounds["y"]
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    if not isinstance(gate, (PolygonGate, EllipsoidGate)) or len(gate.dimensions) != 2:
        return None
    dims = tuple(gate.dimensions)
    if dims == (x_name, y_name):
        order = [0, 1]
    elif dims == (y_name, x_name):
        order = [1, 0]
    else:
        return None
    if isinstance(gate, PolygonGate):
        data = np.asarray(gate.vertices, dtype=float)
        if xs.kind != "flin" or ys.kind != "flin":
            data = _densify(data)
    else:
        # boundary of (p - mean)' inv(C) (p - mean) = d2; Gating-ML allows a non-symmetric C,
        # whose quadratic form is that of the symmetric part of inv(C)
        inv = np.linalg.inv(np.asarray(gate.covariance, dtype=float))
        lam, vec = np.linalg.eigh(0.5 * (inv + inv.T))
        if not (lam > 0).all():
            return None
        angle = np.linspace(0.0, 2.0 * np.pi, 128, endpoint=False)
        circle = np.stack([np.cos(angle), np.sin(angle)])
        radii = np.sqrt(gate.distance_square / lam)[:, None]
        data = (np.asarray(gate.mean)[:, None] + vec @ (circle * radii)).T
    data = data[:, order]
    return np.column_stack([xs.to_display(data[:, 0], clip=False), ys.to_display(data[:, 1], clip=False)])


def _corner_text(ax: Axes, text: str, x_right: bool, y_top: bool, *, size: float, gid: str,
                 offset: float = 0.0, weight: str = "normal") -> None:
    ax.annotate(
        text, xy=(0.975 if x_right else 0.025, 0.975 if y_top else 0.025), xycoords="axes fraction",
        xytext=(0.0, -offset if y_top else offset), textcoords="offset points",
        ha="right" if x_right else "left", va="top" if y_top else "bottom", fontsize=size,
        fontweight=weight, color="black", bbox=_TEXT_BOX, zorder=5, gid=gid,
    )


def _new_axes(width_mm: float, height_mm: float) -> Axes:
    import matplotlib.pyplot as plt

    _fig, ax = plt.subplots(figsize=(width_mm * _MM, height_mm * _MM), layout="constrained")
    return ax


def _percent(value: float) -> str:
    return f"{value:.1f}%" if math.isfinite(value) else "n/a"


# ============================================================================ quadrant plot
def plot_apoptosis(
    result: ApoptosisResult,
    ax: Axes | None = None,
    *,
    bins: int = 256,
    cmap: str | Colormap = DENSITY_CMAP,
    show_percentages: bool = True,
    title: str | None = None,
) -> Axes:
    """Annexin V against PI as a FlowJo-style pseudocolor plot, with quadrants and percentages.

    The analysed cells (pre-gated singlets) are binned on the template's display transforms
    (a logicle fitted to the sample for a channel the template gives none), coloured by the
    log of the count; empty bins are left blank. Values beyond the display range are drawn
    at its edge, so the plot holds exactly the cells counted. Quadrant lines mark the
    thresholds; each quadrant's percentage is in its corner (viable bottom left, early
    apoptotic bottom right, late apoptotic top right, necrotic top left).

    Parameters
    ----------
    result
        An :class:`~cytoflow_res.apoptosis.ApoptosisResult`.
    ax
        Axes to draw in; a new figure is made when None.
    bins
        Bins per axis of the 2-D histogram.
    cmap
        Colour map of the density: a matplotlib name or object; the default is
        :data:`DENSITY_CMAP`, a FlowJo-like blue-to-red map.
    show_percentages
        Write the quadrant percentages and names in the corners.
    title
        Title; the sample's id by default (``""`` for none).

    Returns
    -------
    matplotlib.axes.Axes
        The axes; the density is the QuadMesh with gid ``"density"``, the quadrant lines
        have gids ``"threshold:annexin"`` and ``"threshold:pi"``, the percentages
        ``"pct:<quadrant>"``.
    """
    if ax is None:
        ax = _new_axes(80, 80)
    annexin, pi = result.annexin_values(), result.pi_values()
    xs = _role_scale(result, "annexin", annexin)
    ys = _role_scale(result, "pi", pi)
    _density(ax, xs.to_display(annexin), ys.to_display(pi), xs, ys, bins=bins, cmap=_cmap(cmap),
             gid="density")
    ax.axvline(float(xs.to_display([result.thresholds.annexin])[0]), color=_LINE, lw=0.8, zorder=3,
               gid="threshold:annexin")
    ax.axhline(float(ys.to_display([result.thresholds.pi])[0]), color=_LINE, lw=0.8, zorder=3,
               gid="threshold:pi")
    if show_percentages:
        pct = result.percentages
        for name, (right, top) in _CORNERS.items():
            _corner_text(ax, _percent(pct.get(name, math.nan)), right, top, size=8, weight="bold",
                         gid=f"pct:{name}")
            _corner_text(ax, QUADRANT_LABELS[name], right, top, size=6, offset=11.0,
                         gid=f"label:{name}")
    _format_axis(ax, xs, "x")
    _format_axis(ax, ys, "y")
    ax.set_xlabel(f"Annexin V ({result.channels['annexin']})", fontsize=8)
    ax.set_ylabel(f"PI ({result.channels['pi']})", fontsize=8)
    ax.set_title(result.sample_id if title is None else title, fontsize=9)
    ax.set_box_aspect(1)
    return ax


# ============================================================================ gating steps
@dataclass(frozen=True)
class _Panel:
    step: PregateStep
    x_role: str
    y_role: str


def _gating_panels(result: ApoptosisResult) -> list[_Panel]:
    """The pre-gate steps that can be shown: on, with both channels resolved."""
    specs = {"debris": result.template.pregates.debris, "singlets": result.template.pregates.singlets}
    panels = []
    for step in result.pregate.steps:
        spec = specs.get(step.name)
        if spec is None or step.method == "none" or not spec.active:
            continue
        if spec.x in result.channels and spec.y in result.channels:
            panels.append(_Panel(step, spec.x, spec.y))
    return panels


def _as_axes_list(axes: Any) -> list[Axes]:
    from matplotlib.axes import Axes as AxesType

    if isinstance(axes, AxesType):
        return [axes]
    return [a for a in np.asarray(axes, dtype=object).ravel()]


def plot_gating_steps(
    result: ApoptosisResult,
    axes: Axes | Sequence[Axes] | np.ndarray | None = None,
    *,
    bins: int = 256,
    cmap: str | Colormap = DENSITY_CMAP,
) -> list[Axes]:
    """The pre-gating of one sample: FSC/SSC with the debris gate, FSC-A/FSC-H with singlets.

    One panel per step that is on and whose channels the template resolved: the debris
    step on all events (the template's debris axes, e.g. FSC-A vs SSC-A, or FSC-H vs SSC-H
    on a FACSCalibur), then the singlet step on the cells (pulse area vs height). Each panel
    is a pseudocolor density with the gate's outline (range, rectangle, polygon or ellipse)
    and the number kept, with its percentage of the events shown. A gate that cannot be
    drawn on the panel's axes (none placed, another type, other channels), or a Gating-ML
    cell gate working alongside the debris gate, is shown instead by drawing the removed
    events in grey.

    Parameters
    ----------
    result
        An :class:`~cytoflow_res.apoptosis.ApoptosisResult`.
    axes
        One Axes per panel (a single Axes, a sequence or an array; extra ones are left
        untouched); a new figure with one row of panels is made when None.
    bins
        Bins per axis of each 2-D histogram.
    cmap
        Colour map of the density: a matplotlib name or object; the default is
        :data:`DENSITY_CMAP`, a FlowJo-like blue-to-red map.

    Returns
    -------
    list of matplotlib.axes.Axes
        The axes drawn in, one per panel (empty when every step is off). The gate outline is
        the Polygon patch with gid ``"gate:<step>"``, the count text has gid ``"count:<step>"``.

    Raises
    ------
    ValueError
        If fewer axes are given than there are panels.
    """
    panels = _gating_panels(result)
    if axes is None:
        if not panels:
            return []
        import matplotlib.pyplot as plt

        fig, grid = plt.subplots(1, len(panels), figsize=(70 * _MM * len(panels), 72 * _MM),
                                 layout="constrained", squeeze=False)
        fig.suptitle(result.sample_id, fontsize=9)
        ax_list = list(grid.ravel())
    else:
        ax_list = _as_axes_list(axes)
        if len(ax_list) < len(panels):
            names = ", ".join(p.step.name for p in panels)
            msg = (
                f"plot_gating_steps needs {len(panels)} axes for the panels of {result.sample_id} "
                f"({names}); got {len(ax_list)}"
            )
            raise ValueError(msg)
    pre = result.pregate
    gatingml_on = any(s.name == "gatingml" and s.method != "none" for s in pre.steps)
    drawn = []
    for panel, ax in zip(panels, ax_list, strict=False):
        step = panel.step
        x_name, y_name = result.channels[panel.x_role], result.channels[panel.y_role]
        shown = np.ones(pre.events_total, dtype=bool) if step.name == "debris" else pre.cells
        kept = pre.cells if step.name == "debris" else pre.singlets
        x_all = np.asarray(result.sample.column(x_name), dtype=float)[shown]
        y_all = np.asarray(result.sample.column(y_name), dtype=float)[shown]
        kept_shown = kept[shown]
        xs = _scale(result.sample, result.template.transforms.get(panel.x_role), x_name, x_all)
        ys = _scale(result.sample, result.template.transforms.get(panel.y_role), y_name, y_all)
        outline = _gate_outline(step.gate, x_name, y_name, xs, ys)
        x_d, y_d = xs.to_display(x_all), ys.to_display(y_all)
        colour = _cmap(cmap)
        if outline is None or (step.name == "debris" and gatingml_on):
            from matplotlib.colors import ListedColormap

            _density(ax, x_d[~kept_shown], y_d[~kept_shown], xs, ys, bins=bins,
                     cmap=ListedColormap([_REMOVED_GREY]), gid="removed")
            _density(ax, x_d[kept_shown], y_d[kept_shown], xs, ys, bins=bins, cmap=colour, gid="kept")
        else:
            _density(ax, x_d, y_d, xs, ys, bins=bins, cmap=colour, gid="density")
        if outline is not None:
            from matplotlib.patches import Polygon as PolygonPatch

            patch: Polygon = PolygonPatch(outline, closed=True, fill=False, edgecolor="black", lw=1.0,
                                          zorder=4, gid=f"gate:{step.name}")
            ax.add_patch(patch)
        n_kept, n_shown = int(kept_shown.sum()), int(shown.sum())
        share = 100.0 * n_kept / n_shown if n_shown else math.nan
        label = "cells" if step.name == "debris" else step.name
        _corner_text(ax, f"{label}: {n_kept:,} ({_percent(share)})", False, True, size=7,
                     gid=f"count:{step.name}")
        _format_axis(ax, xs, "x")
        _format_axis(ax, ys, "y")
        ax.set_xlabel(x_name, fontsize=8)
        ax.set_ylabel(y_name, fontsize=8)
        ax.set_title({"debris": "Cells (debris removed)", "singlets": "Singlets"}.get(step.name, step.name),
                     fontsize=8)
        ax.set_box_aspect(1)
        drawn.append(ax)
    return drawn


# ============================================================================ summary
def _text_colour(hex_colour: str) -> str:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(hex_colour)
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


def plot_quadrant_summary(
    frame: pd.DataFrame,
    ax: Axes | None = None,
    *,
    by: str | None = "sample_id",
    annotate: bool = True,
    legend: bool = True,
) -> Axes:
    """Stacked horizontal bars of the four quadrant percentages, one bar per row of a table.

    Parameters
    ----------
    frame
        A results table with the columns ``viable_pct``, ``early_apoptotic_pct``,
        ``late_apoptotic_pct`` and ``necrotic_pct`` (as from
        :meth:`ApoptosisResult.to_frame <cytoflow_res.apoptosis.ApoptosisResult.to_frame>` or
        an experiment's table). Rows are drawn top to bottom in the frame's order; a row
        with missing percentages is left blank.
    ax
        Axes to draw in; a new figure is made when None.
    by
        Column naming the bars (None: the frame's index).
    annotate
        Write each share of 8% or more inside its segment (rounded to a whole percent).
    legend
        Add a legend above the bars.

    Returns
    -------
    matplotlib.axes.Axes
        The axes; each quadrant's bars are the rectangles with gid ``"bar:<quadrant>"``
        (also ``ax.containers`` in quadrant order).

    Raises
    ------
    KeyError
        If a percentage column or ``by`` is missing; the message lists the columns there are.
    """
    columns = [f"{name}_pct" for name in QUADRANT_LABELS]
    needed = [*columns, *([by] if by is not None else [])]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        msg = (
            f"the frame has no column {', '.join(map(repr, missing))}; its columns are "
            f"{', '.join(map(str, frame.columns))} (use ApoptosisResult.to_frame() or an experiment table)"
        )
        raise KeyError(msg)
    values = frame[columns].to_numpy(dtype=float)
    names = (frame[by] if by is not None else frame.index.to_series()).astype(str).tolist()
    n = len(names)
    if ax is None:
        ax = _new_axes(120, 22 + 6 * max(n, 1))
    rows = np.arange(n)
    left = np.zeros(n)
    for j, (name, label) in enumerate(QUADRANT_LABELS.items()):
        width = values[:, j]
        bars = ax.barh(rows, width, left=left, height=0.72, color=QUADRANT_COLOURS[name], label=label,
                       edgecolor="white", linewidth=0.5, zorder=2)
        for patch in bars:
            patch.set_gid(f"bar:{name}")
        if annotate:
            for i in np.flatnonzero(np.isfinite(width) & (width >= 8.0)):
                ax.text(left[i] + width[i] / 2, rows[i], f"{width[i]:.0f}", ha="center", va="center",
                        fontsize=6, color=_text_colour(QUADRANT_COLOURS[name]), zorder=3)
        left = left + width
    ax.set_yticks(rows, names)
    ax.set_ylim(n - 0.5, -0.5)  # first row on top
    ax.set_xlim(0, 100)
    ax.set_xlabel("Cells (%)", fontsize=8)
    ax.tick_params(labelsize=7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if legend:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=4, frameon=False, fontsize=7,
                  handlelength=1.0, columnspacing=1.0)
    return ax
