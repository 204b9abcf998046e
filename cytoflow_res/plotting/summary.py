"""Experiment summary figures: one measure per arm with significance, stacked quadrants and phases.

Each function draws a tidy per-sample table (one row per sample, as from an experiment) with
the arms (``treatment``) of each cell line side by side on one axis and the cell line named
above its group, in the look of a paper figure:

* :func:`plot_measure_bars`: the mean of one measure per arm as a bar, the replicates as
  dots, mean +- SEM (or SD) as error bars, and significance brackets copied from comparison
  tables of :mod:`cytoflow_res.stats`;
* :func:`plot_stacked_quadrants`: mean viable / early / late apoptotic / necrotic shares;
* :func:`plot_stacked_phases`: mean G0/G1, S, G2/M shares (and sub-G1 if asked).

Nothing here decides anything scientific. Means, SD and SEM are computed for display from the
per-sample rows; p-values and their marks are read from the comparison tables given. The rows
used are those :mod:`cytoflow_res.stats` uses: role ``"sample"`` (or no role), status not
``"error"``/``"failed"``, value finite.

Arms are drawn vehicle first, then single agents, then combinations (labels containing
``"+"``), each in order of first appearance (:func:`arm_order`); colours come from
:func:`cytoflow_res.plotting.style.arm_colours` (the same arm has the same colour in every
figure), quadrant and phase colours are those of the single-sample figures.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from cytoflow_res.errors import DesignError
from cytoflow_res.plotting.apoptosis import QUADRANT_COLOURS, QUADRANT_LABELS
from cytoflow_res.plotting.cellcycle import COLOURS as _CC_COLOURS
from cytoflow_res.plotting.cellcycle import LABELS as _CC_LABELS
from cytoflow_res.plotting.style import arm_colours, figure, publication_style
from cytoflow_res.stats import COMPARISON_COLUMNS, TREATMENT, _prepare

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "PHASE_COLOURS",
    "PHASE_LABELS",
    "arm_order",
    "arm_summary",
    "measure_label",
    "plot_measure_bars",
    "plot_stacked_phases",
    "plot_stacked_quadrants",
]

log = logging.getLogger(__name__)


#: Cell-cycle column -> colour (those of :func:`~cytoflow_res.plotting.plot_cell_cycle_fit`).
PHASE_COLOURS: dict[str, str] = {
    "sub_g1_pct": _CC_COLOURS["sub_g1"],
    "g0g1_pct": _CC_COLOURS["g1"],
    "s_pct": _CC_COLOURS["s"],
    "g2m_pct": _CC_COLOURS["g2"],
}
#: Cell-cycle column -> legend label.
PHASE_LABELS: dict[str, str] = {
    "sub_g1_pct": _CC_LABELS["sub_g1"],
    "g0g1_pct": _CC_LABELS["g1"],
    "s_pct": _CC_LABELS["s"],
    "g2m_pct": _CC_LABELS["g2"],
}
_COMPARISON_COLUMNS = frozenset(COMPARISON_COLUMNS) | {"p_raw"}
_QUADRANT_COLUMNS = {f"{name}_pct": name for name in QUADRANT_LABELS}
_MEASURE_NAMES = {"g0g1": "G0/G1", "s": "S phase", "g2m": "G2/M", "sub_g1": "Sub-G1"}

# Layout, in bar slots (one slot per arm) and points.
_BAR_WIDTH = 0.72
_GROUP_GAP = 0.8            # extra space between cell lines, in slots
_EDGE = 0.6                 # space left and right of the outer bars, in slots
_TIP_PT = 2.5               # length of a bracket's downward tips
# bracket spacing in units of the font size (em), so that larger text gets more room
_GAP_EM = 0.57              # between what a bracket spans and the bracket
_MARK_EM = 1.0              # taken by a bracket's mark above its line
_TOP_EM = 0.3               # above the highest bracket
_MAX_SPAN = 3.0             # brackets take at most 2/3 of the y range
_NS_BASELINE_EM = 0.17      # baseline of "ns" above the line
_ASTERISK_BASELINE_EM = -0.17
_GROUP_LINE_PT = 4.0        # the line under a cell line's name, above the axes
_LINE = "#222222"


# ============================================================================ public helpers
def arm_order(
    labels: Sequence[Any], *, vehicle: str = "vehicle", order: Sequence[str] | None = None,
) -> list[str]:
    """Display order of treatment arms: vehicle, single agents, combinations.

    Parameters
    ----------
    labels
        Treatment labels as they appear in a table (repeats are fine).
    vehicle
        Label of the vehicle arm, drawn first.
    order
        An explicit order instead; arms left out of it are not drawn.

    Returns
    -------
    list of str
        The arms. Without ``order``: the vehicle (if present), then labels without ``"+"``,
        then labels with ``"+"``, each kept in order of first appearance.

    Raises
    ------
    DesignError
        ``order`` names an arm that is not among ``labels``, names one twice, or is empty.

    Examples
    --------
    >>> arm_order(["drugA+drugB", "drugA", "vehicle", "drugB", "drugA"])
    ['vehicle', 'drugA', 'drugB', 'drugA+drugB']
    """
    seen = list(dict.fromkeys(str(label) for label in labels))
    if order is not None:
        wanted = [str(arm) for arm in order]
        unknown = [arm for arm in wanted if arm not in seen]
        twice = sorted({arm for arm in wanted if wanted.count(arm) > 1})
        if unknown or twice or not wanted:
            problem = (f"arm(s) {', '.join(map(repr, unknown))} not in the table" if unknown
                       else f"arm(s) {', '.join(map(repr, twice))} given twice" if twice
                       else "no arm given")
            msg = f"order: {problem}; the arms are {', '.join(map(repr, seen))}"
            raise DesignError(msg)
        return wanted
    first = [arm for arm in seen if arm == vehicle]
    singles = [arm for arm in seen if arm != vehicle and "+" not in arm]
    combinations = [arm for arm in seen if arm != vehicle and "+" in arm]
    return first + singles + combinations


def measure_label(measure: str) -> str:
    """Axis label of a measure column: ``"total_apoptotic_pct"`` -> ``"Total apoptotic (%)"``.

    Parameters
    ----------
    measure
        Column name; a ``_pct`` suffix becomes ``(%)``.

    Returns
    -------
    str
        The label (cell-cycle phases get their usual names: G0/G1, S phase, G2/M, Sub-G1).

    Examples
    --------
    >>> measure_label("g2m_pct")
    'G2/M (%)'
    """
    stem = measure.removesuffix("_pct")
    name = _MEASURE_NAMES.get(stem)
    if name is None:
        words = stem.replace("_", " ").strip()
        name = words[:1].upper() + words[1:]
    return f"{name} (%)" if measure.endswith("_pct") else name


def arm_summary(
    table: pd.DataFrame,
    measure: str,
    *,
    by: str | None = "cell_line",
    order: Sequence[str] | None = None,
    vehicle: str = "vehicle",
    role: str | None = "sample",
) -> pd.DataFrame:
    """What :func:`plot_measure_bars` draws: n, mean, SD and SEM per cell line and arm.

    Use it for figure legends (n per arm) or to check a figure against the numbers.

    Parameters
    ----------
    table
        Tidy per-sample table with ``treatment``, ``by`` and ``measure`` columns.
    measure
        Column to summarise.
    by
        Column of the groups drawn side by side (cell lines); None: one group.
    order, vehicle
        Arm order, as in :func:`arm_order`.
    role
        If the table has a ``role`` column, only rows with this role (or no role) are used;
        None: all rows.

    Returns
    -------
    pandas.DataFrame
        One row per group x arm in drawing order: the ``by`` column, ``treatment``, ``n``
        (values used), ``mean``, ``sd`` (ddof=1) and ``sem`` (NaN when they need more values).

    Raises
    ------
    DesignError
        A column is missing or not numeric, or ``order`` names an unknown arm.
    """
    data = _Data.prepare(table, [measure], by=by, order=order, vehicle=vehicle, role=role,
                         what="arm_summary")
    rows = []
    for group in data.groups:
        for arm in data.arms:
            x = data.values(group, arm, measure)
            n = int(x.size)
            sd = float(x.std(ddof=1)) if n > 1 else math.nan
            rows.append({
                **({by: group} if by is not None else {}), TREATMENT: arm, "n": n,
                "mean": float(x.mean()) if n else math.nan, "sd": sd,
                "sem": sd / math.sqrt(n) if n > 1 else math.nan,
            })
    columns = [*([by] if by is not None else []), TREATMENT, "n", "mean", "sd", "sem"]
    return pd.DataFrame(rows, columns=columns)


# ============================================================================ table handling
@dataclass
class _Data:
    """The usable rows of a table, with the groups and arms to draw."""

    usable: pd.DataFrame
    by: str | None
    groups: list[Any]
    arms: list[str]
    vehicle: str

    @classmethod
    def prepare(
        cls, table: pd.DataFrame, columns: Sequence[str], *, by: str | None,
        order: Sequence[str] | None, vehicle: str, role: str | None, what: str,
    ) -> _Data:
        # the same checks and row selection as the statistics the figures show
        rows, failed = _prepare(table, [*([by] if by is not None else []), TREATMENT], columns,
                                role=role, what=what)
        if rows.empty:
            what_rows = f"rows of role {role!r}" if role is not None and "role" in table.columns else "rows"
            msg = f"{what}: the table has no {what_rows} to draw ({len(table)} rows in all)"
            raise DesignError(msg)
        # groups and arms come from every row of the role, so an arm whose samples all
        # failed keeps its (empty) place instead of shifting the others
        groups = list(pd.unique(rows[by])) if by is not None else [None]
        arms = arm_order(rows[TREATMENT].astype(str).tolist(), vehicle=vehicle, order=order)
        keep = np.isfinite(rows[list(columns)].to_numpy(dtype=float)).all(axis=1) & ~failed
        return cls(rows[keep], by, groups, arms, vehicle)

    def rows(self, group: Any, arm: str) -> pd.DataFrame:
        sel = self.usable[TREATMENT].astype(str) == arm
        if self.by is not None:
            sel &= self.usable[self.by] == group
        return self.usable[sel.to_numpy()]

    def values(self, group: Any, arm: str, column: str) -> np.ndarray:
        return self.rows(group, arm)[column].to_numpy(dtype=float)


def _comparison_marks(
    comparisons: pd.DataFrame | Sequence[pd.DataFrame], measure: str, data: _Data, *, show_ns: bool,
) -> dict[Any, list[tuple[str, str, str]]]:
    """Marks to draw per group: (arm, arm, mark), first occurrence of each pair only."""
    frames = [comparisons] if isinstance(comparisons, pd.DataFrame) else list(comparisons)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    needed = ["group1", "group2", "mark", *([data.by] if data.by is not None else [])]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        msg = (
            f"plot_measure_bars: the comparisons have no column {', '.join(map(repr, missing))}; "
            f"their columns are {', '.join(map(str, frame.columns))} (use a table from "
            "stats.compare_to_vehicle, combination_vs_singles or pairwise_tukey, computed with "
            "the same by=)"
        )
        raise DesignError(msg)
    if "measure" in frame.columns and len(frame):
        measures = list(dict.fromkeys(frame["measure"].astype(str)))
        frame = frame[frame["measure"].astype(str) == measure]
        if frame.empty:
            msg = (
                f"plot_measure_bars: the comparisons are of {', '.join(map(repr, measures))}, "
                f"not of the measure drawn, {measure!r}"
            )
            raise DesignError(msg)
    if data.by is None:
        # comparisons made per cell line cannot be drawn on one group: whose mark is it?
        split = [c for c in frame.columns if c in data.usable.columns and c != TREATMENT
                 and c not in _COMPARISON_COLUMNS and frame[c].nunique(dropna=False) > 1]
        if split:
            msg = (
                f"plot_measure_bars: the comparisons are per {split[0]!r} "
                f"({frame[split[0]].nunique(dropna=False)} values) but the figure has one group; "
                f"pass by={split[0]!r} or filter the comparisons"
            )
            raise DesignError(msg)
    marks: dict[Any, list[tuple[str, str, str]]] = {group: [] for group in data.groups}
    seen: set[tuple[str, frozenset[str]]] = set()
    by_text = {str(group): group for group in data.groups}
    for fields in frame.to_dict("records"):
        group = by_text.get(str(fields[data.by])) if data.by is not None else None
        if data.by is not None and group is None:
            continue  # a cell line not drawn
        a, b = str(fields["group1"]), str(fields["group2"])
        mark = fields["mark"]
        mark = "" if mark is None or (isinstance(mark, float) and math.isnan(mark)) else str(mark).strip()
        if a not in data.arms or b not in data.arms or a == b:
            continue
        key = (str(group), frozenset((a, b)))
        if key in seen:
            log.info("plot_measure_bars: %s vs %s given twice; the first mark is drawn", a, b)
            continue
        seen.add(key)
        if set(mark) == {"*"} or (show_ns and mark == "ns"):
            marks[group].append((a, b, mark))
    return marks


# ============================================================================ drawing pieces
def _positions(data: _Data) -> dict[tuple[Any, str], float]:
    step = len(data.arms) + _GROUP_GAP
    return {(group, arm): g * step + i for g, group in enumerate(data.groups)
            for i, arm in enumerate(data.arms)}


def _gid(*parts: Any) -> str:
    return ":".join(str(p) for p in parts if p is not None)


def _new_axes(data: _Data, *, extra_width_mm: float = 0.0, height_mm: float = 60.0) -> Axes:
    n_slots = len(data.groups) * len(data.arms) + (len(data.groups) - 1) * _GROUP_GAP
    width = min(max(25.0 + 7.5 * n_slots, 50.0), 180.0) + extra_width_mm
    return figure(width, height_mm).add_subplot()


def _root(ax: Axes) -> Figure:
    from matplotlib.figure import Figure

    fig: Any = ax.figure
    while not isinstance(fig, Figure):  # a SubFigure: its ``figure`` is the root
        fig = fig.figure
    return fig


def _x_axis(ax: Axes, data: _Data, pos: dict[tuple[Any, str], float], *, labels: dict[Any, str]) -> None:
    """Arm names under the bars (turned 45 degrees if they would touch), cell lines above."""
    from matplotlib.transforms import blended_transform_factory, offset_copy

    xs = [pos[g, a] for g in data.groups for a in data.arms]
    ax.set_xticks(xs, [labels[g, a] for g in data.groups for a in data.arms])
    ax.set_xlim(min(xs) - _EDGE, max(xs) + _EDGE)
    ax.tick_params(axis="x", length=0)
    ax.spines["bottom"].set_bounds(min(xs) - _EDGE, max(xs) + _EDGE)
    fig = _root(ax)
    fig.draw_without_rendering()
    boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()]
    if any(b1.x1 + 2 > b2.x0 for b1, b2 in itertools.pairwise(boxes)):
        for text in ax.get_xticklabels():
            text.set_rotation(45)
            text.set_horizontalalignment("right")
            text.set_rotation_mode("anchor")
    if data.by is None:
        return
    blend = blended_transform_factory(ax.transData, ax.transAxes)
    for group in data.groups:
        left, right = pos[group, data.arms[0]], pos[group, data.arms[-1]]
        ax.plot([left - _BAR_WIDTH / 2, right + _BAR_WIDTH / 2], [1.0, 1.0], color=_LINE, lw=0.6,
                transform=offset_copy(blend, fig=fig, y=_GROUP_LINE_PT, units="points"), clip_on=False,
                solid_capstyle="butt", gid=_gid("group_line", group))
        ax.annotate(str(group), xy=((left + right) / 2, 1.0), xycoords=blend,
                    xytext=(0, _GROUP_LINE_PT + 1.5), textcoords="offset points", ha="center",
                    va="bottom", annotation_clip=False, gid=_gid("group", group))


def _height_pt(ax: Axes) -> float:
    fig = _root(ax)
    fig.draw_without_rendering()
    return float(ax.get_window_extent().height) * 72.0 / fig.dpi


def _y_ticks(ax: Axes, lo: float, data_top: float, top: float, *, scale_pt: float) -> None:
    """Ticks over the data only; the axis line stops at the last tick (brackets sit above).

    ``scale_pt`` is the height of the data part of the axis in points: a short one gets
    fewer ticks, so that their labels do not run into each other.
    """
    from matplotlib.ticker import MaxNLocator

    nbins = 5 if scale_pt >= 60 else max(1, int(scale_pt / (1.8 * _font_size())))
    ticks = np.asarray(MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, data_top))
    ticks = ticks[(ticks >= lo - 1e-9 * abs(top - lo)) & (ticks <= top)]
    ax.set_ylim(lo, top)
    ax.set_yticks(ticks)
    if ticks.size:
        end = float(ticks.max())
        ax.spines["left"].set_bounds(lo, end)
        # the label belongs to the scale, not to the brackets above it
        ax.yaxis.label.set_y((0.5 * (lo + end) - lo) / (top - lo))


# ============================================================================ bars of one measure
def plot_measure_bars(
    table: pd.DataFrame,
    measure: str,
    *,
    comparisons: pd.DataFrame | Sequence[pd.DataFrame] | None = None,
    by: str | None = "cell_line",
    error: Literal["sem", "sd"] = "sem",
    order: Sequence[str] | None = None,
    vehicle: str = "vehicle",
    colours: Mapping[str, str] | None = None,
    show_ns: bool = False,
    show_points: bool = True,
    show_n: bool = False,
    ylabel: str | None = None,
    role: str | None = "sample",
    ax: Axes | None = None,
) -> Axes:
    """Bars of the mean of one measure per arm and cell line, replicates, error bars, brackets.

    Cell lines are drawn side by side on one axis, named above their arms. Each bar is the
    mean of the usable replicates of an arm, with their values as dots (spread evenly
    across the bar in table order, no randomness) and mean +- SEM (or SD) as an error bar.
    Brackets with the marks of ``comparisons`` join the arms compared; they are stacked so
    that none crosses another or the data.

    Parameters
    ----------
    table
        Tidy per-sample table: ``treatment``, ``by`` and ``measure`` columns (optionally
        ``role`` and ``status``).
    measure
        Column to draw, e.g. ``"total_apoptotic_pct"``.
    comparisons
        One comparison table or several (e.g. ``[stats.compare_to_vehicle(table, m),
        stats.combination_vs_singles(table, m)]``), computed with the same ``by``. A bracket
        is drawn for each row of this measure and a drawn cell line whose two arms are drawn,
        marked with its ``mark``; marks ``"ns"`` only if ``show_ns``, ``"n/a"`` never. A pair
        given twice is drawn once, with the first mark.
    by
        Column of the groups drawn side by side (cell lines); None: one group.
    error
        Error bar: ``"sem"`` (standard error of the mean) or ``"sd"`` (standard deviation).
    order
        Arms to draw, in this order (others are left out); default :func:`arm_order`.
    vehicle
        Label of the vehicle arm (drawn first, in grey).
    colours
        Colours of some arms instead of :func:`~cytoflow_res.plotting.style.arm_colours`.
    show_ns
        Also draw brackets marked ``"ns"``.
    show_points
        Draw the replicate values as dots.
    show_n
        Add the number of replicates used to each arm's label (``"drugA (n=3)"``).
    ylabel
        Y-axis label; default :func:`measure_label` of the measure.
    role
        If the table has a ``role`` column, only rows with this role (or no role) are used;
        None: all rows.
    ax
        Axes to draw in; when None, a figure of about 90 x 60 mm (for two cell lines of four
        arms) is made in :func:`~cytoflow_res.plotting.style.publication_style`.

    Returns
    -------
    matplotlib.axes.Axes
        The axes. Artists carry gids: bars ``"bar:<cell line>:<arm>"`` (also
        ``ax.containers[0]``), dots ``"points:<cell line>:<arm>"``, error bars ``"error"``,
        bracket lines ``"bracket:<cell line>:<arm 1>:<arm 2>"`` and their marks
        ``"mark:..."`` (without ``<cell line>:`` when ``by`` is None). An arm without usable
        values keeps its place and label but gets no bar.

    Raises
    ------
    DesignError
        A column is missing or not numeric, ``order`` names an unknown arm, or the
        comparisons lack a column or are of another measure.
    ValueError
        ``error`` is not ``"sem"`` or ``"sd"``.

    See Also
    --------
    arm_summary : the numbers drawn.
    """
    if error not in ("sem", "sd"):
        msg = f"plot_measure_bars: error must be 'sem' or 'sd', got {error!r}"
        raise ValueError(msg)
    data = _Data.prepare(table, [measure], by=by, order=order, vehicle=vehicle, role=role,
                         what="plot_measure_bars")
    marks = (_comparison_marks(comparisons, measure, data, show_ns=show_ns) if comparisons is not None
             else {group: [] for group in data.groups})
    if ax is None:
        with publication_style():
            ax = _new_axes(data)
            _draw_measure_bars(ax, data, measure, marks, error=error, colours=colours,
                               show_points=show_points, show_n=show_n, ylabel=ylabel)
        return ax
    _draw_measure_bars(ax, data, measure, marks, error=error, colours=colours, show_points=show_points,
                       show_n=show_n, ylabel=ylabel)
    return ax


def _draw_measure_bars(
    ax: Axes, data: _Data, measure: str, marks: dict[Any, list[tuple[str, str, str]]], *,
    error: str, colours: Mapping[str, str] | None, show_points: bool, show_n: bool, ylabel: str | None,
) -> None:
    import matplotlib as mpl

    pos = _positions(data)
    colour = arm_colours(data.arms, vehicle=data.vehicle, colours=colours)
    xs: list[float] = []
    means: list[float] = []
    errs: list[float] = []
    fills: list[str] = []
    gids: list[str] = []
    tops: dict[tuple[Any, str], float] = {}
    labels: dict[Any, str] = {}
    lows: list[float] = [0.0]
    for group in data.groups:
        for arm in data.arms:
            x = data.values(group, arm, measure)
            labels[group, arm] = f"{arm} (n={x.size})" if show_n else arm
            if x.size == 0:
                continue
            mean = float(x.mean())
            sd = float(x.std(ddof=1)) if x.size > 1 else math.nan
            err = sd if error == "sd" else sd / math.sqrt(x.size)
            xs.append(pos[group, arm])
            means.append(mean)
            errs.append(err)
            fills.append(colour[arm])
            gids.append(_gid("bar", group, arm))
            half = err if math.isfinite(err) else 0.0
            tops[group, arm] = max(mean + half, float(x.max()) if show_points else mean)
            lows.append(min(mean - half, float(x.min()) if show_points else mean))
            if show_points:
                spread = min(0.2, 0.06 * (x.size - 1))
                offsets = np.linspace(-spread, spread, x.size) if x.size > 1 else np.zeros(1)
                ax.scatter(pos[group, arm] + offsets, x, s=9.0, facecolor="white", edgecolor="black",
                           linewidths=0.5, zorder=4, clip_on=False, gid=_gid("points", group, arm))
    bars = ax.bar(xs, means, width=_BAR_WIDTH, color=fills, edgecolor=_LINE, linewidth=0.5, zorder=2,
                  label=measure)
    for patch, gid in zip(bars, gids, strict=True):
        patch.set_gid(gid)
    finite = [k for k, e in enumerate(errs) if math.isfinite(e)]
    if finite:
        container = ax.errorbar([xs[k] for k in finite], [means[k] for k in finite],
                                yerr=[errs[k] for k in finite], fmt="none", ecolor=_LINE, elinewidth=0.6,
                                capsize=mpl.rcParams["errorbar.capsize"], capthick=0.6, zorder=3)
        for artist in container.get_children():
            artist.set_gid("error")
    ax.set_ylabel(ylabel if ylabel is not None else measure_label(measure))
    _x_axis(ax, data, pos, labels=labels)

    lo = min(lows)
    lo = lo * 1.05 if lo < 0 else 0.0
    data_top = max([*tops.values(), lo + 1e-9])
    if data_top <= lo:
        data_top = lo + 1.0
    brackets = _Brackets.collect(data, marks, tops, lo)
    height = _height_pt(ax)
    top = brackets.fit(data_top, lo, axes_height_pt=height, em=_font_size())
    for group, a, b, mark, y in brackets.placed:
        _bracket(ax, pos[group, a], pos[group, b], y, mark, brackets.per_pt, em=_font_size(),
                 gid=_gid(group if data.by is not None else None, a, b))
    _y_ticks(ax, lo, data_top, top, scale_pt=height * (data_top - lo) / (top - lo))


@dataclass
class _Brackets:
    """Significance brackets of each group, stacked over the bars.

    Gaps and marks have fixed sizes in points (in units of the font size, ``em``), so their
    height in data units depends on the y range, which they extend: :meth:`fit` iterates to
    the range that holds them.
    """

    # group -> ([(arm 1, arm 2, mark, i, j)], top of the data over each arm)
    items: dict[Any, tuple[list[tuple[str, str, str, int, int]], np.ndarray]]
    placed: list[tuple[Any, str, str, str, float]]
    per_pt: float = 0.0

    @classmethod
    def collect(
        cls, data: _Data, marks: dict[Any, list[tuple[str, str, str]]],
        tops: dict[tuple[Any, str], float], lo: float,
    ) -> _Brackets:
        items = {}
        for group in data.groups:
            pairs = []
            for a, b, mark in marks.get(group, []):
                if (group, a) in tops and (group, b) in tops:  # both arms have a bar
                    i, j = sorted((data.arms.index(a), data.arms.index(b)))
                    pairs.append((a, b, mark, i, j))
            if pairs:
                items[group] = (pairs, np.array([tops.get((group, arm), lo) for arm in data.arms]))
        return cls(items, [])

    def _place(self, per_em: float) -> float:
        """Place every bracket for this size of an em in data units; return the top reached.

        Narrow brackets go first, each just above whatever it spans (bars and the brackets
        placed already), so brackets that do not overlap share a level and none crosses
        another's mark.
        """
        self.placed = []
        reached = -math.inf
        for group, (pairs, tops) in self.items.items():
            ceiling = tops.astype(float)
            for a, b, mark, i, j in sorted(pairs, key=lambda p: (p[4] - p[3], p[3])):
                y = float(ceiling[i:j + 1].max()) + _GAP_EM * per_em
                ceiling[i:j + 1] = y + _MARK_EM * per_em
                self.placed.append((group, a, b, mark, y))
            reached = max(reached, float(ceiling.max()))
        return reached

    def fit(self, data_top: float, lo: float, *, axes_height_pt: float, em: float) -> float:
        """The top of the y range that holds the data and the brackets; places the brackets.

        Brackets may take up to two thirds of the axes; on axes too short for that they are
        squeezed (their marks may then touch) and a warning is logged.
        """
        height = max(axes_height_pt, 1.0)
        data_span = data_top - lo
        cap = _MAX_SPAN * data_span
        span = data_span
        for _ in range(200):
            self.per_pt = span / height
            reached = max(data_top, self._place(self.per_pt * em))
            new_span = reached + _TOP_EM * em * self.per_pt - lo
            if new_span > cap:
                break
            if abs(new_span - span) <= 1e-9 * new_span:
                self._place(self.per_pt * em)
                return lo + new_span
            span = new_span
        else:  # pragma: no cover - the iteration converges geometrically when it fits
            self._place(self.per_pt * em)
            return lo + span
        n = sum(len(pairs) for pairs, _ in self.items.values())
        log.warning("plot_measure_bars: the axes (%.0f pt high) are too short for %d brackets; they are "
                    "squeezed: make the figure taller", height, n)
        self.per_pt = cap / height
        # the largest em (spacing) with which everything fits under the cap: bisection
        small, large = 0.0, em
        for _ in range(50):
            mid = 0.5 * (small + large)
            reached = max(data_top, self._place(self.per_pt * mid)) + _TOP_EM * mid * self.per_pt
            small, large = (mid, large) if reached <= lo + cap else (small, mid)
        self._place(self.per_pt * small)
        return lo + cap


def _bracket(ax: Axes, x1: float, x2: float, y: float, mark: str, per_pt: float, *, em: float,
             gid: str) -> None:
    left, right = sorted((x1, x2))
    tip = _TIP_PT * per_pt
    ax.plot([left, left, right, right], [y - tip, y, y, y - tip], color=_LINE, lw=0.6,
            solid_joinstyle="miter", clip_on=False, zorder=5, gid=f"bracket:{gid}")
    # asterisks sit high in their em box, so their baseline goes below the line
    baseline = (_NS_BASELINE_EM if mark == "ns" else _ASTERISK_BASELINE_EM) * em
    ax.annotate(mark, xy=((left + right) / 2, y), xytext=(0.0, baseline), textcoords="offset points",
                ha="center", va="baseline", annotation_clip=False, zorder=5, gid=f"mark:{gid}")


# ============================================================================ stacked bars
def plot_stacked_quadrants(
    table: pd.DataFrame,
    *,
    by: str | None = "cell_line",
    order: Sequence[str] | None = None,
    vehicle: str = "vehicle",
    annotate: bool = False,
    legend: bool = True,
    role: str | None = "sample",
    ax: Axes | None = None,
) -> Axes:
    """Stacked bars of the mean viable, early apoptotic, late apoptotic and necrotic shares.

    One bar per arm and cell line (viable at the bottom, necrotic on top), in the quadrant
    colours of :func:`~cytoflow_res.plotting.plot_apoptosis`. A sample is used only if all
    four shares are finite, so each bar is the mean of the same samples and sums to 100%.

    Parameters
    ----------
    table
        Tidy per-sample table with ``treatment``, ``by``, ``viable_pct``,
        ``early_apoptotic_pct``, ``late_apoptotic_pct`` and ``necrotic_pct``.
    by
        Column of the groups drawn side by side (cell lines); None: one group.
    order, vehicle
        Arms to draw and their order, as in :func:`arm_order`.
    annotate
        Write each mean share of 8% or more inside its segment (whole percent).
    legend
        Add a legend right of the axes (top to bottom in the order of the stack).
    role
        If the table has a ``role`` column, only rows with this role (or no role) are used.
    ax
        Axes to draw in; when None, a figure is made in the publication style.

    Returns
    -------
    matplotlib.axes.Axes
        The axes; ``ax.containers`` holds one bar container per quadrant (bottom first),
        whose rectangles have gids ``"segment:<quadrant>:<cell line>:<arm>"``.

    Raises
    ------
    DesignError
        A column is missing or not numeric, or ``order`` names an unknown arm.
    """
    columns = list(_QUADRANT_COLUMNS)
    data = _Data.prepare(table, columns, by=by, order=order, vehicle=vehicle, role=role,
                         what="plot_stacked_quadrants")
    parts = {c: data.usable[c].to_numpy(dtype=float) for c in columns}
    segments = [(c, QUADRANT_LABELS[_QUADRANT_COLUMNS[c]], QUADRANT_COLOURS[_QUADRANT_COLUMNS[c]],
                 _QUADRANT_COLUMNS[c]) for c in columns]
    return _stacked(ax, data, parts, segments, annotate=annotate, legend=legend)


def plot_stacked_phases(
    table: pd.DataFrame,
    *,
    by: str | None = "cell_line",
    order: Sequence[str] | None = None,
    vehicle: str = "vehicle",
    sub_g1: bool = False,
    annotate: bool = False,
    legend: bool = True,
    role: str | None = "sample",
    ax: Axes | None = None,
) -> Axes:
    """Stacked bars of the mean G0/G1, S and G2/M shares (and sub-G1 if asked) per arm.

    Colours are those of :func:`~cytoflow_res.plotting.plot_cell_cycle_fit`. A sample is used
    only if all the shares drawn are finite, so each bar is the mean of the same samples.

    Parameters
    ----------
    table
        Tidy per-sample table with ``treatment``, ``by``, ``g0g1_pct``, ``s_pct`` and
        ``g2m_pct`` (and ``sub_g1_pct`` for ``sub_g1=True``).
    by
        Column of the groups drawn side by side (cell lines); None: one group.
    order, vehicle
        Arms to draw and their order, as in :func:`arm_order`.
    sub_g1
        Add sub-G1 as the bottom segment. The phases are shares of the cycling cells
        (summing to 100) while sub-G1 is a share of sub-G1 plus cycling cells, so each
        sample's phases are scaled by (100 - sub-G1) / 100: the bar then shows sub-G1 and the
        cycling cells as shares of the same 100% (debris and aggregates are not drawn).
    annotate
        Write each mean share of 8% or more inside its segment (whole percent).
    legend
        Add a legend right of the axes (top to bottom in the order of the stack).
    role
        If the table has a ``role`` column, only rows with this role (or no role) are used.
    ax
        Axes to draw in; when None, a figure is made in the publication style.

    Returns
    -------
    matplotlib.axes.Axes
        The axes; ``ax.containers`` holds one bar container per phase (bottom first), whose
        rectangles have gids ``"segment:<phase>:<cell line>:<arm>"`` (phase ``sub_g1``,
        ``g0g1``, ``s``, ``g2m``).

    Raises
    ------
    DesignError
        A column is missing or not numeric, or ``order`` names an unknown arm.
    """
    columns = ["g0g1_pct", "s_pct", "g2m_pct"]
    if sub_g1:
        columns.insert(0, "sub_g1_pct")
    data = _Data.prepare(table, columns, by=by, order=order, vehicle=vehicle, role=role,
                         what="plot_stacked_phases")
    parts = {c: data.usable[c].to_numpy(dtype=float) for c in columns}
    if sub_g1:
        cycling = (100.0 - parts["sub_g1_pct"]) / 100.0
        for c in ("g0g1_pct", "s_pct", "g2m_pct"):
            parts[c] = parts[c] * cycling
    segments = [(c, PHASE_LABELS[c], PHASE_COLOURS[c], c.removesuffix("_pct")) for c in columns]
    return _stacked(ax, data, parts, segments, annotate=annotate, legend=legend)


def _stacked(
    ax: Axes | None, data: _Data, parts: dict[str, np.ndarray],
    segments: Sequence[tuple[str, str, str, str]], *, annotate: bool, legend: bool,
) -> Axes:
    if ax is None:
        with publication_style():
            ax = _new_axes(data, extra_width_mm=24.0 if legend else 0.0)
            _draw_stacked(ax, data, parts, segments, annotate=annotate, legend=legend)
        return ax
    _draw_stacked(ax, data, parts, segments, annotate=annotate, legend=legend)
    return ax


def _draw_stacked(
    ax: Axes, data: _Data, parts: dict[str, np.ndarray], segments: Sequence[tuple[str, str, str, str]],
    *, annotate: bool, legend: bool,
) -> None:
    from matplotlib.colors import to_rgb

    pos = _positions(data)
    arm_of = data.usable[TREATMENT].astype(str).to_numpy()
    group_of = data.usable[data.by].to_numpy() if data.by is not None else None
    cells = [(g, a) for g in data.groups for a in data.arms]
    means = {}
    for g, a in cells:
        sel = arm_of == a
        if group_of is not None:
            sel &= group_of == g
        if sel.any():
            means[g, a] = {c: float(parts[c][sel].mean()) for c, *_ in segments}
    drawn = [cell for cell in cells if cell in means]
    xs = [pos[cell] for cell in drawn]
    bottom = np.zeros(len(drawn))
    for column, label, colour, key in segments:
        heights = np.array([means[cell][column] for cell in drawn])
        bars = ax.bar(xs, heights, bottom=bottom, width=_BAR_WIDTH, color=colour, edgecolor="white",
                      linewidth=0.4, label=label, zorder=2)
        for patch, (g, a) in zip(bars, drawn, strict=True):
            patch.set_gid(_gid("segment", key, g if data.by is not None else None, a))
        if annotate:
            r, gr, b = to_rgb(colour)
            ink = "black" if 0.299 * r + 0.587 * gr + 0.114 * b > 0.55 else "white"
            for x, h, y0 in zip(xs, heights, bottom, strict=True):
                if h >= 8.0:
                    ax.text(x, y0 + h / 2, f"{h:.0f}", ha="center", va="center", color=ink,
                            fontsize=0.8 * _font_size(), zorder=3)
        bottom = bottom + heights
    ax.set_ylabel("Cells (%)")
    _x_axis(ax, data, pos, labels={cell: cell[1] for cell in cells})
    ax.set_ylim(0, 100)
    ax.set_yticks([0, 25, 50, 75, 100])
    if legend:
        handles, names = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], names[::-1], loc="center left", bbox_to_anchor=(1.02, 0.5),
                  borderaxespad=0.0)


def _font_size() -> float:
    import matplotlib as mpl
    from matplotlib.font_manager import FontProperties

    return float(FontProperties(size=mpl.rcParams["font.size"]).get_size_in_points())
