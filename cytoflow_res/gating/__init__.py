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
from cytoflow_res.gating.preprocess import (
    AutoGate,
    PregateResult,
    PregateStep,
    auto_debris_gate,
    auto_singlet_gate,
    gate_from_spec,
    pregate,
)
from cytoflow_res.gating.templates import Template, list_templates, load_template, parse_template
from cytoflow_res.gating.thresholds import (
    Thresholds,
    ValleyThreshold,
    percentile_threshold,
    thresholds_from_controls,
    valley_threshold,
)

__all__ = [
    "AsinhTransform",
    "AutoGate",
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
    "PregateResult",
    "PregateStep",
    "QuadrantGate",
    "RangeGate",
    "RatioTransform",
    "RectangleGate",
    "SpectrumMatrix",
    "Template",
    "Thresholds",
    "ValleyThreshold",
    "apply_gatingml",
    "auto_debris_gate",
    "auto_singlet_gate",
    "column_values",
    "gate_from_spec",
    "list_templates",
    "load_template",
    "parse_template",
    "percentile_threshold",
    "pregate",
    "read_gatingml",
    "thresholds_from_controls",
    "valley_threshold",
]
