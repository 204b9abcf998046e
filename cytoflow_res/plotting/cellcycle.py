"""DNA histograms with fitted components, in the look of ModFit LT."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from cytoflow_res.cellcycle.fit import CellCycleFit

__all__ = ["plot_cell_cycle_fit"]

# Okabe-Ito colour-blind-safe palette
COLOURS = {
    "g1": "#D55E00",
    "s": "#0072B2",
    "g2": "#009E73",
    "debris": "#7F7F7F",
    "aggregates": "#CC79A7",
    "sub_g1": "#E69F00",
    "total": "#000000",
}
LABELS = {
    "g1": "G0/G1",
    "s": "S",
    "g2": "G2/M",
    "debris": "Debris",
    "aggregates": "Aggregates",
    "sub_g1": "Sub-G1",
}


def plot_cell_cycle_fit(
    fit: CellCycleFit,
    ax: Axes | None = None,
    *,
    residuals: bool = True,
    legend: bool = True,
    title: str | None = None,
) -> Axes:
    """Draw a DNA histogram with its fitted components (G1/G2 filled, S hatched).

    Parameters
    ----------
    fit
        A fitted :class:`~cytoflow_res.cellcycle.fit.CellCycleFit`.
    ax
        Axes to draw in; a new figure is made when None.
    residuals
        Add a residual panel (Pearson residuals) below the histogram.
    legend
        Show the fractions, CV and RCS in a legend box.
    title
        Title; the sample's file name by default.

    Returns
    -------
    matplotlib.axes.Axes
        The histogram axes (the residual axes is ``ax.residual_axes`` when drawn).
    """
    import matplotlib.pyplot as plt

    rax: Any = None
    if ax is None:
        if residuals and fit.params:
            # two gridspec rows, so constrained layout keeps the residual labels on the figure
            _fig, (ax, rax) = plt.subplots(
                2, 1, sharex=True, figsize=(120 / 25.4, 100 / 25.4), layout="constrained",
                gridspec_kw={"height_ratios": [4.5, 1.0]},
            )
        else:
            _fig, ax = plt.subplots(figsize=(120 / 25.4, 90 / 25.4), layout="constrained")
    hist = fit.histogram
    x = hist.channel_centers
    edges = hist.channel_edges
    lo, hi = hist.fit_range
    ax.stairs(hist.counts, edges, color="#BBBBBB", fill=True, label="Data", zorder=1)
    if fit.params:
        comps = fit.eval_components()
        for key in ("g1", "g2", "b_g1", "b_g2"):
            if key in comps:
                base = key.removeprefix("b_")
                second = key.startswith("b_")
                ax.fill_between(x, comps[key], color=COLOURS[base], alpha=0.55 if second else 0.75,
                                lw=0, label=None if second else LABELS[base], zorder=2)
        for key in ("s", "b_s"):
            if key in comps:
                ax.fill_between(x, comps[key], facecolor="none", edgecolor=COLOURS["s"], hatch="////", lw=0.8,
                                label=LABELS["s"] if key == "s" else None, zorder=3)
        for key in ("debris", "aggregates", "sub_g1"):
            if key in comps:
                ax.plot(x, comps[key], color=COLOURS[key], lw=1.2, label=LABELS[key], zorder=4)
        ax.plot(x[lo:hi], comps["total"][lo:hi], color=COLOURS["total"], lw=1.0, label="Model", zorder=5)
    ax.set_xlim(0, hist.n_bins)
    top = float(np.max(hist.counts[lo:hi])) if hi > lo else float(np.max(hist.counts))
    ax.set_ylim(0, 1.1 * max(top, 1.0))
    ax.set_xlabel(f"{hist.channel} (channel, {hist.n_bins} bins)")
    ax.set_ylabel("Events")
    ax.set_title(title if title is not None else _name(hist.source), fontsize=9)
    if legend:
        lines = [
            f"G0/G1 {fit.g0g1_pct:.1f}%",
            f"S {fit.s_pct:.1f}%",
            f"G2/M {fit.g2m_pct:.1f}%",
        ]
        if fit.params:
            peak_cv = getattr(fit, "peak_cv", None)
            cv = 100 * (peak_cv("g1") if peak_cv is not None else fit.params["g1_cv"].value)
            lines.append(f"CV {cv:.1f}%  RCS {fit.redchi:.2f}")
        if fit.status != "ok":
            lines.append(f"status: {fit.status}")
        ax.legend(loc="upper right", fontsize=7, frameon=False, title="\n".join(lines), title_fontsize=7)
    if residuals and fit.params:
        if rax is None:  # the caller's axes: carve the residual panel out of it
            from mpl_toolkits.axes_grid1 import make_axes_locatable

            divider = make_axes_locatable(ax)
            rax = divider.append_axes("bottom", size="22%", pad=0.05, sharex=ax)
        expected = fit.eval_components()["total"]
        with np.errstate(divide="ignore", invalid="ignore"):
            res = (hist.counts - expected) / np.sqrt(np.maximum(expected, 1.0))
        rax.axhline(0, color="#777777", lw=0.6)
        rax.plot(x[lo:hi], res[lo:hi], color="#000000", lw=0.7)
        rax.set_ylabel("Resid.", fontsize=7)
        rax.set_xlabel(ax.get_xlabel())
        ax.set_xlabel("")
        ax.tick_params(labelbottom=False)
        ax.residual_axes = rax  # type: ignore[union-attr]
    return ax


def _name(source: Any) -> str:
    if not source:
        return ""
    return str(source).replace("\\", "/").rsplit("/", 1)[-1]
