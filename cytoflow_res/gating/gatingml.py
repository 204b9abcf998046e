"""Read Gating-ML 2.0 gate definitions into :mod:`cytoflow_res.gating.gates` objects.

Parsing uses only :mod:`xml.etree.ElementTree`; the masks are computed by our own gate
classes, with the Gating-ML transformations and spectrum matrices of
:mod:`cytoflow_res.gating._gml_transforms` attached to each dimension.

What a Gating-ML file means, and how it is represented:

* every ``RectangleGate``, ``PolygonGate``, ``EllipsoidGate`` and ``BooleanGate`` becomes
  one gate under its ``gating:id``; a one-dimensional rectangle becomes a
  :class:`~cytoflow_res.gating.gates.RangeGate`, a two-dimensional ellipsoid an
  :class:`~cytoflow_res.gating.gates.EllipseGate`;
* a ``QuadrantGate`` contributes one :class:`~cytoflow_res.gating.gates.RectangleGate` per
  ``Quadrant``, under the quadrant's id (Gating-ML lets only quadrants, not the quadrant
  gate, be referenced); dividers may hold several values, and a value equal to a
  divider belongs to the upper side;
* ``gating:parent_id`` is kept as the gate's ``parent_id``; a gate's *population* is the
  gate ANDed with its parent's population (:func:`apply_gatingml`);
* a ``BooleanGate`` combines the populations (parents included) of the gates it
  references, each possibly as its complement;
* a dimension's ``compensation-ref`` may be ``uncompensated``, ``FCS`` (the Sample's
  ``$SPILLOVER``; none present, or plain columns given, means the values are used as
  they are) or the id of a ``spectrumMatrix``; its ``transformation-ref`` names one of
  ``flin``, ``flog``, ``fasinh``, ``logicle``, ``hyperlog``; a ``new-dimension`` is an
  ``fratio`` of two dimensions.

Gates are evaluated on scale values (``Sample.events``: ``$PnE`` and ``$PnG`` applied),
which is what the Gating-ML compliance truth assumes.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from cytoflow_res.errors import TemplateError
from cytoflow_res.gating._gml_transforms import (
    AsinhTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
    RatioTransform,
    ScaleTransform,
    SpectrumMatrix,
)
from cytoflow_res.gating.gates import (
    BooleanGate,
    BooleanOp,
    EllipseGate,
    EllipsoidGate,
    Events,
    Gate,
    PolygonGate,
    RangeGate,
    RectangleGate,
    column_values,
)
from cytoflow_res.sample import Sample

__all__ = ["GmlDimension", "apply_gatingml", "read_gatingml"]

GATING_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/gating"
TRANSFORMS_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/transformations"
DATATYPES_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes"

SUPPORTED_GATES = ("RectangleGate", "PolygonGate", "EllipsoidGate", "QuadrantGate", "BooleanGate")
SUPPORTED_TRANSFORMS = ("flin", "flog", "fasinh", "logicle", "hyperlog", "fratio")
_RESERVED_COMP = ("uncompensated", "FCS")


# ------------------------------------------------------------------ XML helpers


def _split(tag: str) -> tuple[str, str]:
    """``(namespace, local name)`` of an ElementTree tag or attribute key."""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _local(elem: ET.Element) -> str:
    return _split(elem.tag)[1] if isinstance(elem.tag, str) else ""


def _attr(elem: ET.Element, name: str) -> str | None:
    """Attribute by local name, whatever its namespace prefix (files vary)."""
    for key, value in elem.attrib.items():
        if _split(key)[1] == name:
            return value
    return None


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in elem if _local(c) == name]


def _where(elem: ET.Element, gate_id: str | None = None) -> str:
    ident = _attr(elem, "id")
    label = f"<{_local(elem)} id={ident!r}>" if ident else f"<{_local(elem)}>"
    return f"{label} in gate {gate_id!r}" if gate_id and gate_id != ident else label


def _number(elem: ET.Element, name: str, where: str, *, required: bool = True) -> float | None:
    text = _attr(elem, name)
    if text is None:
        if required:
            msg = f"{where} lacks the required attribute {name!r}"
            raise TemplateError(msg)
        return None
    try:
        return float(text)
    except ValueError:
        msg = f"{where}: attribute {name}={text!r} is not a number"
        raise TemplateError(msg) from None


def _required_number(elem: ET.Element, name: str, where: str) -> float:
    value = _number(elem, name, where)
    assert value is not None
    return value


def _values(elems: list[ET.Element], where: str) -> tuple[float, ...]:
    """The ``data-type:value`` of each element (coordinates, entries, coefficients)."""
    return tuple(_required_number(e, "value", where) for e in elems)


def _fcs_names(elem: ET.Element, where: str) -> list[str]:
    names = []
    for child in _children(elem, "fcs-dimension"):
        name = _attr(child, "name")
        if not name:
            msg = f"{where}: <fcs-dimension> has no name attribute"
            raise TemplateError(msg)
        names.append(name)
    return names


# ------------------------------------------------------------------ dimensions


@dataclass(frozen=True)
class GmlDimension:
    """A Gating-ML dimension: a channel or ratio, compensated and transformed as the file says.

    It is a :class:`~cytoflow_res.gating.gates.Measure`: gates call :meth:`values` to get
    the numbers they compare with their coordinates.

    Attributes
    ----------
    source
        The ``fcs-dimension`` name (``$PnN``, ``$PnS`` or a fluorochrome of the matrix), or
        the id of the ``fratio`` transformation for a ``new-dimension``.
    compensation_ref
        ``"uncompensated"``, ``"FCS"`` or the id of a spectrum matrix.
    matrix
        That spectrum matrix, if the reference names one.
    transformation_ref
        Id of the scale transformation, if any.
    transform
        That transformation.
    ratio
        The ``fratio`` of a ``new-dimension``.
    """

    source: str
    compensation_ref: str = "uncompensated"
    matrix: SpectrumMatrix | None = None
    transformation_ref: str | None = None
    transform: ScaleTransform | None = None
    ratio: RatioTransform | None = None

    @property
    def name(self) -> str:
        """``source``, decorated with the compensation and transformation when present."""
        text = self.source
        if self.compensation_ref != "uncompensated":
            text = f"{text}[{self.compensation_ref}]"
        if self.transformation_ref is not None:
            text = f"{self.transformation_ref}({text})"
        return text

    def values(self, events: Events) -> np.ndarray:
        """Compensated, ratio-ed and transformed values of this dimension for every event."""
        if self.ratio is not None:
            vals = self.ratio.apply(
                self._compensated(events, self.ratio.numerator),
                self._compensated(events, self.ratio.denominator),
            )
        else:
            vals = self._compensated(events, self.source)
        if self.transform is not None:
            vals = self.transform.apply(vals)
        return vals

    def _compensated(self, events: Events, name: str) -> np.ndarray:
        if self.matrix is not None:
            idx = self.matrix.index_of(name)
            if idx is None:  # a channel outside the matrix is not compensated
                return column_values(events, name)
            detectors = np.column_stack([column_values(events, d) for d in self.matrix.detectors])
            return self.matrix.apply(detectors)[:, idx]
        if self.compensation_ref == "FCS" and isinstance(events, Sample):
            return _fcs_compensated(events, name)
        return column_values(events, name)


def _fcs_compensated(sample: Sample, name: str) -> np.ndarray:
    """``name`` compensated with the sample's own spillover matrix (unchanged if it has none)."""
    spill = sample.spillover
    target = sample.channel(name).name
    if spill is None:
        return np.asarray(sample.column(target), dtype=np.float64)
    detectors = [sample.channel(ch).name for ch in spill.channels]
    if target not in detectors:
        return np.asarray(sample.column(target), dtype=np.float64)
    observed = np.column_stack([sample.column(d) for d in detectors]).astype(np.float64)
    comp = observed @ np.linalg.inv(spill.matrix)
    return np.asarray(comp[:, detectors.index(target)])


# ------------------------------------------------------------------ the reader


class _Reader:
    """State of one parse: transformations, matrices, raw gate elements, built gates."""

    def __init__(self, root: ET.Element, source: str) -> None:
        self.root = root
        self.source = source
        self.transforms: dict[str, ScaleTransform | RatioTransform] = {}
        self.matrices: dict[str, SpectrumMatrix] = {}
        self.gates: dict[str, Gate] = {}
        self.boolean_elems: dict[str, ET.Element] = {}
        self._building: list[str] = []
        self._populations: dict[str, Gate] = {}

    # ---------------------------------------------------------- definitions
    def read(self) -> dict[str, Gate]:
        ns, local = _split(self.root.tag)
        if local != "Gating-ML" or ns != GATING_NS:
            msg = (
                f"{self.source}: the root element is {{{ns}}}{local}, not a Gating-ML 2.0 document "
                f"({{{GATING_NS}}}Gating-ML); only Gating-ML 2.0 is supported"
            )
            raise TemplateError(msg)
        for elem in self.root.iter():
            ns, local = _split(elem.tag) if isinstance(elem.tag, str) else ("", "")
            if ns == TRANSFORMS_NS and local == "transformation":
                self._read_transformation(elem)
            elif ns == TRANSFORMS_NS and local == "spectrumMatrix":
                self._read_matrix(elem)
        order: list[str] = []
        for elem in self.root.iter():
            ns, local = _split(elem.tag) if isinstance(elem.tag, str) else ("", "")
            if ns != GATING_NS or not local.endswith("Gate"):
                continue
            if local not in SUPPORTED_GATES:
                msg = (
                    f"{self.source}: gate element <{local}> (id {_attr(elem, 'id')!r}) is not supported; "
                    f"supported Gating-ML 2.0 gates are {', '.join(SUPPORTED_GATES)}"
                )
                raise TemplateError(msg)
            order.extend(self._read_gate(elem, local))
        for gate_id in list(self.boolean_elems):
            self._boolean(gate_id)
        self._check_parents()
        return {gid: self.gates[gid] for gid in order}

    def _new_id(self, elem: ET.Element, what: str) -> str:
        ident = _attr(elem, "id")
        if not ident:
            msg = f"{self.source}: a <{_local(elem)}> has no id; every {what} needs one"
            raise TemplateError(msg)
        return ident

    def _read_transformation(self, elem: ET.Element) -> None:
        tid = self._new_id(elem, "transformation")
        kids = [c for c in elem if isinstance(c.tag, str) and _split(c.tag)[0] == TRANSFORMS_NS]
        if len(kids) != 1:
            msg = f"transformation {tid!r} must hold exactly one of {', '.join(SUPPORTED_TRANSFORMS)}"
            raise TemplateError(msg)
        body = kids[0]
        kind = _local(body)
        where = f"transformation {tid!r} <{kind}>"

        def p(name: str) -> float:
            return _required_number(body, name, where)

        xform: ScaleTransform | RatioTransform
        if kind == "flin":
            xform = LinearTransform(T=p("T"), A=p("A"))
        elif kind == "flog":
            xform = LogTransform(T=p("T"), M=p("M"))
        elif kind == "fasinh":
            xform = AsinhTransform(T=p("T"), M=p("M"), A=p("A"))
        elif kind == "logicle":
            xform = LogicleTransform(T=p("T"), W=p("W"), M=p("M"), A=p("A"))
        elif kind == "hyperlog":
            xform = HyperlogTransform(T=p("T"), W=p("W"), M=p("M"), A=p("A"))
        elif kind == "fratio":
            names = _fcs_names(body, where)
            if len(names) != 2:
                msg = f"{where} needs exactly 2 fcs-dimension children; got {names}"
                raise TemplateError(msg)
            xform = RatioTransform(names[0], names[1], A=p("A"), B=p("B"), C=p("C"))
        else:
            msg = (
                f"{self.source}: transformation {tid!r} uses <{kind}>, which is not supported; "
                f"supported Gating-ML 2.0 transformations are {', '.join(SUPPORTED_TRANSFORMS)}"
            )
            raise TemplateError(msg)
        self.transforms[tid] = xform

    def _read_matrix(self, elem: ET.Element) -> None:
        mid = self._new_id(elem, "spectrumMatrix")
        where = f"spectrumMatrix {mid!r}"
        if mid in _RESERVED_COMP:
            msg = f"{where}: the ids {' and '.join(_RESERVED_COMP)} are reserved; rename the matrix"
            raise TemplateError(msg)
        fluoro = [n for f in _children(elem, "fluorochromes") for n in _fcs_names(f, where)]
        detect = [n for d in _children(elem, "detectors") for n in _fcs_names(d, where)]
        rows = [_values(_children(s, "coefficient"), where) for s in _children(elem, "spectrum")]
        inverted = (_attr(elem, "matrix-inverted-already") or "false").strip().lower() == "true"
        if rows and len({len(r) for r in rows}) != 1:
            msg = f"{where}: spectrum rows have different lengths {[len(r) for r in rows]}"
            raise TemplateError(msg)
        self.matrices[mid] = SpectrumMatrix(
            tuple(fluoro), tuple(detect), np.array(rows, dtype=np.float64), inverted=inverted
        )

    # ---------------------------------------------------------------- gates
    def _dimension(self, elem: ET.Element, where: str) -> GmlDimension:
        comp = _attr(elem, "compensation-ref") or "uncompensated"
        matrix = None
        if comp not in _RESERVED_COMP:
            if comp not in self.matrices:
                msg = (
                    f"{where}: compensation-ref {comp!r} names no spectrumMatrix in the file; "
                    f"valid: {', '.join([*_RESERVED_COMP, *self.matrices])}"
                )
                raise TemplateError(msg)
            matrix = self.matrices[comp]
        tref = _attr(elem, "transformation-ref")
        transform: ScaleTransform | None = None
        if tref is not None:
            found = self._transform(tref, where)
            if isinstance(found, RatioTransform):
                msg = f"{where}: transformation-ref {tref!r} is an fratio; use it in a <new-dimension>"
                raise TemplateError(msg)
            transform = found
        fcs = _children(elem, "fcs-dimension")
        new = _children(elem, "new-dimension")
        if len(fcs) + len(new) != 1:
            msg = f"{where} needs exactly one <fcs-dimension> or <new-dimension>"
            raise TemplateError(msg)
        if fcs:
            name = _attr(fcs[0], "name")
            if not name:
                msg = f"{where}: <fcs-dimension> has no name attribute"
                raise TemplateError(msg)
            return GmlDimension(name, comp, matrix, tref, transform)
        rref = _attr(new[0], "transformation-ref") or ""
        ratio = self._transform(rref, where)
        if not isinstance(ratio, RatioTransform):
            msg = f"{where}: <new-dimension> must reference an fratio transformation; {rref!r} is not one"
            raise TemplateError(msg)
        return GmlDimension(rref, comp, matrix, tref, transform, ratio)

    def _transform(self, ref: str, where: str) -> ScaleTransform | RatioTransform:
        if ref not in self.transforms:
            known = ", ".join(self.transforms) or "none"
            msg = f"{where}: transformation-ref {ref!r} is not defined in the file; defined: {known}"
            raise TemplateError(msg)
        return self.transforms[ref]

    def _register(self, gid: str, gate: Gate | None, elem: ET.Element) -> None:
        if gid in self.gates or gid in self.boolean_elems:
            msg = f"{self.source}: gate id {gid!r} is defined twice; ids must be unique"
            raise TemplateError(msg)
        if gate is None:
            self.boolean_elems[gid] = elem
        else:
            self.gates[gid] = gate

    def _read_gate(self, elem: ET.Element, kind: str) -> list[str]:
        gid = self._new_id(elem, "gate")
        parent = _attr(elem, "parent_id")
        where = f"{kind} {gid!r}"
        if kind == "BooleanGate":
            self._register(gid, None, elem)
            return [gid]
        if kind == "QuadrantGate":
            return self._read_quadrants(elem, gid, parent)
        dim_elems = _children(elem, "dimension")
        dims = [self._dimension(d, f"{where} dimension {i + 1}") for i, d in enumerate(dim_elems)]
        if not dims:
            msg = f"{where} has no <dimension>"
            raise TemplateError(msg)
        gate: Gate
        if kind == "RectangleGate":
            ranges = [
                (_number(d, "min", where, required=False), _number(d, "max", where, required=False))
                for d in dim_elems
            ]
            if len(dims) == 1:
                gate = RangeGate(dims[0], *ranges[0], name=gid, parent_id=parent)
            else:
                gate = RectangleGate(tuple(dims), tuple(ranges), name=gid, parent_id=parent)
        elif kind == "PolygonGate":
            verts = [_values(_children(v, "coordinate"), where) for v in _children(elem, "vertex")]
            vertices = cast("tuple[tuple[float, float], ...]", tuple(verts))
            gate = PolygonGate(tuple(dims), vertices, name=gid, parent_id=parent)
        else:  # EllipsoidGate
            mean = [_values(_children(m, "coordinate"), where) for m in _children(elem, "mean")]
            cov = [
                _values(_children(r, "entry"), where)
                for c in _children(elem, "covarianceMatrix")
                for r in _children(c, "row")
            ]
            d2 = [_required_number(e, "value", where) for e in _children(elem, "distanceSquare")]
            if len(mean) != 1 or len(d2) != 1 or not cov:
                msg = f"{where} needs one <mean>, one <covarianceMatrix> and one <distanceSquare>"
                raise TemplateError(msg)
            cls = EllipseGate if len(dims) == 2 else EllipsoidGate
            gate = cls(tuple(dims), mean[0], tuple(cov), d2[0], name=gid, parent_id=parent)
        self._register(gid, gate, elem)
        return [gid]

    def _read_quadrants(self, elem: ET.Element, gid: str, parent: str | None) -> list[str]:
        where = f"QuadrantGate {gid!r}"
        dividers: dict[str, tuple[GmlDimension, list[float]]] = {}
        for div in _children(elem, "divider"):
            did = self._new_id(div, "divider")
            dim = self._dimension(div, f"{where} divider {did!r}")
            values = []
            for v in _children(div, "value"):
                try:
                    values.append(float((v.text or "").strip()))
                except ValueError:
                    msg = f"{where} divider {did!r}: value {v.text!r} is not a number"
                    raise TemplateError(msg) from None
            if not values:
                msg = f"{where} divider {did!r} has no <value>"
                raise TemplateError(msg)
            dividers[did] = (dim, sorted(values))
        ids = []
        for quad in _children(elem, "Quadrant"):
            qid = self._new_id(quad, "Quadrant")
            dims, ranges = [], []
            for pos in _children(quad, "position"):
                ref = _attr(pos, "divider_ref") or ""
                if ref not in dividers:
                    msg = (
                        f"{where} quadrant {qid!r} refers to divider {ref!r}; "
                        f"dividers are {', '.join(dividers) or 'none'}"
                    )
                    raise TemplateError(msg)
                loc = _required_number(pos, "location", f"{where} quadrant {qid!r}")
                dim, cuts = dividers[ref]
                below = [c for c in cuts if c <= loc]  # a divider belongs to its upper side
                above = [c for c in cuts if c > loc]
                dims.append(dim)
                ranges.append((below[-1] if below else None, above[0] if above else None))
            if not dims:
                msg = f"{where} quadrant {qid!r} has no <position>"
                raise TemplateError(msg)
            self._register(qid, RectangleGate(tuple(dims), tuple(ranges), name=qid, parent_id=parent), quad)
            ids.append(qid)
        if not ids:
            msg = f"{where} defines no <Quadrant>"
            raise TemplateError(msg)
        return ids

    def _boolean(self, gid: str) -> Gate:
        if gid in self.gates:
            return self.gates[gid]
        if gid in self._building:
            cycle = " -> ".join([*self._building[self._building.index(gid):], gid])
            msg = f"{self.source}: boolean gates refer to each other in a cycle: {cycle}"
            raise TemplateError(msg)
        self._building.append(gid)
        elem = self.boolean_elems[gid]
        where = f"BooleanGate {gid!r}"
        ops = [c for c in elem if _local(c) in ("and", "or", "not")]
        others = [
            _local(c) for c in elem
            if isinstance(c.tag, str) and _split(c.tag)[0] == GATING_NS and c not in ops
        ]
        if len(ops) != 1 or others:
            msg = f"{where} must hold exactly one of <and>, <or>, <not>; found {[_local(c) for c in elem]}"
            raise TemplateError(msg)
        operands: list[Gate] = []
        comps: list[bool] = []
        for ref in _children(ops[0], "gateReference"):
            rid = _attr(ref, "ref") or ""
            operands.append(self._population(rid, where))
            comps.append((_attr(ref, "use-as-complement") or "false").strip().lower() == "true")
        gate = BooleanGate(
            cast(BooleanOp, _local(ops[0])), tuple(operands), complements=tuple(comps),
            name=gid, parent_id=_attr(elem, "parent_id"),
        )
        self._building.pop()
        self.gates[gid] = gate
        return gate

    def _lookup(self, gid: str, where: str) -> Gate:
        if gid in self.boolean_elems:
            return self._boolean(gid)
        if gid not in self.gates:
            msg = f"{where} refers to gate {gid!r}, which the file does not define"
            raise TemplateError(msg)
        return self.gates[gid]

    def _population(self, gid: str, where: str) -> Gate:
        """The gate ANDed with its parents' populations (what a gate reference means)."""
        if gid in self._populations:
            return self._populations[gid]
        chain = [gid]
        gate = self._lookup(gid, where)
        while gate.parent_id is not None:
            if gate.parent_id in chain:
                msg = f"{self.source}: parent_id cycle {' -> '.join([*chain, gate.parent_id])}"
                raise TemplateError(msg)
            chain.append(gate.parent_id)
            gate = self._lookup(gate.parent_id, f"gate {chain[-2]!r} (parent_id)")
        members = [self._lookup(g, where) for g in chain]
        pop = members[0] if len(members) == 1 else BooleanGate("and", tuple(members), name=gid)
        self._populations[gid] = pop
        return pop

    def _check_parents(self) -> None:
        for gid in list(self.gates):
            self._population(gid, f"gate {gid!r}")


def read_gatingml(path: str | os.PathLike[str]) -> dict[str, Gate]:
    """Read the gates of a Gating-ML 2.0 file.

    Parameters
    ----------
    path
        The XML file.

    Returns
    -------
    dict
        Gate id -> gate object, in document order. Each gate carries its ``parent_id``;
        quadrants appear under their own ids (see the module documentation).

    Raises
    ------
    TemplateError
        If the file is missing, is not well-formed Gating-ML 2.0, uses an element this
        reader does not support (the message lists what is supported), or refers to an
        undefined gate, transformation or matrix.

    Examples
    --------
    >>> gates = read_gatingml("gates.xml")  # doctest: +SKIP
    >>> mask = apply_gatingml(gates, read_fcs("data1.fcs"), "ScalePar1")  # doctest: +SKIP
    """
    source = str(path)
    try:
        tree = ET.parse(Path(path))
    except FileNotFoundError:
        msg = f"{source}: Gating-ML file not found; check the path"
        raise TemplateError(msg) from None
    except ET.ParseError as exc:
        msg = f"{source}: not well-formed XML ({exc})"
        raise TemplateError(msg) from None
    return _Reader(tree.getroot(), source).read()


def apply_gatingml(gates: Mapping[str, Gate], events: Events, gate_id: str) -> np.ndarray:
    """Mask of a gate's population: the gate ANDed with every ancestor through ``parent_id``.

    Parameters
    ----------
    gates
        Gate id -> gate, as :func:`read_gatingml` returns.
    events
        A Sample (scale values), a DataFrame or a mapping of columns.
    gate_id
        Which gate.

    Returns
    -------
    numpy.ndarray
        Boolean mask, one entry per event.

    Raises
    ------
    TemplateError
        If ``gate_id`` or an ancestor is not in ``gates``, or the parents form a cycle.
    """
    if gate_id not in gates:
        msg = f"no gate with id {gate_id!r}; ids are {', '.join(gates)}"
        raise TemplateError(msg)
    gate = gates[gate_id]
    mask = gate.apply(events)
    chain = [gate_id]
    while gate.parent_id is not None:
        pid = gate.parent_id
        if pid in chain:
            msg = f"parent_id cycle: {' -> '.join([*chain, pid])}"
            raise TemplateError(msg)
        if pid not in gates:
            msg = f"gate {chain[-1]!r} has parent_id {pid!r}, which is not among the gates"
            raise TemplateError(msg)
        chain.append(pid)
        gate = gates[pid]
        mask &= gate.apply(events)
    return mask
