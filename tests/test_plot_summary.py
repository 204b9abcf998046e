"""Summary figures draw the per-sample table and the comparison tables, and nothing else.

Artists are read back from the Axes (Agg backend, nothing shown or saved unless a test saves)
and compared with numbers written out here by hand: bar heights with arm means, dots with
replicates, brackets with the marks of the comparison tables. Three figures are also
compared with baseline images in ``tests/baseline/`` (see ``tests/_imagecompare.py``).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Text

from cytoflow_res import stats
from cytoflow_res.errors import DesignError
from cytoflow_res.plotting import style
from cytoflow_res.plotting.apoptosis import QUADRANT_COLOURS
from cytoflow_res.plotting.cellcycle import COLOURS as CELLCYCLE_COLOURS
from cytoflow_res.plotting.summary import (
    PHASE_COLOURS,
    arm_order,
    arm_summary,
    measure_label,
    plot_measure_bars,
    plot_stacked_phases,
    plot_stacked_quadrants,
)
from tests._imagecompare import check_figure

matplotlib.use("Agg")

ARMS = ["vehicle", "drugA", "drugB", "drugA+drugB"]
LINES = ["parental", "resistant"]
MEASURE = "total_apoptotic_pct"

# total apoptotic % (early + late) of replicates 1-3; early is 40% of it
TOTALS = {
    "parental": {"vehicle": [5, 6, 7], "drugA": [15, 17, 19], "drugB": [10, 12, 11],
                 "drugA+drugB": [40, 44, 42]},
    "resistant": {"vehicle": [4, 5, 6], "drugA": [6, 7, 5], "drugB": [9, 10, 11],
                  "drugA+drugB": [14, 16, 18]},
}
NECROTIC = [2.0, 3.0, 2.5]
# G0/G1, S, G2/M (sum 100) and sub-G1 of replicate 1; replicates 2 and 3 move 2 and 4
# points from G0/G1 to S, and add 0.5 and 1 to sub-G1
PHASES = {
    "parental": {"vehicle": (55, 30, 15, 2), "drugA": (70, 15, 15, 8), "drugB": (45, 25, 30, 5),
                 "drugA+drugB": (40, 15, 45, 20)},
    "resistant": {"vehicle": (56, 29, 15, 2), "drugA": (60, 25, 15, 3), "drugB": (50, 27, 23, 4),
                  "drugA+drugB": (48, 22, 30, 9)},
}


def _quadrants(total: float, necrotic: float) -> dict[str, float]:
    early = round(0.4 * total, 6)
    late = total - early
    return {"viable_pct": 100.0 - total - necrotic, "early_apoptotic_pct": early,
            "late_apoptotic_pct": late, "necrotic_pct": necrotic, "total_apoptotic_pct": total}


@pytest.fixture
def apoptosis_table() -> pd.DataFrame:
    """Triplicates of 4 arms x 2 cell lines (shuffled), plus rows that must be left out."""
    rows: list[dict[str, Any]] = []
    for line, arms in TOTALS.items():
        for arm, totals in arms.items():
            for rep, (total, nec) in enumerate(zip(totals, NECROTIC, strict=True), start=1):
                status = "warn" if (line, arm, rep) == ("resistant", "vehicle", 3) else "ok"  # kept
                rows.append({"cell_line": line, "treatment": arm, "replicate": rep, "role": "sample",
                             "status": status, **_quadrants(float(total), nec)})
    rows += [
        # a file that could not be analysed, an error, a NaN value and a control: all left out
        {"cell_line": "parental", "treatment": "drugA", "replicate": 4, "role": "sample",
         "status": "failed", **_quadrants(95.0, 1.0)},
        {"cell_line": "resistant", "treatment": "drugA+drugB", "replicate": 4, "role": "sample",
         "status": "error", **_quadrants(90.0, 5.0)},
        {"cell_line": "resistant", "treatment": "drugB", "replicate": 4, "role": "sample",
         "status": "ok", **dict.fromkeys(_quadrants(1.0, 1.0), math.nan)},
        {"cell_line": "parental", "treatment": "vehicle", "replicate": 1, "role": "unstained",
         "status": "ok", **_quadrants(80.0, 10.0)},
    ]
    # combinations and single agents first in each cell line's rows: the figure must still
    # put the vehicle first (cell lines are drawn in order of first appearance)
    frame = pd.DataFrame(rows[::-1])
    return frame.sort_values("cell_line", kind="stable").reset_index(drop=True)


@pytest.fixture
def cellcycle_table() -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for line, arms in PHASES.items():
        for arm, (g1, s, g2, sub) in arms.items():
            for rep in range(3):
                rows.append({"cell_line": line, "treatment": arm, "replicate": rep + 1, "role": "sample",
                             "status": "ok", "g0g1_pct": g1 - 2.0 * rep, "s_pct": s + 2.0 * rep,
                             "g2m_pct": float(g2), "sub_g1_pct": sub + 0.5 * rep})
    rows.append({"cell_line": "parental", "treatment": "vehicle", "replicate": 4, "role": "sample",
                 "status": "failed", "g0g1_pct": 10.0, "s_pct": 10.0, "g2m_pct": 80.0, "sub_g1_pct": 60.0})
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def _gid(ax: Axes, gid: str) -> list[Any]:
    return ax.findobj(lambda a: a.get_gid() == gid)


def _one(ax: Axes, gid: str) -> Any:
    found = _gid(ax, gid)
    assert len(found) == 1, f"{len(found)} artists with gid {gid!r}"
    return found[0]


def _brackets(ax: Axes) -> dict[str, str]:
    """gid suffix ("<line>:<arm>:<arm>") -> mark text, of every bracket drawn."""
    lines = {a.get_gid()[len("bracket:"):] for a in ax.findobj(Line2D)
             if str(a.get_gid()).startswith("bracket:")}
    marks = {a.get_gid()[len("mark:"):]: a.get_text() for a in ax.findobj(Text)
             if str(a.get_gid()).startswith("mark:")}
    assert set(marks) == lines, "every bracket has exactly one mark"
    return marks


def _usable(table: pd.DataFrame, line: str, arm: str, column: str) -> np.ndarray:
    rows = table[(table["cell_line"] == line) & (table["treatment"] == arm) & (table["role"] == "sample")
                 & ~table["status"].isin(["failed", "error"])]
    x = rows[column].to_numpy(dtype=float)
    return x[np.isfinite(x)]


# ---------------------------------------------------------------- arm order, labels, colours
def test_arm_order_vehicle_singles_combinations() -> None:
    labels = ["drugA+drugB", "drugB", "vehicle", "drugA", "drugB+drugC", "drugB"]
    assert arm_order(labels) == ["vehicle", "drugB", "drugA", "drugA+drugB", "drugB+drugC"]
    assert arm_order(["DMSO", "x+y", "x"], vehicle="DMSO") == ["DMSO", "x", "x+y"]
    assert arm_order(labels, order=["drugA", "vehicle"]) == ["drugA", "vehicle"]
    with pytest.raises(DesignError, match=r"'drugC' not in the table; the arms are 'drugA\+drugB'"):
        arm_order(labels, order=["vehicle", "drugC"])
    with pytest.raises(DesignError, match="'vehicle' given twice"):
        arm_order(labels, order=["vehicle", "vehicle"])
    with pytest.raises(DesignError, match="no arm given"):
        arm_order(labels, order=[])


def test_measure_labels() -> None:
    assert measure_label("total_apoptotic_pct") == "Total apoptotic (%)"
    assert measure_label("viable_pct") == "Viable (%)"
    assert measure_label("g0g1_pct") == "G0/G1 (%)"
    assert measure_label("g2m_pct") == "G2/M (%)"
    assert measure_label("sub_g1_pct") == "Sub-G1 (%)"
    assert measure_label("bliss_excess") == "Bliss excess"


def test_arm_colours_are_okabe_ito_and_stable() -> None:
    colours = style.arm_colours(ARMS)
    assert colours["vehicle"] == style.VEHICLE_COLOUR
    assert {colours[a] for a in ARMS[1:]} <= set(style.PALETTE)
    assert len(set(colours.values())) == 4
    # the same arms in the same order give the same colours; an override wins
    assert style.arm_colours(ARMS) == colours
    assert style.arm_colours(ARMS, colours={"drugB": "#123456"})["drugB"] == "#123456"
    assert len(style.PALETTE) == 8 and style.PALETTE[1] == "#E69F00"


# ---------------------------------------------------------------- bars of one measure
def test_one_bar_per_arm_and_cell_line_in_order(apoptosis_table: pd.DataFrame) -> None:
    ax = plot_measure_bars(apoptosis_table, MEASURE)
    bars = list(ax.containers[0])
    assert len(bars) == len(ARMS) * len(LINES)
    assert [b.get_gid() for b in bars] == [f"bar:{line}:{arm}" for line in LINES for arm in ARMS]
    xs = [b.get_x() + b.get_width() / 2 for b in bars]
    assert xs == sorted(xs)
    assert [t.get_text() for t in ax.get_xticklabels()] == ARMS * 2
    assert [_one(ax, f"group:{line}").get_text() for line in LINES] == LINES
    assert ax.get_ylabel() == "Total apoptotic (%)"


def test_bar_heights_are_the_arm_means(apoptosis_table: pd.DataFrame) -> None:
    ax = plot_measure_bars(apoptosis_table, MEASURE)
    expected = stats.summarize(apoptosis_table, MEASURE)
    for row in expected.itertuples():
        bar = _one(ax, f"bar:{row.cell_line}:{row.treatment}")
        assert bar.get_height() == pytest.approx(np.mean(TOTALS[row.cell_line][row.treatment]), abs=1e-12)
        assert bar.get_height() == pytest.approx(row.mean, abs=1e-12)
    table = arm_summary(apoptosis_table, MEASURE)
    assert list(table["treatment"]) == ARMS * 2
    assert table["n"].tolist() == [3] * 8
    assert table["mean"].to_numpy() == pytest.approx(expected.set_index(["cell_line", "treatment"]).loc[
        list(zip(table["cell_line"], table["treatment"], strict=True)), "mean"].to_numpy())


def test_dots_are_the_usable_replicates(apoptosis_table: pd.DataFrame) -> None:
    ax = plot_measure_bars(apoptosis_table, MEASURE)
    dots = [c for c in ax.findobj(PathCollection) if str(c.get_gid()).startswith("points:")]
    assert len(dots) == 8
    for line, arm in itertools.product(LINES, ARMS):
        offsets = _one(ax, f"points:{line}:{arm}").get_offsets()
        assert sorted(offsets[:, 1]) == sorted(TOTALS[line][arm])  # failed / NaN / control rows left out
        bar = _one(ax, f"bar:{line}:{arm}")
        assert np.all(np.abs(offsets[:, 0] - (bar.get_x() + bar.get_width() / 2)) < bar.get_width() / 2)
        assert len(set(offsets[:, 0])) == 3  # spread, so equal values stay visible
    # deterministic: the same table gives the same dots
    again = plot_measure_bars(apoptosis_table, MEASURE)
    assert np.array_equal(_one(again, "points:parental:drugA").get_offsets(),
                          _one(ax, "points:parental:drugA").get_offsets())


def test_failed_error_nan_and_control_rows_are_left_out(apoptosis_table: pd.DataFrame) -> None:
    table = arm_summary(apoptosis_table, MEASURE).set_index(["cell_line", "treatment"])
    assert table.loc[("parental", "drugA"), "mean"] == pytest.approx(17.0)  # not the failed 95
    assert table.loc[("resistant", "drugA+drugB"), "mean"] == pytest.approx(16.0)  # not the error 90
    assert table.loc[("parental", "vehicle"), "mean"] == pytest.approx(6.0)  # not the unstained 80
    assert table.loc[("resistant", "vehicle"), "n"] == 3  # a "warn" row is used
    ax = plot_measure_bars(apoptosis_table, MEASURE, show_n=True)
    assert "drugA (n=3)" in [t.get_text() for t in ax.get_xticklabels()]


@pytest.mark.parametrize("error", ["sem", "sd"])
def test_error_bars(apoptosis_table: pd.DataFrame, error: str) -> None:
    ax = plot_measure_bars(apoptosis_table, MEASURE, error=error)  # type: ignore[arg-type]
    segments = [seg for c in _gid(ax, "error") if hasattr(c, "get_segments") for seg in c.get_segments()]
    assert len(segments) == 8
    x = np.array(TOTALS["parental"]["drugB"], dtype=float)
    want = x.std(ddof=1) / (math.sqrt(3) if error == "sem" else 1.0)
    bar = _one(ax, "bar:parental:drugB")
    centre = bar.get_x() + bar.get_width() / 2
    (seg,) = [s for s in segments if abs(s[0, 0] - centre) < 1e-9]
    assert sorted(seg[:, 1]) == pytest.approx([11.0 - want, 11.0 + want])


def test_error_must_be_sem_or_sd(apoptosis_table: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="error must be 'sem' or 'sd', got 'ci'"):
        plot_measure_bars(apoptosis_table, MEASURE, error="ci")  # type: ignore[arg-type]


def _comparison(line: str, a: str, b: str, mark: str, measure: str = MEASURE) -> dict[str, Any]:
    return {"cell_line": line, "measure": measure, "group1": a, "group2": b, "n1": 3, "n2": 3,
            "mean_diff": 1.0, "statistic": 1.0, "p_value": 0.5, "test": "t", "correction": "none",
            "mark": mark}


def test_a_bracket_where_the_table_says_so_and_none_for_ns(apoptosis_table: pd.DataFrame) -> None:
    comparisons = pd.DataFrame([
        _comparison("parental", "vehicle", "drugA", "**"),
        _comparison("parental", "vehicle", "drugB", "ns"),
        _comparison("resistant", "drugA", "drugA+drugB", "****"),
        _comparison("resistant", "vehicle", "drugB", "n/a"),
        _comparison("parental", "drugB", "drugA+drugB", "*", measure="viable_pct"),  # other measure
        _comparison("resistant", "drugA", "drugA+drugB", "ns"),  # the same pair again: first one wins
    ])
    ax = plot_measure_bars(apoptosis_table, MEASURE, comparisons=comparisons)
    assert _brackets(ax) == {"parental:vehicle:drugA": "**", "resistant:drugA:drugA+drugB": "****"}
    line = _one(ax, "bracket:parental:vehicle:drugA")
    xs = line.get_xdata()
    assert (min(xs), max(xs)) == (0.0, 1.0)  # from the vehicle bar to the drugA bar
    ax = plot_measure_bars(apoptosis_table, MEASURE, comparisons=comparisons, show_ns=True)
    assert _brackets(ax) == {"parental:vehicle:drugA": "**", "parental:vehicle:drugB": "ns",
                             "resistant:drugA:drugA+drugB": "****"}


def test_brackets_from_the_stats_tables(apoptosis_table: pd.DataFrame) -> None:
    dunnett = stats.compare_to_vehicle(apoptosis_table, MEASURE)
    combo = stats.combination_vs_singles(apoptosis_table, MEASURE)
    both = pd.concat([dunnett, combo], ignore_index=True)
    # the synthetic data were chosen so that the figure shows both a "**" and an "ns"
    marks = {f"{r.cell_line}:{r.group1}:{r.group2}": r.mark for r in both.itertuples()}
    assert marks["resistant:vehicle:drugB"] == "**"
    assert marks["resistant:vehicle:drugA"] == "ns"
    ax = plot_measure_bars(apoptosis_table, MEASURE, comparisons=[dunnett, combo])
    assert _brackets(ax) == {k: v for k, v in marks.items() if v != "ns"}


def test_brackets_stack_without_overlap_and_stay_on_the_figure(apoptosis_table: pd.DataFrame) -> None:
    comparisons = [stats.compare_to_vehicle(apoptosis_table, MEASURE),
                   stats.combination_vs_singles(apoptosis_table, MEASURE)]
    ax = plot_measure_bars(apoptosis_table, MEASURE, comparisons=comparisons, show_ns=True)
    fig = ax.figure
    assert isinstance(fig, Figure)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    table = arm_summary(apoptosis_table, MEASURE).set_index(["cell_line", "treatment"])
    spans = []
    for key in _brackets(ax):
        line_name, a, b = key.split(":")
        bracket = _one(ax, f"bracket:{key}")
        y = max(bracket.get_ydata())
        # above every bar, error bar and dot it spans
        i, j = sorted((ARMS.index(a), ARMS.index(b)))
        for arm in ARMS[i:j + 1]:
            top = max(table.loc[(line_name, arm), "mean"] + table.loc[(line_name, arm), "sem"],
                      _usable(apoptosis_table, line_name, arm, MEASURE).max())
            assert y > top, f"bracket {key} crosses {arm}"
        spans.append((line_name, i, j, y, _one(ax, f"mark:{key}").get_window_extent(renderer)))
    assert len(spans) == 10
    for (l1, i1, j1, y1, box1), (l2, i2, j2, y2, box2) in itertools.combinations(spans, 2):
        if l1 == l2 and i1 <= j2 and i2 <= j1:  # brackets over shared bars are stacked
            assert y1 != y2
        assert not box1.overlaps(box2), "two marks overlap"
    # nothing is cut off: marks, cell-line names and tick labels lie inside the figure
    figure_box = fig.bbox
    texts = [t for t in ax.findobj(Text) if t.get_text() and t.get_visible()]
    for text in texts:
        box = text.get_window_extent(renderer)
        assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1, text.get_text()
        assert figure_box.y0 <= box.y0 and box.y1 <= figure_box.y1, text.get_text()
    # the highest mark is inside the y range, below the cell-line names
    top_mark = max(s[4].y1 for s in spans)
    assert top_mark <= ax.get_window_extent(renderer).y1 + 0.5
    assert top_mark < min(_one(ax, f"group:{line}").get_window_extent(renderer).y0 for line in LINES)
    _assert_tick_labels_apart(ax, renderer)


def _assert_tick_labels_apart(ax: Axes, renderer: Any) -> None:
    """Horizontal tick labels do not overlap; turned ones are further apart than a line of text."""
    labels = ax.get_xticklabels()
    boxes = [t.get_window_extent(renderer) for t in labels]
    if all(t.get_rotation() == 0 for t in labels):
        assert not any(a.overlaps(b) for a, b in itertools.pairwise(boxes))
        return
    assert {t.get_rotation() for t in labels} == {45.0}
    # right-anchored at 45 degrees: parallel text lines, sin(45) * (x step) apart
    anchors = [b.x1 for b in boxes]
    line_height = labels[0].get_fontsize() * ax.figure.dpi / 72.0
    assert min(np.diff(anchors)) * math.sqrt(0.5) > line_height


def test_brackets_on_short_axes_are_squeezed_with_a_warning(apoptosis_table: pd.DataFrame,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    with style.publication_style():
        ax = style.figure(60, 40).add_subplot()
        tukey = stats.pairwise_tukey(apoptosis_table, MEASURE)
        plot_measure_bars(apoptosis_table, MEASURE, comparisons=tukey, show_ns=True, ax=ax)
    assert "too short for 12 brackets" in caplog.text
    data_top = max(max(v) for arms in TOTALS.values() for v in arms.values())
    assert ax.get_ylim()[1] <= 3.0 * data_top  # the bars keep a third of the axes
    assert len(_brackets(ax)) == 12
    assert all(max(line.get_ydata()) < ax.get_ylim()[1] for line in ax.lines
               if str(line.get_gid()).startswith("bracket:"))
    assert len(ax.get_yticks()) <= 4  # fewer ticks on the short scale


def test_comparisons_must_match_the_measure_and_grouping(apoptosis_table: pd.DataFrame) -> None:
    viable = stats.compare_to_vehicle(apoptosis_table, "viable_pct")
    with pytest.raises(DesignError, match="comparisons are of 'viable_pct', not of the measure drawn"):
        plot_measure_bars(apoptosis_table, MEASURE, comparisons=viable)
    pooled = stats.compare_to_vehicle(apoptosis_table, MEASURE, by=None)
    with pytest.raises(DesignError, match="the comparisons have no column 'cell_line'"):
        plot_measure_bars(apoptosis_table, MEASURE, comparisons=pooled)


def test_per_cell_line_comparisons_need_the_cell_line_groups(apoptosis_table: pd.DataFrame) -> None:
    comparisons = stats.compare_to_vehicle(apoptosis_table, MEASURE)
    with pytest.raises(DesignError, match=r"comparisons are per 'cell_line' \(2 values\).*by='cell_line'"):
        plot_measure_bars(apoptosis_table, MEASURE, by=None, comparisons=comparisons)


def test_a_table_without_samples_is_an_error(apoptosis_table: pd.DataFrame) -> None:
    controls = apoptosis_table.assign(role="unstained")
    with pytest.raises(DesignError, match="no rows of role 'sample' to draw"):
        plot_stacked_quadrants(controls)


def test_missing_column_names_the_columns(apoptosis_table: pd.DataFrame) -> None:
    with pytest.raises(DesignError, match="no column 'sub_g1_pct'; its columns are cell_line, treatment"):
        plot_measure_bars(apoptosis_table, "sub_g1_pct")


def test_order_override_and_one_group(apoptosis_table: pd.DataFrame) -> None:
    parental = apoptosis_table[apoptosis_table["cell_line"] == "parental"]
    ax = plot_measure_bars(parental, MEASURE, by=None, order=["vehicle", "drugA+drugB", "drugA"])
    assert [b.get_gid() for b in ax.containers[0]] == ["bar:vehicle", "bar:drugA+drugB", "bar:drugA"]
    assert not [t for t in ax.texts if str(t.get_gid()).startswith("group")]  # no cell-line names
    pooled = stats.compare_to_vehicle(parental, MEASURE, by=None)
    ax = plot_measure_bars(parental, MEASURE, by=None, comparisons=pooled)
    assert _brackets(ax) == {"vehicle:drugA": "****", "vehicle:drugB": "*", "vehicle:drugA+drugB": "****"}


def test_same_arm_same_colour_across_figures(apoptosis_table: pd.DataFrame,
                                             cellcycle_table: pd.DataFrame) -> None:
    from matplotlib.colors import to_hex

    ax1 = plot_measure_bars(apoptosis_table, MEASURE)
    ax2 = plot_measure_bars(cellcycle_table, "g2m_pct")
    colours = style.arm_colours(ARMS)
    for ax in (ax1, ax2):
        for line, arm in itertools.product(LINES, ARMS):
            assert to_hex(_one(ax, f"bar:{line}:{arm}").get_facecolor()) == colours[arm].lower()


def test_an_arm_without_values_keeps_its_place(apoptosis_table: pd.DataFrame) -> None:
    table = apoptosis_table.copy()
    gone = (table["cell_line"] == "resistant") & (table["treatment"] == "drugB")
    table.loc[gone, "status"] = "failed"
    ax = plot_measure_bars(table, MEASURE)
    assert len(ax.containers[0]) == 7
    assert not _gid(ax, "bar:resistant:drugB")
    assert [t.get_text() for t in ax.get_xticklabels()] == ARMS * 2
    assert _one(ax, "bar:resistant:drugA+drugB").get_x() == pytest.approx(
        _one(ax, "bar:parental:drugA+drugB").get_x() + 4.8)


# ---------------------------------------------------------------- stacked bars
def _stacks(ax: Axes) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = {}
    for container in ax.containers:
        for patch in container:
            assert isinstance(patch, Rectangle)
            _, _, line, arm = str(patch.get_gid()).split(":")
            out.setdefault((line, arm), []).append(patch.get_height())
    return out


def test_stacked_quadrants_are_the_mean_shares_and_sum_to_100(apoptosis_table: pd.DataFrame) -> None:
    ax = plot_stacked_quadrants(apoptosis_table)
    assert [c.get_label() for c in ax.containers] == ["Viable", "Early apoptotic", "Late apoptotic",
                                                      "Necrotic"]
    stacks = _stacks(ax)
    assert len(stacks) == 8
    for (line, arm), heights in stacks.items():
        assert sum(heights) == pytest.approx(100.0)
        totals = np.array(TOTALS[line][arm], dtype=float)
        assert heights == pytest.approx([100 - totals.mean() - np.mean(NECROTIC), 0.4 * totals.mean(),
                                         0.6 * totals.mean(), np.mean(NECROTIC)])
    # segments are stacked, bottom first, in the quadrant colours
    viable = _one(ax, "segment:viable:parental:vehicle")
    early = _one(ax, "segment:early_apoptotic:parental:vehicle")
    assert early.get_y() == pytest.approx(viable.get_y() + viable.get_height())
    from matplotlib.colors import to_hex
    assert to_hex(early.get_facecolor()) == QUADRANT_COLOURS["early_apoptotic"].lower()
    # the legend reads top to bottom as the stack does, and sits outside the axes
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["Necrotic", "Late apoptotic", "Early apoptotic",
                                                          "Viable"]
    fig = ax.figure
    assert isinstance(fig, Figure)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    assert legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1
    assert legend.get_window_extent(renderer).x1 <= fig.bbox.x1


def test_stacked_phases(cellcycle_table: pd.DataFrame) -> None:
    ax = plot_stacked_phases(cellcycle_table)
    assert [c.get_label() for c in ax.containers] == ["G0/G1", "S", "G2/M"]
    stacks = _stacks(ax)
    assert len(stacks) == 8
    g1, s, g2, _ = PHASES["parental"]["vehicle"]
    assert stacks["parental", "vehicle"] == pytest.approx([g1 - 2.0, s + 2.0, g2])  # failed row left out
    assert all(sum(h) == pytest.approx(100.0) for h in stacks.values())
    assert PHASE_COLOURS["g0g1_pct"] == CELLCYCLE_COLOURS["g1"]


def test_stacked_phases_with_sub_g1(cellcycle_table: pd.DataFrame) -> None:
    ax = plot_stacked_phases(cellcycle_table, sub_g1=True, annotate=True)
    assert [c.get_label() for c in ax.containers] == ["Sub-G1", "G0/G1", "S", "G2/M"]
    stacks = _stacks(ax)
    assert all(sum(h) == pytest.approx(100.0) for h in stacks.values())
    g1, s, g2, sub = PHASES["parental"]["drugA+drugB"]
    subs = np.array([sub, sub + 0.5, sub + 1.0])
    scale = (100 - subs) / 100
    assert stacks["parental", "drugA+drugB"] == pytest.approx([
        subs.mean(), np.mean((g1 - 2.0 * np.arange(3)) * scale), np.mean((s + 2.0 * np.arange(3)) * scale),
        np.mean(g2 * scale)])
    assert "20" in [t.get_text() for t in ax.texts]  # 20.5% sub-G1 written in its segment
    with pytest.raises(DesignError, match="no column 'sub_g1_pct'"):
        plot_stacked_phases(cellcycle_table.drop(columns="sub_g1_pct"), sub_g1=True)


# ---------------------------------------------------------------- axes, files, style
@pytest.mark.parametrize("kind", ["bars", "quadrants", "phases"])
def test_the_axes_given_are_used(apoptosis_table: pd.DataFrame, cellcycle_table: pd.DataFrame,
                                 kind: str) -> None:
    fig, ax = plt.subplots(layout="constrained")
    if kind == "bars":
        out = plot_measure_bars(apoptosis_table, MEASURE, ax=ax)
    elif kind == "quadrants":
        out = plot_stacked_quadrants(apoptosis_table, ax=ax)
    else:
        out = plot_stacked_phases(cellcycle_table, ax=ax)
    assert out is ax
    assert plt.get_fignums() == [fig.number]
    assert len(fig.axes) == 1


def test_nothing_is_shown_or_written(apoptosis_table: pd.DataFrame, cellcycle_table: pd.DataFrame,
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a plot function showed or saved a figure")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(plt, "show", forbidden)
    monkeypatch.setattr(Figure, "savefig", forbidden)
    comparisons = stats.compare_to_vehicle(apoptosis_table, MEASURE)
    axes = [plot_measure_bars(apoptosis_table, MEASURE, comparisons=comparisons),
            plot_stacked_quadrants(apoptosis_table), plot_stacked_phases(cellcycle_table, sub_g1=True)]
    for ax in axes:
        assert isinstance(ax, Axes)
        ax.figure.canvas.draw()  # renders without a warning (warnings are errors)
    assert list(tmp_path.iterdir()) == []


def test_default_figure_is_about_one_column(apoptosis_table: pd.DataFrame) -> None:
    ax = plot_measure_bars(apoptosis_table, MEASURE)
    fig = ax.figure
    assert isinstance(fig, Figure)
    width, height = fig.get_size_inches() * 25.4
    assert 80 <= width <= 100 and height == pytest.approx(60)
    # drawn in the publication style even though the caller set none
    assert ax.get_ylabel() and ax.yaxis.label.get_fontsize() == pytest.approx(7.0)
    assert not ax.spines["top"].get_visible() and not ax.spines["right"].get_visible()


def test_mm_and_figure() -> None:
    assert style.mm(25.4) == 1.0
    fig = style.figure(90, 60)
    assert fig.get_size_inches() == pytest.approx([90 / 25.4, 60 / 25.4])
    assert fig.get_layout_engine() is not None
    with pytest.raises(ValueError, match="width_mm must be a positive number of millimetres, got 0"):
        style.figure(0, 60)


def test_publication_style_sets_and_restores_rcparams() -> None:
    before = dict(matplotlib.rcParams)
    with style.publication_style() as rc:
        assert matplotlib.rcParams["font.size"] == 7.0
        assert matplotlib.rcParams["svg.fonttype"] == "none"
        assert matplotlib.rcParams["pdf.fonttype"] == 42 and matplotlib.rcParams["ps.fonttype"] == 42
        assert matplotlib.rcParams["axes.spines.top"] is False
        assert matplotlib.rcParams["font.family"] == ["DejaVu Sans"]
        assert rc["axes.linewidth"] < 1.0
    with style.publication_style(font="Liberation Sans", size=6):
        assert matplotlib.rcParams["font.family"] == ["Liberation Sans", "DejaVu Sans"]
        assert matplotlib.rcParams["xtick.labelsize"] == 6.0
    assert dict(matplotlib.rcParams) == before


def test_save_figure_writes_png_svg_pdf_with_editable_text(apoptosis_table: pd.DataFrame,
                                                           tmp_path: Path) -> None:
    ax = plot_measure_bars(apoptosis_table, MEASURE,
                           comparisons=stats.compare_to_vehicle(apoptosis_table, MEASURE))
    fig = ax.figure
    assert isinstance(fig, Figure)
    base = tmp_path / "new" / "folder" / "fig2a"
    with matplotlib.rc_context({"svg.fonttype": "path", "pdf.fonttype": 3}):  # the caller's own defaults
        paths = style.save_figure(fig, base)
    assert paths == [tmp_path / "new" / "folder" / f"fig2a.{ext}" for ext in ("png", "svg", "pdf")]
    assert sorted(p.name for p in (tmp_path / "new" / "folder").iterdir()) == ["fig2a.pdf", "fig2a.png",
                                                                               "fig2a.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths[1].read_text()
    texts = re.findall(r"<text\b[^>]*>([^<]*)</text>", svg)
    assert "Total apoptotic (%)" in texts and "parental" in texts and "****" in texts
    assert 'id="DejaVuSans-' not in svg  # no glyphs drawn as paths
    pdf = paths[2].read_bytes()
    assert b"/FontFile2" in pdf  # TrueType embedded
    assert b"/Subtype /Type3" not in pdf
    # no dates, so saving the same figure again gives the same bytes
    assert b"/CreationDate" not in pdf
    assert "<dc:date>" not in svg


def test_save_figure_rejects_unknown_formats(tmp_path: Path) -> None:
    fig = style.figure(40, 30)
    with pytest.raises(ValueError, match=r"unknown format\(s\) 'docx'; matplotlib can write .*pdf"):
        style.save_figure(fig, tmp_path / "x", formats=("png", "docx"))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- images
def test_image_measure_bars(apoptosis_table: pd.DataFrame, tmp_path: Path) -> None:
    comparisons = [stats.compare_to_vehicle(apoptosis_table, MEASURE),
                   stats.combination_vs_singles(apoptosis_table, MEASURE)]
    ax = plot_measure_bars(apoptosis_table, MEASURE, comparisons=comparisons)
    assert isinstance(ax.figure, Figure)
    check_figure(ax.figure, "summary_measure_bars", tmp_path)


def test_image_stacked_quadrants(apoptosis_table: pd.DataFrame, tmp_path: Path) -> None:
    ax = plot_stacked_quadrants(apoptosis_table, annotate=True)
    assert isinstance(ax.figure, Figure)
    check_figure(ax.figure, "summary_stacked_quadrants", tmp_path)


def test_image_stacked_phases(cellcycle_table: pd.DataFrame, tmp_path: Path) -> None:
    ax = plot_stacked_phases(cellcycle_table, sub_g1=True)
    assert isinstance(ax.figure, Figure)
    check_figure(ax.figure, "summary_stacked_phases", tmp_path)
