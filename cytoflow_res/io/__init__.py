"""Reading and writing files: FCS data, design sheets, exports."""

from cytoflow_res.io.design import Design, read_design
from cytoflow_res.io.fcs import FCSHeader, read_fcs, read_header
from cytoflow_res.io.fcs_write import write_fcs

__all__ = ["Design", "FCSHeader", "read_design", "read_fcs", "read_header", "write_fcs"]
