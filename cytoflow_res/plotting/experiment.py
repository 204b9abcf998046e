"""Figures of a whole experiment, drawn from an :class:`~cytoflow_res.experiment.ExperimentResult`.

Each builder draws what the run decided and nothing more; the only choices made here are
display ones (which replicate represents an arm, how a histogram is normalised for an
overlay, panel sizes):

* :func:`quadrant_grid`: Annexin V / PI pseudocolor plots of one cell line, arms in rows and
  replicates in columns, with each sample's quadrant lines (the thresholds of its group,
  shared by every sample of the group) and percentages in the corners;
* :func:`dna_overlay`: the DNA histograms of the arms of one cell line on one axis;
* :func:`dna_fit_panels`: one fitted DNA histogram with its components per arm
  (:func:`~cytoflow_res.plotting.plot_cell_cycle_fit`);
* :func:`plot_dose_response` and :func:`plot_fa_ci`: median-effect curves and the Fa-CI
  plot of a Chou-Talalay (dose-series) synergy table;
* :func:`figure_specs`: the standard set of figures of a run, as lazy builders
  (:func:`cytoflow_res.report.write_figures` saves them, :func:`cytoflow_res.report.write_report`
  embeds them).

Per-sample objects are not kept in the result: :func:`apoptosis_result` gates a sample again
(deterministically, with its group's thresholds and compensation) and :func:`cellcycle_fit`
returns a sample's fit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

from cytoflow_res.errors import CytoflowResError, DesignError
from cytoflow_res.plotting.apoptosis import plot_apoptosis
from cytoflow_res.plotting.cellcycle import plot_cell_cycle_fit
from cytoflow_res.plotting.style import arm_colours, figure, publication_style
from cytoflow_res.plotting.summary import (
    arm_order,
    arm_summary,
    measure_label,
    plot_measure_bars,
    plot_stacked_phases,
    plot_stacked_quadrants,
)
from cytoflow_res.stats import FAILED_STATUSES

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

    from cytoflow_res.apoptosis import ApoptosisResult
    from cytoflow_res.experiment import ExperimentResult

__all__ = [
    "BAR_FAMILIES",
    "FigureSpec",
    "apoptosis_result",
    "cellcycle_fit",
    "display_arms",
    "dna_fit_panels",
    "dna_overlay",
    "figure_specs",
    "plot_dose_response",
    "plot_fa_ci",
    "quadrant_grid",
    "representative_rows",
]

log = logging.getLogger(__name__)

#: Comparison families drawn as brackets on the bar figures (``comparison`` of
#: :meth:`ExperimentResult.comparisons <cytoflow_res.experiment.ExperimentResult.comparisons>`).
BAR_FAMILIES = ("vs vehicle", "combination vs single agents")

_PHASES = ("g0g1_pct", "s_pct", "g2m_pct", "sub_g1_pct")
_LINE = "#222222"
_MUTED = "#666666"
# (x right, y top) of each quadrant's corner
_CORNERS = {"viable": (False, False), "early_apoptotic": (True, False),
            "late_apoptotic": (True, True), "necrotic": (False, True)}
_PCT_BOX = {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}
# a DNA histogram is shown up to this share of its events (then a margin), not to the last bin
_DNA_SHOWN = 0.998


# ============================================================================ per-sample access
def _design_rows(result: ExperimentResult, assay: str) -> pd.DataFrame:
    table = result.design.table
    return table[(table["assay"] == assay) & (table["role"] == "sample")]


def apoptosis_result(result: ExperimentResult, file: str) -> ApoptosisResult:
    """Gate one apoptosis sample of a run again, exactly as the run did.

    The run keeps tables, not events; this reads the file and applies its group's
    :class:`~cytoflow_res.apoptosis.ApoptosisGating` (the same thresholds and compensation), so
    the result is the one behind the sample's row.

    Parameters
    ----------
    result
        The run.
    file
        The sample's ``file`` as written in the design sheet.

    Returns
    -------
    ApoptosisResult

    Raises
    ------
    DesignError
        ``file`` is not an apoptosis sample of the design.
    CytoflowResError
        The group has no gating (its controls failed; the message says why), or the file
        cannot be read or gated.
    """
    from cytoflow_res.io.fcs import read_fcs

    rows = _design_rows(result, "apoptosis")
    match = rows[rows["file"].astype(str) == str(file)]
    if match.empty:
        known = ", ".join(map(str, rows["file"].head(5))) + (", ..." if len(rows) > 5 else "")
        msg = f"{file!r} is not an apoptosis sample of {result.design.sheet.name}; its samples are {known}"
        raise DesignError(msg)
    row = match.iloc[0]
    gating = result.gatings.get(str(row["group"]))
    if gating is None or isinstance(gating, str):
        reason = gating or f"group {row['group']!r} has no gating"
        msg = f"{file}: not gated: {reason}"
        raise CytoflowResError(msg)
    dataset = int(result.settings.get("dataset") or 0)
    return gating.analyze(read_fcs(Path(str(row["path"])), dataset=dataset), file=str(file))


def cellcycle_fit(result: ExperimentResult, file: str) -> Any:
    """The cell-cycle fit of one sample of a run (None if the sample could not be fitted).

    Parameters
    ----------
    result
        The run.
    file
        The sample's ``file`` as written in the design sheet.

    Returns
    -------
    CellCycleFit, WatsonFit or None
        Draw it with :func:`~cytoflow_res.plotting.plot_cell_cycle_fit`.

    Raises
    ------
    DesignError
        ``file`` is not a cell-cycle sample of the run.
    """
    files = result.cellcycle["file"].astype(str).tolist() if not result.cellcycle.empty else []
    if str(file) not in files:
        known = ", ".join(files[:5]) + (", ..." if len(files) > 5 else "")
        msg = f"{file!r} is not a cell-cycle sample of {result.design.sheet.name}; its samples are {known}"
        raise DesignError(msg)
    return result.cellcycle_fits[files.index(str(file))]


def display_arms(table: pd.DataFrame) -> pd.DataFrame:
    """The table with each dose level of a dose-series arm as an arm of its own, for figures.

    In a dose-series design one ``treatment`` label (``drugA``) covers several doses; a bar or
    a row of plots per label would pool them. Where a label has more than one set of doses,
    its ``treatment`` becomes ``"<label> (<drug> <dose>, ...)"``; other rows are unchanged.

    Parameters
    ----------
    table
        A per-sample table with ``treatment`` and, for dose series, ``dose*`` columns (with
        the matching ``drug*`` columns naming the drugs).

    Returns
    -------
    pandas.DataFrame
        A copy with the display labels (the same table when nothing needs relabelling).
    """
    doses = [c for c in table.columns if str(c).startswith("dose")]
    if not doses or "treatment" not in table.columns or table.empty:
        return table
    values = table[doses].apply(pd.to_numeric, errors="coerce").fillna(0.0)
    keys = [tuple(row) for row in values.itertuples(index=False, name=None)]
    labels = table["treatment"].astype(str).tolist()
    sets: dict[str, set[tuple[float, ...]]] = {}
    for label, key in zip(labels, keys, strict=True):
        sets.setdefault(label, set()).add(key)
    if all(len(v) <= 1 for v in sets.values()):
        return table
    out = []
    for i, (label, key) in enumerate(zip(labels, keys, strict=True)):
        if len(sets[label]) <= 1:
            out.append(label)
            continue
        parts = []
        for column, dose in zip(doses, key, strict=True):
            if dose > 0:
                drug_column = "drug" + str(column)[len("dose"):]
                drug = table[drug_column].iloc[i] if drug_column in table.columns else column
                parts.append(f"{drug} {dose:g}")
        out.append(f"{label} ({', '.join(parts)})" if parts else label)
    return table.assign(treatment=out)


def _line_rows(result: ExperimentResult, assay: str, cell_line: str, what: str) -> pd.DataFrame:
    frame = display_arms(result.apoptosis if assay == "apoptosis" else result.cellcycle)
    if frame.empty or "cell_line" not in frame.columns:
        msg = f"{what}: the run has no {assay} samples"
        raise DesignError(msg)
    lines = list(dict.fromkeys(frame["cell_line"].astype(str)))
    rows = frame[frame["cell_line"].astype(str) == str(cell_line)]
    if rows.empty:
        msg = f"{what}: no {assay} samples of cell line {cell_line!r}; the cell lines are {', '.join(lines)}"
        raise DesignError(msg)
    return rows


def _replicate_key(value: Any) -> tuple[int, float, str]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return (1, math.inf, str(value))
    return (0, number, "") if math.isfinite(number) else (1, math.inf, str(value))


def _by_arm(rows: pd.DataFrame, arms: Sequence[str] | None) -> dict[str, pd.DataFrame]:
    order = arm_order(rows["treatment"].astype(str).tolist(), order=arms)
    out = {}
    for arm in order:
        sub = rows[rows["treatment"].astype(str) == arm]
        if "replicate" in sub.columns:
            keys = [_replicate_key(v) for v in sub["replicate"]]
            sub = sub.iloc[sorted(range(len(sub)), key=lambda i: keys[i])]
        out[arm] = sub
    return out


def _replicate_label(row: pd.Series) -> str:
    value = row.get("replicate")
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return str(row.get("sample_id") or row.get("file"))
    return f"rep {value}"


def _usable(row: pd.Series) -> bool:
    return str(row.get("status", "")).strip().lower() not in FAILED_STATUSES


def representative_rows(
    result: ExperimentResult, cell_line: str, *, arms: Sequence[str] | None = None,
) -> dict[str, pd.Series]:
    """The replicate shown for each arm where one stands for all: the most typical one.

    Per arm, among the usable fitted replicates, the one whose G0/G1, S, G2/M and sub-G1
    percentages are nearest (Euclidean distance) to the arm's means; ties go to the first in
    replicate order. A display choice only: the statistics use every replicate.

    Parameters
    ----------
    result
        The run.
    cell_line
        Cell line.
    arms
        Arms and their order (default: vehicle, single agents, combinations).

    Returns
    -------
    dict
        Arm -> its row of :attr:`~cytoflow_res.experiment.ExperimentResult.cellcycle`
        (arms without a usable replicate are left out).

    Raises
    ------
    DesignError
        The run has no cell-cycle sample of the cell line.
    """
    rows = _line_rows(result, "cellcycle", cell_line, "representative_rows")
    out: dict[str, pd.Series] = {}
    for arm, sub in _by_arm(rows, arms).items():
        usable = sub[[_usable(r) and _fit_at(result, r) is not None for _, r in sub.iterrows()]]
        if usable.empty:
            continue
        cols = [c for c in _PHASES if c in usable.columns]
        values = usable[cols].to_numpy(dtype=float)
        values = np.where(np.isfinite(values), values, np.nan)
        centre = np.nanmean(values, axis=0) if np.isfinite(values).any() else np.zeros(len(cols))
        distance = np.sqrt(np.nansum((values - centre) ** 2, axis=1))
        out[arm] = usable.iloc[int(np.argmin(distance))]
    return out


def _fit_at(result: ExperimentResult, row: pd.Series) -> Any:
    try:
        return cellcycle_fit(result, str(row["file"]))
    except DesignError:
        return None


# ============================================================================ quadrant grid
def _not_drawn(ax: Axes, text: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color("#BBBBBB")
    short = text if len(text) <= 90 else text[:87] + "..."
    ax.text(0.5, 0.5, "not analysed\n" + _wrap(short, 28), transform=ax.transAxes, ha="center",
            va="center", fontsize=5.5, color="#B2182B", wrap=True)
    ax.set_box_aspect(1)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _corner_percentages(ax: Axes, percentages: dict[str, float], *, size: float) -> None:
    for name, (right, top) in _CORNERS.items():
        value = percentages.get(name, math.nan)
        text = f"{value:.1f}" if math.isfinite(value) else "n/a"
        ax.annotate(text, xy=(0.97 if right else 0.03, 0.97 if top else 0.03), xycoords="axes fraction",
                    ha="right" if right else "left", va="top" if top else "bottom", fontsize=size,
                    fontweight="bold", bbox=_PCT_BOX, zorder=5, gid=f"pct:{name}")


def quadrant_grid(
    result: ExperimentResult,
    cell_line: str,
    *,
    arms: Sequence[str] | None = None,
    bins: int = 128,
    panel_mm: float = 36.0,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """Annexin V / PI pseudocolor plots of one cell line: arms in rows, replicates in columns.

    Every panel is :func:`~cytoflow_res.plotting.plot_apoptosis` of one sample, gated again
    with its group's settings (:func:`apoptosis_result`): the quadrant lines are its group's
    thresholds, the same for every sample of the group, and the numbers in the corners are
    the quadrant percentages of the run's table (viable bottom left, early apoptotic bottom
    right, late apoptotic top right, necrotic top left). A sample that could not be analysed
    gets an empty panel saying why. Samples are gated one at a time, so memory stays that of
    one sample.

    Parameters
    ----------
    result
        The run.
    cell_line
        Cell line to draw.
    arms
        Arms (rows) and their order; default vehicle, single agents, combinations.
    bins
        Bins per axis of each density.
    panel_mm
        Size of one panel in millimetres.
    fig
        Figure (or SubFigure) to draw in; a new one is made in the publication style when None.

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure; ``fig.axes`` holds the panels row by row.

    Raises
    ------
    DesignError
        No apoptosis sample of the cell line, or ``arms`` names an unknown arm.
    """
    rows = _line_rows(result, "apoptosis", cell_line, "quadrant_grid")
    cells = _by_arm(rows, arms)
    n_rows = len(cells)
    n_cols = max(len(sub) for sub in cells.values())
    headers = _column_headers(cells, n_cols)
    with publication_style(size=6.0):
        if fig is None:
            width, height = _GridLayout.size(n_rows, n_cols, panel_mm, titled=headers is None)
            # fixed positions: a layout engine would redo the work of every panel on each save
            fig = figure(width, height, layout="none")
        layout = _GridLayout.fit(fig, n_rows, n_cols, panel_mm, titled=headers is None)
        grid = [[fig.add_axes(layout.rect(i, j)) for j in range(n_cols)] for i in range(n_rows)]
        channels: dict[str, str] = {}
        for i, (arm, sub) in enumerate(cells.items()):
            for j in range(n_cols):
                ax = grid[i][j]
                if j >= len(sub):
                    ax.set_axis_off()
                    continue
                row = sub.iloc[j]
                if not _usable(row):
                    _not_drawn(ax, str(row.get("message") or row.get("status")))
                else:
                    try:
                        res = apoptosis_result(result, str(row["file"]))
                    except CytoflowResError as exc:
                        _not_drawn(ax, str(exc))
                    else:
                        plot_apoptosis(res, ax=ax, bins=bins, show_percentages=False, title="")
                        _corner_percentages(ax, res.percentages, size=5.5)
                        channels.setdefault("annexin", res.channels["annexin"])
                        channels.setdefault("pi", res.channels["pi"])
                        ax.set_xlabel("")
                        ax.set_ylabel("")
                        ax.tick_params(labelsize=5.5)
                        _drop_negative_labels(ax)
                        bottom = i == n_rows - 1 or j >= len(list(cells.values())[i + 1])
                        if not bottom:
                            ax.tick_params(labelbottom=False)
                        if j > 0:
                            ax.tick_params(labelleft=False)
                if headers is None:
                    ax.set_title(_replicate_label(row), fontsize=6, pad=2)
                elif i == 0:
                    ax.set_title(headers[j], fontsize=6.5, pad=3)
                if j == 0:
                    ax.set_ylabel(arm, fontsize=7, fontweight="bold", labelpad=2)
        layout.labels(fig, f"Annexin V ({channels['annexin']})" if "annexin" in channels else "Annexin V",
                      f"PI ({channels['pi']})" if "pi" in channels else "PI", str(cell_line))
    return fig


@dataclass(frozen=True)
class _GridLayout:
    """Positions of a grid of square panels, worked out in millimetres from the top left."""

    width: float
    height: float
    panel: float
    n_cols: int
    gap_y: float

    LEFT: ClassVar[float] = 17.0  # figure label, arm names, tick labels
    RIGHT: ClassVar[float] = 2.0
    TOP: ClassVar[float] = 11.0  # title and column headers
    BOTTOM: ClassVar[float] = 11.0  # tick labels and the x label
    GAP: ClassVar[float] = 2.5
    TITLED_GAP: ClassVar[float] = 6.0  # room for a title over every panel

    @classmethod
    def size(cls, n_rows: int, n_cols: int, panel: float, *, titled: bool) -> tuple[float, float]:
        """Figure size (mm) for panels of ``panel`` mm, narrowed to 180 mm at most."""
        panel = min(panel, (180.0 - cls.LEFT - cls.RIGHT - (n_cols - 1) * cls.GAP) / n_cols)
        gap_y = cls.TITLED_GAP if titled else cls.GAP
        return (cls.LEFT + n_cols * panel + (n_cols - 1) * cls.GAP + cls.RIGHT,
                cls.TOP + n_rows * panel + (n_rows - 1) * gap_y + cls.BOTTOM)

    @classmethod
    def fit(cls, fig: Any, n_rows: int, n_cols: int, panel: float, *, titled: bool) -> _GridLayout:
        """The layout of the grid in ``fig``, panels as large as asked or as fit."""
        width = float(fig.bbox.width) / float(fig.dpi) * 25.4
        height = float(fig.bbox.height) / float(fig.dpi) * 25.4
        gap_y = cls.TITLED_GAP if titled else cls.GAP
        fits_x = (width - cls.LEFT - cls.RIGHT - (n_cols - 1) * cls.GAP) / n_cols
        fits_y = (height - cls.TOP - cls.BOTTOM - (n_rows - 1) * gap_y) / n_rows
        return cls(width, height, max(min(panel, fits_x, fits_y), 5.0), n_cols, gap_y)

    def rect(self, i: int, j: int) -> tuple[float, float, float, float]:
        """``(left, bottom, width, height)`` of panel (i, j) in figure fractions."""
        left = self.LEFT + j * (self.panel + self.GAP)
        top = self.TOP + i * (self.panel + self.gap_y)
        return (left / self.width, 1.0 - (top + self.panel) / self.height,
                self.panel / self.width, self.panel / self.height)

    def labels(self, fig: Any, xlabel: str, ylabel: str, title: str) -> None:
        """The axis labels shared by all panels, and the title."""
        centre_x = (self.LEFT + (self.n_cols * (self.panel + self.GAP) - self.GAP) / 2) / self.width
        fig.text(centre_x, 1.5 / self.height, xlabel, ha="center", va="bottom", fontsize=7)
        fig.text(1.5 / self.width, 0.5 * (1 - (self.TOP - self.BOTTOM) / self.height), ylabel,
                 rotation=90, ha="left", va="center", fontsize=7)
        fig.text(centre_x, 1.0 - 1.0 / self.height, title, ha="center", va="top", fontsize=8)


def _drop_negative_labels(ax: Axes) -> None:
    """Leave the ticks below zero unlabelled: on small panels they run into the label of 0."""
    for axis in (ax.xaxis, ax.yaxis):
        ticks = axis.get_majorticklocs()
        labels = [t.get_text() for t in axis.get_majorticklabels()]
        if len(labels) == len(ticks):
            axis.set_ticks(ticks, ["" if text.startswith(("\u2212", "-")) else text for text in labels])


def _column_headers(cells: dict[str, pd.DataFrame], n_cols: int) -> list[str] | None:
    """``rep k`` over each column when every arm has replicate k there, else None."""
    headers: list[str] = []
    for j in range(n_cols):
        labels = {_replicate_label(sub.iloc[j]) for sub in cells.values() if j < len(sub)}
        if len(labels) != 1:
            return None
        headers.append(labels.pop())
    return headers


# ============================================================================ DNA histograms
def _histogram(fit: Any) -> Any:
    return getattr(fit, "histogram", None)


def _shown_channels(hists: Sequence[Any]) -> float:
    """Right end of the x axis: where the histograms' events run out, plus a margin."""
    ends = []
    for hist in hists:
        counts = np.asarray(hist.counts, dtype=float)
        total = counts.sum()
        if total <= 0:
            ends.append(hist.n_bins)
            continue
        last = int(np.searchsorted(np.cumsum(counts) / total, _DNA_SHOWN)) + 1
        ends.append(max(last, hist.fit_range[1]))
    return float(min(max(max(ends) * 1.1, 10.0), max(h.n_bins for h in hists)))


def _rebinned(hist: Any, factor: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.asarray(hist.counts, dtype=float)
    n = counts.size // factor * factor
    merged = counts[:n].reshape(-1, factor).sum(axis=1)
    edges = np.arange(merged.size + 1, dtype=float) * factor
    return merged, edges


def dna_overlay(
    result: ExperimentResult,
    cell_line: str,
    *,
    arms: Sequence[str] | None = None,
    replicates: Literal["representative", "all"] = "representative",
    normalise: Literal["area", "mode"] = "area",
    max_bins: int = 256,
    ax: Axes | None = None,
) -> Axes:
    """DNA histograms of the arms of one cell line, overlaid.

    The vehicle is a grey filled histogram, the other arms outlines in their arm colours
    (:func:`~cytoflow_res.plotting.style.arm_colours`). Histograms are those the fits used
    (after doublet discrimination), merged into at most ``max_bins`` bins for display.

    Parameters
    ----------
    result
        The run.
    cell_line
        Cell line to draw.
    arms
        Arms and their order; default vehicle, single agents, combinations.
    replicates
        ``"representative"``: one replicate per arm (:func:`representative_rows`, named in
        the legend); ``"all"``: every usable replicate, thinner.
    normalise
        ``"area"``: each histogram as percent of its events per channel, so that arms with
        different cell numbers compare and a shift from G1 to G2/M shows as such;
        ``"mode"``: each scaled to its highest bin (FlowJo's "% of max").
    max_bins
        Bins shown at most (neighbouring channels are summed).
    ax
        Axes to draw in; a new figure (90 x 60 mm, publication style) is made when None.

    Returns
    -------
    matplotlib.axes.Axes
        The axes; each histogram's outline is a step patch with gid ``"dna:<arm>:<file>"``.

    Raises
    ------
    DesignError
        No fitted cell-cycle sample of the cell line, or ``arms`` names an unknown arm.
    ValueError
        ``replicates`` or ``normalise`` is not one of the values above.
    """
    if replicates not in ("representative", "all"):
        msg = f"dna_overlay: replicates must be 'representative' or 'all', got {replicates!r}"
        raise ValueError(msg)
    if normalise not in ("area", "mode"):
        msg = f"dna_overlay: normalise must be 'area' or 'mode', got {normalise!r}"
        raise ValueError(msg)
    rows = _line_rows(result, "cellcycle", cell_line, "dna_overlay")
    if replicates == "representative":
        chosen = {arm: [row] for arm, row in representative_rows(result, cell_line, arms=arms).items()}
    else:
        chosen = {}
        for arm, sub in _by_arm(rows, arms).items():
            keep = [r for _, r in sub.iterrows() if _usable(r) and _fit_at(result, r) is not None]
            if keep:
                chosen[arm] = keep
    drawn = [(arm, row, _histogram(_fit_at(result, row))) for arm, rs in chosen.items() for row in rs]
    drawn = [(arm, row, hist) for arm, row, hist in drawn if hist is not None]
    if not drawn:
        msg = f"dna_overlay: cell line {cell_line!r} has no fitted cell-cycle sample"
        raise DesignError(msg)
    return _draw_in(ax, (90, 60), lambda a: _draw_overlay(
        a, drawn, replicates=replicates, normalise=normalise, max_bins=max_bins, title=str(cell_line)))


def _draw_in(ax: Axes | None, size_mm: tuple[float, float], draw: Callable[[Axes], None]) -> Axes:
    """Draw on ``ax``, or on a new figure of ``size_mm`` drawn in the publication style."""
    if ax is None:
        with publication_style():
            ax = figure(*size_mm).add_subplot()
            draw(ax)
        return ax
    draw(ax)
    return ax


def _draw_overlay(ax: Axes, drawn: list[tuple[str, pd.Series, Any]], *, replicates: str, normalise: str,
                  max_bins: int, title: str) -> None:
    arms = list(dict.fromkeys(arm for arm, _, _ in drawn))
    colours = arm_colours(arms)
    n_bins = {hist.n_bins for _, _, hist in drawn}
    channels = {hist.channel for _, _, hist in drawn}
    if len(n_bins) > 1 or len(channels) > 1:
        log.warning("dna_overlay: the histograms differ in channel or bins (%s; %s); they are drawn on "
                    "their own channel scales", ", ".join(sorted(channels)),
                    ", ".join(map(str, sorted(n_bins))))
    labelled: set[str] = set()
    for arm, row, hist in drawn:
        factor = max(1, math.ceil(hist.n_bins / max(int(max_bins), 1)))
        counts, edges = _rebinned(hist, factor)
        if normalise == "area":
            total = float(np.asarray(hist.counts, dtype=float).sum())
            values = 100.0 * counts / factor / total if total > 0 else counts
        else:
            top = float(counts.max(initial=0.0))
            values = 100.0 * counts / top if top > 0 else counts
        label = None
        if arm not in labelled:
            label = f"{arm} ({_replicate_label(row)})" if replicates == "representative" else arm
            labelled.add(arm)
        gid = f"dna:{arm}:{row['file']}"
        if arm == "vehicle":
            ax.stairs(values, edges, fill=True, color=colours[arm], alpha=0.6, lw=0, zorder=1)
            ax.stairs(values, edges, color="#888888", lw=0.6, label=label, zorder=2, gid=gid)
        else:
            lw = 0.9 if replicates == "representative" else 0.6
            ax.stairs(values, edges, color=colours[arm], lw=lw, label=label, zorder=3, gid=gid)
    hists = [hist for _, _, hist in drawn]
    ax.set_xlim(0, _shown_channels(hists))
    ax.set_ylim(0, None)
    channel = hists[0].channel
    ax.set_xlabel(f"{channel} (channel of {hists[0].n_bins})")
    ax.set_ylabel("Cells (% per channel)" if normalise == "area" else "% of max")
    ax.set_title(title)
    ax.legend(loc="upper right", frameon=False)


def dna_fit_panels(
    result: ExperimentResult,
    cell_line: str,
    *,
    arms: Sequence[str] | None = None,
    panel_mm: float = 45.0,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """One fitted DNA histogram per arm (the representative replicate), with its components.

    Each panel is :func:`~cytoflow_res.plotting.plot_cell_cycle_fit` of the replicate chosen
    by :func:`representative_rows`, with the phase percentages of that fit and, where the
    fit is not ``ok``, its status. For another replicate, draw
    ``plot_cell_cycle_fit(cellcycle_fit(result, file))``.

    Parameters
    ----------
    result
        The run.
    cell_line
        Cell line to draw.
    arms
        Arms and their order; default vehicle, single agents, combinations.
    panel_mm
        Width of one panel in millimetres.
    fig
        Figure (or SubFigure) to draw in; a new one is made in the publication style when None.

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure; ``fig.axes`` holds one histogram axes per arm.

    Raises
    ------
    DesignError
        No fitted cell-cycle sample of the cell line, or ``arms`` names an unknown arm.
    """
    chosen = representative_rows(result, cell_line, arms=arms)
    if not chosen:
        msg = f"dna_fit_panels: cell line {cell_line!r} has no fitted cell-cycle sample"
        raise DesignError(msg)
    n = len(chosen)
    n_cols = min(n, 4)
    n_rows = math.ceil(n / n_cols)
    with publication_style(size=6.0):
        if fig is None:
            fig = figure(min(10.0 + panel_mm * n_cols, 180.0), 22.0 + 0.9 * panel_mm * n_rows)
        grid = fig.subplots(n_rows, n_cols, squeeze=False)
        fits = [_fit_at(result, row) for row in chosen.values()]
        right = _shown_channels([f.histogram for f in fits])
        handles: dict[str, Any] = {}
        for k, ((arm, row), fit) in enumerate(zip(chosen.items(), fits, strict=True)):
            ax = grid[k // n_cols][k % n_cols]
            _draw_fit(fit, ax, title=f"{arm} ({_replicate_label(row)})")
            ax.set_xlim(0, right)
            if k % n_cols:
                ax.set_ylabel("")
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, handle)
        for k in range(n, n_rows * n_cols):
            grid[k // n_cols][k % n_cols].set_axis_off()
        if handles:
            fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                       ncols=min(len(handles), 8), frameon=False)
        fig.suptitle(str(cell_line), fontsize=8)
    return fig


def _draw_fit(fit: Any, ax: Axes, *, title: str) -> None:
    """A fit with its components, the phases in the title; a Watson fit as its bare histogram."""
    if hasattr(fit, "params"):
        plot_cell_cycle_fit(fit, ax=ax, residuals=False, legend=False, title=title)
    else:
        hist = fit.histogram
        ax.stairs(hist.counts, hist.channel_edges, color="#BBBBBB", fill=True, label="Data")
        ax.set_xlabel(f"{hist.channel} (channel, {hist.n_bins} bins)")
        ax.set_ylabel("Events")
        ax.set_ylim(0, None)
    fractions = getattr(fit, "fractions", None)
    sub_g1 = fractions.get("sub_g1_pct") if isinstance(fractions, dict) else None
    lines = [title + (" (fit failed)" if str(fit.status) == "failed" else ""),
             f"G0/G1 {fit.g0g1_pct:.1f}%, S {fit.s_pct:.1f}%",
             f"G2/M {fit.g2m_pct:.1f}%" + (f", sub-G1 {sub_g1:.1f}%" if sub_g1 is not None
                                           and math.isfinite(sub_g1) else "")]
    ax.set_title("\n".join(lines), fontsize=_font(1.0), linespacing=1.3)


def _font(scale: float) -> float:
    """The current font size times ``scale``, in points."""
    import matplotlib as mpl
    from matplotlib.font_manager import FontProperties

    return scale * float(FontProperties(size=mpl.rcParams["font.size"]).get_size_in_points())


# ============================================================================ Chou-Talalay
def _chou_talalay(synergy: pd.DataFrame, cell_line: str | None, measure: str | None,
                  what: str) -> pd.DataFrame:
    frame = synergy
    if "metric" in frame.columns:
        frame = frame[frame["metric"].astype(str) == "Chou-Talalay"]
    needed = ["kind", "agent", "measure"]
    missing = [c for c in needed if c not in frame.columns]
    if frame.empty or missing:
        msg = (f"{what}: the synergy table has no Chou-Talalay rows (a dose-series design gives them; "
               "single-dose designs get Bliss/HSA)")
        raise DesignError(msg)
    if cell_line is not None:
        if "cell_line" not in frame.columns:
            msg = f"{what}: the synergy table has no cell_line column; pass cell_line=None"
            raise DesignError(msg)
        lines = list(dict.fromkeys(frame["cell_line"].astype(str)))
        frame = frame[frame["cell_line"].astype(str) == str(cell_line)]
        if frame.empty:
            msg = f"{what}: no Chou-Talalay rows for cell line {cell_line!r}; they are for {', '.join(lines)}"
            raise DesignError(msg)
    measures = list(dict.fromkeys(frame["measure"].astype(str)))
    if measure is None:
        if len(measures) > 1:
            msg = f"{what}: the rows are of several measures ({', '.join(measures)}); pass measure="
            raise DesignError(msg)
        measure = measures[0]
    frame = frame[frame["measure"].astype(str) == measure]
    if frame.empty:
        msg = f"{what}: no Chou-Talalay rows of measure {measure!r}; the measures are {', '.join(measures)}"
        raise DesignError(msg)
    return frame


def _agent_colours(agents: Sequence[str]) -> dict[str, str]:
    return arm_colours([str(a) for a in agents])


def plot_dose_response(
    synergy: pd.DataFrame,
    *,
    cell_line: str | None = None,
    measure: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Median-effect dose-response curves of each drug and each combination series.

    Curves are fa = 1 / (1 + (Dm / D) ** m) with the ``dm`` and ``m`` of the ``fit`` rows
    (a combination against its total dose d_a + d_b); the ``point`` rows (combinations
    tested, observed mean fa) are drawn as dots on their series' colour. Dose on a log axis.

    Parameters
    ----------
    synergy
        A synergy table with Chou-Talalay rows (:meth:`ExperimentResult.synergy
        <cytoflow_res.experiment.ExperimentResult.synergy>` or
        :func:`cytoflow_res.stats.dose_series_synergy`).
    cell_line
        Cell line to draw (None: the table must hold one experiment).
    measure
        Measure to draw (None: the only one there).
    ax
        Axes to draw in; a new figure (120 x 60 mm, publication style) is made when None.

    Returns
    -------
    matplotlib.axes.Axes
        The axes; curves have gids ``"curve:<agent>"``, points ``"points:<agent>"``.

    Raises
    ------
    DesignError
        No Chou-Talalay rows for the cell line and measure, or several measures and none chosen.
    """
    frame = _chou_talalay(synergy, cell_line, measure, "plot_dose_response")
    return _draw_in(ax, (120, 60), lambda a: _draw_dose_response(a, frame, cell_line))


def _draw_dose_response(ax: Axes, frame: pd.DataFrame, cell_line: str | None) -> None:
    fits = frame[frame["kind"] == "fit"]
    points = frame[frame["kind"] == "point"]
    agents = list(dict.fromkeys(fits["agent"].astype(str)))
    colours = _agent_colours(agents)
    doses = [float(v) for v in fits["dm"] if math.isfinite(float(v)) and float(v) > 0]
    if not points.empty:
        total = (points["dose_a"].astype(float).fillna(0) + points["dose_b"].astype(float).fillna(0))
        doses += [float(v) for v in total if v > 0]
    lo, hi = (min(doses) / 10.0, max(doses) * 10.0) if doses else (0.01, 100.0)
    grid = np.geomspace(lo, hi, 200)
    for _, fit in fits.iterrows():
        agent = str(fit["agent"])
        dm, m = float(fit["dm"]), float(fit["m"])
        if not (math.isfinite(dm) and math.isfinite(m) and dm > 0):
            continue
        fa = 1.0 / (1.0 + (dm / grid) ** m)
        ax.plot(grid, fa, color=colours[agent], lw=1.0, label=f"{agent}: Dm {dm:.3g}, m {m:.2f}",
                gid=f"curve:{agent}")
    for agent, sub in points.groupby(points["agent"].astype(str), sort=False):
        total = sub["dose_a"].astype(float).fillna(0) + sub["dose_b"].astype(float).fillna(0)
        ax.scatter(total, sub["fa"].astype(float), s=10, color=colours.get(str(agent), _LINE),
                   edgecolor=_LINE, linewidths=0.4, zorder=4, gid=f"points:{agent}")
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Dose (combinations: total dose)")
    ax.set_ylabel("Fraction affected")
    what = measure_label(str(frame["measure"].iloc[0])).removesuffix(" (%)")
    ax.set_title(f"{cell_line}: {what}" if cell_line is not None else what)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)


def plot_fa_ci(
    synergy: pd.DataFrame,
    *,
    cell_line: str | None = None,
    measure: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """The Fa-CI (Chou-Talalay) plot: combination index against fraction affected.

    The CI at each effect level of a fitted combination series (``fa_level`` rows) is drawn
    as a line with markers, the CI of each combination tested (``point`` rows) as open
    circles. A band marks the additive range 0.9-1.1 (:func:`cytoflow_res.stats.ci_call`):
    below it synergy, above it antagonism.

    Parameters
    ----------
    synergy
        A synergy table with Chou-Talalay rows.
    cell_line
        Cell line to draw (None: the table must hold one experiment).
    measure
        Measure to draw (None: the only one there).
    ax
        Axes to draw in; a new figure (80 x 60 mm, publication style) is made when None.

    Returns
    -------
    matplotlib.axes.Axes
        The axes; lines have gids ``"ci:<agent>"``, points ``"ci_points:<agent>"``.

    Raises
    ------
    DesignError
        No Chou-Talalay rows for the cell line and measure, or several measures and none chosen.
    """
    frame = _chou_talalay(synergy, cell_line, measure, "plot_fa_ci")
    return _draw_in(ax, (80, 60), lambda a: _draw_fa_ci(a, frame, cell_line))


def _draw_fa_ci(ax: Axes, frame: pd.DataFrame, cell_line: str | None) -> None:
    rows = frame[frame["kind"].isin(["fa_level", "point"])]
    agents = [a for a in dict.fromkeys(frame.loc[frame["kind"] == "fit", "agent"].astype(str))]
    agents += [a for a in dict.fromkeys(rows["agent"].astype(str)) if a not in agents]
    colours = _agent_colours(agents)
    ax.axhspan(0.9, 1.1, color="#EEEEEE", lw=0, zorder=0)
    ax.axhline(1.0, color=_MUTED, lw=0.6, ls="--", zorder=1)
    top = 2.0
    for agent, sub in rows.groupby(rows["agent"].astype(str), sort=False):
        colour = colours.get(str(agent), _LINE)
        levels = sub[sub["kind"] == "fa_level"].sort_values("fa")
        ci = levels["ci"].astype(float)
        if ci.notna().any():
            ax.plot(levels["fa"].astype(float), ci, color=colour, lw=1.0, marker="s", ms=3,
                    label=f"{agent}, fitted", gid=f"ci:{agent}")
            top = max(top, float(np.nanmax(ci)) * 1.15)
        pts = sub[sub["kind"] == "point"]
        pci = pts["ci"].astype(float)
        if pci.notna().any():
            ax.scatter(pts["fa"].astype(float), pci, s=12, facecolor="white", edgecolor=colour,
                       linewidths=0.8, zorder=4, label=f"{agent}, tested", gid=f"ci_points:{agent}")
            top = max(top, float(np.nanmax(pci)) * 1.15)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, top)
    # beside the additive band (x in axes fraction, y in CI units)
    ax.text(0.01, 0.88, "\u2193 synergy", transform=ax.get_yaxis_transform(), ha="left", va="top",
            color=_MUTED, fontsize=_font(0.85))
    ax.text(0.01, 1.12, "\u2191 antagonism", transform=ax.get_yaxis_transform(), ha="left", va="bottom",
            color=_MUTED, fontsize=_font(0.85))
    ax.set_xlabel("Fraction affected (fa)")
    ax.set_ylabel("Combination index (CI)")
    what = measure_label(str(frame["measure"].iloc[0])).removesuffix(" (%)")
    ax.set_title(f"{cell_line}: {what}" if cell_line is not None else what)
    ax.legend(loc="upper right", frameon=False)


# ============================================================================ the standard set
@dataclass(frozen=True)
class FigureSpec:
    """One figure of the standard set: a file name, a title, a caption and how to draw it.

    Attributes
    ----------
    name
        File name without suffix, safe on every file system (``figures/<name>.png``).
    title
        Short title (plain text).
    caption
        What is drawn, with n, error bars and tests (plain text; escape it for HTML).
    build
        Draws the figure and returns it; the caller saves and closes it. Raises
        :class:`~cytoflow_res.errors.CytoflowResError` when the data do not allow it.
    """

    name: str
    title: str
    caption: str
    build: Callable[[], Figure]


def _root(drawn: Any) -> Figure:
    """The Figure an Axes, SubFigure or Figure belongs to."""
    from matplotlib.figure import Figure as FigureType

    while not isinstance(drawn, FigureType):
        drawn = drawn.figure
    return drawn


def _slug(text: str) -> str:
    out = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in str(text))
    out = out.strip("._") or "x"
    return out[:60]


class _Names:
    """Unique file names (two cell lines may slug to the same text)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, *parts: str) -> str:
        base = "_".join(_slug(p) for p in parts)
        name, k = base, 2
        while name.lower() in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name.lower())
        return name


def _n_text(table: pd.DataFrame, measure: str) -> str:
    try:
        counts = arm_summary(table, measure)["n"]
    except DesignError:
        return "n replicates"
    counts = counts[counts > 0]
    if counts.empty:
        return "no usable replicates"
    lo, hi = int(counts.min()), int(counts.max())
    return f"n = {lo}" if lo == hi else f"n = {lo}-{hi}"


def _tests_text(comparisons: pd.DataFrame) -> str:
    parts = []
    for family in BAR_FAMILIES:
        sub = comparisons[comparisons["comparison"] == family]
        if sub.empty:
            continue
        tests = ", ".join(dict.fromkeys(
            f"{t}" + (f" ({c} correction)" if c not in ("none", t.split()[0]) else "")
            for t, c in zip(sub["test"].astype(str), sub["correction"].astype(str), strict=True)))
        parts.append(f"{family}: {tests}")
    if not parts:
        return "No comparison could be made (see the report's notes)."
    return ("Brackets: " + "; ".join(parts)
            + ". * p < 0.05, ** p < 0.01, *** p < 0.001, **** p < 0.0001; comparisons that are not "
            "significant are not drawn.")


def _bar_spec(result: ExperimentResult, names: _Names, assay: str, measure: str, title: str) -> FigureSpec:
    raw = result.apoptosis if assay == "apoptosis" else result.cellcycle
    table = display_arms(raw)
    comps = result.comparisons()
    if table is not raw:  # dose levels drawn apart: the tests compare treatment labels, not levels
        comps = comps.iloc[0:0]
    if not comps.empty:
        comps = comps[(comps["assay"] == assay) & (comps["measure"].astype(str) == measure)
                      & comps["comparison"].isin(BAR_FAMILIES)]

    def build() -> Figure:
        ax = plot_measure_bars(table, measure, comparisons=comps if not comps.empty else None)
        return _root(ax)

    tests = _tests_text(comps) if not comps.empty else ""
    caption = (f"{measure_label(measure)} per arm and cell line: bars are means, error bars SEM, dots the "
               f"replicates ({_n_text(table, measure)} per arm). {tests}")
    return FigureSpec(names(assay, measure.removesuffix("_pct")), title, caption.strip(), build)


def figure_specs(result: ExperimentResult) -> list[FigureSpec]:
    """The standard figures of a run, in report order, each drawn only when asked.

    Bars of total apoptosis and viability (brackets: Dunnett vs vehicle and the combination
    vs each single agent), stacked quadrants, stacked cell-cycle phases, sub-G1 bars; per
    cell line the quadrant grid, the DNA histogram overlay and the representative fits; per
    cell line and measure with Chou-Talalay rows the dose-response curves and the Fa-CI plot.
    Figures whose data the run lacks are left out.

    Parameters
    ----------
    result
        The run.

    Returns
    -------
    list of FigureSpec
        Call ``spec.build()`` for the figure (then save and close it).
    """
    names = _Names()
    specs: list[FigureSpec] = []
    apo, cc = display_arms(result.apoptosis), display_arms(result.cellcycle)
    apo_ok = not apo.empty and bool(apo["status"].map(lambda s: str(s) not in FAILED_STATUSES).any())
    cc_ok = not cc.empty and bool(cc["status"].map(lambda s: str(s) not in FAILED_STATUSES).any())
    if apo_ok:
        specs.append(_bar_spec(result, names, "apoptosis", "total_apoptotic_pct",
                               "Total apoptosis (Annexin V+)"))
        specs.append(_bar_spec(result, names, "apoptosis", "viable_pct", "Viable cells (Annexin V-/PI-)"))
        specs.append(FigureSpec(
            names("apoptosis", "quadrants"), "Annexin V / PI quadrants",
            f"Mean share of cells in each quadrant per arm ({_n_text(apo, 'viable_pct')} per arm; samples "
            "with all four shares).",
            lambda: _root(plot_stacked_quadrants(apo))))
    if cc_ok:
        specs.append(FigureSpec(
            names("cellcycle", "phases"), "Cell-cycle phases",
            f"Mean G0/G1, S and G2/M shares of the cycling cells per arm ({_n_text(cc, 'g0g1_pct')} per "
            "arm), from the fitted DNA histograms.",
            lambda: _root(plot_stacked_phases(cc))))
        specs.append(_bar_spec(result, names, "cellcycle", "sub_g1_pct", "Sub-G1"))
    lines_apo = list(dict.fromkeys(apo["cell_line"].astype(str))) if apo_ok else []
    lines_cc = list(dict.fromkeys(cc["cell_line"].astype(str))) if cc_ok else []
    for line in lines_apo:
        specs.append(FigureSpec(
            names("quadrants", line), f"Annexin V / PI plots: {line}",
            f"Annexin V against PI of every {line} sample (rows: arms; columns: replicates), singlets "
            "after pre-gating, pseudocolor density on logicle axes. Lines: the thresholds of each "
            "sample's group (from its controls); numbers: % of cells per quadrant (viable bottom left, "
            "early apoptotic bottom right, late apoptotic top right, necrotic top left).",
            _bind(quadrant_grid, result, line)))
    for line in lines_cc:
        specs.append(FigureSpec(
            names("dna_overlay", line), f"DNA histograms: {line}",
            f"DNA content of {line}: the most typical replicate of each arm (phases nearest the arm "
            "mean), singlets, as % of the sample's events per channel; vehicle filled grey.",
            _bind(dna_overlay, result, line)))
        specs.append(FigureSpec(
            names("dna_fits", line), f"Cell-cycle fits: {line}",
            f"Fitted DNA histograms of {line} (the same replicates as the overlay): G0/G1 and G2/M "
            "peaks filled, S phase hatched, debris / aggregates / sub-G1 as lines, the model in black.",
            _bind(dna_fit_panels, result, line)))
    synergy = result.synergy()
    if not synergy.empty and "metric" in synergy.columns:
        ct = synergy[synergy["metric"] == "Chou-Talalay"]
        keys = ct[["assay", "measure", "cell_line"]].astype(str).drop_duplicates()
        for assay, measure, line in keys.itertuples(index=False, name=None):
            sub = ct[(ct["assay"] == assay) & (ct["measure"].astype(str) == measure)]
            what = measure_label(measure)
            specs.append(FigureSpec(
                names("dose_response", measure.removesuffix("_pct"), line),
                f"Dose-response: {what}, {line}",
                f"Median-effect fits (fraction affected of {what}, vehicle-corrected) of each drug and "
                f"each combination series of {line}; dots: combinations tested.",
                _bind_ct(plot_dose_response, sub, line)))
            specs.append(FigureSpec(
                names("fa_ci", measure.removesuffix("_pct"), line),
                f"Fa-CI plot: {what}, {line}",
                f"Chou-Talalay combination index against fraction affected ({what}, {line}): line, CI at "
                "the fitted effect levels; circles, CI of the combinations tested. Grey band: additive "
                "(0.9-1.1); below, synergy; above, antagonism.",
                _bind_ct(plot_fa_ci, sub, line)))
    return specs


def _bind(func: Callable[..., Any], result: ExperimentResult, line: str) -> Callable[[], Figure]:
    def build() -> Figure:
        return _root(func(result, line))

    return build


def _bind_ct(func: Callable[..., Any], table: pd.DataFrame, line: str) -> Callable[[], Figure]:
    def build() -> Figure:
        return _root(func(table, cell_line=line))

    return build
