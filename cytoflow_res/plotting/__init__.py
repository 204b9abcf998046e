"""Figures. Every function takes ``ax=None`` and returns what it drew; nothing is shown or saved.

Use as ``from cytoflow_res import plotting as pl``.
"""

from cytoflow_res.plotting.apoptosis import plot_apoptosis, plot_gating_steps, plot_quadrant_summary
from cytoflow_res.plotting.cellcycle import plot_cell_cycle_fit

__all__ = ["plot_apoptosis", "plot_cell_cycle_fit", "plot_gating_steps", "plot_quadrant_summary"]
