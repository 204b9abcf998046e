"""PI cell-cycle analysis: DNA histograms and Dean-Jett-Fox deconvolution (as ModFit LT)."""

from cytoflow_res.cellcycle.batch import g2_is_placed, share_linearity
from cytoflow_res.cellcycle.fit import CellCycleFit, ParamValue, fit_cell_cycle, fit_histogram
from cytoflow_res.cellcycle.histogram import DNAHistogram, dna_channels, dna_histogram, singlet_mask
from cytoflow_res.cellcycle.model import ModelSpec

__all__ = [
    "CellCycleFit",
    "DNAHistogram",
    "ModelSpec",
    "ParamValue",
    "dna_channels",
    "dna_histogram",
    "fit_cell_cycle",
    "fit_histogram",
    "g2_is_placed",
    "share_linearity",
    "singlet_mask",
]
