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

from cytoflow_res._version import __version__
from cytoflow_res.errors import (
    ChannelError,
    CytoflowResError,
    DesignError,
    FCSError,
    FitError,
    TemplateError,
)
from cytoflow_res.io.fcs import FCSHeader, read_fcs, read_header
from cytoflow_res.io.fcs_write import write_fcs
from cytoflow_res.sample import Channel, Sample, Spillover

__all__ = [
    "Channel",
    "ChannelError",
    "CytoflowResError",
    "DesignError",
    "FCSError",
    "FCSHeader",
    "FitError",
    "Sample",
    "Spillover",
    "TemplateError",
    "__version__",
    "read_fcs",
    "read_header",
    "write_fcs",
]
