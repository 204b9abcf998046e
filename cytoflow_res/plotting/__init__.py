"""Figures. Every function takes ``ax=None`` and returns what it drew; nothing is shown or saved.

Use as ``from cytoflow_res import plotting as pl``. ``pl.style`` holds the publication style
(``publication_style``, ``save_figure``, the colour-blind-safe ``PALETTE``).
"""

from cytoflow_res.plotting import style
from cytoflow_res.plotting.apoptosis import plot_apoptosis, plot_gating_steps, plot_quadrant_summary
from cytoflow_res.plotting.cellcycle import plot_cell_cycle_fit
from cytoflow_res.plotting.experiment import (
    dna_fit_panels,
    dna_overlay,
    plot_dose_response,
    plot_fa_ci,
    quadrant_grid,
)
from cytoflow_res.plotting.style import publication_style, save_figure
from cytoflow_res.plotting.summary import plot_measure_bars, plot_stacked_phases, plot_stacked_quadrants

__all__ = [
    "dna_fit_panels",
    "dna_overlay",
    "plot_apoptosis",
    "plot_cell_cycle_fit",
    "plot_dose_response",
    "plot_fa_ci",
    "plot_gating_steps",
    "plot_measure_bars",
    "plot_quadrant_summary",
    "plot_stacked_phases",
    "plot_stacked_quadrants",
    "publication_style",
    "quadrant_grid",
    "save_figure",
    "style",
]
