"""Gates (``apply(events) -> mask``) and the Gating-ML 2.0 reader.

Examples
--------
>>> from cytoflow_res.gating import QuadrantGate, RangeGate
>>> cells = RangeGate("FSC-A", 5e4)
>>> quad = QuadrantGate(("Annexin V", "PI"), (1e3, 2e3),
...                     names=("live", "early_apoptotic", "necrotic", "late_apoptotic"))
"""

from cytoflow_res.gating._gml_transforms import (
    AsinhTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
    RatioTransform,
    SpectrumMatrix,
)
from cytoflow_res.gating.gates import (
    BooleanGate,
    EllipseGate,
    EllipsoidGate,
    Events,
    Gate,
    Measure,
    PolygonGate,
    QuadrantGate,
    RangeGate,
    RectangleGate,
    column_values,
)
from cytoflow_res.gating.gatingml import GmlDimension, apply_gatingml, read_gatingml

__all__ = [
    "AsinhTransform",
    "BooleanGate",
    "EllipseGate",
    "EllipsoidGate",
    "Events",
    "Gate",
    "GmlDimension",
    "HyperlogTransform",
    "LinearTransform",
    "LogTransform",
    "LogicleTransform",
    "Measure",
    "PolygonGate",
    "QuadrantGate",
    "RangeGate",
    "RatioTransform",
    "RectangleGate",
    "SpectrumMatrix",
    "apply_gatingml",
    "column_values",
    "read_gatingml",
]
