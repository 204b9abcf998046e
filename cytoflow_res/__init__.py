"""cytoflow_res: apoptosis and cell-cycle results from raw cytometer exports.

Read FCS files from any instrument, gate Annexin V/PI apoptosis quadrants, fit PI cell-cycle
histograms, and build per-condition comparison tables and figures for drug-combination
experiments.

Examples
--------
>>> import cytoflow_res as cr
>>> sample = cr.read_fcs("example_fcs/apoptosis/parental_vehicle_r1.fcs")  # doctest: +SKIP
>>> sample.channel("Annexin V")  # doctest: +SKIP
"""

from cytoflow_res import _pickling as _pickling  # read-only mappings in results must pickle
from cytoflow_res import gating, plotting, report, stats, transforms
from cytoflow_res._version import __version__
from cytoflow_res.apoptosis import ApoptosisGating, ApoptosisResult, analyze_apoptosis
from cytoflow_res.cellcycle import CellCycleFit, DNAHistogram, ModelSpec, dna_histogram, fit_cell_cycle
from cytoflow_res.errors import (
    ChannelError,
    CytoflowResError,
    DesignError,
    FCSError,
    FitError,
    TemplateError,
)
from cytoflow_res.experiment import Experiment, ExperimentResult
from cytoflow_res.gating import apply_gatingml, list_templates, load_template, read_gatingml
from cytoflow_res.io.design import Design, read_design
from cytoflow_res.io.fcs import FCSHeader, read_fcs, read_header
from cytoflow_res.io.fcs_write import write_fcs
from cytoflow_res.sample import Channel, Sample, Spillover
from cytoflow_res.transforms import Compensation, compensate, default_logicle_for, make_transform

__all__ = [
    "ApoptosisGating",
    "ApoptosisResult",
    "CellCycleFit",
    "Channel",
    "ChannelError",
    "Compensation",
    "CytoflowResError",
    "DNAHistogram",
    "Design",
    "DesignError",
    "Experiment",
    "ExperimentResult",
    "FCSError",
    "FCSHeader",
    "FitError",
    "ModelSpec",
    "Sample",
    "Spillover",
    "TemplateError",
    "__version__",
    "analyze_apoptosis",
    "apply_gatingml",
    "compensate",
    "default_logicle_for",
    "dna_histogram",
    "fit_cell_cycle",
    "gating",
    "list_templates",
    "load_template",
    "make_transform",
    "plotting",
    "read_design",
    "read_fcs",
    "read_gatingml",
    "read_header",
    "report",
    "stats",
    "transforms",
    "write_fcs",
]
